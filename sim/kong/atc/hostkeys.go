package atc

import (
	"regexp"
	"strings"
)

// HostKey is one host a request may have for an expression to match; see
// HostKeys.
type HostKey struct {
	// Lower: the key is compared with the lower-cased host (the
	// predicate used lower()).
	Lower bool
	// OneLabel: the key is what follows the first label of the host
	// (".foo.com" for r#"^[^.]+\.foo\.com$"#); otherwise the whole host.
	OneLabel bool
	Value    string
}

// oneLabelRegex is the regex shape of a one-label wildcard host.
var oneLabelRegex = regexp.MustCompile(`^\^\[\^\.\]\+((?:\\\.[A-Za-z0-9-]+)+)\$$`)

// HostKeys returns, when the expression is a conjunction one of whose
// terms is a disjunction of host predicates of the simple kinds (http.host
// == "x", or a one-label wildcard regex, with or without lower()), the
// hosts that term accepts: a request whose host matches none of them
// cannot match the expression. Routers use it as an index; ok is false
// when the expression has no such term.
func (e *Expr) HostKeys() (keys []HostKey, ok bool) {
	var conj []*node
	var flatten func(n *node)
	flatten = func(n *node) {
		if n.kind == andNode {
			flatten(n.l)
			flatten(n.r)
			return
		}
		conj = append(conj, n)
	}
	flatten(e.root)
	for _, c := range conj {
		if keys, ok := hostDisjuncts(c, nil); ok {
			return keys, true
		}
	}
	return nil, false
}

func hostDisjuncts(n *node, keys []HostKey) ([]HostKey, bool) {
	switch n.kind {
	case orNode:
		keys, ok := hostDisjuncts(n.l, keys)
		if !ok {
			return nil, false
		}
		return hostDisjuncts(n.r, keys)
	case predNode:
		p := n.p
		if p.field != "http.host" {
			return nil, false
		}
		switch {
		case p.op == Equals && p.rhs.typ == String:
			return append(keys, HostKey{Lower: p.lower, Value: p.rhs.str}), true
		case p.op == RegexMatch:
			if m := oneLabelRegex.FindStringSubmatch(p.rhs.str); m != nil {
				return append(keys, HostKey{Lower: p.lower, OneLabel: true, Value: strings.ReplaceAll(m[1], `\.`, ".")}), true
			}
		}
	}
	return nil, false
}
