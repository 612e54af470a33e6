package translate

import (
	"strings"
	"testing"

	"github.com/kong/go-kong/kong"
	networkingv1 "k8s.io/api/networking/v1"
)

// checkExpressionRoutes holds every route of res to what Kong's schema
// accepts under router_flavor = expressions: an expression and a priority
// below 2^46, none of the traditional match fields nor regex_priority, and
// an expression whose parentheses and strings are closed.
func checkExpressionRoutes(t *testing.T, res Result) {
	t.Helper()
	for _, s := range res.Config.Services {
		for _, r := range s.Routes {
			if r.Expression == nil || r.Priority == nil {
				t.Fatalf("route %s has no expression or priority", *r.Name)
			}
			if r.Hosts != nil || r.Paths != nil || r.Methods != nil || r.Headers != nil || r.SNIs != nil || r.RegexPriority != nil {
				t.Fatalf("route %s mixes an expression with traditional fields: %+v", *r.Name, r)
			}
			if *r.Priority >= 1<<46 {
				t.Fatalf("route %s priority %d is not below 2^46", *r.Name, *r.Priority)
			}
			if err := balanced(*r.Expression); err != "" {
				t.Fatalf("route %s expression %q: %s", *r.Name, *r.Expression, err)
			}
		}
	}
}

// balanced checks that raw strings, quoted strings and parentheses close.
func balanced(x string) string {
	depth := 0
	for i := 0; i < len(x); i++ {
		switch {
		case strings.HasPrefix(x[i:], `r#"`):
			end := strings.Index(x[i+3:], `"#`)
			if end < 0 {
				return "unterminated raw string"
			}
			i += 3 + end + 1
		case x[i] == '"':
			j := i + 1
			for ; j < len(x) && x[j] != '"'; j++ {
				if x[j] == '\\' {
					j++
				}
			}
			if j >= len(x) {
				return "unterminated string"
			}
			i = j
		case x[i] == '(':
			depth++
		case x[i] == ')':
			if depth--; depth < 0 {
				return "unbalanced )"
			}
		}
	}
	if depth != 0 {
		return "unbalanced ("
	}
	return ""
}

// expressionFor translates one Ingress rule (host, path, pathType) under
// the expressions flavor and returns its route.
func expressionRoutes(t *testing.T, annotations map[string]string, rules ...networkingv1.IngressRule) map[string]*kong.Route {
	t.Helper()
	snap := benchSnapshot(1)
	ing := snap.Ingresses[0].DeepCopy()
	backend := ing.Spec.Rules[0].HTTP.Paths[0].Backend
	for i := range rules {
		for j := range rules[i].HTTP.Paths {
			rules[i].HTTP.Paths[j].Backend = backend
		}
	}
	ing.Spec.Rules = rules
	ing.Annotations = annotations
	snap.Ingresses = []*networkingv1.Ingress{ing}
	res := Translate(snap, Options{RouterFlavor: RouterFlavorExpressions})
	for _, e := range res.Errors {
		t.Errorf("unexpected error %v", e)
	}
	checkExpressionRoutes(t, res)
	out := map[string]*kong.Route{}
	for _, s := range res.Config.Services {
		for _, r := range s.Routes {
			out[strings.TrimPrefix(*r.Name, ing.Namespace+"."+ing.Name+".")] = r
		}
	}
	return out
}

func rule(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
	return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
		HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
}

func ipath(p string, typ networkingv1.PathType) networkingv1.HTTPIngressPath {
	return networkingv1.HTTPIngressPath{Path: p, PathType: &typ}
}

func TestExpressionText(t *testing.T) {
	prefix, exact, impl := networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific
	tests := []struct {
		name        string
		annotations map[string]string
		rule        networkingv1.IngressRule
		want        string
	}{
		{"wildcard host is one label", nil, rule("*.foo.com", ipath("/", prefix)),
			`(lower(http.host) ~ r#"^[^.]+\.foo\.com$"#) && (http.path ^= r#"/"#)`},
		{"exact host, Prefix path", nil, rule("bar.foo.com", ipath("/api/", prefix)),
			`(lower(http.host) == r#"bar.foo.com"#) && (http.path ~ r#"^/api$"# || http.path ^= r#"/api/"#)`},
		{"Exact path, regex metacharacters quoted", nil, rule("", ipath("/a.b", exact)),
			`(http.path ~ r#"^/a\.b$"#)`},
		{"ImplementationSpecific regex with a named group", nil, rule("", ipath(`/~/u/(?<id>\d+)`, impl)),
			`(http.path ~ r#"^/u/(?P<id>\d+)"#)`},
		{"regex with the raw string terminator", nil, rule("", ipath(`/~/a"#b`, impl)),
			`(http.path ~ "^/a\"#b")`},
		{"host aliases, wildcards too", map[string]string{AnnotationHostAliases: "*.foo.org,foo.net"},
			rule("foo.com", ipath("/", prefix)),
			`(lower(http.host) == r#"foo.com"# || lower(http.host) ~ r#"^[^.]+\.foo\.org$"# || lower(http.host) == r#"foo.net"#) && (http.path ^= r#"/"#)`},
		{"methods, headers and SNIs", map[string]string{
			AnnotationMethods: "GET,POST", AnnotationHeadersPrefix + "X-Team": "Blue,~*^R.d$", AnnotationHeadersPrefix + "a": "1",
			AnnotationProtocols: "https", AnnotationSNIs: "*.foo.com,foo.com"},
			rule("x.foo.com", ipath("/", prefix)),
			`(net.protocol != r#"https"# || tls.sni =^ r#".foo.com"# || tls.sni == r#"foo.com"#) && ` +
				`(http.method == r#"GET"# || http.method == r#"POST"#) && (lower(http.host) == r#"x.foo.com"#) && (http.path ^= r#"/"#) && ` +
				`(any(lower(http.headers.a)) == r#"1"#) && (any(lower(http.headers.x_team)) == r#"blue"# || any(lower(http.headers.x_team)) ~ r#"^r.d$"#)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := expressionRoutes(t, tt.annotations, tt.rule)
			r := routes["0.0"]
			if r == nil {
				t.Fatalf("no route 0.0 in %v", routes)
			}
			if *r.Expression != tt.want {
				t.Errorf("expression\n got %s\nwant %s", *r.Expression, tt.want)
			}
		})
	}
}

// The priorities order routes as the Ingress API (and Kong's traditional
// router, for the traditional form of each route) wants them.
func TestExpressionPriorityOrder(t *testing.T) {
	prefix, exact, impl := networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific
	routes := expressionRoutes(t, nil,
		rule("bar.foo.com", ipath("/", prefix)), // 0.0
		rule("*.foo.com", ipath("/", prefix), // 1.0
			ipath("/api", prefix),                  // 1.1
			ipath("/api", exact),                   // 1.2
			ipath("/api/v1", prefix),               // 1.3
			ipath(`/~/api/v\d+$`, impl),            // 1.4
			ipath("/api/v1/users/list/all", impl)), // 1.5
		rule("", ipath("/", prefix)), // 2.0
	)
	higher := [][2]string{
		{"0.0", "1.0"}, // exact host over wildcard
		{"1.0", "2.0"}, // a host over none
		{"1.1", "1.0"}, // longer Prefix over shorter
		{"1.2", "1.1"}, // Exact over Prefix of the same path
		{"1.3", "1.1"},
		{"1.4", "1.3"}, // regex over plain, as Kong ranks them
		{"1.5", "1.3"}, // longer plain prefix
		{"1.2", "1.3"}, // Exact is a regex
	}
	for _, h := range higher {
		a, b := routes[h[0]], routes[h[1]]
		if a == nil || b == nil {
			t.Fatalf("routes %v", routes)
		}
		if *a.Priority <= *b.Priority {
			t.Errorf("route %s (%s, priority %d) must outrank %s (%s, priority %d)",
				h[0], *a.Expression, *a.Priority, h[1], *b.Expression, *b.Priority)
		}
	}
}

func TestExpressionPriorityBounds(t *testing.T) {
	rs := routeSettings{methods: []string{"GET"}, snis: []string{"a"}, headers: map[string][]string{"a": {"1"}}}
	for _, rp := range []int{-(1 << 32), 0, 1<<32 - 1} {
		p := expressionPriority([]string{"a"}, []string{"~/x"}, &rs, rp)
		if p >= 1<<46 {
			t.Errorf("regex_priority %d: priority %d not below 2^46", rp, p)
		}
	}
	lo := expressionPriority(nil, []string{"~/x"}, &routeSettings{}, -(1 << 32))
	hi := expressionPriority(nil, []string{"~/x"}, &routeSettings{}, 1<<32-1)
	plain := expressionPriority(nil, []string{"/" + strings.Repeat("x", 1000)}, &routeSettings{}, 0)
	if !(lo < hi && plain < lo) {
		t.Errorf("regex priorities %d..%d must keep their order and outrank plain %d", lo, hi, plain)
	}
}

// The WildcardHostDepth warning is for the flavors whose routes match a
// wildcard at any depth; expression routes match one label and need none.
func TestWildcardWarningByFlavor(t *testing.T) {
	for _, tt := range []struct {
		flavor   string
		warnings int
	}{{"", 1}, {"traditional", 1}, {"traditional_compatible", 1}, {RouterFlavorExpressions, 0}} {
		snap := benchSnapshot(1)
		ing := snap.Ingresses[0].DeepCopy()
		ing.Spec.Rules[0].Host = "*.example.com"
		snap.Ingresses = []*networkingv1.Ingress{ing}
		res := Translate(snap, Options{RouterFlavor: tt.flavor})
		n := 0
		for _, e := range res.Errors {
			if e.Reason == ReasonWildcardHostDepth {
				n++
			}
		}
		if n != tt.warnings || len(res.Translated) != 1 {
			t.Errorf("flavor %q: %d warnings, %d Ingresses translated; want %d and 1", tt.flavor, n, len(res.Translated), tt.warnings)
		}
	}
}

// A header name an ATC field cannot spell is reported and its match
// dropped, instead of an expression Kong would refuse (with the whole
// configuration, in DB-less mode).
func TestExpressionHeaderNames(t *testing.T) {
	snap := benchSnapshot(1)
	ing := snap.Ingresses[0].DeepCopy()
	ing.Annotations = map[string]string{AnnotationHeadersPrefix + "x.version": "2", AnnotationHeadersPrefix + "x-ok_1": "y"}
	snap.Ingresses = []*networkingv1.Ingress{ing}
	for _, flavor := range []string{"", RouterFlavorExpressions} {
		res := Translate(snap, Options{RouterFlavor: flavor})
		var reported []string
		for _, e := range res.Errors {
			if e.Reason == ReasonInvalidAnnotation {
				reported = append(reported, e.Field)
			}
		}
		r := res.Config.Services[0].Routes[0]
		if flavor == "" {
			if len(reported) != 0 || len(r.Headers) != 2 {
				t.Errorf("traditional: errors %v, headers %v; want both headers kept", reported, r.Headers)
			}
			continue
		}
		if len(reported) != 1 || reported[0] != "metadata.annotations[konghq.com/headers.x.version]" {
			t.Errorf("expressions: reported %v, want the x.version header", reported)
		}
		if x := *r.Expression; strings.Contains(x, "x.version") || !strings.Contains(x, "http.headers.x_ok_1") {
			t.Errorf("expressions: expression %s", x)
		}
	}
}
