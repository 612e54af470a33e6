package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Plugin is one configured plugin instance. Config is the plugin's config
// record as Kong stores it, defaults filled (the Admin API validated it).
type Plugin struct {
	ID, Name                       string
	RouteID, ServiceID, ConsumerID string
	Protocols                      []string
	Config                         map[string]any
}

// Consumer is who an authentication plugin identified.
type Consumer struct {
	ID, Username, CustomID string
}

// Credentials are the consumers' secrets, by plugin.
type Credentials struct {
	KeyAuth   []KeyAuthCredential
	BasicAuth []BasicAuthCredential
	ACLs      []ACLGroup
	JWT       []JWTSecret
	HMAC      []HMACCredential
}

// KeyAuthCredential is a key-auth key.
type KeyAuthCredential struct{ ID, ConsumerID, Key string }

// BasicAuthCredential holds Kong's password hash: hex sha1 of the
// password followed by the consumer id.
type BasicAuthCredential struct{ ID, ConsumerID, Username, PasswordHash string }

// ACLGroup puts a consumer in a group.
type ACLGroup struct{ ConsumerID, Group string }

// JWTSecret verifies tokens whose key claim names Key.
type JWTSecret struct{ ID, ConsumerID, Key, Secret, RSAPublicKey, Algorithm string }

// HMACCredential signs hmac-auth requests.
type HMACCredential struct{ ID, ConsumerID, Username, Secret string }

// pluginPriority is each executed plugin's PRIORITY in Kong 3.9: higher
// runs first, in every phase.
var pluginPriority = map[string]int{
	"correlation-id": 100001, "cors": 2000, "jwt": 1450, "key-auth": 1250,
	"basic-auth": 1100, "hmac-auth": 1030, "ip-restriction": 990, "acl": 950,
	"rate-limiting": 910, "request-transformer": 801, "response-transformer": 800,
	"prometheus": 13, "request-termination": 2,
}

// Priority is the PRIORITY of a plugin the proxy runs; false for others.
func Priority(name string) (int, bool) {
	p, ok := pluginPriority[name]
	return p, ok
}

// handler is a plugin's code. access runs before the request goes
// upstream and may answer it (x.exit); response runs on the response
// headers, whoever produced them.
type handler interface {
	access(x *exchange)
	response(x *exchange, h http.Header)
}

type noAccess struct{}

func (noAccess) access(*exchange) {}

type noResponse struct{}

func (noResponse) response(*exchange, http.Header) {}

// instance is one compiled plugin.
type instance struct {
	id, name   string
	http, tls  bool // protocols it runs for: http, https
	handler    handler
	serviceID  string
	routeID    string
	consumerID string
}

type comboKey struct{ route, service, consumer string }

// pluginKind holds every instance of one plugin name, keyed by scope.
type pluginKind struct {
	name   string
	combos map[comboKey]*instance
	// consumerScoped: some instance needs the consumer to be known.
	consumerScoped bool
}

// lookup returns the instance that applies, by Kong's precedence: route,
// service and consumer; route and consumer; service and consumer; route
// and service; consumer; route; service; global.
func (k *pluginKind) lookup(route, service, consumer string) *instance {
	c := k.combos
	byConsumer := k.consumerScoped && consumer != ""
	if byConsumer {
		if route != "" && service != "" {
			if in := c[comboKey{route, service, consumer}]; in != nil {
				return in
			}
		}
		if route != "" {
			if in := c[comboKey{route, "", consumer}]; in != nil {
				return in
			}
		}
		if service != "" {
			if in := c[comboKey{"", service, consumer}]; in != nil {
				return in
			}
		}
	}
	if route != "" && service != "" {
		if in := c[comboKey{route, service, ""}]; in != nil {
			return in
		}
	}
	if byConsumer {
		if in := c[comboKey{"", "", consumer}]; in != nil {
			return in
		}
	}
	if route != "" {
		if in := c[comboKey{route, "", ""}]; in != nil {
			return in
		}
	}
	if service != "" {
		if in := c[comboKey{"", service, ""}]; in != nil {
			return in
		}
	}
	return c[comboKey{}]
}

// pluginSet is a configuration's compiled plugins, consumers and
// credentials; nil when no plugin is configured.
type pluginSet struct {
	kinds     []*pluginKind // by priority, highest first
	consumers map[string]*Consumer
	byName    map[string]*Consumer // username -> consumer (anonymous)
	keyAuth   map[string]*KeyAuthCredential
	basicAuth map[string]*BasicAuthCredential
	groups    map[string]*aclGroups // consumer id -> ACL groups
	jwt       map[string]*JWTSecret
	hmac      map[string]*HMACCredential
}

func compilePlugins(c Config, p *Proxy) (*pluginSet, error) {
	if len(c.Plugins) == 0 {
		return nil, nil
	}
	ps := &pluginSet{
		consumers: make(map[string]*Consumer, len(c.Consumers)),
		byName:    make(map[string]*Consumer, len(c.Consumers)),
		keyAuth:   map[string]*KeyAuthCredential{},
		basicAuth: map[string]*BasicAuthCredential{},
		groups:    map[string]*aclGroups{},
		jwt:       map[string]*JWTSecret{},
		hmac:      map[string]*HMACCredential{},
	}
	for i := range c.Consumers {
		cons := &c.Consumers[i]
		ps.consumers[cons.ID] = cons
		if cons.Username != "" {
			ps.byName[cons.Username] = cons
		}
	}
	cr := &c.Credentials
	for i := range cr.KeyAuth {
		ps.keyAuth[cr.KeyAuth[i].Key] = &cr.KeyAuth[i]
	}
	for i := range cr.BasicAuth {
		ps.basicAuth[cr.BasicAuth[i].Username] = &cr.BasicAuth[i]
	}
	for _, g := range cr.ACLs {
		ag := ps.groups[g.ConsumerID]
		if ag == nil {
			ag = &aclGroups{}
			ps.groups[g.ConsumerID] = ag
		}
		ag.list = append(ag.list, g.Group)
	}
	for _, ag := range ps.groups {
		ag.header = strings.Join(ag.list, ", ")
	}
	for i := range cr.JWT {
		ps.jwt[cr.JWT[i].Key] = &cr.JWT[i]
	}
	for i := range cr.HMAC {
		ps.hmac[cr.HMAC[i].Username] = &cr.HMAC[i]
	}
	kinds := map[string]*pluginKind{}
	for _, pl := range c.Plugins {
		if _, known := pluginPriority[pl.Name]; !known {
			continue // validated by the Admin API, not executed here
		}
		h, err := newHandler(pl, p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", entityLabel("plugin", pl.Name, pl.ID), err)
		}
		in := &instance{id: pl.ID, name: pl.Name, handler: h, routeID: pl.RouteID, serviceID: pl.ServiceID, consumerID: pl.ConsumerID}
		in.http, in.tls = len(pl.Protocols) == 0, len(pl.Protocols) == 0
		for _, proto := range pl.Protocols {
			in.http = in.http || proto == "http"
			in.tls = in.tls || proto == "https"
		}
		k := kinds[pl.Name]
		if k == nil {
			k = &pluginKind{name: pl.Name, combos: map[comboKey]*instance{}}
			kinds[pl.Name] = k
		}
		k.combos[comboKey{pl.RouteID, pl.ServiceID, pl.ConsumerID}] = in
		k.consumerScoped = k.consumerScoped || pl.ConsumerID != ""
	}
	for _, k := range kinds {
		ps.kinds = append(ps.kinds, k)
	}
	sort.Slice(ps.kinds, func(i, j int) bool {
		return pluginPriority[ps.kinds[i].name] > pluginPriority[ps.kinds[j].name]
	})
	return ps, nil
}

// aclGroups are a consumer's groups, in creation order, and the
// X-Consumer-Groups value listing them.
type aclGroups struct {
	list   []string
	header string
}

// consumer finds a consumer by id or username, as Kong's anonymous does.
func (ps *pluginSet) consumer(idOrName string) *Consumer {
	if c := ps.consumers[idOrName]; c != nil {
		return c
	}
	return ps.byName[idOrName]
}

// decodeConfig fills a plugin's typed configuration from its JSON-shaped
// config record.
func decodeConfig(cfg map[string]any, into any) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

func newHandler(pl Plugin, p *Proxy) (handler, error) {
	switch pl.Name {
	case "key-auth":
		h := &keyAuth{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "basic-auth":
		h := &basicAuth{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "jwt":
		h := &jwtAuth{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "hmac-auth":
		h := &hmacAuth{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "acl":
		h := &acl{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "ip-restriction":
		return newIPRestriction(pl.Config)
	case "rate-limiting":
		h := &rateLimiting{id: pl.ID, counters: p.counters}
		return h, decodeConfig(pl.Config, &h.conf)
	case "request-termination":
		h := &requestTermination{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "cors":
		return newCORS(pl.Config)
	case "correlation-id":
		h := &correlationID{gen: p.correlation}
		return h, decodeConfig(pl.Config, &h.conf)
	case "request-transformer":
		h := &requestTransformer{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "response-transformer":
		h := &responseTransformer{}
		return h, decodeConfig(pl.Config, &h.conf)
	case "prometheus":
		h := &prometheusPlugin{}
		return h, decodeConfig(pl.Config, &h.conf)
	}
	return nil, fmt.Errorf("not executable")
}

// exchange is one request's journey through the plugins.
type exchange struct {
	ps        *pluginSet
	r         *http.Request
	scheme    string
	clientIP  string
	routeID   string
	serviceID string
	requestID string
	now       time.Time
	// up is the header sent upstream; query its query string.
	up       http.Header
	rawQuery string

	consumer   *Consumer
	credential string // the authenticated credential's id, "" when none
	// respHeaders are set on the response, whoever answers (rate-limiting).
	respHeaders http.Header
	// exit, once set, is the response: no later access handler runs.
	exit *exitResponse
	// ran lists the instances that apply, for the response phase.
	ran []*instance
	// corsPreflight: cors answered a preflight; its response hook skips.
	corsPreflight bool
	// correlationID is the id correlation-id sent upstream.
	correlationID string
	// hostOverride is the Host request-transformer set, "" when none.
	hostOverride string
	// What the prometheus plugin records.
	metrics         *MetricsConfig
	status          int
	proxied         bool
	upstreamLatency time.Duration
	responseBytes   int64
	headerBytes     int64
	// The request body, once a plugin read it (see readBody).
	bodyRead, bodyTooLarge bool
	body                   []byte
}

// readBody reads the client's body once, for plugins that look into it;
// the proxy then sends x.body upstream.
func (x *exchange) readBody() []byte {
	if x.bodyRead {
		return x.body
	}
	x.bodyRead = true
	if x.r.Body == nil || x.r.Body == http.NoBody {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(x.r.Body, maxBufferedBody+1))
	if err != nil || len(b) > maxBufferedBody {
		x.bodyTooLarge = true
		return nil
	}
	x.body = b
	return b
}

// bodyArgs decodes a form or JSON object body into its top-level
// fields, as kong.request.get_body does for those types.
func (x *exchange) bodyArgs() (map[string]any, string) {
	mediaType, _, _ := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	b := x.readBody()
	switch mediaType {
	case "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(b))
		if err != nil {
			return nil, ""
		}
		out := make(map[string]any, len(q))
		for k, v := range q {
			if len(v) == 1 {
				out[k] = v[0]
			} else {
				out[k] = v
			}
		}
		return out, mediaType
	case "application/json":
		var out map[string]any
		if json.Unmarshal(b, &out) != nil {
			return nil, ""
		}
		return out, mediaType
	}
	return nil, ""
}

// setBodyArgs re-encodes a form or JSON body after a plugin removed a
// field.
func (x *exchange) setBodyArgs(args map[string]any, mediaType string) {
	switch mediaType {
	case "application/json":
		x.body, _ = json.Marshal(args)
	case "application/x-www-form-urlencoded":
		q := url.Values{}
		for k, v := range args {
			switch t := v.(type) {
			case string:
				q.Set(k, t)
			case []string:
				q[k] = t
			}
		}
		x.body = []byte(q.Encode())
	}
}

// exitResponse is a response a plugin produced instead of the upstream.
type exitResponse struct {
	status      int
	body        []byte
	contentType string
	headers     http.Header
}

// errorExit is kong.response.error: Kong's error template with the
// request id.
func (x *exchange) errorExit(status int, msg string, hdr ...string) {
	body := fmt.Sprintf("{\n  \"message\":%q,\n  \"request_id\":%q\n}", msg, x.requestID)
	x.setExit(status, []byte(body), "application/json; charset=utf-8", hdr...)
}

// messageExit is kong.response.exit(status, {message = msg}).
func (x *exchange) messageExit(status int, msg string, hdr ...string) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	x.setExit(status, b, "application/json; charset=utf-8", hdr...)
}

func (x *exchange) setExit(status int, body []byte, contentType string, hdr ...string) {
	e := &exitResponse{status: status, body: body, contentType: contentType, headers: http.Header{}}
	for i := 0; i+1 < len(hdr); i += 2 {
		e.headers.Set(hdr[i], hdr[i+1])
	}
	x.exit = e
}

// setConsumer is kong.client.authenticate plus the headers every
// authentication plugin sends upstream. A nil credential marks the
// anonymous consumer.
func (x *exchange) setConsumer(c *Consumer, credentialID, identifier string) {
	x.consumer, x.credential = c, credentialID
	if c == nil {
		c = &Consumer{}
	}
	// One backing array for the values set.
	vals := make([]string, 0, 5)
	set := func(name, v string) {
		if v == "" {
			delete(x.up, name)
			return
		}
		vals = append(vals, v)
		x.up[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("X-Consumer-Id", c.ID)
	set("X-Consumer-Custom-Id", c.CustomID)
	set("X-Consumer-Username", c.Username)
	set("X-Credential-Identifier", identifier)
	if credentialID != "" {
		delete(x.up, "X-Anonymous-Consumer")
	} else {
		set("X-Anonymous-Consumer", "true")
	}
}

// anonymous authenticates as conf.anonymous after a failed attempt.
func (x *exchange) anonymous(idOrName string) {
	c := x.ps.consumer(idOrName)
	if c == nil {
		x.errorExit(http.StatusInternalServerError, "anonymous consumer "+idOrName+" is configured but doesn't exist")
		return
	}
	x.setConsumer(c, "", "")
}

// runAccess runs the access phase of every plugin that applies, in
// priority order, and collects them for the response phase. Plugins after
// one that answered are collected but not run, as Kong does.
func (x *exchange) runAccess() {
	tls := x.scheme == "https"
	x.ran = make([]*instance, 0, len(x.ps.kinds))
	for _, k := range x.ps.kinds {
		consumer := ""
		if x.consumer != nil {
			consumer = x.consumer.ID
		}
		in := k.lookup(x.routeID, x.serviceID, consumer)
		if in == nil || (tls && !in.tls) || (!tls && !in.http) {
			continue
		}
		x.ran = append(x.ran, in)
		if pm, ok := in.handler.(*prometheusPlugin); ok {
			x.metrics = &pm.conf
		}
		if x.exit == nil {
			in.handler.access(x)
		}
	}
}

// runResponse runs the collected plugins' response hooks on h.
func (x *exchange) runResponse(h http.Header) {
	for k, v := range x.respHeaders {
		h[k] = v
	}
	for _, in := range x.ran {
		in.handler.response(x, h)
	}
}

// query returns the request's query string parsed.
func (x *exchange) query() url.Values {
	q, _ := url.ParseQuery(x.rawQuery)
	return q
}

// removeQueryArg drops name from the upstream query string.
func (x *exchange) removeQueryArg(name string) {
	q := x.query()
	if _, ok := q[name]; ok {
		q.Del(name)
		x.rawQuery = q.Encode()
	}
}

func clientIPOf(r *http.Request) string {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	return ip
}

func itoa(n int) string { return strconv.Itoa(n) }
