package proxy

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

// cors answers preflight requests and adds the CORS headers to responses.
type cors struct {
	conf struct {
		Origins           []string `json:"origins"`
		Headers           []string `json:"headers"`
		ExposedHeaders    []string `json:"exposed_headers"`
		Methods           []string `json:"methods"`
		MaxAge            *float64 `json:"max_age"`
		Credentials       bool     `json:"credentials"`
		PrivateNetwork    bool     `json:"private_network"`
		PreflightContinue bool     `json:"preflight_continue"`
	}
	// origins as Kong caches them: exact domains or anchored regexes.
	domains []corsDomain
}

type corsDomain struct {
	domain string
	regex  *regexp.Regexp
	byHost bool
}

var plainOrigin = regexp.MustCompile(`^[A-Za-z0-9.:/-]+$`)

func newCORS(cfg map[string]any) (handler, error) {
	c := &cors{}
	if err := decodeConfig(cfg, &c.conf); err != nil {
		return nil, err
	}
	for _, o := range c.conf.Origins {
		d := corsDomain{byHost: !strings.Contains(o, ":")}
		if !plainOrigin.MatchString(o) && o != "*" {
			expr := strings.TrimPrefix(o, "^")
			if !strings.HasSuffix(expr, "$") {
				expr += "$"
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, fmt.Errorf("origins: %q: %v", o, err)
			}
			d.regex = re
		} else {
			d.domain, _ = normalizeOrigin(o)
		}
		c.domains = append(c.domains, d)
	}
	return c, nil
}

// normalizeOrigin returns scheme://host[:port] without default ports, and
// the host.
func normalizeOrigin(o string) (domain, host string) {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return o, o
	}
	port := u.Port()
	if u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443" {
		port = ""
	}
	domain = u.Scheme + "://" + u.Hostname()
	if port != "" {
		domain += ":" + port
	}
	return domain, u.Hostname()
}

// allowOrigin sets Access-Control-Allow-Origin and reports whether every
// origin is allowed.
func (c *cors) allowOrigin(x *exchange, h http.Header, headerFilter bool) bool {
	origins := c.conf.Origins
	if len(origins) == 0 || len(origins) == 1 && origins[0] == "*" {
		h.Set("Access-Control-Allow-Origin", "*")
		return true
	}
	if headerFilter {
		h.Add("Vary", "Origin")
	} else {
		h.Set("Vary", "Origin")
	}
	if len(origins) == 1 && plainOrigin.MatchString(origins[0]) {
		h.Set("Access-Control-Allow-Origin", origins[0])
		return false
	}
	if reqOrigin := x.r.Header.Get("Origin"); reqOrigin != "" {
		domain, host := normalizeOrigin(reqOrigin)
		for i, d := range c.domains {
			if origins[i] == "*" {
				h.Set("Access-Control-Allow-Origin", "*")
				return true
			}
			found := false
			if d.regex != nil {
				subject := domain
				if d.byHost {
					subject = host
				}
				found = d.regex.MatchString(subject)
			} else {
				found = domain == d.domain
			}
			if found {
				h.Set("Access-Control-Allow-Origin", domain)
				return false
			}
		}
	}
	h.Del("Access-Control-Allow-Origin")
	return false
}

func (c *cors) allowCredentials(x *exchange, h http.Header, allowAll, headerFilter bool) {
	if !c.conf.Credentials {
		return
	}
	if !allowAll {
		h.Set("Access-Control-Allow-Credentials", "true")
		return
	}
	if o := x.r.Header.Get("Origin"); o != "" {
		if headerFilter {
			h.Add("Vary", "Origin")
		} else {
			h.Set("Vary", "Origin")
		}
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

func (c *cors) access(x *exchange) {
	r := x.r
	if r.Method != http.MethodOptions || r.Header.Get("Origin") == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		return
	}
	x.corsPreflight = true
	if c.conf.PreflightContinue {
		return
	}
	h := http.Header{}
	allowAll := c.allowOrigin(x, h, false)
	c.allowCredentials(x, h, allowAll, false)
	if len(c.conf.Headers) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(c.conf.Headers, ","))
	} else if acrh := r.Header.Get("Access-Control-Request-Headers"); acrh != "" {
		h.Set("Access-Control-Allow-Headers", acrh)
	}
	methods := "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
	if c.conf.Methods != nil {
		methods = strings.Join(c.conf.Methods, ",")
	}
	h.Set("Access-Control-Allow-Methods", methods)
	if c.conf.MaxAge != nil {
		h.Set("Access-Control-Max-Age", strconv.FormatFloat(*c.conf.MaxAge, 'f', -1, 64))
	}
	if c.conf.PrivateNetwork && r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	x.setExit(http.StatusOK, nil, "")
	x.exit.headers = h
}

func (c *cors) response(x *exchange, h http.Header) {
	if x.corsPreflight {
		return
	}
	allowAll := c.allowOrigin(x, h, true)
	c.allowCredentials(x, h, allowAll, true)
	if len(c.conf.ExposedHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.conf.ExposedHeaders, ","))
	}
}

// correlationGenerator makes correlation ids: one random uuid per process
// plus a counter, like a Kong worker's "uuid#counter".
type correlationGenerator struct {
	base    string
	counter atomic.Int64
}

func newCorrelationGenerator() *correlationGenerator {
	return &correlationGenerator{base: randomUUID()}
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// correlation-id gives every request an id header, upstream and
// optionally back to the client.
type correlationID struct {
	gen  *correlationGenerator
	conf struct {
		HeaderName     string `json:"header_name"`
		Generator      string `json:"generator"`
		EchoDownstream bool   `json:"echo_downstream"`
	}
}

func (c *correlationID) access(x *exchange) {
	id := x.r.Header.Get(c.conf.HeaderName)
	if id == "" {
		switch c.conf.Generator {
		case "uuid":
			id = randomUUID()
		case "tracker":
			// server address and port, worker pid, connection serial,
			// requests on the connection, time: kongsim numbers requests
			// instead of connections.
			addr, port := "127.0.0.1", "0"
			if a, ok := x.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				if h, p, err := net.SplitHostPort(a.String()); err == nil {
					addr, port = h, p
				}
			}
			id = fmt.Sprintf("%s-%s-%d-%d-%d-%.3f", addr, port, os.Getpid(), c.gen.counter.Add(1), 1,
				float64(x.now.UnixMilli())/1000)
		default:
			id = c.gen.base + "#" + strconv.FormatInt(c.gen.counter.Add(1), 10)
		}
		x.up.Set(c.conf.HeaderName, id)
	}
	x.correlationID = id
}

func (c *correlationID) response(x *exchange, h http.Header) {
	if !c.conf.EchoDownstream {
		return
	}
	id := x.correlationID
	if id == "" {
		id = x.r.Header.Get(c.conf.HeaderName)
	}
	if id != "" {
		h.Set(c.conf.HeaderName, id)
	}
}

// transformHeaders is the headers part of a transformer's config.
type transformHeaders struct {
	Headers []string `json:"headers"`
}

// splitPair splits "name:value" as Kong's transformers do.
func splitPair(s string) (string, string) {
	name, value, _ := strings.Cut(s, ":")
	return name, strings.TrimLeft(value, ":")
}

// request-transformer: headers and query string of the upstream request.
type requestTransformer struct {
	noResponse
	conf struct {
		Remove  struct{ Headers, Querystring []string } `json:"remove"`
		Rename  struct{ Headers, Querystring []string } `json:"rename"`
		Replace struct {
			Headers, Querystring []string
			URI                  *string `json:"uri"`
		} `json:"replace"`
		Add    struct{ Headers, Querystring []string } `json:"add"`
		Append struct{ Headers, Querystring []string } `json:"append"`
	}
}

func (t *requestTransformer) access(x *exchange) {
	c := &t.conf
	h := x.up
	for _, name := range c.Remove.Headers {
		h.Del(name)
	}
	for _, pair := range c.Rename.Headers {
		old, nw := splitPair(pair)
		if v, ok := h[http.CanonicalHeaderKey(old)]; ok && nw != "" {
			h.Del(old)
			h[http.CanonicalHeaderKey(nw)] = v
		}
	}
	for _, pair := range c.Replace.Headers {
		name, v := splitPair(pair)
		if strings.EqualFold(name, "host") {
			x.hostOverride = v
			continue
		}
		if h.Get(name) != "" {
			h.Set(name, v)
		}
	}
	for _, pair := range c.Add.Headers {
		name, v := splitPair(pair)
		if _, ok := h[http.CanonicalHeaderKey(name)]; !ok && !strings.EqualFold(name, "host") {
			h.Set(name, v)
		}
	}
	for _, pair := range c.Append.Headers {
		name, v := splitPair(pair)
		if !strings.EqualFold(name, "host") {
			k := http.CanonicalHeaderKey(name)
			h[k] = append(append([]string(nil), h[k]...), v)
		}
	}
	if len(c.Remove.Querystring)+len(c.Rename.Querystring)+len(c.Replace.Querystring)+len(c.Add.Querystring)+len(c.Append.Querystring) == 0 {
		return
	}
	q := x.query()
	for _, name := range c.Remove.Querystring {
		q.Del(name)
	}
	for _, pair := range c.Rename.Querystring {
		old, nw := splitPair(pair)
		if v, ok := q[old]; ok {
			delete(q, old)
			q[nw] = v
		}
	}
	for _, pair := range c.Replace.Querystring {
		name, v := splitPair(pair)
		if q.Has(name) {
			q.Set(name, v)
		}
	}
	for _, pair := range c.Add.Querystring {
		name, v := splitPair(pair)
		if !q.Has(name) {
			q.Set(name, v)
		}
	}
	for _, pair := range c.Append.Querystring {
		name, v := splitPair(pair)
		q.Add(name, v)
	}
	x.rawQuery = q.Encode()
}

// response-transformer: headers of the response.
type responseTransformer struct {
	noAccess
	conf struct {
		Remove  transformHeaders `json:"remove"`
		Rename  transformHeaders `json:"rename"`
		Replace transformHeaders `json:"replace"`
		Add     transformHeaders `json:"add"`
		Append  transformHeaders `json:"append"`
	}
}

func (t *responseTransformer) response(x *exchange, h http.Header) {
	c := &t.conf
	for _, name := range c.Remove.Headers {
		h.Del(name)
	}
	for _, pair := range c.Rename.Headers {
		old, nw := splitPair(pair)
		if v, ok := h[http.CanonicalHeaderKey(old)]; ok && nw != "" {
			h.Del(old)
			h[http.CanonicalHeaderKey(nw)] = v
		}
	}
	for _, pair := range c.Replace.Headers {
		name, v := splitPair(pair)
		if _, ok := h[http.CanonicalHeaderKey(name)]; ok && v != "" {
			h.Set(name, v)
		}
	}
	for _, pair := range c.Add.Headers {
		name, v := splitPair(pair)
		if _, ok := h[http.CanonicalHeaderKey(name)]; !ok && v != "" {
			h.Set(name, v)
		}
	}
	for _, pair := range c.Append.Headers {
		name, v := splitPair(pair)
		h.Add(name, v)
	}
}

// prometheus runs in the log phase: the proxy reports the request to its
// metrics sink (Options.Observe) when this plugin applies.
type prometheusPlugin struct {
	noAccess
	noResponse
	conf MetricsConfig
}

// MetricsConfig is what a prometheus plugin instance records.
type MetricsConfig struct {
	PerConsumer           bool `json:"per_consumer"`
	StatusCodeMetrics     bool `json:"status_code_metrics"`
	LatencyMetrics        bool `json:"latency_metrics"`
	BandwidthMetrics      bool `json:"bandwidth_metrics"`
	UpstreamHealthMetrics bool `json:"upstream_health_metrics"`
}
