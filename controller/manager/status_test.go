package manager

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"

	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/status"
)

var published = []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.7"}}

func ourClass(isDefault bool) *networkingv1.IngressClass {
	ic := &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "kong"},
		Spec:       networkingv1.IngressClassSpec{Controller: ingressclass.ControllerName},
	}
	if isDefault {
		ic.Annotations = map[string]string{ingressclass.AnnotationIsDefault: "true"}
	}
	return ic
}

// byAnnotation is an Ingress that names its class with the legacy
// annotation only; class "" names none (ours only while we are the default).
func byAnnotation(name, class string) *networkingv1.Ingress {
	ing := ingress(name, "echo")
	ing.Spec.IngressClassName = nil
	if class != "" {
		ing.Annotations = map[string]string{ingressclass.AnnotationIngressClass: class}
	}
	return ing
}

func (w *world) ingressStatus(name string) []networkingv1.IngressLoadBalancerIngress {
	w.t.Helper()
	ing, err := w.client.NetworkingV1().Ingresses("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return ing.Status.LoadBalancer.Ingress
}

// updateIngress changes an Ingress as a user would (spec or metadata): the
// API server bumps the generation on a spec change.
func (w *world) updateIngress(name string, change func(ing *networkingv1.Ingress)) {
	w.t.Helper()
	ctx := context.Background()
	ing, err := w.client.NetworkingV1().Ingresses("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	change(ing)
	ing.Generation++
	if _, err := w.client.NetworkingV1().Ingresses("default").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func TestStatusClearedWhenIngressLeavesOurClass(t *testing.T) {
	other := "nginx"
	tests := []struct {
		name    string
		ingress *networkingv1.Ingress
		class   *networkingv1.IngressClass
		leave   func(w *world)
	}{
		{"ingressClassName changed", ingress("web", "echo"), ourClass(false), func(w *world) {
			w.updateIngress("web", func(ing *networkingv1.Ingress) { ing.Spec.IngressClassName = &other })
		}},
		{"class annotation changed", byAnnotation("web", "kong"), ourClass(false), func(w *world) {
			w.updateIngress("web", func(ing *networkingv1.Ingress) { ing.Annotations[ingressclass.AnnotationIngressClass] = other })
		}},
		{"our class no longer the default", byAnnotation("web", ""), ourClass(true), func(w *world) {
			if _, err := w.client.NetworkingV1().IngressClasses().Update(context.Background(), ourClass(false), metav1.UpdateOptions{}); err != nil {
				w.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, service("echo"), endpointSlice("echo"), tt.class, tt.ingress, ingress("stays", "echo"))
				w.start()
				defer w.stop()
				settle(5 * time.Second)
				if got := w.ingressStatus("web"); len(got) != 1 || got[0].IP != "203.0.113.7" {
					t.Fatalf("status of web %+v before it left, want 203.0.113.7", got)
				}
				writes := w.countActions("patch", "ingresses", "status")

				tt.leave(w)
				settle(5 * time.Second)
				if got := w.ingressStatus("web"); len(got) != 0 {
					t.Fatalf("status of web %+v after it left our class, want it cleared", got)
				}
				if got := w.ingressStatus("stays"); len(got) != 1 || got[0].IP != "203.0.113.7" {
					t.Errorf("status of stays %+v, want it kept", got)
				}
				if n := w.countActions("patch", "ingresses", "status") - writes; n != 1 {
					t.Errorf("%d status writes for the departure, want exactly 1", n)
				}

				// Later translations leave the departed Ingress alone.
				writes = w.countActions("patch", "ingresses", "status")
				w.create(ingress("later", "echo"))
				settle(5 * time.Second)
				if n := w.countActions("patch", "ingresses", "status") - writes; n != 1 {
					t.Errorf("%d status writes after another Ingress came, want 1 (its own)", n)
				}
			})
		})
	}
}

func TestStatusOfTheNewOwnerIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := syncedEchoWorld(t)
		defer w.stop()
		writes := w.countActions("patch", "ingresses", "status")

		// The class changes and the other controller publishes its own
		// address before we look.
		other := "nginx"
		w.updateIngress("web", func(ing *networkingv1.Ingress) {
			ing.Spec.IngressClassName = &other
			ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "198.51.100.1"}}
		})
		settle(5 * time.Second)
		if got := w.ingressStatus("web"); len(got) != 1 || got[0].IP != "198.51.100.1" {
			t.Fatalf("status %+v, want the new owner's 198.51.100.1 kept", got)
		}
		if n := w.countActions("patch", "ingresses", "status") - writes; n != 0 {
			t.Errorf("%d status writes after the Ingress left with another controller's status, want 0", n)
		}

		// A shared proxy: the new owner publishes our very address. We
		// cleared nothing of its making and do not start now.
		w.updateIngress("web", func(ing *networkingv1.Ingress) { ing.Status.LoadBalancer.Ingress = published })
		settle(5 * time.Second)
		if got := w.ingressStatus("web"); len(got) != 1 || got[0].IP != "203.0.113.7" {
			t.Fatalf("status %+v: the new owner's status was touched", got)
		}
	})
}

func TestStandbyDoesNotClearStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		refuseRenewals := w.overloaded("update", "configmaps")
		w.start()
		defer w.stop()
		settle(5 * time.Second)
		// The API server refuses the lock's renewals: the replica steps
		// down before its lease could expire, and stops writing status.
		refuseRenewals.Store(true)
		settle(30 * time.Second)
		if w.manager.reports() {
			t.Fatal("replica-0 still reports after failing to renew its lock")
		}
		writes := w.countActions("patch", "ingresses", "status")
		other := "nginx"
		w.updateIngress("web", func(ing *networkingv1.Ingress) { ing.Spec.IngressClassName = &other })
		settle(5 * time.Second)
		if n := w.countActions("patch", "ingresses", "status") - writes; n != 0 {
			t.Errorf("a standby wrote status %d times", n)
		}
	})
}

// statusWritesOn counts the status patches sent for the Ingress name.
func (w *world) statusWritesOn(name string) int {
	n := 0
	for _, a := range w.client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetSubresource() == "status" && a.GetResource().Resource == "ingresses" && p.GetName() == name {
			n++
		}
	}
	return n
}

// withStatus sets ing's status to addrs.
func withStatus(ing *networkingv1.Ingress, addrs ...networkingv1.IngressLoadBalancerIngress) *networkingv1.Ingress {
	ing.Status.LoadBalancer.Ingress = addrs
	return ing
}

func TestEachTermSweepsOtherClassesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		other := networkingv1.IngressLoadBalancerIngress{IP: "198.51.100.1"}
		nginx := func(name string) *networkingv1.Ingress {
			ing := ingress(name, "echo")
			class := "nginx"
			ing.Spec.IngressClassName = &class
			return ing
		}
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("ours", "echo"),
			// Left our class while no replica of ours ran: no
			// translation of this term ever routed it.
			withStatus(nginx("departed"), published...),
			withStatus(nginx("foreign"), other),
			withStatus(nginx("mixed"), published[0], other),
			withStatus(byAnnotation("by-annotation", "nginx"), published...),
		)
		// Renewals of the lock fail while refuse is set.
		refuse := w.overloaded("update", "configmaps")
		w.start()
		defer w.stop()
		settle(5 * time.Second)
		for _, name := range []string{"departed", "by-annotation"} {
			if got := w.ingressStatus(name); len(got) != 0 {
				t.Errorf("status of %s %+v: the new leader left our addresses on an Ingress of another class", name, got)
			}
			if n := w.statusWritesOn(name); n != 1 {
				t.Errorf("%d status writes on %s, want 1", n, name)
			}
		}
		for name, want := range map[string][]networkingv1.IngressLoadBalancerIngress{
			"foreign": {other}, "mixed": {published[0], other}, "ours": published,
		} {
			if got := w.ingressStatus(name); !status.Equal(got, want) {
				t.Errorf("status of %s %+v, want %+v", name, got, want)
			}
		}
		for _, name := range []string{"foreign", "mixed"} {
			if n := w.statusWritesOn(name); n != 0 {
				t.Errorf("%d status writes on %s, want none", n, name)
			}
		}

		// A controller of the other class behind the same proxy publishes
		// our very address: within the term we leave it.
		w.updateIngress("departed", func(ing *networkingv1.Ingress) { ing.Status.LoadBalancer.Ingress = published })
		w.create(ingress("later", "echo")) // a translation and a status pass
		settle(5 * time.Second)
		if n := w.statusWritesOn("departed"); n != 1 {
			t.Errorf("%d status writes on departed within one term, want 1", n)
		}

		// The term ends and a new one starts: one more sweep.
		refuse.Store(true)
		settle(30 * time.Second)
		if w.manager.reports() {
			t.Fatal("replica-0 still reports after failing to renew its lock")
		}
		refuse.Store(false)
		settle(30 * time.Second)
		if !w.manager.reports() {
			t.Fatal("replica-0 did not lead again once renewals succeeded")
		}
		if got := w.ingressStatus("departed"); len(got) != 0 {
			t.Errorf("status of departed %+v after a new term, want it swept", got)
		}
		if n := w.statusWritesOn("departed"); n != 2 {
			t.Errorf("%d status writes on departed after two terms, want 2", n)
		}
		if n := w.statusWritesOn("foreign") + w.statusWritesOn("mixed"); n != 0 {
			t.Errorf("%d status writes on other controllers' Ingresses, want none", n)
		}
	})
}

func TestSweepWaitsForOurAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		args := slices.DeleteFunc(slices.Clone(defaultArgs), func(a string) bool { return strings.HasPrefix(a, "--publish-status-address=") })
		args = append(args, "--publish-service=kong/proxy")
		stale := ingress("departed", "echo")
		class := "nginx"
		stale.Spec.IngressClassName = &class
		stale.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "10.96.0.99"}}
		w := newWorldWith(t, worldSpec{args: args}, service("echo"), endpointSlice("echo"), stale)
		w.start()
		defer w.stop()
		settle(5 * time.Second)
		if n := w.statusWritesOn("departed"); n != 0 {
			t.Fatalf("%d status writes before our addresses were known", n)
		}
		proxy := service("proxy")
		proxy.Namespace, proxy.Spec.ClusterIP, proxy.Spec.ClusterIPs = "kong", "10.96.0.99", []string{"10.96.0.99"}
		w.create(proxy)
		settle(5 * time.Second)
		if got := w.ingressStatus("departed"); len(got) != 0 {
			t.Errorf("status of departed %+v once our addresses were known, want it swept", got)
		}
	})
}
