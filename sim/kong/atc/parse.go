// Package atc reads and evaluates route expressions in the language of
// Kong's ATC router (router_flavor = expressions): predicates such as
// http.host ~ r#"^[^.]+\.example\.com$"# joined by &&, || and !( ).
//
// It follows Kong's atc-router: the grammar (raw strings r#"..."#, the
// escapes \" \\ \n \r \t in plain strings and no other, integers in
// decimal, 0x hex and 0-prefixed octal, IPv4/IPv6 addresses and CIDRs),
// the precedence quirk that || binds tighter than && (a && b || c reads as
// a && (b || c)), the lower() and any() transformations, the semantic
// checks with their messages ("Unknown LHS field", ...), and evaluation:
// a field without a value makes its predicate false, and a field with
// several values (a repeated header) must match in all of them unless any()
// is used. Regexes are unanchored, as Rust's is_match is; Go's RE2 syntax
// stands in for Rust's regex crate, which it closely resembles.
//
// Parse errors read like the atc-router's (a position and what was
// expected); their wording is close to, not byte-equal with, Kong's.
package atc

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Type is the type of a schema field or of a literal.
type Type int

// Types, as atc-router names them.
const (
	String Type = iota + 1
	Int
	IPAddr
	IPCidr
	Regex
)

// Op is a binary operator of a predicate.
type Op int

// Operators, in the grammar's order.
const (
	Equals Op = iota + 1
	NotEquals
	RegexMatch
	Prefix
	Postfix
	GreaterOrEqual
	Greater
	LessOrEqual
	Less
	In
	NotIn
	Contains
)

var opText = map[Op]string{
	Equals: "==", NotEquals: "!=", RegexMatch: "~", Prefix: "^=", Postfix: "=^",
	GreaterOrEqual: ">=", Greater: ">", LessOrEqual: "<=", Less: "<",
	In: "in", NotIn: "not in", Contains: "contains",
}

func (o Op) String() string { return opText[o] }

// value is a literal on the right of a predicate.
type value struct {
	typ  Type
	str  string
	num  int64
	addr netip.Addr
	cidr netip.Prefix
	re   *regexp.Regexp
}

// predicate is field op literal, with the field's transformations.
type predicate struct {
	field      string
	lower, any bool
	op         Op
	rhs        value
}

type nodeKind int

const (
	andNode nodeKind = iota + 1
	orNode
	notNode
	predNode
)

// node is one node of an expression tree.
type node struct {
	kind nodeKind
	l, r *node // r unused for notNode
	p    *predicate
}

// Expr is a parsed expression.
type Expr struct {
	src  string
	root *node
}

// String returns the source text.
func (e *Expr) String() string { return e.src }

// SyntaxError is a parse error at a position of the source.
type SyntaxError struct {
	Src    string
	Offset int // in bytes
	Msg    string
}

// Error formats the error as the atc-router (pest) does: the position, the
// line with a marker under the offending column, and what went wrong.
func (e *SyntaxError) Error() string {
	line, col := 1, 1
	start := 0
	for i := 0; i < e.Offset && i < len(e.Src); i++ {
		if e.Src[i] == '\n' {
			line, col, start = line+1, 1, i+1
		} else {
			col++
		}
	}
	end := strings.IndexByte(e.Src[start:], '\n')
	text := e.Src[start:]
	if end >= 0 {
		text = text[:end]
	}
	num := strconv.Itoa(line)
	pad := strings.Repeat(" ", len(num))
	return fmt.Sprintf("%s--> %d:%d\n%s |\n%s | %s\n%s | %s^---\n%s |\n%s = %s",
		pad, line, col, pad, num, text, pad, strings.Repeat(" ", col-1), pad, pad, e.Msg)
}

// Parse reads an expression. It checks the syntax, the literals (an
// invalid address, an integer out of range, a regex that does not
// compile) and the transformation names, as atc-router's parser does;
// field names and types are checked by Validate.
func Parse(src string) (*Expr, error) {
	p := &parser{src: src}
	p.skipSpace()
	root, err := p.expression()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.fail(p.pos, "expected logical_operator")
	}
	return &Expr{src: src, root: root}, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) fail(at int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Src: p.src, Offset: at, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) peek(s string) bool { return strings.HasPrefix(p.src[p.pos:], s) }

// expression = term (("&&" | "||") term)*, with && binding looser than ||.
func (p *parser) expression() (*node, error) {
	var ands []*node // terms joined by &&, each an || chain
	cur, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		p.skipSpace()
		switch {
		case p.peek("&&"):
			p.pos += 2
			ands = append(ands, cur)
			p.skipSpace()
			if cur, err = p.term(); err != nil {
				return nil, err
			}
		case p.peek("||"):
			p.pos += 2
			p.skipSpace()
			next, err := p.term()
			if err != nil {
				return nil, err
			}
			cur = &node{kind: orNode, l: cur, r: next}
		default:
			out := cur
			if len(ands) > 0 {
				out = ands[0]
				for _, n := range ands[1:] {
					out = &node{kind: andNode, l: out, r: n}
				}
				out = &node{kind: andNode, l: out, r: cur}
			}
			return out, nil
		}
	}
}

// term = predicate | "!"? "(" expression ")"
func (p *parser) term() (*node, error) {
	start := p.pos
	neg := false
	if p.peek("!") && !p.peek("!=") {
		neg = true
		p.pos++
		p.skipSpace()
	}
	if p.peek("(") {
		p.pos++
		p.skipSpace()
		inner, err := p.expression()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if !p.peek(")") {
			return nil, p.fail(p.pos, "expected logical_operator")
		}
		p.pos++
		if neg {
			return &node{kind: notNode, l: inner}, nil
		}
		return inner, nil
	}
	if neg {
		return nil, p.fail(p.pos, "expected parenthesised_expression")
	}
	if p.pos >= len(p.src) || !isAlpha(p.src[p.pos]) {
		return nil, p.fail(start, "expected term")
	}
	pr, err := p.predicate()
	if err != nil {
		return nil, err
	}
	return &node{kind: predNode, p: pr}, nil
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isIdentChar(c byte) bool {
	return isAlpha(c) || '0' <= c && c <= '9' || c == '_' || c == '.'
}

func (p *parser) ident() string {
	start := p.pos
	if p.pos < len(p.src) && isAlpha(p.src[p.pos]) {
		p.pos++
		for p.pos < len(p.src) && isIdentChar(p.src[p.pos]) {
			p.pos++
		}
	}
	return p.src[start:p.pos]
}

// lhs = ident "(" lhs ")" | ident
func (p *parser) lhs(pr *predicate) error {
	start := p.pos
	name := p.ident()
	if name == "" {
		return p.fail(start, "expected lhs")
	}
	save := p.pos
	p.skipSpace()
	if !p.peek("(") {
		p.pos = save
		pr.field = name
		return nil
	}
	p.pos++
	p.skipSpace()
	if err := p.lhs(pr); err != nil {
		return err
	}
	p.skipSpace()
	if !p.peek(")") {
		return p.fail(p.pos, "expected transform_func")
	}
	p.pos++
	switch name {
	case "lower":
		pr.lower = true
	case "any":
		pr.any = true
	default:
		return p.fail(start, "unknown transformation function: %s", name)
	}
	return nil
}

// operators in the grammar's order of trial.
var operators = []struct {
	text string
	op   Op
}{
	{"==", Equals}, {"!=", NotEquals}, {"~", RegexMatch}, {"^=", Prefix}, {"=^", Postfix},
	{">=", GreaterOrEqual}, {">", Greater}, {"<=", LessOrEqual}, {"<", Less},
	{"in", In}, {"contains", Contains},
}

func (p *parser) operator() (Op, bool) {
	for _, o := range operators {
		if p.peek(o.text) {
			p.pos += len(o.text)
			return o.op, true
		}
	}
	if p.peek("not") {
		save := p.pos
		p.pos += 3
		p.skipSpace()
		if p.peek("in") {
			p.pos += 2
			return NotIn, true
		}
		p.pos = save
	}
	return 0, false
}

// predicate = lhs binary_operator rhs
func (p *parser) predicate() (*predicate, error) {
	pr := &predicate{}
	if err := p.lhs(pr); err != nil {
		return nil, err
	}
	p.skipSpace()
	opAt := p.pos
	op, ok := p.operator()
	if !ok {
		return nil, p.fail(opAt, "expected binary_operator")
	}
	pr.op = op
	p.skipSpace()
	rhsAt := p.pos
	v, err := p.rhs()
	if err != nil {
		return nil, err
	}
	if op == RegexMatch {
		if v.typ != String {
			return nil, p.fail(rhsAt, "regex operator can only be used with String operands")
		}
		re, err := regexp.Compile(v.str)
		if err != nil {
			return nil, p.fail(rhsAt, "%s", err.Error())
		}
		v = value{typ: Regex, str: v.str, re: re}
	}
	pr.rhs = v
	return pr, nil
}

// rhs = str_literal | rawstr_literal | ip_literal | int_literal
func (p *parser) rhs() (value, error) {
	start := p.pos
	switch {
	case p.peek(`"`):
		return p.strLiteral()
	case p.peek(`r#"`):
		end := strings.Index(p.src[p.pos+3:], `"#`)
		if end < 0 {
			return value{}, p.fail(start, "expected rhs")
		}
		s := p.src[p.pos+3 : p.pos+3+end]
		p.pos += 3 + end + 2
		return value{typ: String, str: s}, nil
	}
	if v, ok, err := p.ipLiteral(); ok || err != nil {
		return v, err
	}
	return p.intLiteral()
}

func (p *parser) strLiteral() (value, error) {
	start := p.pos
	var b strings.Builder
	for i := p.pos + 1; i < len(p.src); i++ {
		switch c := p.src[i]; c {
		case '"':
			p.pos = i + 1
			return value{typ: String, str: b.String()}, nil
		case '\\':
			if i+1 >= len(p.src) {
				return value{}, p.fail(i, "expected str_esc")
			}
			switch p.src[i+1] {
			case '"', '\\':
				b.WriteByte(p.src[i+1])
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				// Only the escapes above exist: a regex written as
				// "\d" needs a raw string.
				return value{}, p.fail(i, "expected str_esc")
			}
			i++
		default:
			b.WriteByte(c)
		}
	}
	return value{}, p.fail(start, "expected rhs")
}

var (
	ipv4Lit = regexp.MustCompile(`^[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:/[0-9]{1,2})?`)
	ipv6Lit = regexp.MustCompile(`^(?::|[0-9A-Fa-f]{1,4}):(?:[0-9A-Fa-f]{1,4}|:)*(?:/[0-9]{1,3})?`)
	intLit  = regexp.MustCompile(`^-?(?:0[0-7]+|0x[0-9A-Fa-f]+|[0-9]+)`)
)

// ipLiteral reads an address or a CIDR; ok is false when the text is not
// shaped like one.
func (p *parser) ipLiteral() (value, bool, error) {
	rest := p.src[p.pos:]
	m := ipv4Lit.FindString(rest)
	if m == "" {
		m = ipv6Lit.FindString(rest)
	}
	if m == "" {
		return value{}, false, nil
	}
	start := p.pos
	p.pos += len(m)
	if strings.Contains(m, "/") {
		pf, err := netip.ParsePrefix(m)
		if err != nil {
			return value{}, true, p.fail(start, "invalid IP address syntax")
		}
		// atc-router keeps the network, host bits cleared.
		return value{typ: IPCidr, cidr: pf.Masked()}, true, nil
	}
	a, err := netip.ParseAddr(m)
	if err != nil {
		return value{}, true, p.fail(start, "invalid IP address syntax")
	}
	return value{typ: IPAddr, addr: a}, true, nil
}

func (p *parser) intLiteral() (value, error) {
	start := p.pos
	m := intLit.FindString(p.src[p.pos:])
	if m == "" {
		return value{}, p.fail(start, "expected rhs")
	}
	p.pos += len(m)
	digits, neg := strings.CutPrefix(m, "-")
	base := 10
	switch {
	case strings.HasPrefix(digits, "0x"):
		digits, base = digits[2:], 16
	case len(digits) > 1 && digits[0] == '0' && strings.Trim(digits[1:], "01234567") == "":
		digits, base = digits[1:], 8
	}
	n, err := strconv.ParseInt(digits, base, 64)
	if err != nil {
		return value{}, p.fail(start, "number too large to fit in target type")
	}
	if neg {
		n = -n
	}
	return value{typ: Int, num: n}, nil
}
