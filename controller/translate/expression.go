package translate

import (
	"slices"
	"strings"
)

// RouterFlavorExpressions is the value of Kong's router_flavor (GET /
// configuration.router_flavor) under which routes are translated to ATC
// expressions; see Options.RouterFlavor.
const RouterFlavorExpressions = "expressions"

// Expression routes.
//
// Kong's traditional router matches a wildcard host "*.foo.com" at any
// depth, while the Ingress API says the "*" stands for exactly one DNS
// label; a traditional route cannot say otherwise (its schema refuses a
// header match on Host). Under router_flavor = expressions a route may
// instead carry an ATC expression, where one label is
// lower(http.host) ~ r#"^[^.]+\.foo\.com$"#.
//
// Kong ranks every expression route above every traditional route (it
// ORs 0xFF<<56 into an expression route's priority; kong/router/
// transform.lua), so a lone wildcard expression route would also take the
// traffic of exact-host traditional routes. Under that flavor every route
// is therefore an expression route: the same predicates Kong derives from
// the traditional fields (kong/router/transform.lua, get_expression), with
// the wildcard hosts narrowed to one label, and a priority that orders the
// routes as Kong orders their traditional forms (get_priority), squeezed
// into the 46 bits Kong allows:
//
//	bits 43-45  fields set: methods, hosts, headers, paths, snis
//	bit  42     hosts set and none a wildcard
//	bits 34-41  number of header names (at most 255)
//	bit  33     the paths are regexes
//	bits 0-32   regex paths: regex_priority + 2^32; plain paths: the
//	            length of the longest
//
// Kong splits a traditional route whose paths mix a regex and a plain
// prefix (a Prefix path /p is ~/p$ and /p/) into one route per kind; an
// expression route has one priority, which is that of its plain prefix.
// The order between Ingress paths is unchanged by this (the regex only
// matches /p itself, where no longer plain prefix can compete), except
// against an ImplementationSpecific regex that also matches /p, which now
// always wins, whatever the regex-priority annotations say.

// Priority layout (see above).
const (
	exprFieldsShift    = 43
	exprPlainHostsBit  = 1 << 42
	exprHeadersShift   = 34
	exprRegexBit       = 1 << 33
	exprRegexPrioShift = 1 << 32 // added to regex_priority to make it unsigned
	exprLowMask        = 1<<33 - 1
)

// appendExpression appends the ATC expression of a route with these hosts,
// paths and settings.
func appendExpression(b []byte, hosts, paths []string, rs *routeSettings) []byte {
	start := len(b)
	and := func() {
		if len(b) > start {
			b = append(b, " && "...)
		}
	}
	if len(rs.snis) > 0 {
		// SNIs constrain only https requests, as Kong's transform has it.
		and()
		b = append(b, `(net.protocol != r#"https"#`...)
		for _, sni := range rs.snis {
			b = append(b, " || "...)
			switch {
			case strings.HasPrefix(sni, "*"):
				b = appendPredicate(b, "tls.sni", "=^", sni[1:])
			case strings.HasSuffix(sni, "*"):
				b = appendPredicate(b, "tls.sni", "^=", sni[:len(sni)-1])
			default:
				b = appendPredicate(b, "tls.sni", "==", strings.TrimSuffix(sni, "."))
			}
		}
		b = append(b, ')')
	}
	if len(rs.methods) > 0 {
		and()
		b = append(b, '(')
		for i, m := range rs.methods {
			if i > 0 {
				b = append(b, " || "...)
			}
			b = appendPredicate(b, "http.method", "==", m)
		}
		b = append(b, ')')
	}
	if len(hosts) > 0 {
		and()
		b = append(b, '(')
		for i, h := range hosts {
			if i > 0 {
				b = append(b, " || "...)
			}
			b = appendHostPredicate(b, h)
		}
		b = append(b, ')')
	}
	if len(paths) > 0 {
		and()
		b = append(b, '(')
		for i, p := range paths {
			if i > 0 {
				b = append(b, " || "...)
			}
			if re, ok := strings.CutPrefix(p, "~"); ok {
				// Anchored as the traditional router anchors it; Rust's
				// regex crate spells named groups (?P<name>.
				b = appendPredicate(b, "http.path", "~", "^"+strings.ReplaceAll(re, "?<", "?P<"))
			} else {
				b = appendPredicate(b, "http.path", "^=", p)
			}
		}
		b = append(b, ')')
	}
	if len(rs.headers) > 0 {
		names := make([]string, 0, len(rs.headers))
		for name := range rs.headers {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			and()
			field := "any(lower(http.headers." + strings.ReplaceAll(strings.ToLower(name), "-", "_") + "))"
			b = append(b, '(')
			for i, v := range rs.headers[name] {
				if i > 0 {
					b = append(b, " || "...)
				}
				if re, ok := strings.CutPrefix(v, "~*"); ok {
					b = appendPredicate(b, field, "~", strings.ToLower(re))
				} else {
					b = appendPredicate(b, field, "==", strings.ToLower(v))
				}
			}
			b = append(b, ')')
		}
	}
	return b
}

// checkExpressionHeaders drops the header matches an expression cannot
// name: a field http.headers.<name> takes letters, digits and "_" (for
// "-"), where an HTTP header name may also hold "." and other symbols.
func (t *translator) checkExpressionHeaders(ref ObjectRef, rs *routeSettings) {
	for name := range rs.headers {
		if strings.IndexFunc(name, func(r rune) bool {
			return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
		}) >= 0 {
			t.report(ref, "metadata.annotations["+AnnotationHeadersPrefix+name+"]", ReasonInvalidAnnotation,
				"header %q cannot be matched by an expression route (Kong's router_flavor is expressions; names of letters, digits, - and _ only); header match ignored", name)
			delete(rs.headers, name)
		}
	}
	if len(rs.headers) == 0 {
		rs.headers = nil
	}
}

// appendHostPredicate matches one route host: a leading wildcard stands for
// exactly one label, as the Ingress API says; a trailing one (Kong's
// "example.*") keeps Kong's prefix match. Host names are case-insensitive
// (RFC 4343) and Ingress hosts are lower case, so the request's host is
// lower-cased first: Kong's own translation of traditional hosts compares
// the Host header as sent.
func appendHostPredicate(b []byte, host string) []byte {
	switch {
	case strings.HasPrefix(host, "*."):
		b = append(b, `lower(http.host) ~ r#"^[^.]+`...)
		for i := 1; i < len(host); i++ {
			if host[i] == '.' {
				b = append(b, '\\')
			}
			b = append(b, host[i])
		}
		return append(b, `$"#`...)
	case strings.HasSuffix(host, "*"):
		return appendPredicate(b, "lower(http.host)", "^=", host[:len(host)-1])
	}
	return appendPredicate(b, "lower(http.host)", "==", host)
}

// appendPredicate appends field op "value", the value as a raw string
// unless it contains the raw string's terminator.
func appendPredicate(b []byte, field, op, value string) []byte {
	b = append(append(append(append(b, field...), ' '), op...), ' ')
	if !strings.Contains(value, `"#`) {
		return append(append(append(b, `r#"`...), value...), `"#`...)
	}
	b = append(b, '"')
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// expressionPriority ranks a route as Kong ranks its traditional form; see
// the layout above. regexPriority is the route's regex_priority.
func expressionPriority(hosts, paths []string, rs *routeSettings, regexPriority int) uint64 {
	var fields, p uint64
	for _, set := range []bool{len(rs.methods) > 0, len(hosts) > 0, len(rs.headers) > 0, len(paths) > 0, len(rs.snis) > 0} {
		if set {
			fields++
		}
	}
	p = fields << exprFieldsShift
	if len(hosts) > 0 && !slices.ContainsFunc(hosts, func(h string) bool { return strings.Contains(h, "*") }) {
		p |= exprPlainHostsBit
	}
	p |= uint64(min(len(rs.headers), 255)) << exprHeadersShift
	longest, regex := 0, false
	for _, path := range paths {
		if strings.HasPrefix(path, "~") {
			regex = true
		} else {
			longest = max(longest, len(path))
		}
	}
	switch {
	case longest > 0:
		p |= uint64(min(longest, exprLowMask))
	case regex:
		p |= exprRegexBit | uint64(min(max(int64(regexPriority)+exprRegexPrioShift, 0), exprLowMask))
	}
	return p
}
