package manager

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"konductor.dev/controller/ingressclass"
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
				time.Sleep(5 * time.Second)
				synctest.Wait()
				if got := w.ingressStatus("web"); len(got) != 1 || got[0].IP != "203.0.113.7" {
					t.Fatalf("status of web %+v before it left, want 203.0.113.7", got)
				}
				writes := w.countActions("update", "ingresses", "status")

				tt.leave(w)
				time.Sleep(5 * time.Second)
				synctest.Wait()
				if got := w.ingressStatus("web"); len(got) != 0 {
					t.Fatalf("status of web %+v after it left our class, want it cleared", got)
				}
				if got := w.ingressStatus("stays"); len(got) != 1 || got[0].IP != "203.0.113.7" {
					t.Errorf("status of stays %+v, want it kept", got)
				}
				if n := w.countActions("update", "ingresses", "status") - writes; n != 1 {
					t.Errorf("%d status writes for the departure, want exactly 1", n)
				}

				// Later translations leave the departed Ingress alone.
				writes = w.countActions("update", "ingresses", "status")
				w.create(ingress("later", "echo"))
				time.Sleep(5 * time.Second)
				synctest.Wait()
				if n := w.countActions("update", "ingresses", "status") - writes; n != 1 {
					t.Errorf("%d status writes after another Ingress came, want 1 (its own)", n)
				}
			})
		})
	}
}

func TestStatusOfTheNewOwnerIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		w.start()
		defer w.stop()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		writes := w.countActions("update", "ingresses", "status")

		// The class changes and the other controller publishes its own
		// address before we look.
		other := "nginx"
		w.updateIngress("web", func(ing *networkingv1.Ingress) {
			ing.Spec.IngressClassName = &other
			ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "198.51.100.1"}}
		})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := w.ingressStatus("web"); len(got) != 1 || got[0].IP != "198.51.100.1" {
			t.Fatalf("status %+v, want the new owner's 198.51.100.1 kept", got)
		}
		if n := w.countActions("update", "ingresses", "status") - writes; n != 0 {
			t.Errorf("%d status writes after the Ingress left with another controller's status, want 0", n)
		}

		// A shared proxy: the new owner publishes our very address. We
		// cleared nothing of its making and do not start now.
		w.updateIngress("web", func(ing *networkingv1.Ingress) { ing.Status.LoadBalancer.Ingress = published })
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := w.ingressStatus("web"); len(got) != 1 || got[0].IP != "203.0.113.7" {
			t.Fatalf("status %+v: the new owner's status was touched", got)
		}
	})
}

func TestStandbyDoesNotClearStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		w.start()
		defer w.stop()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		// The API server refuses the lock's renewals: the replica steps
		// down before its lease could expire, and stops writing status.
		w.client.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("API server overloaded")
		})
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if w.manager.reports() {
			t.Fatal("replica-0 still reports after failing to renew its lock")
		}
		writes := w.countActions("update", "ingresses", "status")
		other := "nginx"
		w.updateIngress("web", func(ing *networkingv1.Ingress) { ing.Spec.IngressClassName = &other })
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := w.countActions("update", "ingresses", "status") - writes; n != 0 {
			t.Errorf("a standby wrote status %d times", n)
		}
	})
}
