package kong_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	gokong "github.com/kong/go-kong/kong"

	sim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// exprEnv is a node of the given router flavor and database mode whose
// proxy answers with the name of the service it routed to.
type exprEnv struct {
	*env
}

func newFlavorEnv(t *testing.T, m mode, flavor string) *exprEnv {
	t.Helper()
	up := upstreamFunc(func(r *http.Request) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Request: r,
			Body: io.NopCloser(strings.NewReader(r.URL.Host + " " + r.URL.Path))}
	})
	opts := sim.Options{Database: string(m), RouterFlavor: flavor, ProxyTransport: up, Logger: quietLogger(),
		UpdateFrequency: time.Second}
	e := &env{}
	if m == dbmode {
		e.mem = store.NewMemory()
		opts.Backend = e.mem
	}
	n, err := sim.NewNode(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.node = n
	e.http = &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())}
	base := "http://kong:8001"
	if e.client, err = gokong.NewClient(&base, e.http); err != nil {
		t.Fatal(err)
	}
	return &exprEnv{e}
}

// get sends a request through the proxy and returns the status and the
// upstream host and path that answered ("" when Kong answered itself).
func (e *exprEnv) get(host, target string, hdr ...string) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://"+host+target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	e.node.Proxy().ServeHTTP(rec, req)
	if rec.Code != 200 {
		return rec.Code, ""
	}
	return rec.Code, rec.Body.String()
}

func TestRouterFlavorReported(t *testing.T) {
	for _, flavor := range []string{"", sim.FlavorTraditional, sim.FlavorExpressions} {
		e := newFlavorEnv(t, dbless, flavor)
		_, root := e.do(t, http.MethodGet, "/", "")
		want := flavor
		if want == "" {
			want = sim.FlavorTraditionalCompatible
		}
		if got := root["configuration"].(map[string]any)["router_flavor"]; got != want {
			t.Errorf("flavor %q: GET / router_flavor = %v, want %s", flavor, got, want)
		}
		_, sch := e.do(t, http.MethodGet, "/schemas/routes", "")
		hasExpr := strings.Contains(strings.Join(fieldNames(sch), ","), "expression")
		if hasExpr != (flavor == sim.FlavorExpressions) {
			t.Errorf("flavor %q: /schemas/routes lists expression: %v", flavor, hasExpr)
		}
	}
	if _, err := sim.NewNode(sim.Options{RouterFlavor: "atc", Logger: quietLogger()}); err == nil ||
		!strings.Contains(err.Error(), "router_flavor") {
		t.Errorf("unknown flavor accepted: %v", err)
	}
}

func fieldNames(sch map[string]any) []string {
	var out []string
	fields, _ := sch["fields"].([]any)
	for _, f := range fields {
		for k := range f.(map[string]any) {
			out = append(out, k)
		}
	}
	return out
}

// exprServices are services, each with one route (as JSON), loaded by
// TestExpressionRoutesThroughTheProxy.
var exprServices = []struct{ name, route string }{
	{"wild", `{"name":"wild","strip_path":false,"priority":10,
		"expression":"http.host ~ r#\"^[^.]+\\.foo\\.com$\"# && (http.path == \"/\" || http.path ^= \"/\")"}`},
	{"exact", `{"name":"exact","strip_path":false,"priority":20,
		"expression":"http.host == \"bar.foo.com\" && http.path ^= \"/\""}`},
	{"stripped", `{"name":"stripped","priority":1,
		"expression":"http.host == \"strip.example\" && http.path ~ r#\"^/api/v\\d+\"#"}`},
	{"traditional", `{"name":"traditional","strip_path":false,"hosts":["baz.bar.foo.com","bar.foo.com"],"paths":["/"]}`},
	{"header", `{"name":"header",
		"expression":"http.host == \"h.example\" && any(lower(http.headers.x_team)) == \"blue\""}`},
}

// Under router_flavor=expressions, expression routes and traditional
// routes load together; expression routes are ranked by priority and
// above traditional ones, as Kong ranks them.
func TestExpressionRoutesThroughTheProxy(t *testing.T) {
	for _, m := range modes {
		synctest.Test(t, func(t *testing.T) {
			t.Log("mode", m)
			e := newFlavorEnv(t, m, sim.FlavorExpressions)
			e.load(t)
			tests := []struct {
				host, target string
				hdr          []string
				code         int
				upstream     string
			}{
				{"a.foo.com", "/x", nil, 200, "wild.svc:80 /x"},
				{"bar.foo.com", "/x", nil, 200, "exact.svc:80 /x"},           // priority 20 beats 10, and both beat the traditional route
				{"baz.bar.foo.com", "/x", nil, 200, "traditional.svc:80 /x"}, // two labels: only the traditional route
				{"foo.com", "/x", nil, 404, ""},
				{"strip.example", "/api/v2/users", nil, 200, "stripped.svc:80 /users"}, // strip_path strips what http.path matched
				{"h.example", "/", []string{"X-Team", "Blue"}, 200, "header.svc:80 /"},
				{"h.example", "/", []string{"X-Team", "red", "X-Team", "BLUE"}, 200, "header.svc:80 /"},
				{"h.example", "/", nil, 404, ""},
			}
			for _, tt := range tests {
				code, got := e.get(tt.host, tt.target, tt.hdr...)
				if code != tt.code || got != tt.upstream {
					t.Errorf("%s%s %v: %d %q, want %d %q", tt.host, tt.target, tt.hdr, code, got, tt.code, tt.upstream)
				}
			}
		})
	}
}

// load configures the node with exprServices: POST /config in DB-less
// mode, the Admin API and one poll in DB mode.
func (e *exprEnv) load(t *testing.T) {
	t.Helper()
	if e.mem == nil {
		var svcs []string
		for _, s := range exprServices {
			svcs = append(svcs, `{"name":"`+s.name+`","host":"`+s.name+`.svc","routes":[`+s.route+`]}`)
		}
		if code, body := e.do(t, http.MethodPost, "/config", `{"_format_version":"3.0","services":[`+strings.Join(svcs, ",")+`]}`); code != 201 {
			t.Fatalf("POST /config: %d %v", code, body)
		}
		return
	}
	for _, s := range exprServices {
		if code, body := e.do(t, http.MethodPost, "/services", `{"name":"`+s.name+`","host":"`+s.name+`.svc"}`); code != 201 {
			t.Fatalf("create service %s: %d %v", s.name, code, body)
		}
		if code, body := e.do(t, http.MethodPost, "/services/"+s.name+"/routes", s.route); code != 201 {
			t.Fatalf("create route %s: %d %v", s.name, code, body)
		}
	}
	// The proxy serves what the node reads from the database: one
	// polling period, in virtual time (the caller runs under synctest).
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.node.Run(ctx); close(done) }()
	time.Sleep(2 * time.Second)
	synctest.Wait()
	cancel()
	<-done
}

// Kong's route schema checks per flavor, with its messages.
func TestExpressionSchema(t *testing.T) {
	const svc = `{"name":"s","host":"h"}`
	tests := []struct {
		name, flavor, route string
		want                string // substring of the error; "" = accepted
	}{
		{"expression accepted", sim.FlavorExpressions, `{"expression":"http.path == \"/\"","priority":5}`, ""},
		{"traditional fields accepted beside", sim.FlavorExpressions, `{"paths":["/"]}`, ""},
		{"expression unknown in traditional_compatible", sim.FlavorTraditionalCompatible, `{"expression":"http.path == \"/\""}`, "unknown field"},
		{"priority unknown in traditional", sim.FlavorTraditional, `{"paths":["/"],"priority":1}`, "unknown field"},
		{"expression with hosts", sim.FlavorExpressions, `{"expression":"http.path == \"/\"","hosts":["a.example"]}`,
			"Router Expression failed validation: cannot set 'expression' with 'methods', 'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations' simultaneously"},
		{"expression with regex_priority", sim.FlavorExpressions, `{"expression":"http.path == \"/\"","regex_priority":3}`,
			"Router Expression failed validation: cannot set 'regex_priority' with 'expression' simultaneously"},
		{"priority without expression", sim.FlavorExpressions, `{"paths":["/"],"priority":3}`,
			"Router Expression failed validation: cannot set 'priority' with 'methods', 'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations' simultaneously"},
		{"nothing to match", sim.FlavorExpressions, `{}`,
			"must set one of 'methods', 'hosts', 'headers', 'paths', 'snis', 'expression' when 'protocols' is 'https'"},
		{"unknown field in expression", sim.FlavorExpressions, `{"expression":"http.foo == \"x\""}`,
			"Router Expression failed validation: Unknown LHS field"},
		{"type mismatch", sim.FlavorExpressions, `{"expression":"net.dst.port == \"80\""}`,
			"Router Expression failed validation: Type mismatch between the LHS and RHS values of predicate"},
		{"syntax error", sim.FlavorExpressions, `{"expression":"http.path = \"/\""}`,
			"Router Expression failed validation:  --> 1:11"},
		{"priority too large", sim.FlavorExpressions, `{"expression":"http.path == \"/\"","priority":70368744177664}`,
			"value should be between 0 and 70368744177663"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range modes {
				e := newFlavorEnv(t, m, tt.flavor)
				var code int
				var body map[string]any
				if m == dbless {
					code, body = e.do(t, http.MethodPost, "/config", `{"_format_version":"3.0","services":[`+
						strings.TrimSuffix(svc, "}")+`,"routes":[`+tt.route+`]}]}`)
				} else {
					if c, b := e.do(t, http.MethodPost, "/services", svc); c != 201 {
						t.Fatalf("create service: %d %v", c, b)
					}
					code, body = e.do(t, http.MethodPost, "/services/s/routes", tt.route)
				}
				text := flatten(body)
				switch {
				case tt.want == "" && code != 201:
					t.Errorf("%s: %d %s, want 201", m, code, text)
				case tt.want != "" && (code != 400 || !strings.Contains(text, tt.want)):
					t.Errorf("%s: %d %s, want 400 containing %q", m, code, text, tt.want)
				}
			}
		})
	}
}

// flatten renders a decoded JSON body as text for substring checks.
func flatten(v any) string {
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				b.WriteString(k + ": ")
				walk(y)
				b.WriteString("; ")
			}
		case []any:
			for _, y := range x {
				walk(y)
				b.WriteString("; ")
			}
		case string:
			b.WriteString(x)
		default:
			fmt.Fprint(&b, x)
		}
	}
	walk(v)
	return b.String()
}
