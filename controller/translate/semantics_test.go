package translate

import (
	"regexp"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// kongPathMatches is Kong's documented path matching (kong-facts: "a plain
// path is a raw prefix; a ~ path is a regex anchored at the start"), the
// model the table below holds the translation to.
func kongPathMatches(t *testing.T, kongPaths []string, request string) bool {
	t.Helper()
	for _, p := range kongPaths {
		if re, ok := strings.CutPrefix(p, "~"); ok {
			if regexp.MustCompile("^(?:" + re + ")").MatchString(request) {
				return true
			}
		} else if strings.HasPrefix(request, p) {
			return true
		}
	}
	return false
}

// TestPathSemantics checks, request by request, that the Kong paths of an
// Ingress path match exactly what the Kubernetes Ingress API says: Exact
// matches the path alone; Prefix matches element-wise (/foo matches /foo,
// /foo/ and /foo/bar, never /foobar; a trailing slash in the path is
// ignored); ImplementationSpecific is a Kong prefix, or a regex when it
// starts with /~.
func TestPathSemantics(t *testing.T) {
	prefix, exact, impl := networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific
	tests := []struct {
		path     string
		typ      networkingv1.PathType
		match    []string
		mismatch []string
	}{
		{"/foo", prefix, []string{"/foo", "/foo/", "/foo/bar", "/foo/bar/"}, []string{"/foobar", "/fo", "/", "/bar/foo"}},
		{"/foo/", prefix, []string{"/foo", "/foo/", "/foo/bar"}, []string{"/foobar"}},
		{"/foo/bar", prefix, []string{"/foo/bar", "/foo/bar/baz"}, []string{"/foo/barbaz", "/foo", "/foo/baz"}},
		{"/", prefix, []string{"/", "/anything", "/a/b"}, nil},
		{"/v1.0", prefix, []string{"/v1.0", "/v1.0/x"}, []string{"/v1x0", "/v1.00"}},
		{"/foo", exact, []string{"/foo"}, []string{"/foo/", "/foo/bar", "/foobar", "/fo"}},
		{"/foo/", exact, []string{"/foo/"}, []string{"/foo", "/foo/bar"}},
		{"/a+b", exact, []string{"/a+b"}, []string{"/aab", "/aaab"}},
		{"/foo", impl, []string{"/foo", "/foobar", "/foo/bar"}, []string{"/fo"}},
		{`/~/foo/\d{3}`, impl, []string{"/foo/123", "/foo/1234"}, []string{"/foo/12", "/foo/abc", "/~/foo/123"}},
		{"/~/plain$", impl, []string{"/plain"}, []string{"/~/plain", "/plainer"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+" "+tt.path, func(t *testing.T) {
			kp, err := kongPaths(tt.path, &tt.typ, DefaultRegexPrefix)
			if err != nil {
				t.Fatal(err)
			}
			for _, req := range tt.match {
				if !kongPathMatches(t, kp, req) {
					t.Errorf("Kong paths %q do not match %s", kp, req)
				}
			}
			for _, req := range tt.mismatch {
				if kongPathMatches(t, kp, req) {
					t.Errorf("Kong paths %q match %s", kp, req)
				}
			}
		})
	}
}

// TestExactBeatsPrefixAndDefaultBackendLoses: for the same host and path,
// Kong must pick the Exact route (higher regex_priority, as Kong orders
// regex routes by it), and a default backend (a path-only route on /)
// loses to every rule (Kong prefers routes with more fields set).
func TestExactBeatsPrefixAndDefaultBackendLoses(t *testing.T) {
	snap := loadSnapshot(t, "testdata/exact-over-prefix.yaml")
	res := Translate(snap, Options{})
	priority := map[string]int{}
	for _, s := range res.Config.Services {
		for _, r := range s.Routes {
			for _, p := range r.Paths {
				if *p == "~/shop$" {
					priority[*r.Name] = *r.RegexPriority
				}
			}
		}
	}
	if len(priority) != 2 {
		t.Fatalf("want an Exact and a Prefix route on ~/shop$, got %v", priority)
	}
	var exact, pfx int
	for name, p := range priority {
		if strings.HasPrefix(name, "default.landing.") { // Exact /shop; catalog has Prefix /shop
			exact = p
		} else {
			pfx = p
		}
	}
	if exact <= pfx {
		t.Errorf("Exact route regex_priority %d, Prefix %d: Kong could pick the Prefix route", exact, pfx)
	}

	res = Translate(loadSnapshot(t, "testdata/default-backend.yaml"), Options{})
	defaults := 0
	for _, s := range res.Config.Services {
		for _, r := range s.Routes {
			if !strings.HasSuffix(*r.Name, ".default") {
				continue
			}
			defaults++
			if len(r.Hosts) > 0 || len(r.Headers) > 0 || len(r.Methods) > 0 || len(r.Paths) != 1 || *r.Paths[0] != "/" {
				t.Errorf("default backend route %s sets hosts %v, paths %v; want only the path /", *r.Name, r.Hosts, r.Paths)
			}
		}
	}
	if defaults == 0 {
		t.Error("no default backend route in testdata/default-backend.yaml")
	}
}
