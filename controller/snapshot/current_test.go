package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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

// listingOf returns a lister that answers with services at revision,
// taking a second of (virtual) time, and counts how many of its kind run at
// once in active and most.
func listingOf(revision string, services []corev1.Service, active, most *atomic.Int32) lister {
	return func(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
		n := active.Add(1)
		defer active.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		return &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: revision}, Items: services}, nil
	}
}

func serviceAt(name, rv string) corev1.Service {
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
}

// WaitCurrent lists the informers one after another (the simulator's
// replay needs the API requests in a fixed order), and returns only once
// each informer holds what its listing found, however late one catches up.
func TestWaitCurrentListsInTurnAndWaitsForEachInformer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var active, most atomic.Int32
		c := &Cache{}
		const informers = 9
		var lagging cache.Store
		for i := range informers {
			store := cache.NewStore(cache.MetaNamespaceKeyFunc)
			svc := serviceAt(fmt.Sprintf("svc-%d", i), "10")
			if i == informers-1 {
				lagging = store // catches up 30s later
			} else if err := store.Add(&svc); err != nil {
				t.Fatal(err)
			}
			c.informers = append(c.informers, fakeInformer{store: store, lastSync: "5"})
			c.listers = append(c.listers, listingOf("10", []corev1.Service{svc}, &active, &most))
		}
		go func() {
			time.Sleep(30 * time.Second)
			svc := serviceAt(fmt.Sprintf("svc-%d", informers-1), "10")
			if err := lagging.Add(&svc); err != nil {
				t.Error(err)
			}
		}()
		start := time.Now()
		if err := c.WaitCurrent(t.Context()); err != nil {
			t.Fatalf("WaitCurrent: %v", err)
		}
		if took := time.Since(start); took < 30*time.Second {
			t.Errorf("WaitCurrent returned after %v, before the lagging informer caught up at 30s", took)
		}
		if got := most.Load(); got != 1 {
			t.Errorf("at most %d listings ran at once, want 1 (in turn)", got)
		}
	})
}

// An informer that never catches up makes WaitCurrent return its
// context's error when the context ends, with every other check stopped.
func TestWaitCurrentReturnsTheContextErrorWhenAnInformerNeverCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var active, most atomic.Int32
		c := &Cache{}
		for i := range 6 {
			store := cache.NewStore(cache.MetaNamespaceKeyFunc)
			svc := serviceAt(fmt.Sprintf("svc-%d", i), "10")
			if i != 2 { // informer 2 never gets its object
				if err := store.Add(&svc); err != nil {
					t.Fatal(err)
				}
			}
			c.informers = append(c.informers, fakeInformer{store: store, lastSync: "5"})
			c.listers = append(c.listers, listingOf("10", []corev1.Service{svc}, &active, &most))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := c.WaitCurrent(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitCurrent = %v, want the context's deadline error", err)
		}
		if n := active.Load(); n != 0 {
			t.Errorf("%d listings still run after WaitCurrent returned", n)
		}
	})
}
