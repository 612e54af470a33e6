// Package proxy is kongsim's data plane: a reverse proxy that routes each
// request with the compiled Kong router (package router) and forwards it to
// the route's service the way Kong 3.x does — path joining with strip_path
// and path_handling, preserve_host, weighted round-robin over an upstream's
// targets, retries on connection failures, Kong's X-Forwarded-* and Via
// headers, and Kong's error bodies (404 no route, 503 no peer or unresolvable
// host, 502 after failed retries, 504 on timeouts).
//
// Plugins (Config.Plugins) run between routing and forwarding, by Kong
// 3.9's priorities, each plugin's instance picked by Kong's precedence of
// scopes (route, service and consumer combinations before global):
// authentication (key-auth, basic-auth, jwt, hmac-auth against
// Config.Credentials), acl, cors, correlation-id, ip-restriction,
// rate-limiting (local counters), request-termination, request- and
// response-transformer (headers and query), and prometheus, which reports
// each request to Options.Observe. With no plugin configured a request
// pays nothing for them. TLSConfig serves Config.Certificates by SNI.
//
// Update compiles a new configuration and swaps it in atomically: a request
// routes and balances with the configuration it started with, so in-flight
// requests keep the old one. Stage checks a configuration as Update does
// but compiles it on the first request that routes with it. Connections to upstreams are pooled across
// requests and configurations.
//
// Not modelled: upstream algorithms other than round-robin (all balance by
// weighted round-robin), health checks, write_timeout, WebSocket upgrades,
// HTTP/2 to upstreams, trusted_ips (client X-Forwarded-* is never trusted)
// and serviceless routes (answered 503).
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"konductor.dev/sim/kong/router"
)

// Service is where a route's traffic goes.
type Service struct {
	ID, Name, Protocol, Host, Path            string
	Port, Retries                             int
	ConnectTimeout, ReadTimeout, WriteTimeout time.Duration
}

// Route is a Kong route: what it matches and how it forwards.
type Route struct {
	ID, Name, ServiceID                    string
	Protocols, Methods, Hosts, Paths, SNIs []string
	Headers                                map[string][]string
	RegexPriority                          int
	StripPath, PreserveHost                bool
	PathHandling                           string
	HTTPSRedirectStatusCode                int
	// Expression and Priority: an expression route (router_flavor
	// expressions); see package router.
	Expression string
	Priority   uint64
}

// Target is one backend of an Upstream: "host:port"; weight 0 = never picked.
type Target struct {
	Target string
	Weight int
}

// Upstream is a load-balanced set of targets; a service whose host equals
// the upstream's name is balanced over its targets.
type Upstream struct {
	ID, Name, Algorithm string
	Targets             []Target
}

// Config is everything the data plane needs. Routes are expected in creation
// order: equally ranked routes match in that order.
//
// Services and routes are held by pointer: a configuration is thousands
// of them, and a caller that keeps them between configurations (kongsim
// converts an entity once) hands the same ones again instead of copying
// them for every load. Stage keeps them: they must not change afterwards.
type Config struct {
	Services  []*Service
	Routes    []*Route
	Upstreams []Upstream
	// Plugins run on the requests of their scope; Consumers and
	// Credentials are what the authentication plugins check against.
	Plugins     []Plugin
	Consumers   []Consumer
	Credentials Credentials
	// Certificates serve the TLS listener (see TLSConfig).
	Certificates []Certificate
}

// Options configures a Proxy.
type Options struct {
	// Version is the Kong version announced in Via and Server headers.
	Version string
	// Transport sends requests upstream; nil uses a pooled http.Transport
	// that honours each service's connect timeout.
	Transport http.RoundTripper
	// Now is the plugins' clock (rate-limiting windows, JWT expiry);
	// default time.Now.
	Now func() time.Time
	// Observe, if set, is told about every request that a prometheus
	// plugin instance applies to, once its response is written.
	Observe func(*Observation)
}

// Observation is what the prometheus plugin records of one request.
type Observation struct {
	// Config is the applying prometheus instance's configuration.
	Config MetricsConfig
	// Service is the service's name, else its host; Route the route's
	// name, else its id; Consumer the consumer's username.
	Service, Route, Consumer string
	Status                   int
	RequestBytes             int64
	ResponseBytes            int64
	// Latency is the whole request; Upstream the upstream's share (zero
	// when Kong answered itself); Kong the rest.
	Latency, Upstream, Kong time.Duration
	Proxied                 bool // the upstream answered
}

// DefaultVersion is announced when Options.Version is empty.
const DefaultVersion = "3.9.1"

// defaultTimeout applies to a service timeout left at zero (Kong's 60000 ms).
const defaultTimeout = 60 * time.Second

// Proxy is an http.Handler forwarding requests as Kong's proxy listener does.
type Proxy struct {
	version       string
	via           string
	server        string
	transport     http.RoundTripper
	ownsTransport bool
	state         atomic.Pointer[state]
	// compiler reuses the regexes of the previous configuration.
	compiler *router.Compiler
	// build serializes the building of staged configurations; built is
	// the last configuration built, whose balancers the next one keeps.
	build sync.Mutex
	built *state
	// checked holds, by id, routes of the staged configurations that
	// passed the router's checks: an equal route is not checked again.
	// names and services are check's sets, kept for the next check.
	checkMu  sync.Mutex
	checked  map[string]*Route
	names    map[string]bool
	services map[string]bool
	// checkedUpstreams is the last upstreams list that passed: the same
	// list (a caller that kept it) is not checked again. checkedServices
	// and checkedRoutes are the last services and routes that passed.
	checkedUpstreams []Upstream
	checkedServices  []*Service
	checkedRoutes    []*Route
	now              func() time.Time
	observe          func(*Observation)
	// Plugin state that outlives configurations.
	counters    *rateCounters
	correlation *correlationGenerator
	defaultCertState
	requests atomic.Int64
}

// Requests is the number of requests the proxy received.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// state is one configuration. Its routing part (router, routes,
// balancers) is compiled when it is published by Update, or on first use
// (ready) when it was staged; nothing of it changes once compiled.
type state struct {
	plugins *pluginSet // nil when no plugin is configured
	certs   *certIndex

	once      sync.Once
	staged    *Config // until compiled
	p         *Proxy
	router    *router.Router
	routes    []routeEntry // indexed like the router's routes
	balancers map[string]*balancer
}

func (st *state) balancer(upstream string) *balancer {
	if st == nil {
		return nil
	}
	return st.balancers[upstream]
}

// ready returns st with its routing part compiled.
func (st *state) ready() *state {
	st.once.Do(func() {
		if st.staged == nil {
			return
		}
		p := st.p
		p.build.Lock()
		defer p.build.Unlock()
		built, err := compile(*st.staged, p.compiler, p.built)
		if err != nil {
			// Stage checked everything compile checks.
			panic(fmt.Sprintf("proxy: a staged configuration failed to compile: %v", err))
		}
		st.router, st.routes, st.balancers = built.router, built.routes, built.balancers
		st.staged, st.p = nil, nil
		p.built = st
	})
	return st
}

type routeEntry struct {
	route     Route
	service   *serviceEntry // nil: the route has no service
	httpsOnly bool          // http requests are redirected
}

type serviceEntry struct {
	svc      Service
	scheme   string
	direct   peer      // when balancer is nil
	balancer *balancer // when the host names an upstream
}

// New returns a Proxy with an empty configuration: every request gets 404
// until Update loads routes.
func New(o Options) *Proxy {
	p := &Proxy{version: o.Version, transport: o.Transport, compiler: new(router.Compiler),
		now: o.Now, observe: o.Observe, counters: newRateCounters(), correlation: newCorrelationGenerator()}
	if p.now == nil {
		p.now = time.Now
	}
	if p.version == "" {
		p.version = DefaultVersion
	}
	p.via = "1.1 kong/" + p.version
	p.server = "kong/" + p.version
	if p.transport == nil {
		p.transport, p.ownsTransport = newTransport(), true
	}
	empty, _ := router.Compile(nil)
	st := &state{router: empty}
	st.once.Do(func() {})
	p.state.Store(st)
	p.built = st
	return p
}

// Close releases the idle upstream connections of the default transport.
func (p *Proxy) Close() {
	if c, ok := p.transport.(interface{ CloseIdleConnections() }); ok && p.ownsTransport {
		c.CloseIdleConnections()
	}
}

// Update compiles c and swaps it in atomically. On error, which names the
// offending route, service or upstream, the previous configuration stays.
func (p *Proxy) Update(c Config) error {
	p.build.Lock()
	st, err := compile(c, p.compiler, p.built)
	p.build.Unlock()
	if err != nil {
		return err
	}
	if st.plugins, err = compilePlugins(c, p); err != nil {
		return err
	}
	st.certs = compileCertificates(c.Certificates)
	st.once.Do(func() {})
	p.build.Lock()
	p.built = st
	p.build.Unlock()
	p.state.Store(st)
	p.forgetChecks()
	return nil
}

// Stage is Update that leaves compiling the routes, services and
// upstreams to the first request routed with c. It checks c as Update
// does, and fails with the same error, so that a configuration it accepts
// compiles; a configuration replaced before any request needed it (a
// burst of updates, a node nobody sends traffic to) costs its check only.
// Kong, too, answers a configuration load before its router is rebuilt.
// A route equal to one an earlier Stage checked (by id) is not checked
// by the router again.
func (p *Proxy) Stage(c Config) error {
	if err := p.check(c); err != nil {
		return err
	}
	plugins, err := compilePlugins(c, p)
	if err != nil {
		return err
	}
	st := &state{plugins: plugins, certs: compileCertificates(c.Certificates), staged: &c, p: p}
	p.state.Store(st)
	return nil
}

// forgetChecks drops the routes remembered by Stage.
func (p *Proxy) forgetChecks() {
	p.checkMu.Lock()
	clear(p.checked)
	p.checkedUpstreams, p.checkedServices, p.checkedRoutes = nil, nil, nil
	p.checkMu.Unlock()
}

// check reports the first error compile would report for c.
func (p *Proxy) check(c Config) error {
	p.checkMu.Lock()
	defer p.checkMu.Unlock()
	// The sets are kept from check to check: a configuration is
	// thousands of entities.
	if p.names == nil {
		p.names, p.services, p.checked = map[string]bool{}, map[string]bool{}, map[string]*Route{}
	}
	if !sameList(c.Upstreams, p.checkedUpstreams) {
		clear(p.names)
		for _, u := range c.Upstreams {
			if err := checkUpstream(u, p.names); err != nil {
				return err
			}
		}
		p.checkedUpstreams = c.Upstreams
	}
	// Services and routes handed again (the same pointers) passed: with
	// the same services, a route at the same place is not checked again.
	// A caller that keeps them (kongsim) hands thousands again at every
	// load and a few new ones.
	servicesSame := slices.Equal(c.Services, p.checkedServices)
	if !servicesSame {
		p.checkedServices = nil
		clear(p.services)
		for _, s := range c.Services {
			if err := checkService(s); err != nil {
				return err
			}
			p.services[s.ID] = true
		}
		p.checkedServices = c.Services
	}
	last := p.checkedRoutes
	p.checkedRoutes = nil
	if len(p.checked) > 2*len(c.Routes)+64 {
		clear(p.checked) // mostly routes gone since
		last = nil
	}
	checked := func(i int, r *Route) bool { return servicesSame && i < len(last) && last[i] == r }
	for i, r := range c.Routes {
		if checked(i, r) {
			continue
		}
		if err := checkRoute(r, func(id string) bool { return p.services[id] }); err != nil {
			return err
		}
	}
	for i, r := range c.Routes {
		if checked(i, r) {
			continue // and p.checked holds it
		}
		// A route handed again (the same pointer) was checked.
		if old := p.checked[r.ID]; old == nil || old != r && !sameMatchFields(old, r) {
			if err := p.compiler.Check(routerRoute(r)); err != nil {
				return err
			}
		}
		// Always the newest route, so that the map keeps no older
		// configuration alive.
		p.checked[r.ID] = r
	}
	p.checkedRoutes = c.Routes
	return nil
}

// sameList reports whether a and b are the same list: the same elements
// of the same array, not merely equal ones.
func sameList[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// sameMatchFields reports whether two routes agree on everything the
// router checks.
func sameMatchFields(a, b *Route) bool {
	return slices.Equal(a.Protocols, b.Protocols) && slices.Equal(a.Hosts, b.Hosts) &&
		slices.Equal(a.Paths, b.Paths) && slices.Equal(a.SNIs, b.SNIs) &&
		maps.EqualFunc(a.Headers, b.Headers, slices.Equal)
}

func checkUpstream(u Upstream, names map[string]bool) error {
	if u.Name == "" {
		return fmt.Errorf("upstream %q: name is required", u.ID)
	}
	if names[u.Name] {
		return fmt.Errorf("upstream %q: duplicate name", u.Name)
	}
	names[u.Name] = true
	for i, t := range u.Targets {
		if _, _, err := parseTarget(t.Target); err != nil {
			return fmt.Errorf("upstream %q: targets[%d]: %w", u.Name, i, err)
		}
		if t.Weight < 0 || t.Weight > 65535 {
			return fmt.Errorf("upstream %q: targets[%d]: weight %d outside 0-65535", u.Name, i, t.Weight)
		}
	}
	return nil
}

func checkService(s *Service) error {
	if s.ID == "" {
		return fmt.Errorf("%s: id is required", entityLabel("service", s.Name, s.ID))
	}
	if s.Host == "" {
		return fmt.Errorf("%s: host is required", entityLabel("service", s.Name, s.ID))
	}
	if s.Retries < 0 {
		return fmt.Errorf("%s: retries must not be negative", entityLabel("service", s.Name, s.ID))
	}
	return nil
}

// checkRoute checks what the proxy itself reads of r; hasService tells
// whether a service id is configured.
func checkRoute(r *Route, hasService func(id string) bool) error {
	if r.ServiceID != "" && !hasService(r.ServiceID) {
		return fmt.Errorf("%s: service %q not found", entityLabel("route", r.Name, r.ID), r.ServiceID)
	}
	switch r.PathHandling {
	case "", "v0", "v1":
	default:
		return fmt.Errorf("%s: path_handling: expected one of v0, v1, got %q", entityLabel("route", r.Name, r.ID), r.PathHandling)
	}
	switch r.HTTPSRedirectStatusCode {
	case 0, 426, 301, 302, 307, 308:
	default:
		return fmt.Errorf("%s: https_redirect_status_code: expected one of 426, 301, 302, 307, 308, got %d", entityLabel("route", r.Name, r.ID), r.HTTPSRedirectStatusCode)
	}
	return nil
}

// routerRoute is what the router is given of r.
func routerRoute(r *Route) router.Route {
	return router.Route{
		ID: r.ID, Name: r.Name, Protocols: r.Protocols, Methods: r.Methods, Hosts: r.Hosts,
		Paths: r.Paths, SNIs: r.SNIs, Headers: r.Headers, RegexPriority: r.RegexPriority,
		Expression: r.Expression, Priority: r.Priority,
	}
}

// compile builds a state from c. An upstream whose targets did not change
// keeps its balancer from prev, so that frequent updates do not restart the
// round-robin at the first target every time.
func compile(c Config, compiler *router.Compiler, prev *state) (*state, error) {
	names := make(map[string]bool, len(c.Upstreams))
	balancers := make(map[string]*balancer, len(c.Upstreams))
	for _, u := range c.Upstreams {
		if err := checkUpstream(u, names); err != nil {
			return nil, err
		}
		b, err := newBalancer(u)
		if err != nil {
			return nil, err
		}
		if old := prev.balancer(u.Name); old != nil && old.signature == b.signature {
			b = old
		}
		balancers[u.Name] = b
	}

	services := make(map[string]*serviceEntry, len(c.Services))
	for _, s := range c.Services {
		if err := checkService(s); err != nil {
			return nil, err
		}
		se := &serviceEntry{svc: *s, scheme: "http"}
		switch s.Protocol {
		case "https", "grpcs", "tls", "wss":
			se.scheme = "https"
		}
		if se.svc.Port == 0 {
			se.svc.Port = 80
			if se.scheme == "https" {
				se.svc.Port = 443
			}
		}
		for _, d := range []*time.Duration{&se.svc.ConnectTimeout, &se.svc.ReadTimeout, &se.svc.WriteTimeout} {
			if *d <= 0 {
				*d = defaultTimeout
			}
		}
		if se.svc.Path == "" {
			se.svc.Path = "/"
		}
		if b, ok := balancers[s.Host]; ok {
			se.balancer = b
		} else {
			se.direct = newPeer(s.Host, se.svc.Port)
		}
		services[s.ID] = se
	}

	rs := make([]router.Route, len(c.Routes))
	entries := make([]routeEntry, len(c.Routes))
	for i, r := range c.Routes {
		if err := checkRoute(r, func(id string) bool { return services[id] != nil }); err != nil {
			return nil, err
		}
		e := routeEntry{route: *r}
		if r.ServiceID != "" {
			e.service = services[r.ServiceID]
		}
		hasHTTP, hasHTTPS := len(r.Protocols) == 0, len(r.Protocols) == 0
		for _, proto := range r.Protocols {
			hasHTTP = hasHTTP || proto == "http"
			hasHTTPS = hasHTTPS || proto == "https"
		}
		e.httpsOnly = hasHTTPS && !hasHTTP
		entries[i] = e
		rs[i] = routerRoute(r)
	}
	rt, err := compiler.Compile(rs)
	if err != nil {
		return nil, err
	}
	return &state{router: rt, routes: entries, balancers: balancers}, nil
}

func entityLabel(kind, name, id string) string {
	if name != "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s %q", kind, id)
}

// Kong's messages for the responses it generates itself.
const (
	msgNoRoute      = "no Route matched with those values"
	msgNoService    = "no Service found with those values"
	msgNoPeer       = "failure to get a peer from the ring-balancer"
	msgNameRes      = "name resolution failed"
	msgBadGateway   = "An invalid response was received from the upstream server"
	msgTimeout      = "The upstream server is timing out"
	msgUseHTTPS     = "Please use HTTPS protocol"
	msgBodyTooLarge = "Request body too large"
)

// maxBufferedBody bounds the request body kept in memory so that a retry can
// send it again; like Kong's request buffering, the body is read before the
// first attempt.
const maxBufferedBody = 16 << 20

// ServeHTTP routes r and forwards it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p.requests.Add(1)
	st := p.state.Load().ready()
	requestID := newRequestID()

	scheme, sni := "http", ""
	if r.TLS != nil {
		scheme, sni = "https", r.TLS.ServerName
	}
	localPort := localPortOf(r, scheme)
	rawPath := r.URL.EscapedPath()
	reqPath := normalizePath(rawPath)
	rreq := router.Request{
		Scheme: scheme, Method: r.Method, Host: r.Host, Port: localPort,
		Path: reqPath, SNI: sni, Header: r.Header,
	}
	if st.router.HasExpressions() {
		rreq.RawQuery, rreq.RemoteAddr = r.URL.RawQuery, r.RemoteAddr
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			rreq.LocalAddr = a.String()
		}
	}
	m, ok := st.router.Match(&rreq)
	if !ok {
		p.fail(w, nil, start, requestID, http.StatusNotFound, msgNoRoute)
		return
	}
	e := &st.routes[m.Index]
	if e.httpsOnly && scheme == "http" {
		p.redirectToHTTPS(w, r, e, start, requestID)
		return
	}
	var x *exchange
	var header http.Header
	rawQuery := r.URL.RawQuery
	if st.plugins != nil {
		x = &exchange{
			ps: st.plugins, r: r, scheme: scheme, clientIP: clientIPOf(r), routeID: e.route.ID,
			serviceID: e.route.ServiceID, requestID: requestID, now: p.now(), rawQuery: rawQuery,
			up: p.forwardHeaders(r, scheme, localPort, rawPath, forwardedPrefix(e, m.Prefix), requestID),
		}
		defer p.record(x, e, start)
		x.runAccess()
		if x.exit != nil {
			p.writeExit(w, x, start)
			return
		}
		header, rawQuery = x.up, x.rawQuery
	}
	if e.service == nil {
		p.fail(w, x, start, requestID, http.StatusServiceUnavailable, msgNoService)
		return
	}
	svc := e.service

	var body []byte
	streamBody := r.Body
	if x != nil && x.bodyRead {
		// A plugin read (and may have changed) the body.
		if x.bodyTooLarge {
			p.fail(w, x, start, requestID, http.StatusRequestEntityTooLarge, msgBodyTooLarge)
			return
		}
		body, streamBody = x.body, nil
		if body == nil {
			body = []byte{}
		}
	} else if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if svc.svc.Retries > 0 {
			// Read the body up front so that every attempt can send it.
			var err error
			body, err = io.ReadAll(io.LimitReader(r.Body, maxBufferedBody+1))
			if err != nil {
				return // the client went away
			}
			if len(body) > maxBufferedBody {
				p.fail(w, x, start, requestID, http.StatusRequestEntityTooLarge, msgBodyTooLarge)
				return
			}
		}
	} else {
		streamBody = nil
	}

	if header == nil {
		header = p.forwardHeaders(r, scheme, localPort, rawPath, forwardedPrefix(e, m.Prefix), requestID)
	}
	out := &outbound{
		method:        r.Method,
		path:          upstreamPath(e.route.PathHandling, e.route.StripPath, svc.svc.Path, reqPath, m.Prefix),
		rawQuery:      rawQuery,
		header:        header,
		contentLength: r.ContentLength,
	}
	if body != nil {
		out.contentLength = int64(len(body))
	}
	if e.route.PreserveHost {
		out.host = r.Host
	}
	if x != nil && x.hostOverride != "" {
		out.host = x.hostOverride
	}

	proxyLatency := time.Since(start)
	up, status, msg := p.send(r, svc, out, body, streamBody)
	switch {
	case status < 0:
		return // the client went away; nobody reads an answer
	case status > 0:
		p.fail(w, x, start, requestID, status, msg)
		return
	}
	defer up.cancel(nil)
	defer up.timer.Stop()
	upstreamLatency := time.Since(start) - proxyLatency

	resp := up.resp
	h := w.Header()
	for k, vv := range resp.Header {
		if !isHopByHop(k) {
			h[k] = vv
		}
	}
	for _, k := range connectionTokens(resp.Header) {
		h.Del(k)
	}
	via := p.via
	if prior := resp.Header.Get("Via"); prior != "" {
		via = prior + ", " + p.via
	}
	vals := [...]string{via, strconv.FormatInt(upstreamLatency.Milliseconds(), 10), strconv.FormatInt(proxyLatency.Milliseconds(), 10), requestID, p.server}
	h["Via"] = vals[0:1:1]
	h["X-Kong-Upstream-Latency"] = vals[1:2:2]
	h["X-Kong-Proxy-Latency"] = vals[2:3:3]
	h["X-Kong-Request-Id"] = vals[3:4:4]
	if _, ok := h["Server"]; !ok {
		// Kong names itself when the upstream does not.
		h["Server"] = vals[4:5:5]
	}
	if x != nil {
		x.runResponse(h)
		x.status, x.proxied, x.upstreamLatency = resp.StatusCode, true, upstreamLatency
		if x.metrics != nil {
			x.headerBytes = headerSize(resp.StatusCode, h)
		}
	}
	w.WriteHeader(resp.StatusCode)
	n, err := copyBody(w, resp, up.timer, svc.svc.ReadTimeout)
	resp.Body.Close()
	if x != nil {
		x.responseBytes = x.headerBytes + n
	}
	if err != nil {
		// The status line may be gone already; break the connection so that
		// the client sees a truncated response rather than a short one.
		panic(http.ErrAbortHandler)
	}
}

// upstreamCall is a round trip that got a response; cancel and timer stay
// live while its body is read.
type upstreamCall struct {
	resp   *http.Response
	cancel context.CancelCauseFunc
	timer  *time.Timer // cancels with errReadTimeout when the upstream stalls
}

// send tries the service's targets until one answers, retrying connection
// failures up to the service's retries. On failure it returns Kong's status
// and message, or a negative status when the client went away.
func (p *Proxy) send(r *http.Request, svc *serviceEntry, out *outbound, body []byte, streamBody io.ReadCloser) (*upstreamCall, int, string) {
	for attempt := 0; ; attempt++ {
		target := &svc.direct
		if svc.balancer != nil {
			var ok bool
			if target, ok = svc.balancer.next(); !ok {
				return nil, http.StatusServiceUnavailable, msgNoPeer
			}
		}
		var reqBody io.ReadCloser
		switch {
		case body != nil:
			reqBody = io.NopCloser(bytes.NewReader(body))
		case streamBody != nil:
			reqBody = streamBody
		}
		ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), connectTimeoutKey{}, svc.svc.ConnectTimeout))
		timer := time.AfterFunc(svc.svc.ReadTimeout, func() { cancel(errReadTimeout) })
		resp, err := p.transport.RoundTrip(out.request(ctx, svc.scheme, target, reqBody))
		if err == nil {
			return &upstreamCall{resp: resp, cancel: cancel, timer: timer}, 0, ""
		}
		timer.Stop()
		cancel(nil)
		if r.Context().Err() != nil {
			return nil, -1, ""
		}
		status, msg, retryable := classify(err, context.Cause(ctx))
		// A streamed body may be partly consumed; only a buffered one is resent.
		if !retryable || attempt >= svc.svc.Retries || streamBody != nil && body == nil {
			return nil, status, msg
		}
	}
}

// outbound is the part of the upstream request shared by every attempt.
type outbound struct {
	method   string
	path     string
	rawQuery string
	header   http.Header
	host     string // preserved client Host, or "" for the peer's
	// contentLength of the body sent: the buffered length, else the client's.
	contentLength int64
}

func (o *outbound) request(ctx context.Context, scheme string, target *peer, body io.ReadCloser) *http.Request {
	// Path and RawPath rather than Opaque, so that in-memory transports
	// handing the request to a handler show it a usual URL.
	u := &url.URL{Scheme: scheme, Host: target.addr, Path: o.path, RawPath: o.path, RawQuery: o.rawQuery}
	if decoded, err := url.PathUnescape(o.path); err == nil {
		u.Path = decoded
	}
	host := o.host
	if host == "" {
		host = target.hostHeader(scheme)
	}
	req := (&http.Request{
		Method:        o.method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        o.header,
		Host:          host,
		ContentLength: o.contentLength,
	}).WithContext(ctx)
	if body != nil {
		req.Body = body
	} else {
		req.ContentLength = 0
	}
	return req
}

// classify maps a failed round trip to Kong's answer and whether another
// target may be tried.
func classify(err, cause error) (status int, msg string, retryable bool) {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(cause, errReadTimeout):
		return http.StatusGatewayTimeout, msgTimeout, false
	case errors.As(err, &dnsErr):
		return http.StatusServiceUnavailable, msgNameRes, false
	case errors.As(err, &opErr) && opErr.Op == "dial":
		if opErr.Timeout() {
			return http.StatusGatewayTimeout, msgTimeout, true
		}
		return http.StatusBadGateway, msgBadGateway, true
	}
	return http.StatusBadGateway, msgBadGateway, false
}

var errReadTimeout = errors.New("upstream read timeout")

// copyBufs recycles response copy buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams the upstream body to the client. The timer enforces the
// service's read timeout between two reads, as Kong's read_timeout does; a
// body of unknown length is flushed read by read so that streams stream.
func copyBody(w http.ResponseWriter, resp *http.Response, timer *time.Timer, readTimeout time.Duration) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	flusher, _ := w.(http.Flusher)
	flush := resp.ContentLength < 0 && flusher != nil
	var written int64
	for {
		timer.Reset(readTimeout)
		n, rerr := resp.Body.Read(buf)
		timer.Stop() // a slow client is not a slow upstream
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return written, nil // the client went away; nothing left to tell it
			}
			written += int64(n)
			if flush {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// hopByHop lists the headers that belong to one connection (RFC 9110 7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func isHopByHop(k string) bool { return hopByHop[k] }

func connectionTokens(h http.Header) []string {
	var out []string
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				out = append(out, http.CanonicalHeaderKey(tok))
			}
		}
	}
	return out
}

// forwardHeaders builds the upstream request headers: the client's minus
// hop-by-hop ones, plus what Kong adds. Like Kong with no trusted_ips, it
// trusts no client-sent X-Forwarded-* other than X-Forwarded-For, which it
// extends.
func (p *Proxy) forwardHeaders(r *http.Request, scheme string, localPort int, path, prefix, requestID string) http.Header {
	h := make(http.Header, len(r.Header)+10)
	for k, vv := range r.Header {
		if !isHopByHop(k) {
			h[k] = vv
		}
	}
	for _, k := range connectionTokens(r.Header) {
		delete(h, k)
	}
	if te := r.Header["Te"]; len(te) > 0 && strings.EqualFold(strings.TrimSpace(te[0]), "trailers") {
		h["Te"] = te // gRPC needs it, and it is safe to pass
	}
	clientIP := r.RemoteAddr
	if host, _, err := net.SplitHostPort(clientIP); err == nil {
		clientIP = host
	}
	// One backing array for the added values saves an allocation each.
	vals := make([]string, 10)
	add := func(i int, k, v string) {
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
	xff := clientIP
	if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + clientIP
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	add(0, "X-Forwarded-For", xff)
	add(1, "X-Real-Ip", clientIP)
	add(2, "X-Forwarded-Proto", scheme)
	add(3, "X-Forwarded-Host", host)
	add(4, "X-Forwarded-Port", strconv.Itoa(localPort))
	add(5, "X-Forwarded-Path", path)
	add(6, "X-Kong-Request-Id", requestID)
	if prefix != "" {
		add(7, "X-Forwarded-Prefix", prefix)
	} else {
		delete(h, "X-Forwarded-Prefix")
	}
	if _, ok := h["User-Agent"]; !ok {
		add(8, "User-Agent", "") // keeps net/http from adding its own
	}
	// Kong announces itself upstream with the client's protocol version.
	via := p.via
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 {
		via = strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor) + " " + p.server
		if r.ProtoMajor >= 2 {
			via = strconv.Itoa(r.ProtoMajor) + " " + p.server
		}
	}
	if prior := r.Header["Via"]; len(prior) > 0 {
		via = strings.Join(prior, ", ") + ", " + via
	}
	add(9, "Via", via)
	return h
}

// forwardedPrefix is the path part strip_path removed, which Kong passes on
// in X-Forwarded-Prefix; "" when nothing was stripped.
func forwardedPrefix(e *routeEntry, matched string) string {
	if !e.route.StripPath || matched == "/" {
		return ""
	}
	return matched
}

// localPortOf returns the port the client connected to.
func localPortOf(r *http.Request, scheme string) int {
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		return addr.Port
	}
	if i := strings.LastIndexByte(r.Host, ':'); i >= 0 {
		if port, err := strconv.Atoi(r.Host[i+1:]); err == nil {
			return port
		}
	}
	if scheme == "https" {
		return 443
	}
	return 80
}

func (p *Proxy) redirectToHTTPS(w http.ResponseWriter, r *http.Request, e *routeEntry, start time.Time, requestID string) {
	code := e.route.HTTPSRedirectStatusCode
	if code == 0 || code == http.StatusUpgradeRequired {
		h := w.Header()
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "TLS/1.2, HTTP/1.1")
		p.fail(w, nil, start, requestID, http.StatusUpgradeRequired, msgUseHTTPS)
		return
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	h := w.Header()
	h.Set("Location", "https://"+host+r.URL.RequestURI())
	p.kongHeaders(h, start, requestID)
	w.WriteHeader(code)
}

// fail writes one of Kong's own error responses; x, when not nil, is the
// request's plugins, whose response hooks see it.
func (p *Proxy) fail(w http.ResponseWriter, x *exchange, start time.Time, requestID string, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	p.kongHeaders(h, start, requestID)
	if x != nil {
		x.runResponse(h)
		x.status = status
	}
	w.WriteHeader(status)
	n, _ := fmt.Fprintf(w, "{\n  \"message\":%q,\n  \"request_id\":%q\n}", msg, requestID)
	if x != nil {
		x.responseBytes = headerSize(status, h) + int64(n)
	}
}

// requestSize approximates nginx's $request_length: request line,
// headers and body.
func requestSize(r *http.Request) int64 {
	n := int64(len(r.Method) + len(r.URL.RequestURI()) + len(r.Proto) + 4)
	n += int64(len("Host: ") + len(r.Host) + 2)
	for k, vv := range r.Header {
		for _, v := range vv {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n + 2 + max(r.ContentLength, 0)
}

// headerSize approximates the bytes of a response's status line and
// headers, which nginx counts in $bytes_sent.
func headerSize(status int, h http.Header) int64 {
	n := int64(len("HTTP/1.1 000 ") + len(http.StatusText(status)) + 2)
	for k, vv := range h {
		for _, v := range vv {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n + 2
}

// writeExit sends the response a plugin produced.
func (p *Proxy) writeExit(w http.ResponseWriter, x *exchange, start time.Time) {
	e := x.exit
	h := w.Header()
	for k, v := range e.headers {
		h[k] = v
	}
	if e.contentType != "" {
		h.Set("Content-Type", e.contentType)
	}
	p.kongHeaders(h, start, x.requestID)
	x.runResponse(h)
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	x.status = e.status
	w.WriteHeader(e.status)
	n, _ := w.Write(e.body)
	x.responseBytes = headerSize(e.status, h) + int64(n)
}

// record reports a finished request to the metrics sink when a prometheus
// plugin applies to it.
func (p *Proxy) record(x *exchange, e *routeEntry, start time.Time) {
	if p.observe == nil || x.metrics == nil {
		return
	}
	o := &Observation{
		Config: *x.metrics, Route: e.route.Name, Status: x.status, ResponseBytes: x.responseBytes,
		RequestBytes: requestSize(x.r), Latency: time.Since(start), Proxied: x.proxied,
	}
	if o.Route == "" {
		o.Route = e.route.ID
	}
	if e.service != nil {
		o.Service = e.service.svc.Name
		if o.Service == "" {
			o.Service = e.service.svc.Host
		}
	}
	if x.consumer != nil {
		o.Consumer = x.consumer.Username
	}
	if x.proxied {
		o.Upstream = x.upstreamLatency
	}
	o.Kong = o.Latency - o.Upstream
	p.observe(o)
}

func (p *Proxy) kongHeaders(h http.Header, start time.Time, requestID string) {
	h.Set("Server", p.server)
	h.Set("X-Kong-Response-Latency", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	h.Set("X-Kong-Request-Id", requestID)
}
