package manager

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/controller/translate"
)

// wildcardIngress is ingress(name) with the host *.<name>.example.com.
func wildcardIngress(name, backend string) *networkingv1.Ingress {
	ing := ingress(name, backend)
	ing.Spec.Rules[0].Host = "*." + name + ".example.com"
	return ing
}

// A Kong that reports router_flavor=expressions gets expression routes,
// and the wildcard Ingress no WildcardHostDepth warning; a traditional one
// gets traditional routes and the warning.
func TestRoutesFollowKongRouterFlavor(t *testing.T) {
	for _, tt := range []struct {
		flavor      string
		expressions bool
	}{{"traditional_compatible", false}, {"traditional", false}, {"expressions", true}} {
		t.Run(tt.flavor, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, service("echo"), endpointSlice("echo"), wildcardIngress("web", "echo"))
				w.kong.setRouterFlavor(tt.flavor)
				w.start()
				defer w.stop()
				settle(5 * time.Second)
				exprs := w.kong.lastExpressions()
				if len(exprs) != 1 {
					t.Fatalf("pushed routes %v, want 1", exprs)
				}
				if got := exprs[0] != ""; got != tt.expressions {
					t.Errorf("expression route %v (expression %q), want %v", got, exprs[0], tt.expressions)
				}
				if tt.expressions && !strings.Contains(exprs[0], `lower(http.host) ~ r#"^[^.]+\.web\.example\.com$"#`) {
					t.Errorf("expression %q does not match the wildcard in one label", exprs[0])
				}
				warned := len(w.events("web", translate.ReasonWildcardHostDepth)) > 0
				if warned == tt.expressions {
					t.Errorf("WildcardHostDepth warning: %v, want %v", warned, !tt.expressions)
				}
			})
		})
	}
}

// With gateway discovery the flavor is learned when a replica is first
// probed; expression routes are made only while every replica runs the
// expressions flavor.
func TestDiscoveredKongsDecideTheFlavor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := &fakeKong{routerFlavor: "expressions"}, &fakeKong{routerFlavor: "expressions"}
		c := &fakeKong{routerFlavor: "traditional_compatible"}
		h := hosts{"10.0.0.1:8444": a, "10.0.0.2:8444": b, "10.0.0.3:8444": c}
		adminPort, portName := int32(8444), "admin-tls"
		slice := func(addrs ...string) *discoveryv1.EndpointSlice {
			es := &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "kong", Name: "kong-admin-x", Labels: map[string]string{discoveryv1.LabelServiceName: "kong-admin"}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &adminPort}},
			}
			for i, addr := range addrs {
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr},
					TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "kong", Name: "kong-" + string(rune('a'+i))}})
			}
			return es
		}
		args := []string{"--kong-admin-svc=kong/kong-admin", "--election-namespace=kong", "--publish-status-address=203.0.113.7"}
		w := newWorldWith(t, args, h, service("echo"), endpointSlice("echo"), wildcardIngress("web", "echo"), slice("10.0.0.1", "10.0.0.2"))
		w.manager.cfg.HTTPClient = &http.Client{Transport: memoryTransport{h}}
		w.start()
		defer w.stop()
		settle(5 * time.Second)
		for name, k := range map[string]*fakeKong{"a": a, "b": b} {
			if exprs := k.lastExpressions(); len(exprs) != 1 || exprs[0] == "" {
				t.Errorf("Kong %s (expressions) last got routes %q, want one expression route", name, exprs)
			}
		}

		// A traditional replica joins: routes go back to the traditional
		// form, which every flavor loads.
		if _, err := w.client.DiscoveryV1().EndpointSlices("kong").Update(t.Context(), slice("10.0.0.1", "10.0.0.2", "10.0.0.3"), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		settle(5 * time.Second)
		for name, k := range map[string]*fakeKong{"a": a, "b": b, "c": c} {
			if exprs := k.lastExpressions(); len(exprs) != 1 || exprs[0] != "" {
				t.Errorf("Kong %s last got routes %q, want one traditional route", name, exprs)
			}
		}
	})
}
