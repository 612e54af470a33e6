package manager

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

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
		w := newWorldWith(t, worldSpec{kongs: h}, service("echo"), endpointSlice("echo"), wildcardIngress("web", "echo"), adminSlice("10.0.0.1", "10.0.0.2"))
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
		w.updateAdminSlice(adminSlice("10.0.0.1", "10.0.0.2", "10.0.0.3"))
		settle(5 * time.Second)
		for name, k := range map[string]*fakeKong{"a": a, "b": b, "c": c} {
			if exprs := k.lastExpressions(); len(exprs) != 1 || exprs[0] != "" {
				t.Errorf("Kong %s last got routes %q, want one traditional route", name, exprs)
			}
		}
	})
}
