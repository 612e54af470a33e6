package status

import (
	"context"
	"sync/atomic"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/controller/translate"
)

// ingressMap is the Loop's view of the cache.
type ingressMap map[string]*networkingv1.Ingress

func (m ingressMap) Ingress(ns, name string) (*networkingv1.Ingress, bool) {
	ing, ok := m[ns+"/"+name]
	return ing, ok
}

func (m ingressMap) AllIngresses() []*networkingv1.Ingress {
	var out []*networkingv1.Ingress
	for _, ing := range m {
		out = append(out, ing)
	}
	return out
}

func (ingressMap) OurClassIsDefault() bool { return false }

func classIngress(name, class string) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), ResourceVersion: "1"},
		Spec:       networkingv1.IngressSpec{IngressClassName: &class},
	}
}

func refOf(ing *networkingv1.Ingress) translate.ObjectRef {
	return translate.ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name, UID: ing.UID}
}

// Status goes only onto the Ingresses of the newest version every Kong
// applied; older versions are dropped once a newer one applied.
func TestLoopPublishesTheNewestAppliedVersion(t *testing.T) {
	a, b := classIngress("a", "kong"), classIngress("b", "kong")
	client := fake.NewClientset(a, b)
	var applied atomic.Uint64
	l := NewLoop(&Loop{
		Writer:       &Writer{Client: client},
		Cache:        ingressMap{"default/a": a, "default/b": b},
		IngressClass: "kong",
		Update:       true,
		Addresses:    func() []networkingv1.IngressLoadBalancerIngress { return lb("203.0.113.7") },
		Applied:      func(v uint64) bool { return v <= applied.Load() },
		Reports:      func() bool { return true },
	})
	ctx := context.Background()
	l.Translated(1, true, []translate.ObjectRef{refOf(a)})
	l.Translated(2, true, []translate.ObjectRef{refOf(a), refOf(b)})

	if err := l.writeStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countStatusUpdates(client); n != 0 {
		t.Fatalf("%d status writes before any version applied, want 0", n)
	}
	applied.Store(1)
	if err := l.writeStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countStatusUpdates(client); n != 1 {
		t.Fatalf("%d status writes with version 1 applied, want 1 (Ingress a)", n)
	}
	applied.Store(2)
	if err := l.writeStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countStatusUpdates(client); n != 2 {
		t.Fatalf("%d status writes with version 2 applied, want 2 (a, then b)", n)
	}
	if len(l.history) != 1 || l.history[0].version != 2 {
		t.Fatalf("history %+v, want only version 2 kept", l.history)
	}
}

// At most maxHistory versions wait for Kong; an unchanged translation adds
// none.
func TestLoopHistoryIsBounded(t *testing.T) {
	l := NewLoop(&Loop{Cache: ingressMap{}})
	for v := uint64(1); v <= 3*maxHistory; v++ {
		l.Translated(v, true, nil)
		l.Translated(v, false, nil)
	}
	if len(l.history) != maxHistory || l.history[0].version != 2*maxHistory+1 {
		t.Fatalf("history holds %d versions from %d, want the last %d", len(l.history), l.history[0].version, maxHistory)
	}
}

// A routed Ingress that was deleted is forgotten at the next translation;
// one still present stays remembered for clearing should it leave.
func TestLoopForgetsDeletedIngresses(t *testing.T) {
	a, b, c := classIngress("a", "kong"), classIngress("b", "kong"), classIngress("c", "other")
	cache := ingressMap{"default/a": a, "default/b": b, "default/c": c}
	l := NewLoop(&Loop{Cache: cache})
	l.Translated(1, true, []translate.ObjectRef{refOf(a), refOf(b), refOf(c)})
	delete(cache, "default/b")
	// c left our class: no longer routed, but still there.
	l.Translated(2, true, []translate.ObjectRef{refOf(a)})
	if _, ok := l.routed[b.UID]; ok {
		t.Fatal("deleted Ingress b still remembered")
	}
	if _, ok := l.routed[c.UID]; !ok {
		t.Fatal("Ingress c, which left our class, forgotten before its status was cleared")
	}
}
