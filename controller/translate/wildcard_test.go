package translate

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// A wildcard rule host is translated, and the Ingress is warned once that
// Kong matches it at any depth.
func TestWildcardHostDepthWarning(t *testing.T) {
	tests := []struct {
		name     string
		hosts    []string
		warnings int
		field    string
	}{
		{"no wildcard", []string{"a.example.com", "b.example.com"}, 0, ""},
		{"one wildcard", []string{"a.example.com", "*.example.com"}, 1, "spec.rules[1].host"},
		{"two wildcards, one warning", []string{"*.a.example.com", "*.b.example.com"}, 1, "spec.rules[0].host"},
		{"invalid wildcard is an error, not this warning", []string{"a.*.example.com"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := benchSnapshot(1)
			ing := snap.Ingresses[0].DeepCopy()
			base := ing.Spec.Rules[0]
			ing.Spec.Rules = nil
			for _, h := range tt.hosts {
				r := *base.DeepCopy()
				r.Host = h
				ing.Spec.Rules = append(ing.Spec.Rules, r)
			}
			snap.Ingresses = []*networkingv1.Ingress{ing}
			res := Translate(snap, Options{})
			var warnings []ObjectError
			for _, e := range res.Errors {
				if e.Reason == ReasonWildcardHostDepth {
					warnings = append(warnings, e)
				}
			}
			if len(warnings) != tt.warnings {
				t.Fatalf("%d %s warnings, want %d: %v", len(warnings), ReasonWildcardHostDepth, tt.warnings, res.Errors)
			}
			if tt.warnings == 0 {
				return
			}
			w := warnings[0]
			if w.Object != ingressRef(ing) || w.Field != tt.field || !strings.Contains(w.Message, "any depth") {
				t.Errorf("warning %+v, want on %v field %s saying Kong matches any depth", w, ingressRef(ing), tt.field)
			}
			var routeHosts []string
			for _, s := range res.Config.Services {
				for _, r := range s.Routes {
					routeHosts = append(routeHosts, derefAll(r.Hosts)...)
				}
			}
			for _, h := range tt.hosts {
				if !strings.Contains(strings.Join(routeHosts, " "), h) {
					t.Errorf("host %s has no route (route hosts %v): the warning must not drop the rule", h, routeHosts)
				}
			}
		})
	}
}
