package router

import (
	"net/http"
	"strings"
	"testing"
)

// req builds a request from "METHOD scheme://host/path" plus header pairs.
func req(line string, headerPairs ...string) *Request {
	method, rest, _ := strings.Cut(line, " ")
	scheme, rest, _ := strings.Cut(rest, "://")
	host, path := rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	h := http.Header{}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		h.Add(headerPairs[i], headerPairs[i+1])
	}
	return &Request{Scheme: scheme, Method: method, Host: host, Path: path, Header: h, SNI: strings.Split(host, ":")[0]}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		req    *Request
		want   string // winning route name, "" for no match
		prefix string
	}{
		// hosts
		{name: "exact host", routes: []Route{{Name: "a", Hosts: []string{"example.com"}}},
			req: req("GET http://example.com/x"), want: "a"},
		{name: "host ignores port and case", routes: []Route{{Name: "a", Hosts: []string{"Example.COM"}}},
			req: req("GET http://EXAMPLE.com:8000/x"), want: "a"},
		{name: "other host", routes: []Route{{Name: "a", Hosts: []string{"example.com"}}},
			req: req("GET http://example.org/x"), want: ""},
		{name: "suffix wildcard matches a subdomain", routes: []Route{{Name: "a", Hosts: []string{"*.example.com"}}},
			req: req("GET http://api.example.com/"), want: "a"},
		{name: "suffix wildcard matches deeper names", routes: []Route{{Name: "a", Hosts: []string{"*.example.com"}}},
			req: req("GET http://a.b.example.com/"), want: "a"},
		{name: "suffix wildcard skips the apex", routes: []Route{{Name: "a", Hosts: []string{"*.example.com"}}},
			req: req("GET http://example.com/"), want: ""},
		{name: "suffix wildcard needs the dot", routes: []Route{{Name: "a", Hosts: []string{"*.example.com"}}},
			req: req("GET http://badexample.com/"), want: ""},
		{name: "prefix wildcard", routes: []Route{{Name: "a", Hosts: []string{"example.*"}}},
			req: req("GET http://example.org/"), want: "a"},
		{name: "prefix wildcard multi-label tail", routes: []Route{{Name: "a", Hosts: []string{"example.*"}}},
			req: req("GET http://example.co.uk/"), want: "a"},
		{name: "prefix wildcard needs the dot", routes: []Route{{Name: "a", Hosts: []string{"example.*"}}},
			req: req("GET http://examples.org/"), want: ""},
		{name: "any of several hosts", routes: []Route{{Name: "a", Hosts: []string{"a.com", "b.com"}}},
			req: req("GET http://b.com/"), want: "a"},
		{name: "host with port matches that port", routes: []Route{{Name: "a", Hosts: []string{"example.com:8443"}}},
			req: req("GET http://example.com:8443/"), want: "a"},
		{name: "host with port rejects another port", routes: []Route{{Name: "a", Hosts: []string{"example.com:8443"}}},
			req: req("GET http://example.com:8000/"), want: ""},
		{name: "host with port against the default port", routes: []Route{{Name: "a", Hosts: []string{"example.com:80"}}},
			req: req("GET http://example.com/"), want: "a"},

		// paths
		{name: "plain path is a raw prefix", routes: []Route{{Name: "a", Paths: []string{"/foo"}}},
			req: req("GET http://h/foobar"), want: "a", prefix: "/foo"},
		{name: "plain path mismatch", routes: []Route{{Name: "a", Paths: []string{"/foo"}}},
			req: req("GET http://h/fo"), want: ""},
		{name: "regex anchored at the start", routes: []Route{{Name: "a", Paths: []string{`~/foo/\d+`}}},
			req: req("GET http://h/x/foo/12"), want: ""},
		{name: "regex match and its prefix", routes: []Route{{Name: "a", Paths: []string{`~/foo/\d+`}}},
			req: req("GET http://h/foo/12/rest"), want: "a", prefix: "/foo/12"},
		{name: "regex with end anchor", routes: []Route{{Name: "a", Paths: []string{`~/foo$`}}},
			req: req("GET http://h/foo/"), want: ""},
		{name: "regex alternation stays anchored", routes: []Route{{Name: "a", Paths: []string{`~/a|/b`}}},
			req: req("GET http://h/x/b"), want: ""},
		{name: "case-insensitive regex", routes: []Route{{Name: "a", Paths: []string{`~(?i)/FOO`}}},
			req: req("GET http://h/foo"), want: "a", prefix: "/foo"},
		{name: "KIC prefix pair: exact", routes: []Route{{Name: "a", Paths: []string{"~/foo$", "/foo/"}}},
			req: req("GET http://h/foo"), want: "a", prefix: "/foo"},
		{name: "KIC prefix pair: below", routes: []Route{{Name: "a", Paths: []string{"~/foo$", "/foo/"}}},
			req: req("GET http://h/foo/bar"), want: "a", prefix: "/foo/"},
		{name: "KIC prefix pair: sibling", routes: []Route{{Name: "a", Paths: []string{"~/foo$", "/foo/"}}},
			req: req("GET http://h/foobar"), want: ""},

		// methods, headers, protocols, snis
		{name: "method listed", routes: []Route{{Name: "a", Methods: []string{"GET", "post"}}},
			req: req("POST http://h/"), want: "a"},
		{name: "method not listed", routes: []Route{{Name: "a", Methods: []string{"GET"}}},
			req: req("DELETE http://h/"), want: ""},
		{name: "header any value, any case", routes: []Route{{Name: "a", Headers: map[string][]string{"x-version": {"v1", "V2"}}}},
			req: req("GET http://h/", "X-Version", "v2"), want: "a"},
		{name: "header wrong value", routes: []Route{{Name: "a", Headers: map[string][]string{"x-version": {"v1"}}}},
			req: req("GET http://h/", "X-Version", "v3"), want: ""},
		{name: "header missing", routes: []Route{{Name: "a", Headers: map[string][]string{"x-version": {"v1"}}}},
			req: req("GET http://h/"), want: ""},
		{name: "all header names required", routes: []Route{{Name: "a", Headers: map[string][]string{"x-a": {"1"}, "x-b": {"2"}}}},
			req: req("GET http://h/", "X-A", "1"), want: ""},
		{name: "header regex", routes: []Route{{Name: "a", Headers: map[string][]string{"x-a": {"~*^V[0-9]+$"}}}},
			req: req("GET http://h/", "X-A", "V12"), want: "a"},
		{name: "header among several values of the request", routes: []Route{{Name: "a", Headers: map[string][]string{"x-a": {"b"}}}},
			req: req("GET http://h/", "X-A", "a", "X-A", "b"), want: "a"},
		{name: "https-only route still matches http (redirect)", routes: []Route{{Name: "a", Protocols: []string{"https"}}},
			req: req("GET http://h/"), want: "a"},
		{name: "http-only route refuses https", routes: []Route{{Name: "a", Protocols: []string{"http"}}},
			req: req("GET https://h/"), want: ""},
		{name: "stream-only route never matches", routes: []Route{{Name: "a", Protocols: []string{"tcp"}}},
			req: req("GET http://h/"), want: ""},
		{name: "sni ignored on http", routes: []Route{{Name: "a", SNIs: []string{"other.com"}}},
			req: req("GET http://h/"), want: "a"},
		{name: "sni checked on https", routes: []Route{{Name: "a", SNIs: []string{"other.com"}}},
			req: req("GET https://h/"), want: ""},
		{name: "every field must match", routes: []Route{{Name: "a", Hosts: []string{"h"}, Methods: []string{"GET"}, Paths: []string{"/x"}}},
			req: req("GET http://h/y"), want: ""},
		{name: "no routes", req: req("GET http://h/"), want: ""},

		// precedence, one rule at a time
		{name: "more fields beats a longer path",
			routes: []Route{{Name: "path-only", Paths: []string{"/very/long/path"}}, {Name: "path+method", Paths: []string{"/v"}, Methods: []string{"GET"}}},
			req:    req("GET http://h/very/long/path"), want: "path+method"},
		{name: "more fields beats plain hosts",
			routes: []Route{{Name: "plain", Hosts: []string{"a.example.com"}}, {Name: "wild+path", Hosts: []string{"*.example.com"}, Paths: []string{"/"}}},
			req:    req("GET http://a.example.com/"), want: "wild+path"},
		{name: "plain host beats wildcard suffix",
			routes: []Route{{Name: "wild", Hosts: []string{"*.example.com"}}, {Name: "plain", Hosts: []string{"a.example.com"}}},
			req:    req("GET http://a.example.com/"), want: "plain"},
		{name: "plain host beats wildcard prefix",
			routes: []Route{{Name: "wild", Hosts: []string{"example.*"}}, {Name: "plain", Hosts: []string{"example.com"}}},
			req:    req("GET http://example.com/"), want: "plain"},
		{name: "one wildcard makes a route's hosts not plain",
			routes: []Route{{Name: "mixed", Hosts: []string{"a.example.com", "*.example.org"}}, {Name: "plain", Hosts: []string{"a.example.com"}}},
			req:    req("GET http://a.example.com/"), want: "plain"},
		{name: "plain hosts beat more headers",
			routes: []Route{{Name: "wild+2h", Hosts: []string{"*.x.com"}, Headers: map[string][]string{"a": {"1"}, "b": {"2"}}}, {Name: "plain+1h", Hosts: []string{"h.x.com"}, Headers: map[string][]string{"a": {"1"}}}},
			req:    req("GET http://h.x.com/", "A", "1", "B", "2"), want: "plain+1h"},
		{name: "more headers wins",
			routes: []Route{{Name: "1h", Headers: map[string][]string{"a": {"1"}}}, {Name: "2h", Headers: map[string][]string{"a": {"1"}, "b": {"2"}}}},
			req:    req("GET http://h/", "A", "1", "B", "2"), want: "2h"},
		{name: "more headers beats regex",
			routes: []Route{{Name: "regex+1h", Paths: []string{"~/a"}, Headers: map[string][]string{"a": {"1"}}}, {Name: "plain+2h", Paths: []string{"/a"}, Headers: map[string][]string{"a": {"1"}, "b": {"2"}}}},
			req:    req("GET http://h/a", "A", "1", "B", "2"), want: "plain+2h"},
		{name: "regex beats a longer plain path",
			routes: []Route{{Name: "plain", Paths: []string{"/api/v1/users"}}, {Name: "regex", Paths: []string{"~/api"}}},
			req:    req("GET http://h/api/v1/users"), want: "regex"},
		{name: "higher regex_priority wins",
			routes: []Route{{Name: "low", Paths: []string{"~/api/.*"}, RegexPriority: 1}, {Name: "high", Paths: []string{"~/api"}, RegexPriority: 5}},
			req:    req("GET http://h/api/x"), want: "high"},
		{name: "negative regex_priority loses to zero",
			routes: []Route{{Name: "neg", Paths: []string{"~/api"}, RegexPriority: -1}, {Name: "zero", Paths: []string{"~/a"}}},
			req:    req("GET http://h/api"), want: "zero"},
		{name: "regex_priority ignored on plain paths",
			routes: []Route{{Name: "short", Paths: []string{"/a"}, RegexPriority: 100}, {Name: "long", Paths: []string{"/a/b"}}},
			req:    req("GET http://h/a/b"), want: "long"},
		{name: "longer plain prefix wins",
			routes: []Route{{Name: "short", Paths: []string{"/a"}}, {Name: "long", Paths: []string{"/a/b"}}},
			req:    req("GET http://h/a/b/c"), want: "long", prefix: "/a/b"},
		{name: "longest path of one route competes on its own",
			routes: []Route{{Name: "mid", Paths: []string{"/a/b"}}, {Name: "multi", Paths: []string{"/a", "/a/b/c"}}},
			req:    req("GET http://h/a/b/c"), want: "multi", prefix: "/a/b/c"},
		{name: "shorter path of a multi-path route loses",
			routes: []Route{{Name: "mid", Paths: []string{"/a/b"}}, {Name: "multi", Paths: []string{"/a", "/a/b/c"}}},
			req:    req("GET http://h/a/b/x"), want: "mid"},
		{name: "tie goes to the earlier route",
			routes: []Route{{Name: "first", Paths: []string{"/a"}}, {Name: "second", Paths: []string{"/a"}}},
			req:    req("GET http://h/a"), want: "first"},
		{name: "tie among regexes goes to the earlier route",
			routes: []Route{{Name: "first", Paths: []string{"~/a.*"}}, {Name: "second", Paths: []string{"~/a"}}},
			req:    req("GET http://h/abc"), want: "first"},
		{name: "exact host bucket and any-host bucket compete by priority",
			routes: []Route{{Name: "host", Hosts: []string{"h"}}, {Name: "path+method", Paths: []string{"/"}, Methods: []string{"GET"}}},
			req:    req("GET http://h/"), want: "path+method"},
		{name: "suffix and prefix buckets compete by priority",
			routes: []Route{{Name: "suffix", Hosts: []string{"*.b.c"}}, {Name: "prefix+path", Hosts: []string{"a.*"}, Paths: []string{"/"}}},
			req:    req("GET http://a.b.c/"), want: "prefix+path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := Compile(tt.routes)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			m, ok := rt.Match(tt.req)
			got := ""
			if ok {
				got = m.Route.Name
				if tt.routes[m.Index].Name != got {
					t.Errorf("Index %d names %q, Route is %q", m.Index, tt.routes[m.Index].Name, got)
				}
			}
			if got != tt.want {
				t.Fatalf("matched %q, want %q", got, tt.want)
			}
			if ok && tt.prefix != "" && m.Prefix != tt.prefix {
				t.Errorf("prefix %q, want %q", m.Prefix, tt.prefix)
			}
		})
	}
}

func TestMatchCaptures(t *testing.T) {
	rt, err := Compile([]Route{{Name: "a", Paths: []string{`~/users/(?<id>\d+)/(\w+)`}}})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := rt.Match(req("GET http://h/users/42/posts/7"))
	if !ok {
		t.Fatal("no match")
	}
	wantCaps := []string{"/users/42/posts", "42", "posts"}
	wantNames := []string{"", "id", ""}
	if strings.Join(m.Captures, ",") != strings.Join(wantCaps, ",") || strings.Join(m.CaptureNames, ",") != strings.Join(wantNames, ",") {
		t.Fatalf("captures %q names %q, want %q %q", m.Captures, m.CaptureNames, wantCaps, wantNames)
	}
	if m.Prefix != "/users/42/posts" {
		t.Fatalf("prefix %q", m.Prefix)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		route Route
		want  string
	}{
		{"bad path regex", Route{Name: "r1", Paths: []string{"/ok", "~/a(b"}}, `route "r1": paths[1]: invalid regex "~/a(b"`},
		{"bad header regex", Route{ID: "id-2", Headers: map[string][]string{"x-a": {"~*(("}}}, `route "id-2": headers.x-a[0]: invalid regex`},
		{"wildcard in the middle", Route{Name: "r3", Hosts: []string{"a.*.com"}}, `route "r3": hosts[0]: host "a.*.com": a wildcard must be the first or the last label`},
		{"bad port", Route{Name: "r4", Hosts: []string{"a.com:99999"}}, `route "r4": hosts[0]: invalid port`},
		{"bad sni", Route{Name: "r5", SNIs: []string{"*"}}, `route "r5": snis[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile([]Route{{Name: "fine", Paths: []string{"/"}}, tt.route})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLiteralPrefix(t *testing.T) {
	tests := map[string]string{
		`/foo$`:            "/foo",
		`/foo/\d+`:         "/foo/",
		`/api/(?<v>v\d)/x`: "/api/v",
		`(/a)/b`:           "/a/b",
		`/a|/b`:            "/",
		`(?i)/foo`:         "",
		`.*`:               "",
		`/fo+`:             "/f",
	}
	for pattern, want := range tests {
		if got := literalPrefix(pattern); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestCompilerReusesRegexesAcrossCompiles(t *testing.T) {
	var cp Compiler
	first, err := cp.Compile([]Route{
		{Name: "a", Paths: []string{`~/a/\d+$`}},
		{Name: "b", Paths: []string{`~/b$`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	second, err := cp.Compile([]Route{
		{Name: "b", Paths: []string{`~/b$`}},
		{Name: "c", Paths: []string{`~/c$`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reB1, reB2 := first.anyHost.byLiteral["/b"][0].re, second.anyHost.byLiteral["/b"][0].re
	if reB1 != reB2 {
		t.Error("regex of an unchanged route was compiled again")
	}
	if _, ok := cp.cache[`^(?:/a/\d+$)`]; ok {
		t.Error("cache keeps a regex the last configuration no longer uses")
	}
	if _, err := cp.Compile([]Route{{Name: "bad", Paths: []string{"~("}}}); err == nil {
		t.Fatal("bad regex compiled")
	}
	for path, want := range map[string]string{"/b": "b", "/c": "c", "/a/1": ""} {
		got := ""
		if m, ok := second.Match(req("GET http://h" + path)); ok {
			got = m.Route.Name
		}
		if got != want {
			t.Errorf("%s matched %q, want %q", path, got, want)
		}
	}
	if len(cp.cache) != 2 {
		t.Errorf("a failed compile changed the cache: %d entries", len(cp.cache))
	}
}
