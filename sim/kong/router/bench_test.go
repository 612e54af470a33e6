package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
)

// realisticRoutes builds n routes the way the Kong Ingress Controller shapes
// them: most Ingress rules have a host and Prefix paths (a "~/p$" regex plus a
// "/p/" plain path), some use Exact paths, some wildcard hosts, a few have no
// host or add methods and headers.
func realisticRoutes(n int) []Route {
	rng := rand.New(rand.NewPCG(1, 2))
	segments := []string{"api", "v1", "v2", "users", "orders", "static", "auth", "login", "health", "items", "search", "admin"}
	routes := make([]Route, 0, n)
	for i := 0; len(routes) < n; i++ {
		ns, svc := i%40, i
		host := fmt.Sprintf("svc%d.ns%d.example.com", svc/4, ns)
		p := "/" + segments[rng.IntN(len(segments))] + "/" + segments[rng.IntN(len(segments))] + fmt.Sprint(i%7)
		r := Route{Name: fmt.Sprint("ns", ns, ".ing", i), Hosts: []string{host}, Paths: []string{"~" + p + "$", p + "/"}}
		switch i % 20 {
		case 0:
			r.Hosts = []string{fmt.Sprintf("*.ns%d.apps.example.com", ns)}
		case 1:
			r.Hosts = nil
		case 2:
			r.Paths = []string{"~" + p + "$"} // Exact
		case 3:
			r.Methods = []string{"GET", "POST"}
		case 4:
			r.Headers = map[string][]string{"x-canary": {"true"}}
		case 5:
			r.Paths = []string{fmt.Sprintf(`~%s/(?<id>\d+)$`, p)}
			r.RegexPriority = 10
		}
		routes = append(routes, r)
	}
	return routes
}

func BenchmarkMatch5000(b *testing.B) {
	routes := realisticRoutes(5000)
	rt, err := Compile(routes)
	if err != nil {
		b.Fatal(err)
	}
	// Requests aimed at existing routes, with deeper paths, plus misses.
	rng := rand.New(rand.NewPCG(3, 4))
	reqs := make([]*Request, 1024)
	hits := 0
	for i := range reqs {
		r := routes[rng.IntN(len(routes))]
		host := "unknown.example.com"
		if len(r.Hosts) > 0 {
			host = r.Hosts[0]
			if host[0] == '*' {
				host = "web" + host[1:]
			}
		}
		path := r.Paths[len(r.Paths)-1]
		if path[0] == '~' {
			path = "/api/v1/x/12"
		} else {
			path += "items/7"
		}
		if i%10 == 0 {
			host = "nowhere.test"
		}
		reqs[i] = &Request{Scheme: "http", Method: "GET", Host: host + ":8000", Path: path, Header: http.Header{"X-Canary": {"true"}}}
		if _, ok := rt.Match(reqs[i]); ok {
			hits++
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rt.Match(reqs[i%len(reqs)])
	}
	b.ReportMetric(float64(hits)/float64(len(reqs)), "hit-ratio")
}

func BenchmarkCompile5000(b *testing.B) {
	routes := realisticRoutes(5000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(routes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecompile5000 is the usual update: the same 5,000 routes with one
// changed, compiled by a Compiler that saw the previous version.
func BenchmarkRecompile5000(b *testing.B) {
	routes := realisticRoutes(5000)
	var cp Compiler
	if _, err := cp.Compile(routes); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		routes[i%len(routes)].Paths = append([]string{fmt.Sprintf("~/changed/%d$", i)}, routes[i%len(routes)].Paths[1:]...)
		if _, err := cp.Compile(routes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatchExpressions1000: 1000 expression routes shaped as the
// translator writes them under router_flavor=expressions. Expression routes
// are tried one by one, best priority first, as the atc-router does, so a
// match costs in proportion to the routes ranked above it.
func BenchmarkMatchExpressions1000(b *testing.B) {
	const n = 1000
	routes := make([]Route, n)
	for i := range routes {
		host := fmt.Sprintf(`lower(http.host) == r#"svc%d.example.com"#`, i)
		if i%10 == 0 {
			host = fmt.Sprintf(`lower(http.host) ~ r#"^[^.]+\.ns%d\.example\.com$"#`, i)
		}
		routes[i] = Route{ID: fmt.Sprintf("%08d", i), Name: fmt.Sprint("r", i), Priority: uint64(1<<43 | i%7),
			Expression: fmt.Sprintf(`(%s) && (http.path ~ r#"^/api%d$"# || http.path ^= r#"/api%d/"#)`, host, i%7, i%7)}
	}
	rt, err := Compile(routes)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	reqs := make([]*Request, 256)
	for i := range reqs {
		k := rng.IntN(n)
		host := fmt.Sprintf("svc%d.example.com", k)
		if k%10 == 0 {
			host = fmt.Sprintf("web.ns%d.example.com", k)
		}
		reqs[i] = &Request{Scheme: "http", Method: "GET", Host: host, Path: fmt.Sprintf("/api%d/x", k%7), Header: http.Header{}}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := rt.Match(reqs[i%len(reqs)]); !ok {
			b.Fatalf("no match for %s%s", reqs[i%len(reqs)].Host, reqs[i%len(reqs)].Path)
		}
		i++
	}
}
