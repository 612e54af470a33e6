package atc

import (
	"errors"
	"regexp"
	"strings"
)

// Schema maps field names to types. A name ending in ".*" covers every
// field under that prefix (http.headers.* covers http.headers.x_foo); an
// exact entry wins over a wildcard one.
type Schema map[string]Type

// HTTPSchema is the schema of Kong's HTTP routes (kong/router/fields.lua).
var HTTPSchema = Schema{
	"net.protocol": String, "tls.sni": String, "http.method": String, "http.host": String,
	"http.path": String, "http.path.segments.*": String, "http.headers.*": String, "http.queries.*": String,
	"net.src.port": Int, "net.dst.port": Int, "http.path.segments.len": Int,
	"net.src.ip": IPAddr, "net.dst.ip": IPAddr,
}

// StreamSchema is the schema of Kong's stream (tcp, tls, udp) routes.
var StreamSchema = Schema{
	"net.protocol": String, "tls.sni": String,
	"net.src.port": Int, "net.dst.port": Int,
	"net.src.ip": IPAddr, "net.dst.ip": IPAddr,
}

// TypeOf returns the type of field, or 0 when the schema lacks it.
func (s Schema) TypeOf(field string) Type {
	if t, ok := s[field]; ok {
		return t
	}
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return s[field[:i]+".*"]
	}
	return 0
}

// The atc-router's semantic error messages.
const (
	msgUnknownLHS          = "Unknown LHS field"
	msgTypeMismatch        = "Type mismatch between the LHS and RHS values of predicate"
	msgLowerOnlyForString  = "lower-case transformation function only supported with String type fields"
	msgRegexOnlyForString  = "Regex operators only supports string operands"
	msgPrefixOnlyForString = "Prefix/Postfix operators only supports string operands"
	msgOnlyForInt          = "Greater/GreaterOrEqual/Less/LessOrEqual operators only supports integer operands"
	msgOnlyForCIDR         = "In/NotIn operators only supports IP in CIDR"
	msgContainsOnlyString  = "Contains operator only supports string operands"
	msgIllformedSegments   = "illformed http.path.segments.* field"
)

var segmentsSuffix = regexp.MustCompile(`^(0|[1-9][0-9]*)(_([1-9][0-9]*))?$`)

// Validate checks every predicate against the schema, in the order and with
// the messages of the atc-router, then the http.path.segments.* field names
// as Kong's route schema does.
func (e *Expr) Validate(s Schema) error {
	var err error
	e.walk(func(p *predicate) bool {
		err = p.validate(s)
		return err == nil
	})
	if err != nil {
		return err
	}
	e.walk(func(p *predicate) bool {
		if suffix, ok := strings.CutPrefix(p.field, "http.path.segments."); ok && suffix != "len" {
			m := segmentsSuffix.FindStringSubmatch(suffix)
			if m == nil || m[2] != "" && atoi(m[1]) >= atoi(m[3]) {
				err = errors.New(msgIllformedSegments)
			}
		}
		return err == nil
	})
	return err
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
		if n > 1<<30 {
			return 1 << 30
		}
	}
	return n
}

// Fields lists the distinct fields the expression reads, in order of first use.
func (e *Expr) Fields() []string {
	var out []string
	seen := map[string]bool{}
	e.walk(func(p *predicate) bool {
		if !seen[p.field] {
			seen[p.field] = true
			out = append(out, p.field)
		}
		return true
	})
	return out
}

// walk visits the predicates left to right until visit returns false.
func (e *Expr) walk(visit func(*predicate) bool) {
	var rec func(n *node) bool
	rec = func(n *node) bool {
		switch n.kind {
		case predNode:
			return visit(n.p)
		case notNode:
			return rec(n.l)
		}
		return rec(n.l) && rec(n.r)
	}
	rec(e.root)
}

func (p *predicate) validate(s Schema) error {
	lhs := s.TypeOf(p.field)
	if lhs == 0 {
		return errors.New(msgUnknownLHS)
	}
	if p.op != RegexMatch && p.op != In && p.op != NotIn && lhs != p.rhs.typ {
		return errors.New(msgTypeMismatch)
	}
	if p.lower && lhs != String {
		return errors.New(msgLowerOnlyForString)
	}
	switch p.op {
	case RegexMatch:
		if lhs != String {
			return errors.New(msgRegexOnlyForString)
		}
	case Prefix, Postfix:
		if p.rhs.typ != String {
			return errors.New(msgPrefixOnlyForString)
		}
	case Greater, GreaterOrEqual, Less, LessOrEqual:
		if p.rhs.typ != Int {
			return errors.New(msgOnlyForInt)
		}
	case In, NotIn:
		if lhs != IPAddr || p.rhs.typ != IPCidr {
			return errors.New(msgOnlyForCIDR)
		}
	case Contains:
		if p.rhs.typ != String {
			return errors.New(msgContainsOnlyString)
		}
	}
	return nil
}

// netPort is the deprecated field net.port, which Kong rewrites to
// net.dst.port before it compiles an expression.
var netPort = regexp.MustCompile(`(net\.port)(\s*)([=><!])`)

// Amend rewrites what Kong rewrites in a route's expression before it
// parses it: net.port becomes net.dst.port.
func Amend(src string) string {
	if !strings.Contains(src, "net.port") {
		return src
	}
	return netPort.ReplaceAllString(src, "net.dst.port$2$3")
}

// Compile amends, parses and validates src against s, as Kong does for a
// route's expression.
func Compile(src string, s Schema) (*Expr, error) {
	e, err := Parse(Amend(src))
	if err != nil {
		return nil, err
	}
	if err := e.Validate(s); err != nil {
		return nil, err
	}
	return e, nil
}
