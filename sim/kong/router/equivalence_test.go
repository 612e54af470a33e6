package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// referenceMatch is the router's specification written as a linear scan over
// every route and path, with none of Compile's indexing. The compiled router
// must agree with it on every request.
func referenceMatch(routes []Route, r *Request) (index int, prefix string, ok bool) {
	host, port := splitHostPort(r.Host)
	host = strings.ToLower(host)
	if port == 0 {
		port = map[string]int{"http": 80, "https": 443}[r.Scheme]
	}
	var best priority
	index = -1
	for i, rt := range routes {
		if !refProtocolOK(rt.Protocols, r.Scheme) {
			continue
		}
		if len(rt.Methods) > 0 && !refContainsFold(rt.Methods, r.Method) {
			continue
		}
		plainHosts := len(rt.Hosts) > 0
		hostOK := len(rt.Hosts) == 0
		for _, h := range rt.Hosts {
			if strings.Contains(h, "*") {
				plainHosts = false
			}
			if refHostOK(h, host, port) {
				hostOK = true
			}
		}
		if !hostOK {
			continue
		}
		headersOK := true
		for name, values := range rt.Headers {
			found := false
			for _, got := range r.Header.Values(name) {
				for _, v := range values {
					if p, isRe := strings.CutPrefix(v, "~*"); isRe {
						found = found || regexp.MustCompile(strings.ToLower(p)).MatchString(strings.ToLower(got))
					} else {
						found = found || strings.EqualFold(got, v)
					}
				}
			}
			headersOK = headersOK && found
		}
		if !headersOK {
			continue
		}
		if len(rt.SNIs) > 0 && r.Scheme == "https" {
			sniOK := false
			for _, s := range rt.SNIs {
				sniOK = sniOK || refHostOK(s, strings.ToLower(r.SNI), 0)
			}
			if !sniOK {
				continue
			}
		}
		fields := 0
		for _, n := range []int{len(rt.Methods), len(rt.Hosts), len(rt.Headers), len(rt.Paths), len(rt.SNIs)} {
			if n > 0 {
				fields++
			}
		}
		base := priority{fields: fields, plainHosts: plainHosts, headers: len(rt.Headers), order: i}
		consider := func(p priority, pfx string) {
			if index < 0 || p.beats(best) {
				best, index, prefix = p, i, pfx
			}
		}
		if len(rt.Paths) == 0 {
			consider(base, "")
		}
		for _, p := range rt.Paths {
			cand := base
			if re, isRe := strings.CutPrefix(p, "~"); isRe {
				loc := regexp.MustCompile(`^(?:` + re + `)`).FindStringIndex(r.Path)
				if loc == nil {
					continue
				}
				cand.regex, cand.regexPriority = true, rt.RegexPriority
				consider(cand, r.Path[:loc[1]])
			} else if strings.HasPrefix(r.Path, p) {
				cand.length = len(p)
				consider(cand, p)
			}
		}
	}
	return index, prefix, index >= 0
}

func refProtocolOK(protocols []string, scheme string) bool {
	if len(protocols) == 0 {
		return true
	}
	return refContainsFold(protocols, scheme) || scheme == "http" && refContainsFold(protocols, "https")
}

func refContainsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func refHostOK(pattern, host string, port int) bool {
	pattern = strings.ToLower(pattern)
	if h, p, found := strings.Cut(pattern, ":"); found {
		if fmt.Sprint(port) != p {
			return false
		}
		pattern = h
	}
	switch {
	case strings.HasPrefix(pattern, "*"):
		return len(host) > len(pattern)-1 && strings.HasSuffix(host, pattern[1:])
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(host, pattern[:len(pattern)-1])
	}
	return host == pattern
}

// randomRoutes draws routes from small vocabularies so that they overlap a
// lot and every precedence rule gets exercised.
func randomRoutes(rng *rand.Rand, n int) []Route {
	hosts := []string{"a.example.com", "b.example.com", "*.example.com", "example.*", "a.example.com:8000", "x.org", "*.a.example.com"}
	paths := []string{"/", "/a", "/a/", "/a/b", "/ab", "~/a$", "~/a/b$", `~/a/\w+`, "~/.*", "~(?i)/A", "/b", "~/b/(?<id>[0-9]+)"}
	methods := []string{"GET", "POST", "PUT"}
	pick := func(list []string, max int) []string {
		var out []string
		for range rng.IntN(max + 1) {
			out = append(out, list[rng.IntN(len(list))])
		}
		return out
	}
	routes := make([]Route, n)
	for i := range routes {
		r := Route{Name: fmt.Sprint("r", i), Hosts: pick(hosts, 2), Paths: pick(paths, 3), Methods: pick(methods, 2), RegexPriority: rng.IntN(3) - 1}
		if rng.IntN(4) == 0 {
			r.Headers = map[string][]string{"x-v": pick([]string{"1", "2", "~*^v[0-9]$"}, 2)}
			if rng.IntN(2) == 0 {
				r.Headers["x-w"] = []string{"on"}
			}
		}
		if rng.IntN(5) == 0 {
			r.Protocols = pick([]string{"http", "https"}, 2)
		}
		routes[i] = r
	}
	return routes
}

func randomRequest(rng *rand.Rand) *Request {
	hosts := []string{"a.example.com", "b.example.com", "c.example.com", "example.com", "example.net", "x.org", "deep.a.example.com", "a.example.com:8000", "A.Example.com"}
	paths := []string{"/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/A", "/b/12", "/b/x", "/c"}
	h := http.Header{}
	if rng.IntN(2) == 0 {
		h.Set("X-V", []string{"1", "2", "V7", "3"}[rng.IntN(4)])
	}
	if rng.IntN(2) == 0 {
		h.Set("X-W", "ON")
	}
	return &Request{
		Scheme: []string{"http", "https"}[rng.IntN(2)],
		Method: []string{"GET", "POST", "DELETE"}[rng.IntN(3)],
		Host:   hosts[rng.IntN(len(hosts))],
		Path:   paths[rng.IntN(len(paths))],
		Header: h,
	}
}

func TestMatchAgreesWithLinearScan(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		routes := randomRoutes(rng, 1+rng.IntN(40))
		rt, err := Compile(routes)
		if err != nil {
			t.Fatalf("seed %d: Compile: %v", seed, err)
		}
		for range 50 {
			r := randomRequest(rng)
			wantIdx, wantPrefix, wantOK := referenceMatch(routes, r)
			m, ok := rt.Match(r)
			if ok != wantOK || ok && (m.Index != wantIdx || m.Prefix != wantPrefix) {
				t.Fatalf("seed %d: %s %s://%s%s %v: got (%v, %d, %q), want (%v, %d, %q)\nroutes: %+v",
					seed, r.Method, r.Scheme, r.Host, r.Path, r.Header, ok, m.Index, m.Prefix, wantOK, wantIdx, wantPrefix, routes)
			}
		}
	}
}

// FuzzMatch checks that arbitrary request paths and hosts never panic the
// router and that it agrees with the linear scan.
func FuzzMatch(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 7))
	routes := randomRoutes(rng, 60)
	rt, err := Compile(routes)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("a.example.com", "/a/b", "GET")
	f.Add("example.", "", "")
	f.Add(".example.com:", "/b/12", "POST")
	f.Fuzz(func(t *testing.T, host, path, method string) {
		r := &Request{Scheme: "http", Method: method, Host: host, Path: path, Header: http.Header{}}
		wantIdx, wantPrefix, wantOK := referenceMatch(routes, r)
		m, ok := rt.Match(r)
		if ok != wantOK || ok && (m.Index != wantIdx || m.Prefix != wantPrefix) {
			t.Fatalf("%q %q %q: got (%v, %d, %q), want (%v, %d, %q)", method, host, path, ok, m.Index, m.Prefix, wantOK, wantIdx, wantPrefix)
		}
	})
}
