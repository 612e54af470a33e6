package behaviour

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/sim/kong"
)

// defaultService serves the Ingress spec.defaultBackend: requests that no
// rule matches.
const defaultService = "default-backend"

// addDefaultBackend adds an Ingress with only a defaultBackend.
func (c *cluster) addDefaultBackend() {
	c.service(defaultService)
	ing := c.ingress("default-backend", nil)
	b := backend(defaultService)
	ing.Spec.DefaultBackend = &b
}

// TestPathMatchingExamples walks the Kubernetes Ingress API reference's
// path matching examples table. Each row gets its own host, holding only
// that row's paths; a request no path matches falls to the defaultBackend,
// as the reference's "uses default backend" says.
func TestPathMatchingExamples(t *testing.T) { eachFlavor(t, testPathMatchingExamples) }

func testPathMatchingExamples(t *testing.T, flavor string) {
	rows := []struct {
		name    string
		paths   []path
		request string
		want    string // the Service that answers
	}{
		{"Prefix / matches all paths", []path{{"Prefix", "/", "root"}}, "/any/thing", "root"},
		{"Exact /foo matches /foo", []path{{"Exact", "/foo", "foo"}}, "/foo", "foo"},
		{"Exact /foo does not match /bar", []path{{"Exact", "/foo", "foo"}}, "/bar", defaultService},
		{"Exact /foo does not match /foo/", []path{{"Exact", "/foo", "foo"}}, "/foo/", defaultService},
		{"Exact /foo/ does not match /foo", []path{{"Exact", "/foo/", "foo"}}, "/foo", defaultService},
		{"Prefix /foo matches /foo", []path{{"Prefix", "/foo", "foo"}}, "/foo", "foo"},
		{"Prefix /foo matches /foo/", []path{{"Prefix", "/foo", "foo"}}, "/foo/", "foo"},
		{"Prefix /foo/ matches /foo", []path{{"Prefix", "/foo/", "foo"}}, "/foo", "foo"},
		{"Prefix /foo/ matches /foo/", []path{{"Prefix", "/foo/", "foo"}}, "/foo/", "foo"},
		{"Prefix /foo matches /foo/bar", []path{{"Prefix", "/foo", "foo"}}, "/foo/bar", "foo"},
		{"Prefix /foo does not match /foobar", []path{{"Prefix", "/foo", "foo"}}, "/foobar", defaultService},
		{"Prefix /aaa/bb does not match /aaa/bbb", []path{{"Prefix", "/aaa/bb", "bb"}}, "/aaa/bbb", defaultService},
		{"Prefix /aaa/bbb matches /aaa/bbb", []path{{"Prefix", "/aaa/bbb", "bbb"}}, "/aaa/bbb", "bbb"},
		{"Prefix /aaa/bbb/ matches /aaa/bbb, ignoring the trailing slash", []path{{"Prefix", "/aaa/bbb/", "bbb"}}, "/aaa/bbb", "bbb"},
		{"Prefix /aaa/bbb matches /aaa/bbb/, the trailing slash", []path{{"Prefix", "/aaa/bbb", "bbb"}}, "/aaa/bbb/", "bbb"},
		{"Prefix /aaa/bbb matches the subpath /aaa/bbb/ccc", []path{{"Prefix", "/aaa/bbb", "bbb"}}, "/aaa/bbb/ccc", "bbb"},
		{"Prefix /aaa/bbb does not match the string prefix /aaa/bbbxyz", []path{{"Prefix", "/aaa/bbb", "bbb"}}, "/aaa/bbbxyz", defaultService},
		{"Prefix / and /aaa: /aaa/ccc matches /aaa", []path{{"Prefix", "/", "root"}, {"Prefix", "/aaa", "aaa"}}, "/aaa/ccc", "aaa"},
		{"Prefix /, /aaa and /aaa/bbb: /aaa/bbb matches /aaa/bbb, the longest", []path{{"Prefix", "/", "root"}, {"Prefix", "/aaa", "aaa"}, {"Prefix", "/aaa/bbb", "bbb"}}, "/aaa/bbb", "bbb"},
		{"Prefix /, /aaa and /aaa/bbb: /ccc matches /", []path{{"Prefix", "/", "root"}, {"Prefix", "/aaa", "aaa"}, {"Prefix", "/aaa/bbb", "bbb"}}, "/ccc", "root"},
		{"Prefix /aaa does not match /ccc: the default backend answers", []path{{"Prefix", "/aaa", "aaa"}}, "/ccc", defaultService},
		{"Prefix /foo and Exact /foo: /foo prefers Exact", []path{{"Prefix", "/foo", "foo-prefix"}, {"Exact", "/foo", "foo-exact"}}, "/foo", "foo-exact"},
		{"Exact /foo and Prefix /foo: /foo prefers Exact in either order", []path{{"Exact", "/foo", "foo-exact"}, {"Prefix", "/foo", "foo-prefix"}}, "/foo", "foo-exact"},
		{"Prefix /foo and Exact /foo: /foo/bar is only the Prefix's", []path{{"Prefix", "/foo", "foo-prefix"}, {"Exact", "/foo", "foo-exact"}}, "/foo/bar", "foo-prefix"},
		{"Exact /aaa beats a longer-matching Prefix / for /aaa", []path{{"Prefix", "/", "root"}, {"Exact", "/aaa", "aaa"}}, "/aaa", "aaa"},
	}
	c := newCluster()
	c.addDefaultBackend()
	for i, row := range rows {
		c.ingress(fmt.Sprintf("row-%d", i), nil, rule{host: fmt.Sprintf("row-%d.example.com", i), paths: row.paths})
	}
	p := c.start(t, flavor)
	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			got := p.get(t, fmt.Sprintf("row-%d.example.com", i), row.request)
			if got.status != http.StatusOK || got.service != row.want {
				t.Errorf("GET %s: %v, want %s", row.request, got, row.want)
			}
			// Without konghq.com/strip-path the backend sees the path as sent.
			if got.service != "" && got.path != row.request {
				t.Errorf("GET %s: backend saw path %s", row.request, got.path)
			}
		})
	}
}

// TestHostPrecedence: an exact host beats a wildcard, a wildcard covers
// its subdomains, a rule without host matches every host, and what no rule
// matches goes to the defaultBackend.
func TestHostPrecedence(t *testing.T) { eachFlavor(t, testHostPrecedence) }

func testHostPrecedence(t *testing.T, flavor string) {
	c := newCluster()
	c.addDefaultBackend()
	c.ingress("hosts", nil,
		rule{host: "foo.bar.com", paths: []path{{"Prefix", "/", "exact-host"}}},
		rule{host: "*.bar.com", paths: []path{{"Prefix", "/", "wildcard-host"}}},
		rule{paths: []path{{"Prefix", "/anyhost", "no-host"}}},
	)
	p := c.start(t, flavor)
	deeperHost := defaultService
	if flavor != kong.FlavorExpressions {
		deeperHost = "wildcard-host" // KNOWN DIFFERENCE of traditional routes
	}
	for _, tc := range []struct {
		name, host, path, want string
	}{
		{"the exact host beats the wildcard", "foo.bar.com", "/", "exact-host"},
		{"the exact host matches case-insensitively", "FOO.bar.com", "/", "exact-host"},
		{"the exact host matches with the port", "foo.bar.com:80", "/", "exact-host"},
		{"a wildcard matches one label", "baz.bar.com", "/", "wildcard-host"},
		{"a wildcard does not match the bare domain", "bar.com", "/", defaultService},
		{"a wildcard matches one label case-insensitively", "BAZ.bar.com", "/", "wildcard-host"},
		// The Ingress API reference: "*.foo.com" matches "bar.foo.com" but
		// not "baz.bar.foo.com" — a wildcard covers exactly one DNS label.
		// With router_flavor=expressions the translator says so in an
		// expression route; Kong's traditional routes match a leading
		// wildcard at any depth, the documented difference (and a
		// WildcardHostDepth warning) under the other flavors.
		{"a wildcard does not match two labels", "baz.foo.bar.com", "/", deeperHost},
		{"a wildcard does not match three labels", "a.b.c.bar.com", "/", deeperHost},
		{"a rule without host matches any host", "elsewhere.example.org", "/anyhost/x", "no-host"},
		{"a rule with a matching host beats a rule without host", "foo.bar.com", "/anyhost", "exact-host"},
		{"no rule: the defaultBackend answers", "elsewhere.example.org", "/", defaultService},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.get(t, tc.host, tc.path)
			if got.status != http.StatusOK || got.service != tc.want {
				t.Errorf("GET %s%s: %v, want %s", tc.host, tc.path, got, tc.want)
			}
		})
	}
}

// TestNoDefaultBackend: without any defaultBackend, a request no rule
// matches gets Kong's 404.
func TestNoDefaultBackend(t *testing.T) { eachFlavor(t, testNoDefaultBackend) }

func testNoDefaultBackend(t *testing.T, flavor string) {
	c := newCluster()
	c.ingress("only", nil, rule{host: "only.example.com", paths: []path{{"Exact", "/only", "only"}}})
	p := c.start(t, flavor)
	if got := p.get(t, "only.example.com", "/only"); got.service != "only" {
		t.Errorf("GET /only: %v, want only", got)
	}
	for _, miss := range [][2]string{{"only.example.com", "/only/"}, {"other.example.com", "/only"}} {
		if got := p.get(t, miss[0], miss[1]); got.status != http.StatusNotFound || got.service != "" {
			t.Errorf("GET %s%s: %v, want Kong's 404", miss[0], miss[1], got)
		}
	}
}

// TestKongAnnotationsAndRegexPaths: "/~" paths are regular expressions,
// konghq.com/strip-path removes the matched prefix from the upstream path.
func TestKongAnnotationsAndRegexPaths(t *testing.T) { eachFlavor(t, testKongAnnotationsAndRegexPaths) }

func testKongAnnotationsAndRegexPaths(t *testing.T, flavor string) {
	c := newCluster()
	c.addDefaultBackend()
	c.ingress("regex", nil, rule{host: "regex.example.com", paths: []path{
		{"ImplementationSpecific", `/~/users/\d+$`, "users"},
		{"Prefix", "/users", "users-prefix"},
	}})
	c.ingress("strip", map[string]string{"konghq.com/strip-path": "true"}, rule{host: "strip.example.com", paths: []path{
		{"Prefix", "/api", "api"},
		{"Exact", "/exact", "exact"},
	}})
	c.ingress("nostrip", map[string]string{"konghq.com/strip-path": "false"}, rule{host: "nostrip.example.com", paths: []path{
		{"Prefix", "/api", "api"},
	}})
	p := c.start(t, flavor)
	for _, tc := range []struct {
		name, host, path, want, wantPath string
	}{
		{"a regex path matches", "regex.example.com", "/users/42", "users", "/users/42"},
		{"a regex path is anchored at the start and where it says", "regex.example.com", "/users/42/x", "users-prefix", "/users/42/x"},
		{"a regex path does not match other digits-less paths", "regex.example.com", "/users/abc", "users-prefix", "/users/abc"},
		{"a regex does not match a longer prefix", "regex.example.com", "/v1/users/42", defaultService, "/v1/users/42"},
		{"strip-path removes the prefix", "strip.example.com", "/api/items/1", "api", "/items/1"},
		{"strip-path on the bare prefix leaves /", "strip.example.com", "/api", "api", "/"},
		{"strip-path on the prefix with a slash leaves /", "strip.example.com", "/api/", "api", "/"},
		{"strip-path removes an Exact path", "strip.example.com", "/exact", "exact", "/"},
		{"strip-path false keeps the path", "nostrip.example.com", "/api/items/1", "api", "/api/items/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.get(t, tc.host, tc.path)
			if got.status != http.StatusOK || got.service != tc.want || got.path != tc.wantPath {
				t.Errorf("GET %s%s: %v, want %s (path %s)", tc.host, tc.path, got, tc.want, tc.wantPath)
			}
		})
	}
}

// TestTLS: the Ingress's TLS Secret is served to clients that name one of
// its hosts; other server names get Kong's default certificate; routes
// limited to https redirect plain HTTP.
func TestTLS(t *testing.T) { eachFlavor(t, testTLS) }

func testTLS(t *testing.T, flavor string) {
	c := newCluster()
	c.addDefaultBackend()
	secure := c.tlsSecret(t, "secure-tls", "secure.example.com", "www.secure.example.com")
	wild := c.tlsSecret(t, "wild-tls", "*.wild.example.com")
	ing := c.ingress("secure", nil,
		rule{host: "secure.example.com", paths: []path{{"Prefix", "/", "secure"}}},
		rule{host: "www.secure.example.com", paths: []path{{"Prefix", "/", "secure"}}},
		rule{host: "*.wild.example.com", paths: []path{{"Prefix", "/", "wild"}}},
	)
	ing.Spec.TLS = []networkingv1.IngressTLS{
		{Hosts: []string{"secure.example.com", "www.secure.example.com"}, SecretName: "secure-tls"},
		{Hosts: []string{"*.wild.example.com"}, SecretName: "wild-tls"},
	}
	c.ingress("redirect", map[string]string{
		"konghq.com/protocols":                  "https",
		"konghq.com/https-redirect-status-code": "301",
	}, rule{host: "secure.example.com", paths: []path{{"Prefix", "/login", "login"}}})
	c.ingress("redirect-default", map[string]string{"konghq.com/protocols": "https"},
		rule{host: "secure.example.com", paths: []path{{"Prefix", "/account", "account"}}})
	p := c.start(t, flavor)

	t.Run("the Ingress's certificate for its hosts", func(t *testing.T) {
		for _, host := range []string{"secure.example.com", "www.secure.example.com"} {
			got := p.getTLS(t, host, host, "/x")
			if got.service != "secure" || got.cert == nil || !got.cert.Equal(secure) {
				t.Errorf("https://%s: %v, certificate %v, want secure with the secure-tls certificate", host, got, names(got))
			}
			if got.cert != nil {
				if err := got.cert.VerifyHostname(host); err != nil {
					t.Errorf("https://%s: served certificate does not cover the host: %v", host, err)
				}
			}
		}
	})
	t.Run("a wildcard TLS host", func(t *testing.T) {
		got := p.getTLS(t, "a.wild.example.com", "a.wild.example.com", "/")
		if got.service != "wild" || got.cert == nil || !got.cert.Equal(wild) {
			t.Errorf("https://a.wild.example.com: %v, certificate %v, want wild with wild-tls", got, names(got))
		}
	})
	t.Run("Kong's default certificate for an unknown server name", func(t *testing.T) {
		got := p.getTLS(t, "unknown.example.org", "unknown.example.org", "/")
		if got.cert == nil || got.cert.Equal(secure) || got.cert.Equal(wild) {
			t.Fatalf("unknown SNI: certificate %v, want Kong's default", names(got))
		}
		if got.cert.Subject.CommonName != "localhost" || !slices.Equal(got.cert.DNSNames, []string{"localhost"}) {
			t.Errorf("unknown SNI: certificate CN %q SANs %v, want Kong's default localhost certificate", got.cert.Subject.CommonName, got.cert.DNSNames)
		}
		if got.service != defaultService {
			t.Errorf("unknown SNI: %v, want the defaultBackend over HTTPS too", got)
		}
	})
	t.Run("HTTP still reaches an Ingress with TLS", func(t *testing.T) {
		if got := p.get(t, "secure.example.com", "/x"); got.service != "secure" {
			t.Errorf("http://secure.example.com/x: %v, want secure (an Ingress's tls does not force HTTPS)", got)
		}
	})
	t.Run("protocols https with a redirect status code", func(t *testing.T) {
		got := p.get(t, "secure.example.com", "/login?next=/home")
		if got.status != http.StatusMovedPermanently || got.location != "https://secure.example.com/login?next=/home" {
			t.Errorf("http://secure.example.com/login: %v, want 301 to https://secure.example.com/login?next=/home", got)
		}
		if got := p.getTLS(t, "secure.example.com", "secure.example.com", "/login"); got.service != "login" {
			t.Errorf("https://secure.example.com/login: %v, want login", got)
		}
	})
	t.Run("protocols https without a status code: Kong's 426", func(t *testing.T) {
		got := p.get(t, "secure.example.com", "/account")
		if got.status != http.StatusUpgradeRequired || got.service != "" {
			t.Errorf("http://secure.example.com/account: %v, want 426", got)
		}
		if got := p.getTLS(t, "secure.example.com", "secure.example.com", "/account"); got.service != "account" {
			t.Errorf("https://secure.example.com/account: %v, want account", got)
		}
	})
}

func names(a answer) string {
	if a.cert == nil {
		return "none"
	}
	return fmt.Sprintf("CN=%s SANs=%v", a.cert.Subject.CommonName, a.cert.DNSNames)
}
