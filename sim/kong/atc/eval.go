package atc

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
)

// Request holds what an expression can read of one HTTP request.
type Request struct {
	Protocol string // net.protocol: "http" or "https"
	SNI      string // tls.sni
	Method   string // http.method
	Host     string // http.host: the Host header without its port, as sent
	Path     string // http.path: the normalized path, no query string
	Header   http.Header
	RawQuery string // read for http.queries.*

	SrcIP, DstIP     netip.Addr // net.src.ip, net.dst.ip (zero: no value)
	SrcPort, DstPort int        // net.src.port, net.dst.port (0: no value)

	query    url.Values
	segments []string
	split    bool
}

// Result is what a successful match found.
type Result struct {
	// Path is the value the last matching http.path predicate matched:
	// its literal for ==, ^= and =^, the whole regex match for ~. Kong
	// strips a prefix of this length when the route has strip_path.
	Path    string
	HasPath bool
	// Captures are the groups of the last matching http.path regex,
	// Captures[0] being the whole match; CaptureNames parallels it.
	Captures, CaptureNames []string
}

// Match evaluates the expression against r. res is filled only on a match.
func (e *Expr) Match(r *Request) (res Result, ok bool) {
	if !e.root.eval(r, &res) {
		return Result{}, false
	}
	return res, true
}

func (n *node) eval(r *Request, res *Result) bool {
	switch n.kind {
	case andNode:
		return n.l.eval(r, res) && n.r.eval(r, res)
	case orNode:
		return n.l.eval(r, res) || n.r.eval(r, res)
	case notNode:
		return !n.l.eval(r, res)
	}
	return n.p.eval(r, res)
}

// lhsValue is one value of a field.
type lhsValue struct {
	str  string
	num  int64
	addr netip.Addr
}

// values returns the field's values; none means the field has no value.
func (r *Request) values(field string, buf []lhsValue) []lhsValue {
	str := func(s string) []lhsValue { return append(buf, lhsValue{str: s}) }
	switch field {
	case "net.protocol":
		return str(r.Protocol)
	case "tls.sni":
		if r.SNI == "" {
			return nil
		}
		return str(r.SNI)
	case "http.method":
		return str(r.Method)
	case "http.host":
		return str(r.Host)
	case "http.path":
		return str(r.Path)
	case "net.src.ip", "net.dst.ip":
		a := r.SrcIP
		if field == "net.dst.ip" {
			a = r.DstIP
		}
		if !a.IsValid() {
			return nil
		}
		return append(buf, lhsValue{addr: a})
	case "net.src.port", "net.dst.port":
		p := r.SrcPort
		if field == "net.dst.port" {
			p = r.DstPort
		}
		if p == 0 {
			return nil
		}
		return append(buf, lhsValue{num: int64(p)})
	case "http.path.segments.len":
		return append(buf, lhsValue{num: int64(len(r.pathSegments()))})
	}
	switch {
	case strings.HasPrefix(field, "http.headers."):
		// Kong reads headers through ngx.req.get_headers, whose keys are
		// lower case with "_" standing for "-".
		name := textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(field[len("http.headers."):], "_", "-"))
		for _, v := range r.Header[name] {
			buf = append(buf, lhsValue{str: v})
		}
		return buf
	case strings.HasPrefix(field, "http.queries."):
		if r.query == nil {
			r.query, _ = url.ParseQuery(r.RawQuery)
		}
		for _, v := range r.query[field[len("http.queries."):]] {
			buf = append(buf, lhsValue{str: v})
		}
		return buf
	case strings.HasPrefix(field, "http.path.segments."):
		m := segmentsSuffix.FindStringSubmatch(field[len("http.path.segments."):])
		if m == nil {
			return nil
		}
		segs := r.pathSegments()
		from, to := atoi(m[1]), atoi(m[1])
		if m[2] != "" {
			to = atoi(m[3])
		}
		if from >= len(segs) {
			return nil
		}
		to = min(to, len(segs)-1)
		return str(strings.Join(segs[from:to+1], "/"))
	}
	return nil
}

// pathSegments splits the path after its leading "/" and drops trailing
// empty segments, as Kong does.
func (r *Request) pathSegments() []string {
	if !r.split {
		r.split = true
		segs := strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
		for len(segs) > 0 && segs[len(segs)-1] == "" {
			segs = segs[:len(segs)-1]
		}
		r.segments = segs
	}
	return r.segments
}

// eval applies the predicate to every value of its field: all must match
// (any one with any()), and a field without values never matches.
func (p *predicate) eval(r *Request, res *Result) bool {
	var buf [2]lhsValue
	vals := r.values(p.field, buf[:0])
	if len(vals) == 0 {
		return false
	}
	for _, v := range vals {
		if p.lower {
			v.str = strings.ToLower(v.str)
		}
		ok := p.test(v, res)
		if p.any && ok {
			return true
		}
		if !p.any && !ok {
			return false
		}
	}
	return !p.any
}

func (p *predicate) test(v lhsValue, res *Result) bool {
	rhs := &p.rhs
	matched := func(s string) bool {
		if p.field == "http.path" {
			res.Path, res.HasPath = s, true
			res.Captures, res.CaptureNames = nil, nil
		}
		return true
	}
	switch p.op {
	case Equals:
		if rhs.typ == String && v.str == rhs.str || rhs.typ == Int && v.num == rhs.num || rhs.typ == IPAddr && v.addr == rhs.addr {
			return matched(rhs.str)
		}
	case NotEquals:
		return !(rhs.typ == String && v.str == rhs.str || rhs.typ == Int && v.num == rhs.num || rhs.typ == IPAddr && v.addr == rhs.addr)
	case RegexMatch:
		loc := rhs.re.FindStringSubmatchIndex(v.str)
		if loc == nil {
			return false
		}
		matched(v.str[loc[0]:loc[1]])
		if p.field == "http.path" {
			res.Captures = make([]string, len(loc)/2)
			for i := range res.Captures {
				if loc[2*i] >= 0 {
					res.Captures[i] = v.str[loc[2*i]:loc[2*i+1]]
				}
			}
			res.CaptureNames = rhs.re.SubexpNames()
		}
		return true
	case Prefix:
		if strings.HasPrefix(v.str, rhs.str) {
			return matched(rhs.str)
		}
	case Postfix:
		if strings.HasSuffix(v.str, rhs.str) {
			return matched(rhs.str)
		}
	case Contains:
		return strings.Contains(v.str, rhs.str)
	case Greater:
		return v.num > rhs.num
	case GreaterOrEqual:
		return v.num >= rhs.num
	case Less:
		return v.num < rhs.num
	case LessOrEqual:
		return v.num <= rhs.num
	case In:
		return rhs.cidr.Contains(v.addr)
	case NotIn:
		return !rhs.cidr.Contains(v.addr)
	}
	return false
}
