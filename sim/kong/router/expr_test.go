package router

import (
	"fmt"
	"strings"
	"testing"

	"konductor.dev/sim/kong/atc"
)

// Expression routes: ranked by priority, then by id (greater first), all
// above traditional routes; protocols filter them as the net.protocol
// predicate Kong appends would.
func TestMatchExpressions(t *testing.T) {
	wild := `http.host ~ r#"^[^.]+\.foo\.com$"#`
	tests := []struct {
		name   string
		routes []Route
		req    *Request
		want   string
		prefix string
	}{
		{name: "one label", routes: []Route{{Name: "w", Expression: wild}},
			req: req("GET http://a.foo.com/x"), want: "w"},
		{name: "two labels", routes: []Route{{Name: "w", Expression: wild}},
			req: req("GET http://a.b.foo.com/x"), want: ""},
		{name: "host port is not part of http.host", routes: []Route{{Name: "w", Expression: wild}},
			req: req("GET http://a.foo.com:8000/x"), want: "w"},
		{name: "higher priority wins", routes: []Route{
			{ID: "2", Name: "low", Expression: `http.path ^= "/"`, Priority: 1},
			{ID: "1", Name: "high", Expression: `http.path ^= "/"`, Priority: 2}},
			req: req("GET http://x/a"), want: "high", prefix: "/"},
		{name: "equal priority: greater id wins", routes: []Route{
			{ID: "a", Name: "a", Expression: `http.path ^= "/"`},
			{ID: "b", Name: "b", Expression: `http.path ^= "/"`}},
			req: req("GET http://x/a"), want: "b", prefix: "/"},
		{name: "expression beats a traditional route with more fields", routes: []Route{
			{Name: "trad", Hosts: []string{"x"}, Paths: []string{"/a"}, Methods: []string{"GET"}},
			{Name: "expr", Expression: `http.path ^= "/"`}},
			req: req("GET http://x/a"), want: "expr", prefix: "/"},
		{name: "traditional when no expression matches", routes: []Route{
			{Name: "trad", Paths: []string{"/a"}},
			{Name: "expr", Expression: `http.path ^= "/b"`, Priority: 9}},
			req: req("GET http://x/a"), want: "trad", prefix: "/a"},
		{name: "http-only route refuses https", routes: []Route{
			{Name: "expr", Protocols: []string{"http"}, Expression: `http.path ^= "/"`}},
			req: req("GET https://x/a"), want: ""},
		{name: "https-only route takes http (for the redirect)", routes: []Route{
			{Name: "expr", Protocols: []string{"https"}, Expression: `http.path ^= "/"`}},
			req: req("GET http://x/a"), want: "expr", prefix: "/"},
		{name: "stream expression never matches http", routes: []Route{
			{Name: "expr", Protocols: []string{"tcp"}, Expression: `net.dst.port == 80`}},
			req: req("GET http://x/a"), want: ""},
		{name: "dst port defaults by scheme", routes: []Route{
			{Name: "expr", Expression: `net.dst.port == 443`}},
			req: req("GET https://x/a"), want: "expr"},
		{name: "regex prefix for strip_path", routes: []Route{
			{Name: "expr", Expression: `http.path ~ r#"^/v\d+"#`}},
			req: req("GET http://x/v12/users"), want: "expr", prefix: "/v12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := Compile(tt.routes)
			if err != nil {
				t.Fatal(err)
			}
			m, ok := rt.Match(tt.req)
			got := ""
			if ok {
				got = m.Route.Name
			}
			if got != tt.want || ok && m.Prefix != tt.prefix {
				t.Fatalf("matched %q prefix %q, want %q prefix %q", got, m.Prefix, tt.want, tt.prefix)
			}
		})
	}
}

func TestCompileRefusesBadExpression(t *testing.T) {
	_, err := Compile([]Route{{Name: "bad", Expression: `http.nope == "x"`}})
	if err == nil || !strings.Contains(err.Error(), `route "bad": expression: Unknown LHS field`) {
		t.Fatalf("err = %v", err)
	}
	if err := new(Compiler).Check(Route{Name: "bad", Expression: `http.path = "/"`}); err == nil {
		t.Fatal("Check accepted a syntax error")
	}
}

// The host index only skips routes that cannot match: matching through it
// picks the same route as trying every expression route in order.
func TestExpressionIndexIsExact(t *testing.T) {
	hosts := []string{"a.example.com", "b.example.com", "x.a.example.com", "A.example.com", "example.com", "y.b.example.com", "z.Example.com"}
	exprs := []string{
		`http.host == "a.example.com" && http.path ^= "/"`,
		`lower(http.host) == "a.example.com" && http.path ^= "/a"`,
		`(lower(http.host) ~ r#"^[^.]+\.example\.com$"# || http.host == "example.com") && http.path ^= "/"`,
		`http.host ~ r#"^[^.]+\.a\.example\.com$"# && http.path ^= "/b"`,
		`http.host =^ ".example.com"`,
		`http.path ^= "/c" || http.host == "b.example.com"`,
		`lower(http.host) ~ r#"^[^.]+\.b\.example\.com$"#`,
		`!(http.host == "a.example.com") && http.path ^= "/d"`,
	}
	var routes []Route
	for i := 0; i < 40; i++ {
		routes = append(routes, Route{ID: fmt.Sprintf("%04d", (i*7919)%10000), Name: fmt.Sprint("r", i),
			Expression: exprs[i%len(exprs)], Priority: uint64(i % 5)})
	}
	rt, err := Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	if rt.byHost.exact == nil || len(rt.byHost.any) == len(rt.exprs) {
		t.Fatal("no route was indexed: the test would prove nothing")
	}
	for _, h := range hosts {
		for _, p := range []string{"/", "/a", "/b", "/c", "/d/x"} {
			req := &Request{Scheme: "http", Method: "GET", Host: h + ":8000", Path: p}
			got, ok := rt.Match(req)
			want, wantOK := -1, false
			ar := atc.Request{Protocol: "http", Method: "GET", Host: h, Path: p, DstPort: 8000}
			for _, e := range rt.exprs {
				if _, m := e.expr.Match(&ar); m {
					want, wantOK = e.index, true
					break
				}
			}
			if ok != wantOK || ok && got.Index != want {
				t.Errorf("%s%s: index picked %d (%v), a full scan %d (%v)", h, p, got.Index, ok, want, wantOK)
			}
		}
	}
}
