package snapshot

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// fakeInformer is an informer reduced to what heldBy reads.
type fakeInformer struct {
	cache.SharedIndexInformer
	store    cache.Store
	lastSync string
}

func (f fakeInformer) GetStore() cache.Store           { return f.store }
func (f fakeInformer) LastSyncResourceVersion() string { return f.lastSync }

func TestHeldBy(t *testing.T) {
	listing := listed{revision: "100", versions: map[string]string{"ns/a": "40", "ns/b": "90"}}
	tests := []struct {
		name     string
		cached   map[string]string // name in ns → resourceVersion
		lastSync string
		listing  listed
		want     bool
	}{
		{"same objects, idle informer", map[string]string{"a": "40", "b": "90"}, "90", listing, true},
		{"a listed object missing", map[string]string{"a": "40"}, "90", listing, false},
		{"an older version of a listed object", map[string]string{"a": "40", "b": "80"}, "80", listing, false},
		{"a newer version of a listed object", map[string]string{"a": "40", "b": "120"}, "95", listing, true},
		{"an object created after the listing", map[string]string{"a": "40", "b": "90", "c": "110"}, "95", listing, true},
		{"an object deleted before the listing, missed", map[string]string{"a": "40", "b": "90", "c": "60"}, "90", listing, false},
		{"the informer synced past the listing", map[string]string{"a": "40"}, "130", listing, true},
		{"versions that are no numbers, equal", map[string]string{"a": "x", "b": "y"}, "y",
			listed{revision: "z", versions: map[string]string{"ns/a": "x", "ns/b": "y"}}, true},
		{"versions that are no numbers, different", map[string]string{"a": "x", "b": "w"}, "w",
			listed{revision: "z", versions: map[string]string{"ns/a": "x", "ns/b": "y"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := cache.NewStore(cache.MetaNamespaceKeyFunc)
			for name, rv := range tt.cached {
				if err := store.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}); err != nil {
					t.Fatal(err)
				}
			}
			if got := tt.listing.heldBy(fakeInformer{store: store, lastSync: tt.lastSync}); got != tt.want {
				t.Errorf("heldBy = %v, want %v", got, tt.want)
			}
		})
	}
}
