package world

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

// The routing oracle's expectation is the Ingress spec's path matching,
// written independently of the translator.
func TestIngressBackend(t *testing.T) {
	ing := routingIngress().(*networkingv1.Ingress)
	for _, tc := range []struct {
		host, path, want string
	}{
		{routingHost, "/", "app-0"},
		{routingHost, "/anything", "app-0"},
		{routingHost, "/foo", "app-1"},
		{routingHost, "/foo/", "app-1"},
		{routingHost, "/foo/x", "app-1"},
		{routingHost, "/foobar", "app-0"}, // Prefix matches whole elements
		{routingHost, "/bar", "app-2"},
		{routingHost, "/bar/", "app-0"}, // Exact matches only itself
		{routingHost, "/bar/x", "app-0"},
		{routingHost, "/barx", "app-0"},
		{"other.example.test", "/foo", ""},
	} {
		if got := ingressBackend(ing, tc.host, tc.path); got != tc.want {
			t.Errorf("%s%s: got %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestPrefixMatches(t *testing.T) {
	for _, tc := range []struct {
		prefix, path string
		want         bool
	}{
		{"/", "/", true},
		{"/", "/a", true},
		{"/a/b", "/a/b", true},
		{"/a/b/", "/a/b", true},
		{"/a/b", "/a/b/", true},
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/bc", false},
		{"/a/b", "/a", false},
	} {
		if got := prefixMatches(tc.prefix, tc.path); got != tc.want {
			t.Errorf("prefixMatches(%q, %q) = %v, want %v", tc.prefix, tc.path, got, tc.want)
		}
	}
}
