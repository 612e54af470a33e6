// Package router is kongsim's compiled HTTP router. It picks the Kong route a
// request belongs to with the rules and precedence of Kong 3.x's
// traditional_compatible router flavor, and it is pure: no I/O, no clock.
//
// Compile turns a route list into an index so that a match touches only the
// routes that can apply: routes are bucketed by host (exact names in a map,
// "*.suffix" and "prefix.*" wildcards in maps probed once per dot of the
// request host, routes without hosts in one more bucket), and inside a bucket
// by the literal text their path must start with (a plain path itself, the
// literal prefix of a regex, "" when there is no path). A match therefore
// costs a handful of map look-ups plus the checks of the few routes sharing a
// key, whatever the number of routes. A compiled Router is immutable and safe
// for concurrent use.
//
// Semantics, as Kong's traditional_compatible flavor has them:
//   - A route matches when every field it sets matches; within a field any
//     value may match.
//   - Hosts compare to the request host without its port, case-insensitively.
//     "*.example.com" matches any deeper name (not example.com itself) and
//     "example.*" any name starting with "example.". A host with a port
//     ("example.com:8443") also requires the request's port.
//   - A plain path is a raw string prefix; a path starting with "~" is a
//     regular expression anchored at the start of the path.
//   - Header names are case-insensitive and any listed value matches,
//     case-insensitively; a value starting with "~*" is a regex.
//   - Protocols: an https request needs "https" in the route's protocols; an
//     http request needs "http" or "https" (a route allowing only https still
//     matches, so that the proxy can answer with its redirect). A route with
//     no protocols allows both.
//   - SNIs constrain https requests only.
//
// Precedence, highest first (Kong's priority word): more fields set (methods,
// hosts, headers, paths, snis count one each); hosts set and all plain; more
// header names; a regex path before a plain one; higher regex_priority (regex
// only); longer plain path; then earlier position in the route list, which
// callers keep in creation order. Like Kong, a route whose paths mix regexes
// and plain prefixes of different lengths competes once per path.
//
// Expression routes (router_flavor = expressions): a route with an
// Expression matches when the expression (package atc) does and its
// protocols allow the request, as Kong appends a net.protocol predicate
// for them. Kong ranks an expression route at 0xFF<<56 | priority, above
// the priority word it derives for a traditional route (whose top bits
// count the fields set, at most a few), so expression routes are tried
// first, highest priority first and, among equals, the greater id first
// (the atc-router's order); traditional routes are tried only when none
// matches. Expressions that require one of a few hosts (http.host == "x",
// or a one-label wildcard regex) are indexed by them, so a match tries
// only the routes its host can satisfy, plus the unindexed ones.
package router

import (
	"cmp"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"

	"konductor.dev/sim/kong/atc"
)

// Route is the matching part of a Kong route.
type Route struct {
	ID, Name      string
	Protocols     []string
	Methods       []string
	Hosts         []string
	Paths         []string
	SNIs          []string
	Headers       map[string][]string
	RegexPriority int
	// Expression and Priority make an expression route; the other
	// matching fields are then empty (Kong's schema refuses both).
	Expression string
	Priority   uint64
}

// label names the route in errors: its name, else its id.
func (r *Route) label() string {
	if r.Name != "" {
		return fmt.Sprintf("route %q", r.Name)
	}
	return fmt.Sprintf("route %q", r.ID)
}

// Request is what the router looks at in an HTTP request.
type Request struct {
	// Scheme is "http" or "https".
	Scheme string
	Method string
	// Host is the Host header; a port in it is ignored for host matching.
	Host string
	// Port is the port the request arrived on, used by hosts that carry a
	// port. 0 takes it from Host, else 80/443 by Scheme.
	Port int
	// Path is the request path without the query string.
	Path string
	// SNI is the TLS server name of an https request.
	SNI    string
	Header http.Header
	// RawQuery, RemoteAddr and LocalAddr ("ip:port") are read only by
	// expressions (http.queries.*, net.src.*, net.dst.ip).
	RawQuery, RemoteAddr, LocalAddr string
}

// Match is the result of a successful match.
type Match struct {
	// Index is the route's position in the slice given to Compile.
	Index int
	Route *Route
	// Prefix is the part of the request path that the route's path matched:
	// the plain path, or the whole regex match. Empty when the route has no
	// paths. strip_path removes it.
	Prefix string
	// Captures holds a regex path's submatches, Captures[0] being the whole
	// match; nil for plain paths. CaptureNames parallels it ("" for unnamed).
	Captures     []string
	CaptureNames []string
}

// Router is a compiled, immutable route index.
type Router struct {
	routes  []Route
	exact   map[string]*bucket
	suffix  map[string]*bucket // "*.example.com" keyed ".example.com"
	prefix  map[string]*bucket // "example.*" keyed "example."
	anyHost *bucket
	exprs   []exprRoute // best first
	byHost  exprIndex
}

// exprIndex narrows the expression routes a request must try by its host:
// a route whose expression requires one of a few hosts (atc.HostKeys) is
// listed under each of them, the others in any. Lists hold positions in
// Router.exprs, ascending, so merging them keeps Kong's order.
type exprIndex struct {
	exact, exactLower       map[string][]int
	oneLabel, oneLabelLower map[string][]int // keyed by the host after its first label
	any                     []int
}

func (x *exprIndex) add(i int, e *exprRoute) {
	keys, ok := e.expr.HostKeys()
	if !ok {
		x.any = append(x.any, i)
		return
	}
	if x.exact == nil {
		x.exact, x.exactLower = map[string][]int{}, map[string][]int{}
		x.oneLabel, x.oneLabelLower = map[string][]int{}, map[string][]int{}
	}
	for _, k := range keys {
		m := x.exact
		switch {
		case k.OneLabel && k.Lower:
			m = x.oneLabelLower
		case k.OneLabel:
			m = x.oneLabel
		case k.Lower:
			m = x.exactLower
		}
		if l := m[k.Value]; len(l) == 0 || l[len(l)-1] != i {
			m[k.Value] = append(l, i)
		}
	}
}

// candidates returns the lists of positions a request for host may match.
func (x *exprIndex) candidates(host string, out [][]int) [][]int {
	out = append(out, x.any)
	if x.exact == nil {
		return out
	}
	lower := strings.ToLower(host)
	out = append(out, x.exact[host], x.exactLower[lower])
	if i := strings.IndexByte(host, '.'); i > 0 {
		out = append(out, x.oneLabel[host[i:]], x.oneLabelLower[lower[i:]])
	}
	return out
}

// exprRoute is an expression route, compiled.
type exprRoute struct {
	index int
	route *Route
	expr  *atc.Expr
	// allowHTTP and allowHTTPS: the net.protocol predicate Kong adds.
	allowHTTP, allowHTTPS bool
}

// bucket holds the candidates sharing one host key, keyed by the literal text
// the request path must start with for them to match.
type bucket struct {
	byLiteral map[string][]*candidate // each list sorted by priority, best first
	lengths   []int                   // distinct key lengths, longest first
}

// candidate is one way for a route to match: one of its paths (or none) under
// one of its hosts (or none).
type candidate struct {
	route *compiled
	plain string         // plain path prefix; unused when re is set
	re    *regexp.Regexp // anchored regex path, or nil
	port  int            // port the host entry requires, 0 for none
	prio  priority
}

// compiled is a route with its field matchers prepared.
type compiled struct {
	index       int
	route       *Route
	allowHTTP   bool // http requests may match (http or https listed)
	allowHTTPS  bool
	methods     []string
	headers     []headerMatcher
	snis        []hostPattern
	hasPaths    bool
	hasHosts    bool
	hasSNIs     bool
	fieldsCount int
}

type headerMatcher struct {
	name   string // canonical MIME form, for direct http.Header access
	values []string
	res    []*regexp.Regexp
}

type hostKind int

const (
	hostExact hostKind = iota
	hostSuffix
	hostPrefix
)

type hostPattern struct {
	kind hostKind
	key  string // exact name, ".suffix" or "prefix."
	port int
}

// priority orders candidates; see the package comment.
type priority struct {
	fields        int
	plainHosts    bool
	headers       int
	regex         bool
	regexPriority int
	length        int
	order         int
	pathIndex     int // among one route's equal regexes, the first listed wins
}

// beats reports whether p takes precedence over q.
func (p priority) beats(q priority) bool {
	switch {
	case p.fields != q.fields:
		return p.fields > q.fields
	case p.plainHosts != q.plainHosts:
		return p.plainHosts
	case p.headers != q.headers:
		return p.headers > q.headers
	case p.regex != q.regex:
		return p.regex
	case p.regexPriority != q.regexPriority:
		return p.regexPriority > q.regexPriority
	case p.length != q.length:
		return p.length > q.length
	case p.order != q.order:
		return p.order < q.order
	}
	return p.pathIndex < q.pathIndex
}

// Compile indexes routes. It fails on the first route with an invalid regex
// or host, naming the route and the field.
func Compile(routes []Route) (*Router, error) {
	return new(Compiler).Compile(routes)
}

// Compiler compiles route lists and remembers the regexes of the last one,
// so that recompiling a mostly unchanged configuration (the usual update)
// skips most regex compilation, which dominates compile time. It is safe
// for concurrent use.
type Compiler struct {
	mu    sync.Mutex
	cache map[string]compiledRegex
}

type compiledRegex struct {
	re      *regexp.Regexp
	literal string
}

// Compile is like the package-level Compile.
func (cp *Compiler) Compile(routes []Route) (*Router, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	rt := &Router{
		routes:  slices.Clone(routes),
		exact:   map[string]*bucket{},
		suffix:  map[string]*bucket{},
		prefix:  map[string]*bucket{},
		anyHost: newBucket(),
	}
	regexes := &regexCache{old: cp.cache, used: map[string]compiledRegex{}}
	for i := range rt.routes {
		if rt.routes[i].Expression != "" {
			if err := rt.addExpression(i); err != nil {
				return nil, err
			}
			continue
		}
		if err := rt.add(i, regexes); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(rt.exprs, func(x, y exprRoute) int {
		if c := cmp.Compare(y.route.Priority, x.route.Priority); c != 0 {
			return c
		}
		return strings.Compare(y.route.ID, x.route.ID)
	})
	for i := range rt.exprs {
		rt.byHost.add(i, &rt.exprs[i])
	}
	for _, buckets := range []map[string]*bucket{rt.exact, rt.suffix, rt.prefix} {
		for _, b := range buckets {
			b.seal()
		}
	}
	rt.anyHost.seal()
	cp.cache = regexes.used // only what this configuration uses
	return rt, nil
}

// regexCache serves one compilation: regexes come from the previous one
// when they can, and every regex used is recorded for the next.
type regexCache struct {
	old, used map[string]compiledRegex
}

// get compiles pattern (or reuses it); pathLiteral asks for the literal
// prefix of a path regex too.
func (c *regexCache) get(pattern string, pathLiteral func() string) (compiledRegex, error) {
	if cr, ok := c.used[pattern]; ok {
		return cr, nil
	}
	cr, ok := c.old[pattern]
	if !ok {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return cr, err
		}
		cr.re = re
		if pathLiteral != nil {
			cr.literal = pathLiteral()
		}
	}
	c.used[pattern] = cr
	return cr, nil
}

// Len reports the number of routes compiled.
func (rt *Router) Len() int { return len(rt.routes) }

// Check reports the error Compile would report for r alone: its
// regexes, hosts and SNIs. The regexes it compiles are kept for the next
// Compile, so checking a configuration first and compiling it later
// compiles each regex once.
func (cp *Compiler) Check(r Route) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.cache == nil {
		cp.cache = map[string]compiledRegex{}
	}
	if r.Expression != "" {
		_, err := compileExpression(&r, 0)
		return err
	}
	_, err := prepare(&r, 0, &regexCache{old: cp.cache, used: cp.cache})
	return err
}

// HasExpressions reports whether any route is an expression route, for
// callers that fill the Request fields only expressions read.
func (rt *Router) HasExpressions() bool { return len(rt.exprs) > 0 }

func (rt *Router) addExpression(i int) error {
	e, err := compileExpression(&rt.routes[i], i)
	if err != nil || e == nil {
		return err
	}
	rt.exprs = append(rt.exprs, *e)
	return nil
}

// compileExpression compiles route r's expression; nil without an error
// is a stream route, which never matches HTTP traffic.
func compileExpression(r *Route, i int) (*exprRoute, error) {
	e := &exprRoute{index: i, route: r}
	schema := atc.HTTPSchema
	if len(r.Protocols) > 0 {
		switch strings.ToLower(r.Protocols[0]) {
		case "tcp", "tls", "udp", "tls_passthrough":
			schema = atc.StreamSchema
		}
	}
	x, err := atc.Compile(r.Expression, schema)
	if err != nil {
		return nil, fmt.Errorf("%s: expression: %w", r.label(), err)
	}
	e.expr = x
	e.allowHTTP, e.allowHTTPS = len(r.Protocols) == 0, len(r.Protocols) == 0
	for _, p := range r.Protocols {
		switch strings.ToLower(p) {
		case "http", "grpc":
			e.allowHTTP = true
		case "https", "grpcs":
			e.allowHTTP, e.allowHTTPS = true, true
		}
	}
	if !e.allowHTTP && !e.allowHTTPS {
		return nil, nil
	}
	return e, nil
}

// matchExpression returns the first expression route that matches req.
func (rt *Router) matchExpression(req *Request, host string, port int) (Match, bool) {
	https := req.Scheme == "https"
	ar := atc.Request{Protocol: req.Scheme, Method: req.Method, Host: host, Path: req.Path,
		Header: req.Header, RawQuery: req.RawQuery, DstPort: port}
	if https {
		ar.SNI = req.SNI
	}
	if ap, err := netip.ParseAddrPort(req.RemoteAddr); err == nil {
		ar.SrcIP, ar.SrcPort = ap.Addr().Unmap(), int(ap.Port())
	}
	if ap, err := netip.ParseAddrPort(req.LocalAddr); err == nil {
		ar.DstIP = ap.Addr().Unmap()
	}
	// Walk the candidate lists merged, in ascending position (Kong's
	// order), each route once.
	var buf [5][]int
	lists := rt.byHost.candidates(host, buf[:0])
	last := -1
	for {
		next := -1
		for k, l := range lists {
			for len(l) > 0 && l[0] <= last {
				l = l[1:]
			}
			lists[k] = l
			if len(l) > 0 && (next < 0 || l[0] < next) {
				next = l[0]
			}
		}
		if next < 0 {
			break
		}
		last = next
		e := &rt.exprs[next]
		if https && !e.allowHTTPS || !https && !e.allowHTTP {
			continue
		}
		res, ok := e.expr.Match(&ar)
		if !ok {
			continue
		}
		m := Match{Index: e.index, Route: e.route, Captures: res.Captures, CaptureNames: res.CaptureNames}
		if res.HasPath {
			m.Prefix = res.Path
		}
		return m, true
	}
	return Match{}, false
}

func (rt *Router) add(i int, regexes *regexCache) error {
	p, err := prepare(&rt.routes[i], i, regexes)
	if err != nil || p == nil {
		return err
	}
	for k, cand := range p.cands {
		if len(p.hosts) == 0 {
			rt.anyHost.put(p.literals[k], cand)
			continue
		}
		for _, hp := range p.hosts {
			hc := *cand
			hc.port = hp.port
			var m map[string]*bucket
			switch hp.kind {
			case hostExact:
				m = rt.exact
			case hostSuffix:
				m = rt.suffix
			default:
				m = rt.prefix
			}
			b := m[hp.key]
			if b == nil {
				b = newBucket()
				m[hp.key] = b
			}
			b.put(p.literals[k], &hc)
		}
	}
	return nil
}

// prepared is a route compiled for the index: its candidates (one per
// path, or one without paths), each with the literal prefix it is
// bucketed by, and its hosts.
type prepared struct {
	cands    []*candidate
	literals []string
	hosts    []hostPattern
}

// prepare compiles route r, the i-th of its configuration; nil without
// an error is a route that never matches HTTP traffic.
func prepare(r *Route, i int, regexes *regexCache) (*prepared, error) {
	c := &compiled{index: i, route: r}
	if len(r.Protocols) == 0 {
		c.allowHTTP, c.allowHTTPS = true, true
	}
	for _, p := range r.Protocols {
		switch strings.ToLower(p) {
		case "http":
			c.allowHTTP = true
		case "https":
			c.allowHTTP, c.allowHTTPS = true, true
		}
	}
	if !c.allowHTTP && !c.allowHTTPS {
		return nil, nil // a stream-only route never matches HTTP traffic
	}
	for _, m := range r.Methods {
		c.methods = append(c.methods, strings.ToUpper(m))
	}
	if err := c.compileHeaders(regexes); err != nil {
		return nil, err
	}
	for j, s := range r.SNIs {
		hp, err := parseHost(s)
		if err != nil {
			return nil, fmt.Errorf("%s: snis[%d]: %w", r.label(), j, err)
		}
		c.snis = append(c.snis, hp)
	}
	c.hasHosts, c.hasPaths, c.hasSNIs = len(r.Hosts) > 0, len(r.Paths) > 0, len(r.SNIs) > 0
	for _, set := range []bool{len(c.methods) > 0, c.hasHosts, len(c.headers) > 0, c.hasPaths, c.hasSNIs} {
		if set {
			c.fieldsCount++
		}
	}
	base := priority{fields: c.fieldsCount, plainHosts: c.hasHosts, headers: len(c.headers), order: i}
	hosts := make([]hostPattern, 0, len(r.Hosts))
	for j, h := range r.Hosts {
		hp, err := parseHost(h)
		if err != nil {
			return nil, fmt.Errorf("%s: hosts[%d]: %w", r.label(), j, err)
		}
		if hp.kind != hostExact {
			base.plainHosts = false
		}
		hosts = append(hosts, hp)
	}

	var cands []*candidate
	var literals []string
	if !c.hasPaths {
		cands, literals = append(cands, &candidate{route: c, prio: base}), append(literals, "")
	}
	for j, p := range r.Paths {
		cand := &candidate{route: c, prio: base}
		cand.prio.pathIndex = j
		literal := p
		if rest, isRegex := strings.CutPrefix(p, "~"); isRegex {
			cr, err := regexes.get(`^(?:`+rest+`)`, func() string { return literalPrefix(rest) })
			if err != nil {
				return nil, fmt.Errorf("%s: paths[%d]: invalid regex %q: %w", r.label(), j, p, err)
			}
			cand.re = cr.re
			cand.prio.regex, cand.prio.regexPriority = true, r.RegexPriority
			literal = cr.literal
		} else {
			cand.plain = p
			cand.prio.length = len(p)
		}
		cands, literals = append(cands, cand), append(literals, literal)
	}
	return &prepared{cands: cands, literals: literals, hosts: hosts}, nil
}

func (c *compiled) compileHeaders(regexes *regexCache) error {
	r := c.route
	names := make([]string, 0, len(r.Headers))
	for name := range r.Headers {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic error messages
	for _, name := range names {
		hm := headerMatcher{name: textproto.CanonicalMIMEHeaderKey(name)}
		for j, v := range r.Headers[name] {
			if pattern, isRegex := strings.CutPrefix(v, "~*"); isRegex {
				cr, err := regexes.get(strings.ToLower(pattern), nil)
				if err != nil {
					return fmt.Errorf("%s: headers.%s[%d]: invalid regex %q: %w", r.label(), name, j, v, err)
				}
				hm.res = append(hm.res, cr.re)
				continue
			}
			hm.values = append(hm.values, v)
		}
		c.headers = append(c.headers, hm)
	}
	return nil
}

// parseHost reads a route host or SNI: lower case, optional ":port", and at
// most one wildcard, leading ("*.") or trailing (".*").
func parseHost(h string) (hostPattern, error) {
	h = strings.ToLower(h)
	var hp hostPattern
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i+1:], "]") {
		port, err := strconv.Atoi(h[i+1:])
		if err != nil || port < 1 || port > 65535 {
			return hp, fmt.Errorf("invalid port in host %q", h)
		}
		hp.port, h = port, h[:i]
	}
	switch {
	case h == "":
		return hp, fmt.Errorf("empty host")
	case strings.HasPrefix(h, "*.") && !strings.Contains(h[1:], "*"):
		hp.kind, hp.key = hostSuffix, h[1:]
	case strings.HasSuffix(h, ".*") && !strings.Contains(h[:len(h)-1], "*"):
		hp.kind, hp.key = hostPrefix, h[:len(h)-1]
	case strings.Contains(h, "*"):
		return hp, fmt.Errorf("host %q: a wildcard must be the first or the last label", h)
	default:
		hp.kind, hp.key = hostExact, h
	}
	return hp, nil
}

func newBucket() *bucket { return &bucket{byLiteral: map[string][]*candidate{}} }

func (b *bucket) put(literal string, c *candidate) {
	b.byLiteral[literal] = append(b.byLiteral[literal], c)
}

// seal sorts each list best first and records the key lengths to probe.
func (b *bucket) seal() {
	seen := map[int]bool{}
	for literal, list := range b.byLiteral {
		slices.SortStableFunc(list, func(x, y *candidate) int {
			switch {
			case x.prio.beats(y.prio):
				return -1
			case y.prio.beats(x.prio):
				return 1
			}
			return 0
		})
		if !seen[len(literal)] {
			seen[len(literal)] = true
			b.lengths = append(b.lengths, len(literal))
		}
	}
	slices.Sort(b.lengths)
	slices.Reverse(b.lengths)
}

// Match returns the route req belongs to, or false when none matches.
func (rt *Router) Match(req *Request) (Match, bool) {
	host, port := splitHostPort(req.Host)
	host = strings.ToLower(host)
	if req.Port != 0 {
		port = req.Port
	} else if port == 0 {
		port = 80
		if req.Scheme == "https" {
			port = 443
		}
	}
	if len(rt.exprs) > 0 {
		// Kong's http.host is the Host header without its port, not
		// lower-cased.
		rawHost, _ := splitHostPort(req.Host)
		if m, ok := rt.matchExpression(req, rawHost, port); ok {
			return m, true
		}
	}
	m := matcher{req: req, port: port, https: req.Scheme == "https"}
	if b := rt.exact[host]; b != nil {
		m.scan(b)
	}
	if len(rt.suffix) > 0 || len(rt.prefix) > 0 {
		for i := 0; i < len(host); i++ {
			if host[i] != '.' {
				continue
			}
			if i > 0 {
				if b := rt.suffix[host[i:]]; b != nil {
					m.scan(b)
				}
			}
			if b := rt.prefix[host[:i+1]]; b != nil {
				m.scan(b)
			}
		}
	}
	m.scan(rt.anyHost)
	if m.best == nil {
		return Match{}, false
	}
	return m.result(), true
}

// matcher carries one match in progress.
type matcher struct {
	req   *Request
	port  int
	https bool
	best  *candidate
}

func (m *matcher) scan(b *bucket) {
	path := m.req.Path
	for _, n := range b.lengths {
		if n > len(path) {
			continue
		}
		for _, c := range b.byLiteral[path[:n]] {
			if m.best != nil && !c.prio.beats(m.best.prio) {
				break // the rest of this sorted list ranks lower still
			}
			if m.accepts(c) {
				m.best = c
				break
			}
		}
	}
}

// accepts checks every field of c; the host was checked by its bucket except
// for the port. Cheap checks run first, regexes last.
func (m *matcher) accepts(c *candidate) bool {
	r := c.route
	if m.https && !r.allowHTTPS || !m.https && !r.allowHTTP {
		return false
	}
	if c.port != 0 && c.port != m.port {
		return false
	}
	if len(r.methods) > 0 && !slices.Contains(r.methods, m.req.Method) {
		return false
	}
	if c.re == nil && !strings.HasPrefix(m.req.Path, c.plain) {
		return false
	}
	for i := range r.headers {
		if !r.headers[i].accepts(m.req.Header[r.headers[i].name]) {
			return false
		}
	}
	if r.hasSNIs && m.https && !sniMatches(r.snis, m.req.SNI) {
		return false
	}
	return c.re == nil || c.re.MatchString(m.req.Path)
}

func (h *headerMatcher) accepts(got []string) bool {
	for _, g := range got {
		for _, v := range h.values {
			if strings.EqualFold(g, v) {
				return true
			}
		}
		if len(h.res) > 0 {
			lower := strings.ToLower(g)
			for _, re := range h.res {
				if re.MatchString(lower) {
					return true
				}
			}
		}
	}
	return false
}

func sniMatches(snis []hostPattern, sni string) bool {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	for _, p := range snis {
		switch p.kind {
		case hostExact:
			if sni == p.key {
				return true
			}
		case hostSuffix:
			if len(sni) > len(p.key) && strings.HasSuffix(sni, p.key) {
				return true
			}
		case hostPrefix:
			if strings.HasPrefix(sni, p.key) {
				return true
			}
		}
	}
	return false
}

func (m *matcher) result() Match {
	c := m.best
	res := Match{Index: c.route.index, Route: c.route.route}
	switch {
	case c.re != nil:
		loc := c.re.FindStringSubmatchIndex(m.req.Path)
		res.Captures = make([]string, len(loc)/2)
		for i := range res.Captures {
			if loc[2*i] >= 0 {
				res.Captures[i] = m.req.Path[loc[2*i]:loc[2*i+1]]
			}
		}
		res.CaptureNames = c.re.SubexpNames()
		res.Prefix = res.Captures[0]
	case c.route.hasPaths:
		res.Prefix = c.plain
	}
	return res
}

// splitHostPort splits "host:port" without allocating; port is 0 when absent
// or unparsable. Bracketed IPv6 literals keep their brackets, as in Kong.
func splitHostPort(hostport string) (string, int) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.IndexByte(hostport[i:], ']') >= 0 {
		return hostport, 0
	}
	port, err := strconv.Atoi(hostport[i+1:])
	if err != nil {
		return hostport, 0
	}
	return hostport[:i], port
}

// literalPrefix returns the literal text every match of the regex must start
// with ("" when unknown). regexp.LiteralPrefix gives up on many anchored
// patterns, so this reads the leading literals of the syntax tree itself.
func literalPrefix(pattern string) string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return ""
	}
	var b strings.Builder
	var walk func(re *syntax.Regexp) bool // false once the literal run ends
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpLiteral:
			if re.Flags&syntax.FoldCase != 0 {
				return false
			}
			b.WriteString(string(re.Rune))
			return true
		case syntax.OpBeginText, syntax.OpEmptyMatch:
			return true
		case syntax.OpCapture:
			return walk(re.Sub[0])
		case syntax.OpConcat:
			for _, sub := range re.Sub {
				if !walk(sub) {
					return false
				}
			}
			return true
		}
		return false
	}
	walk(re)
	return b.String()
}
