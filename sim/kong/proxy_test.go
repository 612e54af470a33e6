package kong_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sim "konductor.dev/sim/kong"
)

// upstreamFunc answers proxied requests in memory.
type upstreamFunc func(*http.Request) *http.Response

func (f upstreamFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r), nil }

func TestProxyServesLoadedConfig(t *testing.T) {
	var seen []string
	up := upstreamFunc(func(r *http.Request) *http.Response {
		seen = append(seen, r.URL.Host+r.URL.RequestURI())
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}
	})
	n, err := sim.NewNode(sim.Options{ProxyTransport: up, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	get := func(host, path string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
		n.Proxy().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := get("example.com", "/echo/x"); code != 404 {
		t.Errorf("empty node proxied with %d, want 404", code)
	}
	admin := &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())}
	resp, err := admin.Post("http://kong:8001/config", "application/yaml", strings.NewReader(sampleConfig))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("load = %v %v", resp, err)
	}
	resp.Body.Close()
	if code := get("example.com", "/echo/x"); code != 200 {
		t.Fatalf("proxied with %d", code)
	}
	if code := get("example.com", "/echo/y"); code != 200 {
		t.Fatalf("proxied with %d", code)
	}
	// Both targets of the upstream receive traffic, path kept (strip_path false).
	if len(seen) != 2 || seen[0] == seen[1] || !strings.HasSuffix(seen[0], "/echo/x") {
		t.Errorf("upstream saw %v", seen)
	}
	if code := get("other.com", "/echo/x"); code != 404 {
		t.Errorf("unmatched host proxied with %d", code)
	}
}
