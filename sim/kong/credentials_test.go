package kong_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gokong "github.com/kong/go-kong/kong"
	"github.com/onsi/gomega"

	"konductor.dev/sim/internal/pgtest"
	sim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/pgstore"
	"konductor.dev/sim/kong/store"
)

const credentialsConfig = `
_format_version: "3.0"
consumers:
- username: alice
  custom_id: a-1
  tags: [team-a]
  keyauth_credentials:
  - key: alice-key
  basicauth_credentials:
  - username: alice
    password: s3cret
  acls:
  - group: admins
  jwt_secrets:
  - key: alice-iss
    secret: alice-jwt-secret
  hmacauth_credentials:
  - username: alice-hmac
    secret: alice-hmac-secret
- username: bob
keyauth_credentials:
- key: bob-key
  consumer: bob
acls:
- group: users
  consumer: bob
`

func basicAuthHash(password, consumerID string) string {
	sum := sha1.Sum([]byte(password + consumerID))
	return hex.EncodeToString(sum[:])
}

func TestDeclarativeConsumersAndCredentials(t *testing.T) {
	e := newEnv(t, dbless)
	if code, body := e.do(t, "POST", "/config", credentialsConfig); code != 201 {
		t.Fatalf("POST /config = %d %v", code, body)
	}
	_, alice := e.do(t, "GET", "/consumers/alice", "")
	aliceID, _ := alice["id"].(string)
	if alice["custom_id"] != "a-1" || aliceID == "" {
		t.Fatalf("alice = %v", alice)
	}
	for _, tc := range []struct {
		path  string
		count int
	}{
		{"/key-auths", 2}, {"/basic-auths", 1}, {"/acls", 2}, {"/jwts", 1}, {"/hmac-auths", 1},
		{"/consumers/alice/key-auth", 1}, {"/consumers/alice/basic-auth", 1}, {"/consumers/alice/acls", 1},
		{"/consumers/alice/jwt", 1}, {"/consumers/alice/hmac-auth", 1}, {"/consumers/bob/key-auth", 1},
	} {
		code, body := e.do(t, "GET", tc.path, "")
		if data, _ := body["data"].([]any); code != 200 || len(data) != tc.count {
			t.Errorf("GET %s = %d with %d entities, want %d", tc.path, code, len(data), tc.count)
		}
	}
	_, key := e.do(t, "GET", "/key-auths/alice-key", "")
	if c, _ := key["consumer"].(map[string]any); c["id"] != aliceID {
		t.Errorf("key-auth credential = %v, want consumer %s", key, aliceID)
	}
	_, basic := e.do(t, "GET", "/consumers/alice/basic-auth/alice", "")
	if basic["password"] != basicAuthHash("s3cret", aliceID) {
		t.Errorf("basic-auth password stored as %v, want sha1(password..consumer id)", basic["password"])
	}
	if code, _ := e.do(t, "GET", "/consumers/alice/acls/admins", ""); code != 200 {
		t.Errorf("ACL by group = %d", code)
	}
	// Credential collections are served under the plugins' names only.
	if code, _ := e.do(t, "GET", "/keyauth_credentials", ""); code != 404 {
		t.Errorf("GET /keyauth_credentials = %d, want 404", code)
	}
	if code, body := e.do(t, "POST", "/consumers/alice/key-auth", `{"key":"x"}`); code != 405 {
		t.Errorf("DB-less credential write = %d %v, want 405", code, body)
	}
	// Loading the same document again keeps the configuration hash.
	hash := e.node.ConfigHash()
	e.do(t, "POST", "/config", credentialsConfig)
	if e.node.ConfigHash() != hash {
		t.Error("reloading the same credentials changed the hash")
	}
	// GET /config exports "_transform: false" and hashed passwords, which
	// load back unchanged.
	_, exported := e.do(t, "GET", "/config", "")
	text, _ := exported["config"].(string)
	if !strings.Contains(text, "_transform: false") || !strings.Contains(text, basicAuthHash("s3cret", aliceID)) {
		t.Fatalf("exported config:\n%s", text)
	}
	if code, body := e.do(t, "POST", "/config", text); code != 201 || e.node.ConfigHash() != hash {
		t.Errorf("re-import = %d %v, hash %s, want %s", code, body, e.node.ConfigHash(), hash)
	}
	_, basic = e.do(t, "GET", "/basic-auths/alice", "")
	if basic["password"] != basicAuthHash("s3cret", aliceID) {
		t.Errorf("re-imported password = %v", basic["password"])
	}
}

func TestDeclarativeCredentialErrors(t *testing.T) {
	e := newEnv(t, dbless)
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"duplicate key", `{"_format_version":"3.0","consumers":[{"username":"a","keyauth_credentials":[{"key":"k"}]},{"username":"b","keyauth_credentials":[{"key":"k"}]}]}`,
			"uniqueness violation: 'keyauth_credentials' entity with key set to 'k' already declared"},
		{"duplicate basic-auth username", `{"_format_version":"3.0","consumers":[{"username":"a","basicauth_credentials":[{"username":"u","password":"p"},{"username":"u","password":"q"}]}]}`,
			"uniqueness violation: 'basicauth_credentials' entity with username set to 'u' already declared"},
		{"password missing", `{"_format_version":"3.0","consumers":[{"username":"a","basicauth_credentials":[{"username":"u"}]}]}`,
			`password="required field missing"`},
		{"unknown consumer", `{"_format_version":"3.0","consumers":[{"username":"a"}],"keyauth_credentials":[{"key":"k","consumer":"ghost"}]}`,
			`consumer="could not find consumer 'ghost'"`},
		{"acl without group", `{"_format_version":"3.0","consumers":[{"username":"a","acls":[{}]}]}`,
			`group="required field missing"`},
		{"rsa jwt without key", `{"_format_version":"3.0","consumers":[{"username":"a","jwt_secrets":[{"algorithm":"RS256"}]}]}`,
			"failed conditional validation given value of field 'algorithm'"},
		{"auth plugin on a consumer", `{"_format_version":"3.0","consumers":[{"username":"a","plugins":[{"name":"key-auth"}]}]}`,
			`consumer="value must be null"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(t, "POST", "/config?flatten_errors=1", tc.doc)
			msg, _ := body["message"].(string)
			if code != 400 || !strings.Contains(msg, tc.want) {
				t.Errorf("POST /config = %d %q, want 400 containing %q", code, msg, tc.want)
			}
		})
	}
}

// TestCredentialsAdminAPI runs on both storage backends.
func TestCredentialsAdminAPI(t *testing.T) {
	backends := map[string]func(t *testing.T) store.Backend{
		"memory": func(t *testing.T) store.Backend { return store.NewMemory() },
		"postgres": func(t *testing.T) store.Backend {
			s, err := pgstore.New(context.Background(), pgtest.DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := s.Bootstrap(context.Background()); err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnvOn(t, backend(t))
			code, alice := e.do(t, "POST", "/consumers", `{"username":"alice","custom_id":"a-1"}`)
			if code != 201 {
				t.Fatalf("POST /consumers = %d %v", code, alice)
			}
			aliceID := alice["id"].(string)
			code, key := e.do(t, "POST", "/consumers/alice/key-auth", `{"key":"k1"}`)
			if code != 201 || key["key"] != "k1" {
				t.Fatalf("POST key-auth = %d %v", code, key)
			}
			if code, body := e.do(t, "POST", "/consumers/alice/key-auth", `{"key":"k1"}`); code != 409 ||
				body["message"] != `UNIQUE violation detected on '{key="k1"}'` {
				t.Errorf("duplicate key = %d %v, want 409", code, body)
			}
			// A key left out is generated.
			_, gen := e.do(t, "POST", "/consumers/alice/key-auth", `{}`)
			if k, _ := gen["key"].(string); len(k) != 32 {
				t.Errorf("generated key = %v", gen["key"])
			}
			if code, _ := e.do(t, "GET", "/key-auths/k1", ""); code != 200 {
				t.Errorf("GET /key-auths/k1 = %d", code)
			}
			code, basic := e.do(t, "POST", "/consumers/alice/basic-auth", `{"username":"alice","password":"pw"}`)
			if code != 201 || basic["password"] != basicAuthHash("pw", aliceID) {
				t.Fatalf("POST basic-auth = %d %v", code, basic)
			}
			// A PATCH without a password keeps the hash; with one, hashes it.
			_, patched := e.do(t, "PATCH", "/basic-auths/alice", `{"tags":["x"]}`)
			if patched["password"] != basicAuthHash("pw", aliceID) {
				t.Errorf("PATCH without password stored %v", patched["password"])
			}
			_, patched = e.do(t, "PATCH", "/basic-auths/alice", `{"password":"new"}`)
			if patched["password"] != basicAuthHash("new", aliceID) {
				t.Errorf("PATCH with password stored %v", patched["password"])
			}
			if code, body := e.do(t, "POST", "/consumers/alice/acls", `{"group":"admins"}`); code != 201 {
				t.Fatalf("POST acl = %d %v", code, body)
			}
			if code, _ := e.do(t, "POST", "/consumers/alice/acls", `{"group":"admins"}`); code != 409 {
				t.Errorf("duplicate ACL group = %d, want 409", code)
			}
			_, jwt := e.do(t, "POST", "/consumers/alice/jwt", `{}`)
			if jwt["algorithm"] != "HS256" || jwt["key"] == nil || jwt["secret"] == nil {
				t.Errorf("jwt defaults = %v", jwt)
			}
			_, hmac := e.do(t, "POST", "/consumers/alice/hmac-auth", `{"username":"h"}`)
			if s, _ := hmac["secret"].(string); s == "" {
				t.Errorf("hmac-auth secret = %v", hmac)
			}
			if code, body := e.do(t, "POST", "/consumers/alice/plugins", `{"name":"rate-limiting","config":{"minute":5}}`); code != 201 {
				t.Errorf("consumer plugin = %d %v", code, body)
			}
			if code, body := e.do(t, "POST", "/consumers/alice/plugins", `{"name":"key-auth"}`); code != 400 {
				t.Errorf("key-auth on a consumer = %d %v, want 400", code, body)
			}
			// The node's proxy, polling the backend, enforces them.
			for _, w := range [][2]string{
				{"/services", `{"name":"s","host":"backend.test"}`},
				{"/services/s/routes", `{"name":"r","paths":["/"]}`},
				{"/routes/r/plugins", `{"name":"basic-auth"}`},
			} {
				if code, body := e.do(t, "POST", w[0], w[1]); code != 201 {
					t.Fatalf("POST %s = %d %v", w[0], code, body)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = e.node.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			call := func(user, pass string) *httptest.ResponseRecorder {
				req := httptest.NewRequest("GET", "/", nil)
				if user != "" {
					req.SetBasicAuth(user, pass)
				}
				rec := httptest.NewRecorder()
				e.node.Proxy().ServeHTTP(rec, req)
				return rec
			}
			// The node polls every 20 ms.
			gomega.NewWithT(t).Eventually(func() int { return call("", "").Code }).
				WithTimeout(10 * time.Second).WithPolling(5 * time.Millisecond).Should(gomega.Equal(401))
			if rec := call("alice", "new"); rec.Code != 200 || rec.Header().Get("X-User") != "alice" {
				t.Errorf("proxy with the patched password = %d %v", rec.Code, rec.Header())
			}
			if rec := call("alice", "pw"); rec.Code != 401 {
				t.Errorf("proxy with the old password = %d", rec.Code)
			}
			// Deleting the consumer deletes its credentials.
			if code, _ := e.do(t, "DELETE", "/consumers/alice", ""); code != 204 {
				t.Fatalf("DELETE consumer = %d", code)
			}
			for _, p := range []string{"/key-auths", "/basic-auths", "/acls", "/jwts", "/hmac-auths"} {
				if _, body := e.do(t, "GET", p, ""); len(body["data"].([]any)) != 0 {
					t.Errorf("%s after consumer delete = %v", p, body["data"])
				}
			}
			// Only the route's plugin is left: the consumer's went with it.
			if _, body := e.do(t, "GET", "/plugins", ""); len(body["data"].([]any)) != 1 {
				t.Errorf("plugins after consumer delete = %v", body["data"])
			}
		})
	}
}

func newEnvOn(t *testing.T, b store.Backend) *env {
	t.Helper()
	up := upstreamFunc(func(r *http.Request) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{"X-User": {r.Header.Get("X-Consumer-Username")}},
			Body: http.NoBody, Request: r}
	})
	n, err := sim.NewNode(sim.Options{Database: sim.DatabasePostgres, Backend: b, Logger: quietLogger(),
		UpdateFrequency: 20 * time.Millisecond, ProxyTransport: up})
	if err != nil {
		t.Fatal(err)
	}
	return &env{node: n, http: &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())}}
}

// TestPluginSchemaChecks covers Kong's checks of the executed plugins'
// configurations.
func TestPluginSchemaChecks(t *testing.T) {
	e := newEnv(t, dbmode)
	for _, tc := range []struct {
		body, want string
	}{
		{`{"name":"rate-limiting","config":{"minute":0}}`, "value must be greater than 0"},
		{`{"name":"rate-limiting","config":{}}`, "at least one of these fields must be non-empty"},
		{`{"name":"rate-limiting","config":{"minute":1,"limit_by":"header"}}`, "failed conditional validation given value of field 'config.limit_by'"},
		{`{"name":"ip-restriction","config":{"allow":["10.0.0.300"]}}`, "invalid ip or cidr range: '10.0.0.300'"},
		{`{"name":"request-termination","config":{"message":"x","body":"y"}}`, "message cannot be used with content_type or body"},
		{`{"name":"request-termination","config":{"content_type":"text/plain"}}`, "content_type requires a body"},
		{`{"name":"hmac-auth","config":{"algorithms":["md5"]}}`, "expected one of: hmac-sha1"},
	} {
		code, body := e.do(t, "POST", "/plugins", tc.body)
		if msg, _ := body["message"].(string); code != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("POST %s = %d %q, want 400 with %q", tc.body, code, msg, tc.want)
		}
	}
	code, body := e.do(t, "POST", "/plugins", `{"name":"hmac-auth"}`)
	cfg, _ := body["config"].(map[string]any)
	if code != 201 || cfg["clock_skew"] != 300.0 || len(cfg["algorithms"].([]any)) != 4 || cfg["enforce_headers"] == nil {
		t.Errorf("hmac-auth defaults = %d %v", code, body)
	}
}

// TestCredentialsThroughGoKong drives the credential endpoints with the
// real client, as a controller or decK does.
func TestCredentialsThroughGoKong(t *testing.T) {
	e := newEnv(t, dbmode)
	ctx := context.Background()
	c := e.client
	alice, err := c.Consumers.Create(ctx, &gokong.Consumer{Username: gokong.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	ka, err := c.KeyAuths.Create(ctx, alice.Username, &gokong.KeyAuth{Key: gokong.String("k1")})
	if err != nil || *ka.Key != "k1" || *ka.Consumer.ID != *alice.ID {
		t.Fatalf("KeyAuths.Create = %+v %v", ka, err)
	}
	// With an id, go-kong creates by PUT.
	id := "2b3c4d5e-0000-4000-8000-000000000001"
	if ka, err = c.KeyAuths.Create(ctx, alice.ID, &gokong.KeyAuth{ID: gokong.String(id), Key: gokong.String("k2")}); err != nil || *ka.ID != id {
		t.Fatalf("KeyAuths.Create with id = %+v %v", ka, err)
	}
	if got, err := c.KeyAuths.Get(ctx, alice.Username, gokong.String("k2")); err != nil || *got.ID != id {
		t.Errorf("KeyAuths.Get = %+v %v", got, err)
	}
	if got, err := c.KeyAuths.GetByID(ctx, gokong.String(id)); err != nil || *got.Key != "k2" {
		t.Errorf("KeyAuths.GetByID = %+v %v", got, err)
	}
	if _, err := c.KeyAuths.Create(ctx, alice.Username, &gokong.KeyAuth{Key: gokong.String("k1")}); apiStatus(err) != 409 {
		t.Errorf("duplicate key = %v, want 409", err)
	}
	if all, err := c.KeyAuths.ListAll(ctx); err != nil || len(all) != 2 {
		t.Errorf("KeyAuths.ListAll = %v %v", all, err)
	}
	if _, err := c.KeyAuths.Update(ctx, alice.Username, &gokong.KeyAuth{ID: gokong.String(id), Tags: gokong.StringSlice("t")}); err != nil {
		t.Errorf("KeyAuths.Update = %v", err)
	}
	if err := c.KeyAuths.Delete(ctx, alice.Username, gokong.String("k1")); err != nil {
		t.Errorf("KeyAuths.Delete = %v", err)
	}
	ba, err := c.BasicAuths.Create(ctx, alice.Username, &gokong.BasicAuth{Username: gokong.String("alice"), Password: gokong.String("pw")})
	if err != nil || *ba.Password != basicAuthHash("pw", *alice.ID) {
		t.Errorf("BasicAuths.Create = %+v %v", ba, err)
	}
	if _, err := c.ACLs.Create(ctx, alice.Username, &gokong.ACLGroup{Group: gokong.String("admins")}); err != nil {
		t.Errorf("ACLs.Create = %v", err)
	}
	if groups, _, err := c.ACLs.ListForConsumer(ctx, alice.Username, nil); err != nil || len(groups) != 1 || *groups[0].Group != "admins" {
		t.Errorf("ACLs.ListForConsumer = %v %v", groups, err)
	}
	if j, err := c.JWTAuths.Create(ctx, alice.Username, &gokong.JWTAuth{Key: gokong.String("iss-1"), Secret: gokong.String("s")}); err != nil || *j.Algorithm != "HS256" {
		t.Errorf("JWTAuths.Create = %+v %v", j, err)
	}
	if h, err := c.HMACAuths.Create(ctx, alice.Username, &gokong.HMACAuth{Username: gokong.String("alice-hmac")}); err != nil || h.Secret == nil {
		t.Errorf("HMACAuths.Create = %+v %v", h, err)
	}
	if hs, err := c.HMACAuths.ListAll(ctx); err != nil || len(hs) != 1 {
		t.Errorf("HMACAuths.ListAll = %v %v", hs, err)
	}
}

func TestRootReportsPluginPriorities(t *testing.T) {
	e := newEnv(t, dbless)
	_, root := e.do(t, "GET", "/", "")
	avail, _ := root["plugins"].(map[string]any)["available_on_server"].(map[string]any)
	for name, want := range map[string]float64{"key-auth": 1250, "correlation-id": 100001, "request-termination": 2, "hmac-auth": 1030, "response-ratelimiting": 900} {
		if p, _ := avail[name].(map[string]any); p["priority"] != want {
			t.Errorf("%s priority = %v, want %v", name, p["priority"], want)
		}
	}
}
