package snapshot

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/controller/ingressclass"
)

func ing(ns, name string, class *string, annotation string) *networkingv1.Ingress {
	i := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Generation: 1}}
	i.Spec.IngressClassName = class
	if annotation != "" {
		i.Annotations = map[string]string{ingressclass.AnnotationIngressClass: annotation}
	}
	return i
}

func ptr(s string) *string { return &s }

func names[T metav1.Object](objs []T) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetNamespace()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

func objects() []runtime.Object {
	return []runtime.Object{
		ing("a", "by-name", ptr("kong"), ""),
		ing("a", "by-annotation", nil, "kong"),
		ing("a", "classless", nil, ""),
		ing("a", "other", ptr("nginx"), ""),
		ing("b", "elsewhere", ptr("kong"), ""),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "svc"}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "svc-x"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "cert"}, Type: corev1.SecretTypeTLS},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "token"}, Type: corev1.SecretTypeOpaque},
	}
}

func start(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); c.Shutdown() })
	c.Start(ctx)
	if !c.WaitForSync(ctx) {
		t.Fatal("caches did not sync")
	}
	return c
}

func TestSnapshotFiltersClassAndSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := fake.NewClientset(objects()...)
		c := start(t, Config{Client: client, IngressClass: "kong"})
		s := c.Snapshot()
		if got, want := names(s.Ingresses), []string{"a/by-annotation", "a/by-name", "b/elsewhere"}; !slices.Equal(got, want) {
			t.Errorf("ingresses %v, want %v", got, want)
		}
		if got := names(s.Secrets); !slices.Equal(got, []string{"a/cert"}) {
			t.Errorf("secrets %v", got)
		}
		if len(s.Services) != 1 || len(s.EndpointSlices) != 1 {
			t.Errorf("services %d, endpoint slices %d", len(s.Services), len(s.EndpointSlices))
		}
		if _, ok := c.Ingress("a", "other"); !ok {
			t.Error("Ingress lookup missed a/other")
		}

		// Our class becomes the default: the class-less Ingress joins.
		class := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "kong", Annotations: map[string]string{ingressclass.AnnotationIsDefault: "true"}}}
		class.Spec.Controller = ingressclass.ControllerName
		if _, err := client.NetworkingV1().IngressClasses().Create(context.Background(), class, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := names(c.Snapshot().Ingresses); !slices.Contains(got, "a/classless") {
			t.Errorf("default class: ingresses %v lack a/classless", got)
		}
	})
}

func TestNamespaceScoping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := start(t, Config{Client: fake.NewClientset(objects()...), IngressClass: "kong", Namespaces: []string{"b"}})
		if got := names(c.Snapshot().Ingresses); !slices.Equal(got, []string{"b/elsewhere"}) {
			t.Errorf("ingresses %v", got)
		}
		if _, ok := c.Ingress("a", "by-name"); ok {
			t.Error("found an Ingress outside the watched namespaces")
		}
	})
}

func TestOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := fake.NewClientset(objects()...)
		var changes atomic.Int32
		c := start(t, Config{Client: client, IngressClass: "kong", OnChange: func() { changes.Add(1) }})
		synctest.Wait()
		initial := changes.Load()
		if initial == 0 {
			t.Fatal("initial list reported no change")
		}
		ctx := context.Background()
		i, _ := c.Ingress("a", "by-name")

		// A status-only update (our own status write) is not a change.
		st := i.DeepCopy()
		st.ResourceVersion = "2"
		st.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "1.2.3.4"}}
		if _, err := client.NetworkingV1().Ingresses("a").UpdateStatus(ctx, st, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := changes.Load(); got != initial {
			t.Errorf("status update counted as change: %d -> %d", initial, got)
		}

		spec := st.DeepCopy()
		spec.ResourceVersion = "3"
		spec.Generation = 2
		if _, err := client.NetworkingV1().Ingresses("a").Update(ctx, spec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := client.CoreV1().Services("a").Delete(ctx, "svc", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := changes.Load(); got != initial+2 {
			t.Errorf("changes %d, want %d", got, initial+2)
		}
	})
}

func TestAllIngressesListsEveryClassInOrder(t *testing.T) {
	tests := []struct {
		name       string
		namespaces []string
		want       []string
	}{
		{"all namespaces", nil, []string{"a/by-annotation", "a/by-name", "a/classless", "a/other", "b/elsewhere"}},
		{"namespaces named out of order", []string{"b", "a"}, []string{"a/by-annotation", "a/by-name", "a/classless", "a/other", "b/elsewhere"}},
		{"one namespace", []string{"b"}, []string{"b/elsewhere"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := start(t, Config{Client: fake.NewClientset(objects()...), IngressClass: "kong", Namespaces: tt.namespaces})
				var got []string
				for _, ing := range c.AllIngresses() {
					got = append(got, ing.Namespace+"/"+ing.Name)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("AllIngresses = %v, want %v", got, tt.want)
				}
			})
		})
	}
}
