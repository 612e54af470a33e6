package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// nopUpstream answers every request in memory without a network hop.
type nopUpstream struct{}

func (nopUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}},
		Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: r}, nil
}

// benchServe measures ServeHTTP alone: routing, header work and response
// copying, with the upstream in memory, so that the proxy's own cost is
// not lost in network noise.
func benchServe(b *testing.B, c Config, hdr ...string) {
	routes := []*Route{{ID: "bench", Name: "bench", ServiceID: "s", Hosts: []string{"bench.test"}, Paths: []string{"~/api$", "/api/"}, StripPath: true}}
	for i := range 500 {
		routes = append(routes, &Route{Name: fmt.Sprint("other-", i), ServiceID: "s", Hosts: []string{fmt.Sprintf("svc%d.test", i)}, Paths: []string{"/"}})
	}
	c.Services = []*Service{{ID: "s", Name: "s", Host: "backend.test", Port: 80, Retries: 5}}
	c.Routes = routes
	p := New(Options{Transport: nopUpstream{}})
	if err := p.Update(c); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://bench.test/api/items?x=1", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for range b.N {
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkServeNoPlugins(b *testing.B) { benchServe(b, Config{}) }

// BenchmarkServeAuthAndRateLimit runs key-auth, acl and a rate limit high
// enough never to trip on every request.
func BenchmarkServeAuthAndRateLimit(b *testing.B) {
	benchServe(b, Config{
		Plugins: []Plugin{
			{ID: "p1", Name: "key-auth", Config: map[string]any{"key_names": []any{"apikey"}, "key_in_header": true, "key_in_query": true}},
			{ID: "p2", Name: "acl", RouteID: "bench", Config: map[string]any{"allow": []any{"users"}}},
			{ID: "p3", Name: "rate-limiting", Config: map[string]any{"hour": 1e12, "limit_by": "consumer", "policy": "local", "error_code": 429, "error_message": "API rate limit exceeded"}},
		},
		Consumers:   []Consumer{{ID: "c1", Username: "alice"}},
		Credentials: Credentials{KeyAuth: []KeyAuthCredential{{ID: "k1", ConsumerID: "c1", Key: "secret"}}, ACLs: []ACLGroup{{ConsumerID: "c1", Group: "users"}}},
	}, "apikey", "secret")
}
