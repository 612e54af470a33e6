package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// echoed is what an echo upstream saw.
type echoed struct {
	Server string      `json:"server"`
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// newEcho starts a loopback upstream answering with what it received.
func newEcho(t testing.TB, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Server: name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hostPort splits a test server's address.
func hostPort(t testing.TB, srv *httptest.Server) (string, int) {
	t.Helper()
	host, portText, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portText)
	return host, port
}

// refusedAddr returns a loopback address nobody listens on.
func refusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// fakeDNS fails name resolution for hosts ending in ".unresolvable" and
// hands everything else to the proxy's real transport, so that the test does
// not depend on the machine's resolver.
type fakeDNS struct{ next http.RoundTripper }

func (f fakeDNS) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Hostname(), ".unresolvable") {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: r.URL.Hostname(), IsNotFound: true}}
	}
	return f.next.RoundTrip(r)
}

// startProxy serves a Proxy with cfg on loopback.
func startProxy(t testing.TB, cfg Config, transport http.RoundTripper) (*Proxy, *httptest.Server) {
	t.Helper()
	p := New(Options{Version: "3.9.1", Transport: transport})
	t.Cleanup(p.Close)
	if err := p.Update(cfg); err != nil {
		t.Fatalf("Update: %v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

// noRedirects is a client that shows redirects instead of following them.
func noRedirects(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type response struct {
	status int
	header http.Header
	echo   echoed
	msg    string
	raw    string
}

func do(t testing.TB, c *http.Client, method, url, host string, header http.Header, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, vv := range header {
		req.Header[k] = vv
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.echo)
	var kongErr struct{ Message string }
	if json.Unmarshal(raw, &kongErr) == nil {
		out.msg = kongErr.Message
	}
	return out
}

func TestConformance(t *testing.T) {
	echoA, echoB := newEcho(t, "A"), newEcho(t, "B")
	hostA, portA := hostPort(t, echoA)
	_, portB := hostPort(t, echoB)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only when the proxy gives up
	}))
	t.Cleanup(slow.Close)
	_, portSlow := hostPort(t, slow)
	downHost, downPortText, _ := net.SplitHostPort(refusedAddr(t))
	downPort, _ := strconv.Atoi(downPortText)

	cfg := Config{
		Services: []*Service{
			{ID: "a", Name: "svc-a", Protocol: "http", Host: hostA, Port: portA, Retries: 5},
			{ID: "b", Name: "svc-b", Protocol: "http", Host: hostA, Port: portB, Path: "/base", Retries: 5},
			{ID: "nopeer", Protocol: "http", Host: "empty.upstream", Port: 80, Retries: 5},
			{ID: "dns", Protocol: "http", Host: "echo.unresolvable", Port: 80, Retries: 5},
			{ID: "down", Protocol: "http", Host: downHost, Port: downPort, Retries: 2},
			{ID: "slow", Protocol: "http", Host: hostA, Port: portSlow, ReadTimeout: 50 * time.Millisecond},
		},
		Upstreams: []Upstream{{Name: "empty.upstream", Targets: []Target{{Target: "127.0.0.1:1", Weight: 0}}}},
		Routes: []*Route{
			{Name: "exact-host", ServiceID: "a", Hosts: []string{"exact.test"}, StripPath: true},
			{Name: "wild-suffix", ServiceID: "b", Hosts: []string{"*.wild.test"}},
			{Name: "plain-beats-wild", ServiceID: "a", Hosts: []string{"a.wild.test"}},
			{Name: "wild-prefix", ServiceID: "b", Hosts: []string{"prefix.*"}},
			{Name: "plain-items", ServiceID: "b", Hosts: []string{"paths.test"}, Paths: []string{"/items/"}},
			{Name: "regex-items", ServiceID: "a", Hosts: []string{"paths.test"}, Paths: []string{`~/items/\d+$`}},
			{Name: "kic-prefix", ServiceID: "a", Hosts: []string{"kic.test"}, Paths: []string{"~/foo$", "/foo/"}, StripPath: true},
			{Name: "prio-low", ServiceID: "a", Hosts: []string{"prio.test"}, Paths: []string{"~/p/.*"}},
			{Name: "prio-high", ServiceID: "b", Hosts: []string{"prio.test"}, Paths: []string{"~/p/hi"}, RegexPriority: 10},
			{Name: "short", ServiceID: "a", Hosts: []string{"len.test"}, Paths: []string{"/a"}},
			{Name: "long", ServiceID: "b", Hosts: []string{"len.test"}, Paths: []string{"/a/b"}},
			{Name: "strip", ServiceID: "b", Hosts: []string{"strip.test"}, Paths: []string{"/api"}, StripPath: true},
			{Name: "strip-regex", ServiceID: "a", Hosts: []string{"strip.test"}, Paths: []string{`~/v\d+`}, StripPath: true},
			{Name: "nostrip", ServiceID: "b", Hosts: []string{"nostrip.test"}, Paths: []string{"/api"}},
			{Name: "preserve", ServiceID: "a", Hosts: []string{"preserve.test"}, PreserveHost: true},
			{Name: "method", ServiceID: "a", Hosts: []string{"method.test"}, Methods: []string{"POST"}},
			{Name: "header-fallback", ServiceID: "a", Hosts: []string{"header.test"}},
			{Name: "header", ServiceID: "b", Hosts: []string{"header.test"}, Headers: map[string][]string{"x-canary": {"yes"}}},
			{Name: "https-301", ServiceID: "a", Hosts: []string{"secure.test"}, Protocols: []string{"https"}, HTTPSRedirectStatusCode: 301},
			{Name: "https-426", ServiceID: "a", Hosts: []string{"secure426.test"}, Protocols: []string{"https"}},
			{Name: "no-peer", ServiceID: "nopeer", Hosts: []string{"nopeer.test"}},
			{Name: "dns", ServiceID: "dns", Hosts: []string{"dns.test"}},
			{Name: "down", ServiceID: "down", Hosts: []string{"down.test"}},
			{Name: "slow", ServiceID: "slow", Hosts: []string{"slow.test"}},
		},
	}
	_, proxySrv := startProxy(t, cfg, fakeDNS{next: newTransport()})
	client := noRedirects(t)

	tests := []struct {
		name     string
		method   string
		host     string
		path     string
		header   http.Header
		status   int
		server   string // echo server that answered
		uri      string // request URI it saw
		upHost   string // Host it saw
		msg      string // Kong's error message
		location string
	}{
		{name: "exact host", host: "exact.test", path: "/x?y=1", status: 200, server: "A", uri: "/x?y=1"},
		{name: "host with port", host: "exact.test:8000", path: "/", status: 200, server: "A"},
		{name: "unknown host", host: "nowhere.test", path: "/", status: 404, msg: "no Route matched with those values"},
		{name: "suffix wildcard", host: "x.wild.test", path: "/", status: 200, server: "B", uri: "/base"},
		{name: "suffix wildcard, deeper", host: "x.y.wild.test", path: "/", status: 200, server: "B"},
		{name: "suffix wildcard skips apex", host: "wild.test", path: "/", status: 404, msg: "no Route matched with those values"},
		{name: "plain host beats wildcard", host: "a.wild.test", path: "/", status: 200, server: "A"},
		{name: "prefix wildcard", host: "prefix.example.org", path: "/", status: 200, server: "B"},
		{name: "regex beats plain", host: "paths.test", path: "/items/12", status: 200, server: "A"},
		{name: "plain when regex fails", host: "paths.test", path: "/items/new", status: 200, server: "B"},
		{name: "no path matches", host: "paths.test", path: "/other", status: 404, msg: "no Route matched with those values"},
		{name: "KIC pair exact", host: "kic.test", path: "/foo", status: 200, server: "A", uri: "/"},
		{name: "KIC pair below", host: "kic.test", path: "/foo/bar", status: 200, server: "A", uri: "/bar"},
		{name: "KIC pair sibling", host: "kic.test", path: "/foobar", status: 404, msg: "no Route matched with those values"},
		{name: "regex_priority", host: "prio.test", path: "/p/hi", status: 200, server: "B"},
		{name: "regex_priority fallback", host: "prio.test", path: "/p/lo", status: 200, server: "A"},
		{name: "longer prefix wins", host: "len.test", path: "/a/b/c", status: 200, server: "B"},
		{name: "shorter prefix", host: "len.test", path: "/a/c", status: 200, server: "A"},
		{name: "strip_path onto service path", host: "strip.test", path: "/api/v1?q=1", status: 200, server: "B", uri: "/base/v1?q=1"},
		{name: "strip_path whole prefix", host: "strip.test", path: "/api", status: 200, server: "B", uri: "/base"},
		{name: "strip_path regex match", host: "strip.test", path: "/v2/users", status: 200, server: "A", uri: "/users"},
		{name: "no strip_path", host: "nostrip.test", path: "/api/v1?q=1", status: 200, server: "B", uri: "/base/api/v1?q=1"},
		{name: "escaped path passes as sent", host: "nostrip.test", path: "/api/a%2Fb", status: 200, server: "B", uri: "/base/api/a%2Fb"},
		{name: "dot segments resolved before routing", host: "len.test", path: "/x/../a/b/./c", status: 200, server: "B", uri: "/base/a/b/c"},
		{name: "escaped dots resolved too", host: "kic.test", path: "/foo/%2e%2e/foo/x", status: 200, server: "A", uri: "/x"},
		{name: "preserve_host", host: "preserve.test", path: "/", status: 200, server: "A", upHost: "preserve.test"},
		{name: "upstream host by default", host: "exact.test", path: "/", status: 200, server: "A", upHost: echoA.Listener.Addr().String()},
		{name: "method matches", method: "POST", host: "method.test", path: "/", status: 200, server: "A"},
		{name: "method does not match", method: "GET", host: "method.test", path: "/", status: 404, msg: "no Route matched with those values"},
		{name: "header route", host: "header.test", path: "/", header: http.Header{"X-Canary": {"YES"}}, status: 200, server: "B"},
		{name: "header route, other value", host: "header.test", path: "/", header: http.Header{"X-Canary": {"no"}}, status: 200, server: "A"},
		{name: "https redirect", host: "secure.test:8000", path: "/x?y=1", status: 301, location: "https://secure.test/x?y=1"},
		{name: "https upgrade required", host: "secure426.test", path: "/", status: 426, msg: "Please use HTTPS protocol"},
		{name: "no usable target", host: "nopeer.test", path: "/", status: 503, msg: "failure to get a peer from the ring-balancer"},
		{name: "name resolution", host: "dns.test", path: "/", status: 503, msg: "name resolution failed"},
		{name: "connection refused after retries", host: "down.test", path: "/", status: 502, msg: "An invalid response was received from the upstream server"},
		{name: "read timeout", host: "slow.test", path: "/", status: 504, msg: "The upstream server is timing out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			got := do(t, client, method, proxySrv.URL+tt.path, tt.host, tt.header, "")
			if got.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", got.status, tt.status, got.raw)
			}
			if tt.server != "" && got.echo.Server != tt.server {
				t.Errorf("answered by %q, want %q", got.echo.Server, tt.server)
			}
			if tt.uri != "" && got.echo.URI != tt.uri {
				t.Errorf("upstream saw %q, want %q", got.echo.URI, tt.uri)
			}
			if tt.upHost != "" && got.echo.Host != tt.upHost {
				t.Errorf("upstream Host %q, want %q", got.echo.Host, tt.upHost)
			}
			if tt.msg != "" && got.msg != tt.msg {
				t.Errorf("message %q, want %q", got.msg, tt.msg)
			}
			if tt.location != "" && got.header.Get("Location") != tt.location {
				t.Errorf("Location %q, want %q", got.header.Get("Location"), tt.location)
			}
			if tt.server != "" && got.header.Get("Via") != "1.1 kong/3.9.1" {
				t.Errorf("Via %q", got.header.Get("Via"))
			}
			if tt.msg != "" && got.header.Get("Server") != "kong/3.9.1" {
				t.Errorf("Server %q", got.header.Get("Server"))
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	echo := newEcho(t, "A")
	host, port := hostPort(t, echo)
	_, proxySrv := startProxy(t, Config{
		Services: []*Service{{ID: "a", Host: host, Port: port}},
		Routes:   []*Route{{Name: "r", ServiceID: "a", Paths: []string{"/app"}, StripPath: true}},
	}, nil)
	_, proxyPort := hostPort(t, proxySrv)
	got := do(t, noRedirects(t), "GET", proxySrv.URL+"/app/x?q=1", "shop.example.com:8080",
		http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"spoofed"}, "Connection": {"X-Drop-Me"}, "X-Drop-Me": {"1"},
			"User-Agent": {""}}, "")
	if got.status != 200 {
		t.Fatalf("status %d: %s", got.status, got.raw)
	}
	want := map[string]string{
		"X-Forwarded-For":    "203.0.113.9, 127.0.0.1",
		"X-Forwarded-Proto":  "http",
		"X-Forwarded-Host":   "shop.example.com",
		"X-Forwarded-Port":   strconv.Itoa(proxyPort),
		"X-Forwarded-Path":   "/app/x",
		"X-Forwarded-Prefix": "/app",
		"X-Real-Ip":          "127.0.0.1",
		"X-Drop-Me":          "",
		"User-Agent":         "", // none sent, none added
	}
	for k, v := range want {
		if g := got.echo.Header.Get(k); g != v {
			t.Errorf("upstream %s = %q, want %q", k, g, v)
		}
	}
	id := got.echo.Header.Get("X-Kong-Request-Id")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("X-Kong-Request-Id %q is not 32 hex digits", id)
	}
	if got.header.Get("X-Kong-Request-Id") != id {
		t.Errorf("response request id %q, upstream saw %q", got.header.Get("X-Kong-Request-Id"), id)
	}
	for _, k := range []string{"X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency"} {
		if _, err := strconv.Atoi(got.header.Get(k)); err != nil {
			t.Errorf("%s = %q, want milliseconds", k, got.header.Get(k))
		}
	}
	if got.header.Get("Via") != "1.1 kong/3.9.1" {
		t.Errorf("Via %q", got.header.Get("Via"))
	}
}

func TestWeightedRoundRobin(t *testing.T) {
	a, b, c := newEcho(t, "A"), newEcho(t, "B"), newEcho(t, "C")
	_, proxySrv := startProxy(t, Config{
		Services: []*Service{{ID: "s", Host: "echo.default.80.svc", Port: 80}},
		Upstreams: []Upstream{{Name: "echo.default.80.svc", Targets: []Target{
			{Target: a.Listener.Addr().String(), Weight: 300},
			{Target: b.Listener.Addr().String(), Weight: 100},
			{Target: c.Listener.Addr().String(), Weight: 0},
		}}},
		Routes: []*Route{{Name: "r", ServiceID: "s", Paths: []string{"/"}}},
	}, nil)
	client := noRedirects(t)
	counts := map[string]int{}
	for range 40 {
		got := do(t, client, "GET", proxySrv.URL+"/", "", nil, "")
		if got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.raw)
		}
		counts[got.echo.Server]++
		if got.echo.Host != strings.TrimPrefix(map[string]string{"A": a.URL, "B": b.URL}[got.echo.Server], "http://") {
			t.Errorf("target %s saw Host %q, want its own address", got.echo.Server, got.echo.Host)
		}
	}
	if counts["A"] != 30 || counts["B"] != 10 || counts["C"] != 0 {
		t.Fatalf("distribution %v, want A:30 B:10 C:0", counts)
	}
}

func TestRetryOnRefusedConnection(t *testing.T) {
	live := newEcho(t, "live")
	cfg := Config{
		Services: []*Service{{ID: "s", Host: "up", Retries: 1}},
		Upstreams: []Upstream{{Name: "up", Targets: []Target{
			{Target: refusedAddr(t), Weight: 100},
			{Target: live.Listener.Addr().String(), Weight: 100},
		}}},
		Routes: []*Route{{Name: "r", ServiceID: "s", Paths: []string{"/"}}},
	}
	p, proxySrv := startProxy(t, cfg, nil)
	client := noRedirects(t)
	// Equal weights alternate picks, so every request first meets the dead
	// target and is retried on the live one.
	for i := range 6 {
		got := do(t, client, "POST", proxySrv.URL+"/submit", "", nil, "payload-"+strconv.Itoa(i))
		if got.status != 200 || got.echo.Server != "live" {
			t.Fatalf("request %d: status %d from %q: %s", i, got.status, got.echo.Server, got.raw)
		}
		if got.echo.Body != "payload-"+strconv.Itoa(i) {
			t.Fatalf("request %d: upstream got body %q", i, got.echo.Body)
		}
	}

	// Without retries, a request landing on the dead target fails.
	noRetries := *cfg.Services[0] // a staged service must not change
	noRetries.Retries = 0
	cfg.Services = []*Service{&noRetries}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	statuses := map[int]int{}
	for range 4 {
		statuses[do(t, client, "GET", proxySrv.URL+"/", "", nil, "").status]++
	}
	if statuses[502] != 2 || statuses[200] != 2 {
		t.Fatalf("statuses %v, want two 502 and two 200", statuses)
	}
}

// applyModes are the two ways to load a configuration: compiled at once
// (Update) or when first used (Stage). They must accept, refuse and route
// alike.
var applyModes = []struct {
	name  string
	apply func(*Proxy, Config) error
}{{"Update", (*Proxy).Update}, {"Stage", (*Proxy).Stage}}

func TestUpdateRejectsBadConfigAndKeepsTheOld(t *testing.T) {
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) { testRejectsBadConfig(t, mode.apply) })
	}
}

func testRejectsBadConfig(t *testing.T, apply func(*Proxy, Config) error) {
	echo := newEcho(t, "A")
	host, port := hostPort(t, echo)
	good := Config{
		Services: []*Service{{ID: "a", Host: host, Port: port}},
		Routes:   []*Route{{ID: "r1", Name: "r", ServiceID: "a", Paths: []string{"/"}}},
	}
	p, proxySrv := startProxy(t, good, nil)
	if err := apply(p, good); err != nil {
		t.Fatal(err)
	}
	withRoute := func(r Route) Config {
		return Config{Services: good.Services, Routes: append(slices.Clone(good.Routes), &r)}
	}
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad regex", Config{Services: good.Services, Routes: []*Route{{Name: "broken", ServiceID: "a", Paths: []string{"~/a("}}}},
			`route "broken": paths[0]: invalid regex`},
		// The same route id as the accepted route, now with a bad regex:
		// a route is checked again when what the router reads changed.
		{"accepted route changed to a bad regex", Config{Services: good.Services, Routes: []*Route{{ID: "r1", Name: "r", ServiceID: "a", Paths: []string{"/", "~/a("}}}},
			`route "r": paths[1]: invalid regex`},
		{"bad header regex", withRoute(Route{Name: "hdr", ServiceID: "a", Headers: map[string][]string{"x-a": {"~*("}}}),
			`route "hdr": headers.x-a[0]: invalid regex`},
		{"bad host", withRoute(Route{Name: "h", ServiceID: "a", Hosts: []string{"a.*.b"}}),
			`route "h": hosts[0]`},
		{"bad sni", withRoute(Route{Name: "s", ServiceID: "a", Protocols: []string{"https"}, SNIs: []string{"x:0"}}),
			`route "s": snis[0]`},
		{"unknown service", Config{Routes: []*Route{{Name: "orphan", ServiceID: "nope", Paths: []string{"/"}}}},
			`route "orphan": service "nope" not found`},
		{"service without host", Config{Services: []*Service{{ID: "b", Name: "nohost"}}},
			`service "nohost": host is required`},
		{"negative retries", Config{Services: []*Service{{ID: "b", Name: "neg", Host: "x", Retries: -1}}},
			`service "neg": retries must not be negative`},
		{"bad path_handling", Config{Services: good.Services, Routes: []*Route{{Name: "ph", ServiceID: "a", PathHandling: "v2"}}},
			`route "ph": path_handling`},
		{"bad target", Config{Upstreams: []Upstream{{Name: "u", Targets: []Target{{Target: "a:b:c", Weight: 1}}}}},
			`upstream "u": targets[0]: invalid target "a:b:c"`},
		{"bad weight", Config{Upstreams: []Upstream{{Name: "u", Targets: []Target{{Target: "a:1", Weight: 70000}}}}},
			`upstream "u": targets[0]: weight 70000 outside 0-65535`},
		{"duplicate upstream", Config{Upstreams: []Upstream{{Name: "u"}, {Name: "u"}}},
			`upstream "u": duplicate name`},
		{"upstream without name", Config{Upstreams: []Upstream{{ID: "u1"}}},
			`upstream "u1": name is required`},
		{"bad redirect code", Config{Services: good.Services, Routes: []*Route{{Name: "rc", ServiceID: "a", HTTPSRedirectStatusCode: 200}}},
			`route "rc": https_redirect_status_code`},
	}
	for _, tt := range bad {
		err := apply(p, tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
	if got := do(t, noRedirects(t), "GET", proxySrv.URL+"/", "", nil, ""); got.status != 200 {
		t.Fatalf("after rejected updates: status %d, want the old config to serve", got.status)
	}
}

func TestInFlightRequestKeepsItsConfig(t *testing.T) {
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) { testInFlightKeepsConfig(t, mode.apply) })
	}
}

func testInFlightKeepsConfig(t *testing.T, apply func(*Proxy, Config) error) {
	arrived, release := make(chan struct{}), make(chan struct{})
	blocking := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "old config answered")
	}))
	t.Cleanup(blocking.Close)
	host, port := hostPort(t, blocking)
	p, proxySrv := startProxy(t, Config{
		Services: []*Service{{ID: "a", Host: host, Port: port}},
		Routes:   []*Route{{Name: "r", ServiceID: "a", Paths: []string{"/old"}}},
	}, nil)
	client := noRedirects(t)

	done := make(chan response, 1)
	go func() { done <- do(t, client, "GET", proxySrv.URL+"/old", "", nil, "") }()
	<-arrived
	if err := apply(p, Config{}); err != nil {
		t.Fatal(err)
	}
	if got := do(t, client, "GET", proxySrv.URL+"/old", "", nil, ""); got.status != 404 {
		t.Errorf("new request after Update: status %d, want 404", got.status)
	}
	close(release)
	got := <-done
	if got.status != 200 || got.raw != "old config answered" {
		t.Fatalf("in-flight request: status %d body %q", got.status, got.raw)
	}
}

func TestEmptyProxyAnswers404(t *testing.T) {
	p := New(Options{})
	defer p.Close()
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), "GET", "http://x/", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"no Route matched with those values"`) {
		t.Fatalf("status %d body %s", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Server") != "kong/"+DefaultVersion {
		t.Fatalf("Server %q", rec.Header().Get("Server"))
	}
}

func TestReadTimeoutMidBodyBreaksTheResponse(t *testing.T) {
	stalling := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "first part")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the rest never comes
	}))
	t.Cleanup(stalling.Close)
	host, port := hostPort(t, stalling)
	_, proxySrv := startProxy(t, Config{
		Services: []*Service{{ID: "s", Host: host, Port: port, ReadTimeout: 50 * time.Millisecond}},
		Routes:   []*Route{{Name: "r", ServiceID: "s", Paths: []string{"/"}}},
	}, nil)
	// The status line may or may not have left the proxy's buffer when the
	// timeout strikes; either way the client must not get a complete answer.
	resp, err := noRedirects(t).Get(proxySrv.URL + "/")
	if err != nil {
		return // broken before the head arrived
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("status %d, body %q read completely; want a broken response", resp.StatusCode, body)
	}
}

func TestHTTPSListener(t *testing.T) {
	echo := newEcho(t, "A")
	host, port := hostPort(t, echo)
	p := New(Options{})
	t.Cleanup(p.Close)
	if err := p.Update(Config{
		Services: []*Service{{ID: "s", Host: host, Port: port}},
		Routes: []*Route{
			{Name: "secure", ServiceID: "s", Hosts: []string{"secure.test"}, Protocols: []string{"https"}, HTTPSRedirectStatusCode: 308},
			{Name: "plain-only", ServiceID: "s", Hosts: []string{"plain.test"}, Protocols: []string{"http"}},
		},
	}); err != nil {
		t.Fatal(err)
	}
	tlsSrv := httptest.NewTLSServer(p)
	t.Cleanup(tlsSrv.Close)
	client := tlsSrv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	got := do(t, client, "GET", tlsSrv.URL+"/x", "secure.test", nil, "")
	if got.status != 200 || got.echo.Header.Get("X-Forwarded-Proto") != "https" {
		t.Fatalf("https-only route over TLS: status %d, X-Forwarded-Proto %q", got.status, got.echo.Header.Get("X-Forwarded-Proto"))
	}
	if got := do(t, client, "GET", tlsSrv.URL+"/x", "plain.test", nil, ""); got.status != 404 {
		t.Fatalf("http-only route over TLS: status %d, want 404", got.status)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestCustomTransportSeesAUsualURL(t *testing.T) {
	var seen *http.Request
	transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r
		rec := httptest.NewRecorder()
		rec.WriteHeader(http.StatusTeapot)
		return rec.Result(), nil
	})
	p := New(Options{Transport: transport})
	defer p.Close()
	if err := p.Update(Config{
		Services: []*Service{{ID: "s", Host: "backend.internal", Port: 8080, Path: "/v1"}},
		Routes:   []*Route{{Name: "r", ServiceID: "s", Paths: []string{"/api"}, StripPath: true}},
	}); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "http://kong/api/a%2Fb?x=1", nil))
	if rec.Code != http.StatusTeapot || seen == nil {
		t.Fatalf("status %d, transport called: %v", rec.Code, seen != nil)
	}
	if seen.URL.Host != "backend.internal:8080" || seen.Host != "backend.internal:8080" {
		t.Errorf("URL host %q, Host %q", seen.URL.Host, seen.Host)
	}
	if seen.URL.Path != "/v1/a/b" || seen.URL.RequestURI() != "/v1/a%2Fb?x=1" {
		t.Errorf("URL path %q, request URI %q", seen.URL.Path, seen.URL.RequestURI())
	}
}

func TestUpdatesKeepTheRoundRobinGoing(t *testing.T) {
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) { testRoundRobinAcrossUpdates(t, mode.apply) })
	}
}

func testRoundRobinAcrossUpdates(t *testing.T, apply func(*Proxy, Config) error) {
	a, b := newEcho(t, "A"), newEcho(t, "B")
	cfg := Config{
		Services: []*Service{{ID: "s", Host: "pool"}},
		Upstreams: []Upstream{{Name: "pool", Targets: []Target{
			{Target: a.Listener.Addr().String(), Weight: 100},
			{Target: b.Listener.Addr().String(), Weight: 100},
		}}},
		Routes: []*Route{{Name: "r", ServiceID: "s", Paths: []string{"/"}}},
	}
	p, proxySrv := startProxy(t, cfg, nil)
	client := noRedirects(t)
	counts := map[string]int{}
	for range 8 {
		// An update that leaves the targets alone must not restart the
		// rotation, or the first target would take all traffic; staged
		// configurations that no request used in between count not.
		r := *cfg.Routes[0] // a staged route must not change
		r.Methods = nil
		cfg.Routes = []*Route{&r}
		for range 2 {
			if err := apply(p, cfg); err != nil {
				t.Fatal(err)
			}
		}
		counts[do(t, client, "GET", proxySrv.URL+"/", "", nil, "").echo.Server]++
	}
	if counts["A"] != 4 || counts["B"] != 4 {
		t.Fatalf("distribution %v across updates, want A:4 B:4", counts)
	}
}
