package kong_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	sim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// pluginNode is a DB-less node with a recording upstream and a fixed clock.
type pluginNode struct {
	node *sim.Node
	// seen is the last request the upstream received.
	seen *http.Request
	// calls counts upstream requests.
	calls int
	// seenBody is the body of the last upstream request.
	seenBody string
	now      time.Time
}

var pluginClock = time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC)

func newPluginNode(t *testing.T, config string) *pluginNode {
	t.Helper()
	pn := &pluginNode{now: pluginClock}
	up := upstreamFunc(func(r *http.Request) *http.Response {
		pn.seen, pn.calls = r, pn.calls+1
		pn.seenBody = ""
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			pn.seenBody = string(b)
		}
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}, "X-Upstream": {"yes"}},
			Body: io.NopCloser(strings.NewReader("ok")), ContentLength: 2, Request: r}
	})
	n, err := sim.NewNode(sim.Options{ProxyTransport: up, Logger: quietLogger(), Now: func() time.Time { return pn.now },
		DeclarativeConfig: []byte(config)})
	if err != nil {
		t.Fatal(err)
	}
	pn.node = n
	return pn
}

// call sends a request through the proxy; hdr holds name, value pairs.
func (pn *pluginNode) call(method, target string, hdr ...string) *httptest.ResponseRecorder {
	return pn.callWithBody(method, target, "", hdr...)
}

func (pn *pluginNode) callWithBody(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	pn.seen = nil
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	pn.node.Proxy().ServeHTTP(rec, req)
	return rec
}

// message decodes Kong's {"message": ...} body.
func message(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	s, _ := m["message"].(string)
	return s
}

func expectStatus(t *testing.T, rec *httptest.ResponseRecorder, code int, msg string) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status = %d (%s), want %d", rec.Code, rec.Body.String(), code)
	}
	if msg != "" {
		if got := message(t, rec); got != msg {
			t.Fatalf("message = %q, want %q", got, msg)
		}
	}
}

const authConfig = `
_format_version: "3.0"
services:
- name: svc
  host: upstream.test
  routes:
  - name: keyed
    paths: ["/key"]
    plugins:
    - name: key-auth
      config: {hide_credentials: true}
  - name: keyed-body
    paths: ["/body"]
    plugins:
    - name: key-auth
      config: {key_in_body: true, key_in_header: false, hide_credentials: true}
  - name: keyed-anon
    paths: ["/anon"]
    plugins:
    - name: key-auth
      config: {anonymous: guest}
  - name: basic
    paths: ["/basic"]
    plugins:
    - name: basic-auth
  - name: admins
    paths: ["/admins"]
    plugins:
    - name: key-auth
    - name: acl
      config: {allow: [admins]}
  - name: no-users
    paths: ["/no-users"]
    plugins:
    - name: key-auth
      config: {key_names: [x-key], realm: kongsim}
    - name: acl
      config: {deny: [users], hide_groups_header: true}
consumers:
- username: alice
  custom_id: a-1
  keyauth_credentials: [{key: alice-key}]
  basicauth_credentials: [{username: alice, password: s3cret}]
  acls: [{group: admins}, {group: ops}]
- username: bob
  keyauth_credentials: [{key: bob-key}]
  acls: [{group: users}]
- username: guest
`

func TestKeyAuth(t *testing.T) {
	pn := newPluginNode(t, authConfig)
	rec := pn.call("GET", "/key")
	expectStatus(t, rec, 401, "No API key found in request")
	if rec.Header().Get("WWW-Authenticate") != "Key" || pn.seen != nil {
		t.Errorf("WWW-Authenticate = %q, upstream reached: %v", rec.Header().Get("WWW-Authenticate"), pn.seen != nil)
	}
	if !strings.Contains(rec.Body.String(), `"request_id":"`+rec.Header().Get("X-Kong-Request-Id")+`"`) {
		t.Errorf("error body %q lacks the request id", rec.Body.String())
	}
	expectStatus(t, pn.call("GET", "/key", "apikey", "wrong"), 401, "Unauthorized")
	expectStatus(t, pn.call("GET", "/key", "apikey", "a", "apikey", "b"), 401, "Duplicate API key found")

	expectStatus(t, pn.call("GET", "/key?apikey=alice-key&keep=1", "X-Consumer-Groups", "forged"), 200, "")
	up := pn.seen.Header
	if up.Get("X-Consumer-Username") != "alice" || up.Get("X-Consumer-Custom-Id") != "a-1" || up.Get("X-Consumer-Id") == "" ||
		up.Get("X-Credential-Identifier") == "" || up.Get("X-Anonymous-Consumer") != "" {
		t.Errorf("upstream consumer headers = %v", up)
	}
	// hide_credentials strips the key from the query string and headers.
	if q := pn.seen.URL.Query(); q.Has("apikey") || q.Get("keep") != "1" {
		t.Errorf("upstream query = %v", q)
	}
	pn.call("GET", "/key", "apikey", "alice-key")
	if pn.seen.Header.Get("apikey") != "" {
		t.Error("hidden key reached upstream")
	}

	// A key in a JSON or form body, removed before the body goes upstream.
	rec = pn.callWithBody("POST", "/body", `{"apikey":"alice-key","n":1}`, "Content-Type", "application/json")
	expectStatus(t, rec, 200, "")
	if pn.seenBody != `{"n":1}` || pn.seen.ContentLength != int64(len(`{"n":1}`)) {
		t.Errorf("upstream body = %q (length %d)", pn.seenBody, pn.seen.ContentLength)
	}
	expectStatus(t, pn.callWithBody("POST", "/body", "apikey=bob-key&x=y", "Content-Type", "application/x-www-form-urlencoded"), 200, "")
	if pn.seenBody != "x=y" || pn.seen.Header.Get("X-Consumer-Username") != "bob" {
		t.Errorf("form body upstream = %q %v", pn.seenBody, pn.seen.Header)
	}
	expectStatus(t, pn.call("GET", "/body", "apikey", "alice-key"), 401, "No API key found in request")

	// With anonymous, a failed authentication proceeds as the anonymous consumer.
	expectStatus(t, pn.call("GET", "/anon"), 200, "")
	if pn.seen.Header.Get("X-Anonymous-Consumer") != "true" || pn.seen.Header.Get("X-Consumer-Username") != "guest" {
		t.Errorf("anonymous headers = %v", pn.seen.Header)
	}
	pn.call("GET", "/anon", "apikey", "bob-key")
	if pn.seen.Header.Get("X-Consumer-Username") != "bob" || pn.seen.Header.Get("apikey") != "bob-key" {
		t.Errorf("authenticated headers = %v", pn.seen.Header)
	}
}

func TestBasicAuth(t *testing.T) {
	pn := newPluginNode(t, authConfig)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	rec := pn.call("GET", "/basic")
	expectStatus(t, rec, 401, "Unauthorized")
	if rec.Header().Get("WWW-Authenticate") != `Basic realm="service"` {
		t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
	}
	expectStatus(t, pn.call("GET", "/basic", "Authorization", basic("alice", "wrong")), 401, "Unauthorized")
	expectStatus(t, pn.call("GET", "/basic", "Authorization", basic("nobody", "s3cret")), 401, "Unauthorized")
	expectStatus(t, pn.call("GET", "/basic", "Authorization", basic("alice", "s3cret")), 200, "")
	if h := pn.seen.Header; h.Get("X-Consumer-Username") != "alice" || h.Get("X-Credential-Identifier") != "alice" || h.Get("Authorization") == "" {
		t.Errorf("upstream headers = %v", h)
	}
}

func TestACL(t *testing.T) {
	pn := newPluginNode(t, authConfig)
	expectStatus(t, pn.call("GET", "/admins", "apikey", "alice-key"), 200, "")
	if g := pn.seen.Header.Get("X-Consumer-Groups"); g != "admins, ops" {
		t.Errorf("X-Consumer-Groups = %q", g)
	}
	expectStatus(t, pn.call("GET", "/admins", "apikey", "bob-key"), 403, "You cannot consume this service")
	// Authentication runs first (key-auth's priority is higher).
	expectStatus(t, pn.call("GET", "/admins"), 401, "No API key found in request")

	rec := pn.call("GET", "/no-users", "x-key", "bob-key")
	expectStatus(t, rec, 403, "You cannot consume this service")
	expectStatus(t, pn.call("GET", "/no-users", "x-key", "alice-key"), 200, "")
	if pn.seen.Header.Get("X-Consumer-Groups") != "" {
		t.Error("hide_groups_header sent the groups")
	}
	if rec := pn.call("GET", "/no-users"); rec.Header().Get("WWW-Authenticate") != `Key realm="kongsim"` {
		t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
	}
}

const scopeConfig = `
_format_version: "3.0"
services:
- name: svc
  host: upstream.test
  plugins:
  - name: request-transformer
    config: {add: {headers: ["x-scope:service"]}}
  routes:
  - name: r1
    paths: ["/r1"]
    plugins:
    - name: request-transformer
      config: {add: {headers: ["x-scope:route"]}}
  - name: r2
    paths: ["/r2"]
  - name: r3
    paths: ["/r3"]
    plugins:
    - name: key-auth
plugins:
- name: request-transformer
  config: {add: {headers: ["x-scope:global"]}}
- name: request-termination
  consumer: bob
  config: {status_code: 403, message: "bob is blocked"}
- name: request-transformer
  consumer: alice
  route: r3
  config: {add: {headers: ["x-scope:alice-on-r3"]}}
- name: correlation-id
  config: {echo_downstream: true}
consumers:
- username: alice
  keyauth_credentials: [{key: alice-key}]
- username: bob
  keyauth_credentials: [{key: bob-key}]
- username: carol
  keyauth_credentials: [{key: carol-key}]
`

// TestPluginScopePrecedence checks which instance of a plugin applies.
func TestPluginScopePrecedence(t *testing.T) {
	pn := newPluginNode(t, scopeConfig)
	for _, tc := range []struct {
		path, key, want string
	}{
		{"/r1", "", "route"},
		{"/r2", "", "service"},
		{"/r3", "carol-key", "service"},
		{"/r3", "alice-key", "alice-on-r3"},
	} {
		pn.call("GET", tc.path, "apikey", tc.key)
		if pn.seen == nil || pn.seen.Header.Get("X-Scope") != tc.want {
			t.Errorf("%s as %q: x-scope = %v, want %q", tc.path, tc.key, pn.seen, tc.want)
		}
	}
	// A consumer-scoped plugin runs once the consumer is known.
	rec := pn.call("GET", "/r3", "apikey", "bob-key")
	expectStatus(t, rec, 403, "bob is blocked")
	if rec.Header().Get("Content-Type") != "application/json; charset=utf-8" || strings.Contains(rec.Body.String(), "request_id") {
		t.Errorf("request-termination answer = %v %q", rec.Header(), rec.Body.String())
	}
	// correlation-id (priority 100001) ran before and echoes its id.
	if id := rec.Header().Get("Kong-Request-Id"); !strings.Contains(id, "#") {
		t.Errorf("correlation id on the terminated response = %q", id)
	}
	// The id is sent upstream, and one sent by the client is kept.
	pn.call("GET", "/r2")
	first := pn.seen.Header.Get("Kong-Request-Id")
	pn.call("GET", "/r2")
	if second := pn.seen.Header.Get("Kong-Request-Id"); first == "" || first == second {
		t.Errorf("correlation ids %q, %q", first, second)
	}
	rec = pn.call("GET", "/r2", "Kong-Request-Id", "client-id")
	if pn.seen.Header.Get("Kong-Request-Id") != "client-id" || rec.Header().Get("Kong-Request-Id") != "client-id" {
		t.Errorf("client correlation id not kept: %v", rec.Header())
	}
}

const trafficConfig = `
_format_version: "3.0"
services:
- name: svc
  host: upstream.test
  routes:
  - name: limited
    paths: ["/limited"]
    plugins:
    - name: rate-limiting
      config: {minute: 2, hour: 10}
  - name: terminated
    paths: ["/terminated"]
    plugins:
    - name: request-termination
  - name: teapot
    paths: ["/teapot"]
    plugins:
    - name: request-termination
      config: {status_code: 418, body: "<h1>teapot</h1>", content_type: "text/html", trigger: x-stop}
  - name: denied
    paths: ["/denied"]
    plugins:
    - name: ip-restriction
      config: {deny: ["192.0.2.0/24"]}
  - name: allowed
    paths: ["/allowed"]
    plugins:
    - name: ip-restriction
      config: {allow: ["192.0.2.1"], status: 401, message: "go away"}
  - name: other
    paths: ["/other"]
    plugins:
    - name: ip-restriction
      config: {allow: ["10.0.0.0/8"], status: 401, message: "go away"}
  - name: https-only-plugin
    paths: ["/tls-plugin"]
    plugins:
    - name: request-termination
      protocols: [https]
  - name: disabled-plugin
    paths: ["/disabled"]
    plugins:
    - name: request-termination
      enabled: false
routes:
- name: serviceless
  paths: ["/health"]
  plugins:
  - name: request-termination
    config: {status_code: 200, message: "healthy"}
`

func TestRateLimiting(t *testing.T) {
	pn := newPluginNode(t, trafficConfig)
	for i, wantRemaining := range []string{"1", "0"} {
		rec := pn.call("GET", "/limited")
		expectStatus(t, rec, 200, "")
		h := rec.Header()
		if h.Get("X-RateLimit-Limit-Minute") != "2" || h.Get("X-RateLimit-Remaining-Minute") != wantRemaining ||
			h.Get("X-RateLimit-Limit-Hour") != "10" || h.Get("RateLimit-Limit") != "2" ||
			h.Get("RateLimit-Remaining") != wantRemaining || h.Get("RateLimit-Reset") != "50" {
			t.Errorf("request %d: headers %v", i+1, h)
		}
	}
	rec := pn.call("GET", "/limited")
	expectStatus(t, rec, 429, "API rate limit exceeded")
	if rec.Header().Get("Retry-After") != "50" || rec.Header().Get("X-RateLimit-Remaining-Minute") != "0" || pn.seen != nil {
		t.Errorf("limited response headers %v", rec.Header())
	}
	// A new minute opens a new window; the hour keeps counting.
	pn.now = pn.now.Add(time.Minute)
	rec = pn.call("GET", "/limited")
	expectStatus(t, rec, 200, "")
	if rec.Header().Get("X-RateLimit-Remaining-Hour") != "7" {
		t.Errorf("hour remaining = %q, want 7", rec.Header().Get("X-RateLimit-Remaining-Hour"))
	}
}

func TestRequestTerminationAndIPRestriction(t *testing.T) {
	pn := newPluginNode(t, trafficConfig)
	rec := pn.call("GET", "/terminated")
	expectStatus(t, rec, 503, "Service unavailable")
	if rec.Body.String() != `{"message":"Service unavailable"}` || pn.calls != 0 {
		t.Errorf("body %q, upstream calls %d", rec.Body.String(), pn.calls)
	}
	expectStatus(t, pn.call("GET", "/teapot"), 200, "") // trigger absent
	rec = pn.call("GET", "/teapot", "X-Stop", "1")
	if rec.Code != 418 || rec.Body.String() != "<h1>teapot</h1>" || rec.Header().Get("Content-Type") != "text/html" {
		t.Errorf("teapot = %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	// httptest requests come from 192.0.2.1.
	expectStatus(t, pn.call("GET", "/denied"), 403, "IP address not allowed: 192.0.2.1")
	expectStatus(t, pn.call("GET", "/allowed"), 200, "")
	expectStatus(t, pn.call("GET", "/other"), 401, "go away")
	// A route without a service answers through its plugins.
	expectStatus(t, pn.call("GET", "/health"), 200, "healthy")
	// A plugin limited to https does not run on http, nor a disabled one.
	expectStatus(t, pn.call("GET", "/tls-plugin"), 200, "")
	expectStatus(t, pn.call("GET", "/disabled"), 200, "")
	// Kong's own answers carry its headers.
	rec = pn.call("GET", "/terminated")
	if rec.Header().Get("Server") != "kong/"+sim.DefaultVersion || rec.Header().Get("X-Kong-Request-Id") == "" ||
		rec.Header().Get("X-Kong-Response-Latency") == "" {
		t.Errorf("plugin answer headers = %v", rec.Header())
	}
}

const transformConfig = `
_format_version: "3.0"
services:
- name: svc
  host: upstream.test
  routes:
  - name: transformed
    paths: ["/t"]
    plugins:
    - name: request-transformer
      config:
        remove: {headers: [x-remove], querystring: [drop]}
        rename: {headers: ["x-old:x-new"]}
        replace: {headers: ["x-replace:replaced", "x-absent:never"]}
        add: {headers: ["x-add:added", "x-keep:not-used"], querystring: ["q:1"]}
        append: {headers: ["x-append:second"]}
    - name: response-transformer
      config:
        remove: {headers: [x-upstream]}
        add: {headers: ["x-added:yes"]}
        append: {headers: ["x-list:a", "x-list:b"]}
  - name: cors-route
    paths: ["/cors"]
    plugins:
    - name: cors
      config: {origins: ["https://a.example", "https://(.*)\\.b\\.example"], credentials: true, exposed_headers: [x-total], max_age: 600}
    - name: key-auth
consumers:
- username: alice
  keyauth_credentials: [{key: alice-key}]
`

func TestTransformers(t *testing.T) {
	pn := newPluginNode(t, transformConfig)
	rec := pn.call("GET", "/t?drop=1&keep=2", "X-Remove", "1", "X-Old", "o", "X-Replace", "r", "X-Keep", "k", "X-Append", "first")
	expectStatus(t, rec, 200, "")
	up := pn.seen.Header
	switch {
	case up.Get("X-Remove") != "", up.Get("X-Old") != "", up.Get("X-New") != "o",
		up.Get("X-Replace") != "replaced", up.Get("X-Absent") != "", up.Get("X-Add") != "added",
		up.Get("X-Keep") != "k", strings.Join(up.Values("X-Append"), ",") != "first,second":
		t.Errorf("upstream headers = %v", up)
	}
	if q := pn.seen.URL.Query(); q.Has("drop") || q.Get("keep") != "2" || q.Get("q") != "1" {
		t.Errorf("upstream query = %v", q)
	}
	h := rec.Header()
	if h.Get("X-Upstream") != "" || h.Get("X-Added") != "yes" || strings.Join(h.Values("X-List"), ",") != "a,b" {
		t.Errorf("response headers = %v", h)
	}
	if h.Get("Via") != "1.1 kong/"+sim.DefaultVersion || h.Get("Server") != "kong/"+sim.DefaultVersion {
		t.Errorf("Via %q Server %q", h.Get("Via"), h.Get("Server"))
	}
}

func TestCORS(t *testing.T) {
	pn := newPluginNode(t, transformConfig)
	// A preflight is answered by cors (priority 2000) before key-auth.
	rec := pn.call("OPTIONS", "/cors", "Origin", "https://x.b.example", "Access-Control-Request-Method", "PUT",
		"Access-Control-Request-Headers", "x-custom")
	h := rec.Header()
	if rec.Code != 200 || pn.calls != 0 || h.Get("Access-Control-Allow-Origin") != "https://x.b.example" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Allow-Headers") != "x-custom" ||
		h.Get("Access-Control-Allow-Methods") != "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT" ||
		h.Get("Access-Control-Max-Age") != "600" || h.Get("Vary") != "Origin" {
		t.Errorf("preflight = %d %v", rec.Code, h)
	}
	rec = pn.call("GET", "/cors", "Origin", "https://a.example", "apikey", "alice-key")
	h = rec.Header()
	if rec.Code != 200 || h.Get("Access-Control-Allow-Origin") != "https://a.example" || h.Get("Access-Control-Expose-Headers") != "x-total" {
		t.Errorf("actual request = %d %v", rec.Code, h)
	}
	// The CORS headers are on Kong's own answers too.
	rec = pn.call("GET", "/cors", "Origin", "https://a.example")
	if rec.Code != 401 || rec.Header().Get("Access-Control-Allow-Origin") != "https://a.example" {
		t.Errorf("401 = %v", rec.Header())
	}
	rec = pn.call("GET", "/cors", "Origin", "https://evil.example", "apikey", "alice-key")
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin allowed: %v", rec.Header())
	}
}

func jwtToken(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + enc(claims)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

const jwtConfig = `
_format_version: "3.0"
services:
- name: svc
  host: upstream.test
  routes:
  - name: jwt
    paths: ["/jwt"]
    plugins:
    - name: jwt
      config: {claims_to_verify: [exp]}
  - name: hmac
    paths: ["/hmac"]
    plugins:
    - name: hmac-auth
  - name: hmac-body
    paths: ["/hmac-body"]
    plugins:
    - name: hmac-auth
      config: {validate_request_body: true, enforce_headers: [date]}
consumers:
- username: alice
  jwt_secrets: [{key: alice-iss, secret: alice-secret}]
  hmacauth_credentials: [{username: alice-hmac, secret: hmac-secret}]
`

func TestJWT(t *testing.T) {
	pn := newPluginNode(t, jwtConfig)
	exp := float64(pluginClock.Add(time.Hour).Unix())
	rec := pn.call("GET", "/jwt")
	expectStatus(t, rec, 401, "Unauthorized")
	if rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
	}
	good := jwtToken(t, "alice-secret", map[string]any{"iss": "alice-iss", "exp": exp})
	expectStatus(t, pn.call("GET", "/jwt", "Authorization", "Bearer "+good), 200, "")
	if h := pn.seen.Header; h.Get("X-Consumer-Username") != "alice" || h.Get("X-Credential-Identifier") != "alice-iss" {
		t.Errorf("upstream headers = %v", h)
	}
	expectStatus(t, pn.call("GET", "/jwt?jwt="+good), 200, "")
	rec = pn.call("GET", "/jwt", "Authorization", "Bearer "+jwtToken(t, "wrong", map[string]any{"iss": "alice-iss", "exp": exp}))
	expectStatus(t, rec, 401, "Invalid signature")
	if rec.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
	}
	expectStatus(t, pn.call("GET", "/jwt", "Authorization", "Bearer "+jwtToken(t, "x", map[string]any{"iss": "nobody"})), 401,
		"No credentials found for given 'iss'")
	expectStatus(t, pn.call("GET", "/jwt", "Authorization", "Bearer "+jwtToken(t, "x", map[string]any{"sub": "x"})), 401,
		"No mandatory 'iss' in claims")
	expired := jwtToken(t, "alice-secret", map[string]any{"iss": "alice-iss", "exp": float64(pluginClock.Unix() - 1)})
	rec = pn.call("GET", "/jwt", "Authorization", "Bearer "+expired)
	if rec.Code != 401 || rec.Body.String() != `{"exp":"token expired"}` {
		t.Errorf("expired token = %d %q", rec.Code, rec.Body.String())
	}
	expectStatus(t, pn.call("GET", "/jwt", "Authorization", "Bearer not.a.token"), 401, "Bad token; invalid JWT")
}

func TestHMACAuth(t *testing.T) {
	pn := newPluginNode(t, jwtConfig)
	date := pluginClock.Format(http.TimeFormat)
	sign := func(secret string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("date: " + date + "\nGET /hmac HTTP/1.1"))
		sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
		return `hmac username="alice-hmac", algorithm="hmac-sha256", headers="date request-line", signature="` + sig + `"`
	}
	rec := pn.call("GET", "/hmac")
	expectStatus(t, rec, 401, "Unauthorized")
	if rec.Header().Get("WWW-Authenticate") != "hmac" {
		t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
	}
	expectStatus(t, pn.call("GET", "/hmac", "Authorization", sign("hmac-secret")), 401,
		"HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication")
	expectStatus(t, pn.call("GET", "/hmac", "Date", date, "Authorization", sign("wrong")), 401, "HMAC signature does not match")
	expectStatus(t, pn.call("GET", "/hmac", "Date", date, "Authorization", sign("hmac-secret")), 200, "")
	if h := pn.seen.Header; h.Get("X-Consumer-Username") != "alice" || h.Get("X-Credential-Identifier") != "alice-hmac" {
		t.Errorf("upstream headers = %v", h)
	}
	// validate_request_body checks the Digest header against the body.
	signBody := func() string {
		m := hmac.New(sha256.New, []byte("hmac-secret"))
		m.Write([]byte("date: " + date + "\nPOST /hmac-body HTTP/1.1"))
		sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
		return `hmac username="alice-hmac", algorithm="hmac-sha256", headers="date request-line", signature="` + sig + `"`
	}
	sum := sha256.Sum256([]byte("payload"))
	digest := "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
	expectStatus(t, pn.callWithBody("POST", "/hmac-body", "payload", "Date", date, "Digest", digest, "Authorization", signBody()), 200, "")
	if pn.seenBody != "payload" {
		t.Errorf("upstream body = %q", pn.seenBody)
	}
	expectStatus(t, pn.callWithBody("POST", "/hmac-body", "tampered", "Date", date, "Digest", digest, "Authorization", signBody()), 401,
		"HMAC signature does not match")

	pn.now = pn.now.Add(10 * time.Minute) // beyond the 300 s clock skew
	expectStatus(t, pn.call("GET", "/hmac", "Date", date, "Authorization", sign("hmac-secret")), 401,
		"HMAC signature cannot be verified, a valid date or x-date header is required for HMAC Authentication")
}

// TestDBModePluginsReachTheProxy writes a consumer, its key and a key-auth
// plugin through one node's Admin API; another node's proxy enforces them
// after its next poll.
func TestDBModePluginsReachTheProxy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mem := store.NewMemory()
		up := upstreamFunc(func(r *http.Request) *http.Response {
			return &http.Response{StatusCode: 200, Header: http.Header{"X-User": {r.Header.Get("X-Consumer-Username")}},
				Body: io.NopCloser(strings.NewReader("ok")), Request: r}
		})
		newNode := func() *sim.Node {
			n, err := sim.NewNode(sim.Options{Database: sim.DatabasePostgres, Backend: mem, UpdateFrequency: time.Second,
				Logger: quietLogger(), ProxyTransport: up})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		writer, reader := newNode(), newNode()
		done := make(chan struct{}, 2)
		for _, n := range []*sim.Node{writer, reader} {
			go func() { _ = n.Run(ctx); done <- struct{}{} }()
		}
		e := &env{node: writer, http: &http.Client{Transport: sim.NewInMemoryTransport(writer.Admin())}}
		for _, w := range [][2]string{
			{"/services", `{"name":"s","host":"backend.test"}`},
			{"/services/s/routes", `{"name":"r","paths":["/"]}`},
			{"/consumers", `{"username":"alice"}`},
			{"/consumers/alice/key-auth", `{"key":"alice-key"}`},
			{"/routes/r/plugins", `{"name":"key-auth"}`},
		} {
			if code, body := e.do(t, "POST", w[0], w[1]); code != 201 {
				t.Fatalf("POST %s = %d %v", w[0], code, body)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		call := func(key string) *httptest.ResponseRecorder {
			req := httptest.NewRequest("GET", "/", nil)
			if key != "" {
				req.Header.Set("apikey", key)
			}
			rec := httptest.NewRecorder()
			reader.Proxy().ServeHTTP(rec, req)
			return rec
		}
		expectStatus(t, call(""), 401, "No API key found in request")
		if rec := call("alice-key"); rec.Code != 200 || rec.Header().Get("X-User") != "alice" {
			t.Fatalf("authenticated call = %d %v", rec.Code, rec.Header())
		}
		// Deleting the consumer takes its key with it.
		if code, _ := e.do(t, "DELETE", "/consumers/alice", ""); code != 204 {
			t.Fatal("delete consumer failed")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		expectStatus(t, call("alice-key"), 401, "Unauthorized")
		cancel()
		<-done
		<-done
	})
}
