package kong_test

import (
	"context"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	gokong "github.com/kong/go-kong/kong"

	sim "konductor.dev/sim/kong"
)

// The Admin API parity check: every function go-kong v0.78.0 has for
// consumers, their credentials (key-auth, basic-auth, jwt, hmac-auth, acl),
// plugins, tags and schemas, and the root's listener list, called through
// go-kong itself against kongsim in both modes. Reads see the same fixture
// in both modes (written through the Admin API in DB mode, loaded with
// POST /config in DB-less mode); writes succeed in DB mode and are refused
// in DB-less mode with Kong's 405 "cannot <verb> '<entities>' entities when
// not using a database".
//
// Out of scope, as Kong Enterprise (or Konnect) features: the plugin
// functions for consumer groups (CreateForConsumerGroup,
// UpdateForConsumerGroup, ListAllForConsumerGroups), workspaces, RBAC, and
// basic-auth's skip_hash option (CreateWithOptions and UpdateWithOptions
// are called without it). The oauth2 and mtls-auth credentials are not
// modelled by kongsim (see the package documentation).

// Fixture ids, the same in both modes.
const (
	pAlice  = "c0000000-0000-4000-8000-000000000001"
	pBob    = "c0000000-0000-4000-8000-000000000002"
	pSvc    = "50000000-0000-4000-8000-000000000001"
	pRoute  = "70000000-0000-4000-8000-000000000001"
	pKey    = "a0000000-0000-4000-8000-000000000001"
	pBasic  = "a0000000-0000-4000-8000-000000000002"
	pJWT    = "a0000000-0000-4000-8000-000000000003"
	pHMAC   = "a0000000-0000-4000-8000-000000000004"
	pACL    = "a0000000-0000-4000-8000-000000000005"
	pOnSvc  = "90000000-0000-4000-8000-000000000001"
	pOnRt   = "90000000-0000-4000-8000-000000000002"
	pOnCons = "90000000-0000-4000-8000-000000000003"
	pNew    = "e0000000-0000-4000-8000-000000000001"
)

// parityFixture is the fixture as a declarative document; in DB mode its
// entities are written one by one through go-kong instead.
const parityFixture = `{"_format_version":"3.0",
"services":[{"id":"` + pSvc + `","name":"s","host":"h.svc","routes":[{"id":"` + pRoute + `","name":"r","paths":["/r"]}]}],
"consumers":[
 {"id":"` + pAlice + `","username":"alice","custom_id":"a-1","tags":["team-a"],
  "keyauth_credentials":[{"id":"` + pKey + `","key":"alice-key","tags":["team-a"]}],
  "basicauth_credentials":[{"id":"` + pBasic + `","username":"alice-b","password":"pw"}],
  "jwt_secrets":[{"id":"` + pJWT + `","key":"alice-iss","secret":"jwt-secret"}],
  "hmacauth_credentials":[{"id":"` + pHMAC + `","username":"alice-h","secret":"hmac-secret"}],
  "acls":[{"id":"` + pACL + `","group":"admins"}]},
 {"id":"` + pBob + `","username":"bob"}],
"plugins":[
 {"id":"` + pOnSvc + `","name":"rate-limiting","service":"` + pSvc + `","config":{"minute":5}},
 {"id":"` + pOnRt + `","name":"correlation-id","route":"` + pRoute + `"},
 {"id":"` + pOnCons + `","name":"rate-limiting","consumer":"` + pAlice + `","config":{"hour":50}}]}`

func seedParityFixture(t *testing.T, e *env, m mode) {
	t.Helper()
	ctx := context.Background()
	if m == dbless {
		if code, body := e.do(t, http.MethodPost, "/config", parityFixture); code != http.StatusCreated {
			t.Fatalf("POST /config: %d %v", code, body)
		}
		return
	}
	s := gokong.String
	steps := []func() error{
		func() error {
			_, err := e.client.Services.Create(ctx, &gokong.Service{ID: s(pSvc), Name: s("s"), Host: s("h.svc")})
			return err
		},
		func() error {
			_, err := e.client.Routes.CreateInService(ctx, s(pSvc), &gokong.Route{ID: s(pRoute), Name: s("r"), Paths: gokong.StringSlice("/r")})
			return err
		},
		func() error {
			_, err := e.client.Consumers.Create(ctx, &gokong.Consumer{ID: s(pAlice), Username: s("alice"), CustomID: s("a-1"), Tags: gokong.StringSlice("team-a")})
			return err
		},
		func() error {
			_, err := e.client.Consumers.Create(ctx, &gokong.Consumer{ID: s(pBob), Username: s("bob")})
			return err
		},
		func() error {
			_, err := e.client.KeyAuths.Create(ctx, s("alice"), &gokong.KeyAuth{ID: s(pKey), Key: s("alice-key"), Tags: gokong.StringSlice("team-a")})
			return err
		},
		func() error {
			_, err := e.client.BasicAuths.Create(ctx, s("alice"), &gokong.BasicAuth{ID: s(pBasic), Username: s("alice-b"), Password: s("pw")})
			return err
		},
		func() error {
			_, err := e.client.JWTAuths.Create(ctx, s("alice"), &gokong.JWTAuth{ID: s(pJWT), Key: s("alice-iss"), Secret: s("jwt-secret")})
			return err
		},
		func() error {
			_, err := e.client.HMACAuths.Create(ctx, s("alice"), &gokong.HMACAuth{ID: s(pHMAC), Username: s("alice-h"), Secret: s("hmac-secret")})
			return err
		},
		func() error {
			_, err := e.client.ACLs.Create(ctx, s("alice"), &gokong.ACLGroup{ID: s(pACL), Group: s("admins")})
			return err
		},
		func() error {
			_, err := e.client.Plugins.Create(ctx, &gokong.Plugin{ID: s(pOnSvc), Name: s("rate-limiting"),
				Service: &gokong.Service{ID: s(pSvc)}, Config: gokong.Configuration{"minute": 5}})
			return err
		},
		func() error {
			_, err := e.client.Plugins.Create(ctx, &gokong.Plugin{ID: s(pOnRt), Name: s("correlation-id"), Route: &gokong.Route{ID: s(pRoute)}})
			return err
		},
		func() error {
			_, err := e.client.Plugins.Create(ctx, &gokong.Plugin{ID: s(pOnCons), Name: s("rate-limiting"),
				Consumer: &gokong.Consumer{ID: s(pAlice)}, Config: gokong.Configuration{"hour": 50}})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("seeding step %d: %v", i, err)
		}
	}
}

// parityCase is one go-kong function. A write names the verb and the
// entities of Kong's DB-less refusal; run checks what DB mode answers and
// returns go-kong's error unchecked, for the DB-less check of a write.
type parityCase struct {
	name       string
	verb, coll string // set for writes
	run        func(t *testing.T, ctx context.Context, c *gokong.Client) error
}

func eq[T comparable](t *testing.T, what string, got *T, want T) {
	t.Helper()
	if got == nil || *got != want {
		var g any = "<nil>"
		if got != nil {
			g = *got
		}
		t.Fatalf("%s = %v, want %v", what, g, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func notFound(t *testing.T, err error) {
	t.Helper()
	if !gokong.IsNotFoundErr(err) {
		t.Fatalf("want a not-found error, got %v", err)
	}
}

var s = gokong.String

// parityReads work in both modes, on the fixture.
var parityReads = []parityCase{
	// Consumers.
	{name: "Consumers.Get by username", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Consumers.Get(ctx, s("alice"))
		must(t, err)
		eq(t, "id", got.ID, pAlice)
		eq(t, "custom_id", got.CustomID, "a-1")
		if len(got.Tags) != 1 || *got.Tags[0] != "team-a" {
			t.Fatalf("tags %v", got.Tags)
		}
		_, err = c.Consumers.Get(ctx, s("nobody"))
		notFound(t, err)
		return nil
	}},
	{name: "Consumers.Get by id", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Consumers.Get(ctx, s(pBob))
		must(t, err)
		eq(t, "username", got.Username, "bob")
		return nil
	}},
	{name: "Consumers.GetByCustomID", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Consumers.GetByCustomID(ctx, s("a-1"))
		must(t, err)
		eq(t, "id", got.ID, pAlice)
		_, err = c.Consumers.GetByCustomID(ctx, s("nope"))
		notFound(t, err)
		return nil
	}},
	{name: "Consumers.List paginates and filters by tag", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		page, next, err := c.Consumers.List(ctx, &gokong.ListOpt{Size: 1})
		must(t, err)
		if len(page) != 1 || next == nil {
			t.Fatalf("first page %d consumers, next %v", len(page), next)
		}
		page2, next2, err := c.Consumers.List(ctx, next)
		must(t, err)
		if len(page2) != 1 || next2 != nil || *page2[0].ID == *page[0].ID {
			t.Fatalf("second page %v, next %v", page2, next2)
		}
		tagged, _, err := c.Consumers.List(ctx, &gokong.ListOpt{Tags: gokong.StringSlice("team-a")})
		must(t, err)
		if len(tagged) != 1 || *tagged[0].ID != pAlice {
			t.Fatalf("tagged %v", tagged)
		}
		return nil
	}},
	{name: "Consumers.ListAll", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		all, err := c.Consumers.ListAll(ctx)
		must(t, err)
		if len(all) != 2 {
			t.Fatalf("%d consumers", len(all))
		}
		return nil
	}},

	// key-auth.
	{name: "KeyAuths.Get by key and by id", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.KeyAuths.Get(ctx, s("alice"), s("alice-key"))
		must(t, err)
		eq(t, "id", got.ID, pKey)
		eq(t, "consumer.id", got.Consumer.ID, pAlice)
		got, err = c.KeyAuths.Get(ctx, s(pAlice), s(pKey))
		must(t, err)
		eq(t, "key", got.Key, "alice-key")
		_, err = c.KeyAuths.Get(ctx, s("bob"), s("alice-key"))
		notFound(t, err)
		return nil
	}},
	{name: "KeyAuths.GetByID", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.KeyAuths.GetByID(ctx, s(pKey))
		must(t, err)
		eq(t, "key", got.Key, "alice-key")
		return nil
	}},
	{name: "KeyAuths.List, ListAll, ListForConsumer", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		page, _, err := c.KeyAuths.List(ctx, nil)
		must(t, err)
		all, err := c.KeyAuths.ListAll(ctx)
		must(t, err)
		mine, _, err := c.KeyAuths.ListForConsumer(ctx, s("alice"), nil)
		must(t, err)
		none, _, err := c.KeyAuths.ListForConsumer(ctx, s("bob"), nil)
		must(t, err)
		if len(page) != 1 || len(all) != 1 || len(mine) != 1 || len(none) != 0 || *mine[0].ID != pKey {
			t.Fatalf("list %d, all %d, alice %d, bob %d", len(page), len(all), len(mine), len(none))
		}
		_, _, err = c.KeyAuths.ListForConsumer(ctx, s("nobody"), nil)
		notFound(t, err)
		return nil
	}},

	// basic-auth: the password is served hashed.
	{name: "BasicAuths.Get by username and by id", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.BasicAuths.Get(ctx, s("alice"), s("alice-b"))
		must(t, err)
		eq(t, "id", got.ID, pBasic)
		if got.Password == nil || *got.Password == "pw" {
			t.Fatalf("password served as %v, want Kong's hash", got.Password)
		}
		got, err = c.BasicAuths.GetByID(ctx, s(pBasic))
		must(t, err)
		eq(t, "username", got.Username, "alice-b")
		return nil
	}},
	{name: "BasicAuths.List, ListAll, ListForConsumer", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		page, _, err := c.BasicAuths.List(ctx, nil)
		must(t, err)
		all, err := c.BasicAuths.ListAll(ctx)
		must(t, err)
		mine, _, err := c.BasicAuths.ListForConsumer(ctx, s("alice"), nil)
		must(t, err)
		if len(page) != 1 || len(all) != 1 || len(mine) != 1 {
			t.Fatalf("list %d, all %d, alice %d", len(page), len(all), len(mine))
		}
		return nil
	}},

	// jwt.
	{name: "JWTAuths.Get by key and by id", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.JWTAuths.Get(ctx, s("alice"), s("alice-iss"))
		must(t, err)
		eq(t, "id", got.ID, pJWT)
		eq(t, "algorithm", got.Algorithm, "HS256")
		eq(t, "secret", got.Secret, "jwt-secret")
		got, err = c.JWTAuths.GetByID(ctx, s(pJWT))
		must(t, err)
		eq(t, "key", got.Key, "alice-iss")
		return nil
	}},
	{name: "JWTAuths.List, ListAll, ListForConsumer", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		page, _, err := c.JWTAuths.List(ctx, nil)
		must(t, err)
		all, err := c.JWTAuths.ListAll(ctx)
		must(t, err)
		mine, _, err := c.JWTAuths.ListForConsumer(ctx, s("alice"), nil)
		must(t, err)
		if len(page) != 1 || len(all) != 1 || len(mine) != 1 {
			t.Fatalf("list %d, all %d, alice %d", len(page), len(all), len(mine))
		}
		return nil
	}},

	// hmac-auth.
	{name: "HMACAuths.Get by username and by id", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.HMACAuths.Get(ctx, s("alice"), s("alice-h"))
		must(t, err)
		eq(t, "id", got.ID, pHMAC)
		eq(t, "secret", got.Secret, "hmac-secret")
		got, err = c.HMACAuths.GetByID(ctx, s(pHMAC))
		must(t, err)
		eq(t, "username", got.Username, "alice-h")
		return nil
	}},
	{name: "HMACAuths.List, ListAll, ListForConsumer", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		page, _, err := c.HMACAuths.List(ctx, nil)
		must(t, err)
		all, err := c.HMACAuths.ListAll(ctx)
		must(t, err)
		mine, _, err := c.HMACAuths.ListForConsumer(ctx, s("alice"), nil)
		must(t, err)
		if len(page) != 1 || len(all) != 1 || len(mine) != 1 {
			t.Fatalf("list %d, all %d, alice %d", len(page), len(all), len(mine))
		}
		return nil
	}},

	// acl: a group is found by name under its consumer.
	{name: "ACLs.Get by group and by id", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.ACLs.Get(ctx, s("alice"), s("admins"))
		must(t, err)
		eq(t, "id", got.ID, pACL)
		got, err = c.ACLs.GetByID(ctx, s(pACL))
		must(t, err)
		eq(t, "group", got.Group, "admins")
		_, err = c.ACLs.Get(ctx, s("bob"), s("admins"))
		notFound(t, err)
		return nil
	}},
	{name: "ACLs.List, ListAll, ListForConsumer", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		page, _, err := c.ACLs.List(ctx, nil)
		must(t, err)
		all, err := c.ACLs.ListAll(ctx)
		must(t, err)
		mine, _, err := c.ACLs.ListForConsumer(ctx, s("alice"), nil)
		must(t, err)
		if len(page) != 1 || len(all) != 1 || len(mine) != 1 {
			t.Fatalf("list %d, all %d, alice %d", len(page), len(all), len(mine))
		}
		return nil
	}},

	// Plugins.
	{name: "Plugins.Get", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.Get(ctx, s(pOnSvc))
		must(t, err)
		eq(t, "name", got.Name, "rate-limiting")
		eq(t, "service.id", got.Service.ID, pSvc)
		if got.Config["minute"] != float64(5) || got.Enabled == nil || !*got.Enabled {
			t.Fatalf("config %v enabled %v", got.Config, got.Enabled)
		}
		return nil
	}},
	{name: "Plugins.List and ListAll", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		page, next, err := c.Plugins.List(ctx, &gokong.ListOpt{Size: 2})
		must(t, err)
		if len(page) != 2 || next == nil {
			t.Fatalf("first page %d, next %v", len(page), next)
		}
		all, err := c.Plugins.ListAll(ctx)
		must(t, err)
		if len(all) != 3 {
			t.Fatalf("%d plugins", len(all))
		}
		return nil
	}},
	{name: "Plugins.ListAllForConsumer, ForService, ForRoute", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		for _, l := range []struct {
			list func(context.Context, *string) ([]*gokong.Plugin, error)
			key  string
			want string
		}{
			{c.Plugins.ListAllForConsumer, "alice", pOnCons},
			{c.Plugins.ListAllForConsumer, pAlice, pOnCons},
			{c.Plugins.ListAllForService, "s", pOnSvc},
			{c.Plugins.ListAllForRoute, pRoute, pOnRt},
			{c.Plugins.ListAllForRoute, "r", pOnRt},
		} {
			got, err := l.list(ctx, s(l.key))
			must(t, err)
			if len(got) != 1 || *got[0].ID != l.want {
				t.Fatalf("plugins of %s: %v", l.key, got)
			}
		}
		got, err := c.Plugins.ListAllForConsumer(ctx, s("bob"))
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("bob has %d plugins", len(got))
		}
		return nil
	}},
	{name: "Plugins.GetFullSchema", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		sch, err := c.Plugins.GetFullSchema(ctx, s("key-auth"))
		must(t, err)
		if !schemaHasField(sch, "config") || !schemaHasField(sch, "protocols") {
			t.Fatalf("key-auth schema lacks config or protocols: %v", sch)
		}
		_, err = c.Plugins.GetFullSchema(ctx, s("no-such-plugin"))
		notFound(t, err)
		return nil
	}},
	{name: "Plugins.GetSchema (deprecated)", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		// GET /plugins/schema/{name} serves the config record alone.
		sch, err := c.Plugins.GetSchema(ctx, s("key-auth"))
		must(t, err)
		if !schemaHasField(sch, "key_names") || schemaHasField(sch, "config") {
			t.Fatalf("key-auth config schema: %v", sch)
		}
		_, err = c.Plugins.GetSchema(ctx, s("no-such-plugin"))
		notFound(t, err)
		return nil
	}},
	{name: "Plugins.Validate", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		ok, msg, err := c.Plugins.Validate(ctx, &gokong.Plugin{Name: s("rate-limiting"), Config: gokong.Configuration{"minute": 10}})
		must(t, err)
		if !ok {
			t.Fatalf("valid plugin refused: %s", msg)
		}
		ok, msg, err = c.Plugins.Validate(ctx, &gokong.Plugin{Name: s("rate-limiting"), Config: gokong.Configuration{"minute": "ten"}})
		must(t, err)
		if ok || !strings.Contains(msg, "minute") {
			t.Fatalf("invalid plugin: ok %v, message %q", ok, msg)
		}
		ok, _, err = c.Plugins.Validate(ctx, &gokong.Plugin{Name: s("no-such-plugin")})
		must(t, err)
		if ok {
			t.Fatalf("unknown plugin validated")
		}
		return nil
	}},

	// Tags.
	{name: "Tags.Exists", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		ok, err := c.Tags.Exists(ctx)
		must(t, err)
		if !ok {
			t.Fatalf("Kong 3 serves /tags")
		}
		return nil
	}},

	// Schemas.
	{name: "Schemas.Get", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		for _, entity := range []string{"consumers", "plugins", "keyauth_credentials", "basicauth_credentials",
			"jwt_secrets", "hmacauth_credentials", "acls"} {
			sch, err := c.Schemas.Get(ctx, entity)
			must(t, err)
			if !schemaHasField(sch, "id") {
				t.Fatalf("schema of %s has no id field: %v", entity, sch)
			}
		}
		_, err := c.Schemas.Get(ctx, "no_such_entities")
		notFound(t, err)
		return nil
	}},
	{name: "Schemas.Validate", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		ok, msg, err := c.Schemas.Validate(ctx, gokong.EntityTypeConsumers, &gokong.Consumer{Username: s("carol")})
		must(t, err)
		if !ok {
			t.Fatalf("valid consumer refused: %s", msg)
		}
		ok, msg, err = c.Schemas.Validate(ctx, gokong.EntityTypeConsumers, &gokong.Consumer{Tags: gokong.StringSlice("x")})
		must(t, err)
		if ok || msg == "" {
			t.Fatalf("consumer without username or custom_id: ok %v, message %q", ok, msg)
		}
		return nil
	}},

	// The root's listener lists.
	{name: "Listeners", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		proxies, streams, err := c.Listeners(ctx)
		must(t, err)
		// Kong's default proxy_listen. Kong keys a backlog given by its
		// text ("backlog=16384": true), so go-kong's Backlog, keyed by the
		// pattern "backlog=%d+", reads false.
		want := []gokong.ProxyListener{
			{Listener: "0.0.0.0:8000 reuseport backlog=16384", IP: "0.0.0.0", Port: 8000, ReusePort: true},
			{Listener: "0.0.0.0:8443 ssl http2 reuseport backlog=16384", IP: "0.0.0.0", Port: 8443, SSL: true, HTTP2: true, ReusePort: true},
		}
		if !slices.Equal(proxies, want) || len(streams) != 0 {
			t.Fatalf("proxy listeners %+v, stream listeners %+v", proxies, streams)
		}
		return nil
	}},
}

func schemaHasField(sch gokong.Schema, name string) bool {
	fields, _ := sch["fields"].([]any)
	for _, f := range fields {
		if m, ok := f.(map[string]any); ok {
			if _, ok := m[name]; ok {
				return true
			}
		}
	}
	return false
}

// parityWrites succeed in DB mode (each on a fresh fixture) and are
// refused in DB-less mode.
var parityWrites = []parityCase{
	// Consumers.
	{name: "Consumers.Create", verb: "create", coll: "consumers", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Consumers.Create(ctx, &gokong.Consumer{Username: s("carol")})
		if err != nil {
			return err
		}
		if got.ID == nil || got.CreatedAt == nil {
			t.Fatalf("created %+v", got)
		}
		_, err = c.Consumers.Create(ctx, &gokong.Consumer{Username: s("carol")})
		if apiStatus(err) != http.StatusConflict {
			t.Fatalf("duplicate username: %v", err)
		}
		return nil
	}},
	{name: "Consumers.Create with id", verb: "create or update", coll: "consumers", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Consumers.Create(ctx, &gokong.Consumer{ID: s(pNew), CustomID: s("c-9")})
		if err != nil {
			return err
		}
		eq(t, "id", got.ID, pNew)
		return nil
	}},
	{name: "Consumers.Update", verb: "update", coll: "consumers", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Consumers.Update(ctx, &gokong.Consumer{ID: s(pAlice), CustomID: s("a-2")})
		if err != nil {
			return err
		}
		eq(t, "username", got.Username, "alice")
		eq(t, "custom_id", got.CustomID, "a-2")
		return nil
	}},
	{name: "Consumers.Delete", verb: "remove", coll: "consumers", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		if err := c.Consumers.Delete(ctx, s("alice")); err != nil {
			return err
		}
		// The consumer's credentials and plugins go with it.
		_, err := c.KeyAuths.GetByID(ctx, s(pKey))
		notFound(t, err)
		_, err = c.Plugins.Get(ctx, s(pOnCons))
		notFound(t, err)
		return nil
	}},

	// key-auth.
	{name: "KeyAuths.Create", verb: "create", coll: "keyauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.KeyAuths.Create(ctx, s("bob"), &gokong.KeyAuth{})
		if err != nil {
			return err
		}
		if got.Key == nil || *got.Key == "" {
			t.Fatalf("no key generated: %+v", got)
		}
		eq(t, "consumer.id", got.Consumer.ID, pBob)
		_, err = c.KeyAuths.Create(ctx, s("bob"), &gokong.KeyAuth{Key: s("alice-key")})
		if apiStatus(err) != http.StatusConflict {
			t.Fatalf("duplicate key: %v", err)
		}
		return nil
	}},
	{name: "KeyAuths.Create with id", verb: "create or update", coll: "keyauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.KeyAuths.Create(ctx, s("bob"), &gokong.KeyAuth{ID: s(pNew), Key: s("bob-key")})
		if err != nil {
			return err
		}
		eq(t, "id", got.ID, pNew)
		return nil
	}},
	{name: "KeyAuths.Update", verb: "update", coll: "keyauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.KeyAuths.Update(ctx, s("alice"), &gokong.KeyAuth{ID: s(pKey), Key: s("alice-key-2")})
		if err != nil {
			return err
		}
		eq(t, "key", got.Key, "alice-key-2")
		return nil
	}},
	{name: "KeyAuths.Delete", verb: "remove", coll: "keyauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		if err := c.KeyAuths.Delete(ctx, s("alice"), s("alice-key")); err != nil {
			return err
		}
		_, err := c.KeyAuths.GetByID(ctx, s(pKey))
		notFound(t, err)
		return nil
	}},

	// basic-auth.
	{name: "BasicAuths.Create", verb: "create", coll: "basicauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.BasicAuths.Create(ctx, s("bob"), &gokong.BasicAuth{Username: s("bob-b"), Password: s("pw")})
		if err != nil {
			return err
		}
		if got.Password == nil || *got.Password == "pw" {
			t.Fatalf("password not hashed: %v", got.Password)
		}
		return nil
	}},
	{name: "BasicAuths.CreateWithOptions", verb: "create", coll: "basicauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		_, err := c.BasicAuths.CreateWithOptions(ctx, s("bob"), &gokong.BasicAuthOptions{BasicAuth: gokong.BasicAuth{Username: s("bob-c"), Password: s("pw")}})
		return err
	}},
	{name: "BasicAuths.Update", verb: "update", coll: "basicauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		before, err := c.BasicAuths.GetByID(ctx, s(pBasic))
		must(t, err)
		got, err := c.BasicAuths.Update(ctx, s("alice"), &gokong.BasicAuth{ID: s(pBasic), Tags: gokong.StringSlice("t")})
		if err != nil {
			return err
		}
		if *got.Password != *before.Password || len(got.Tags) != 1 {
			t.Fatalf("an update without a password changed it, or lost the tags: %+v", got)
		}
		return nil
	}},
	{name: "BasicAuths.UpdateWithOptions", verb: "update", coll: "basicauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		_, err := c.BasicAuths.UpdateWithOptions(ctx, s("alice"), &gokong.BasicAuthOptions{BasicAuth: gokong.BasicAuth{ID: s(pBasic), Username: s("alice-b2")}})
		return err
	}},
	{name: "BasicAuths.Delete", verb: "remove", coll: "basicauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		return c.BasicAuths.Delete(ctx, s("alice"), s("alice-b"))
	}},

	// jwt.
	{name: "JWTAuths.Create", verb: "create", coll: "jwt_secrets", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.JWTAuths.Create(ctx, s("bob"), &gokong.JWTAuth{})
		if err != nil {
			return err
		}
		if got.Key == nil || got.Secret == nil || got.Algorithm == nil || *got.Algorithm != "HS256" {
			t.Fatalf("defaults not filled: %+v", got)
		}
		return nil
	}},
	{name: "JWTAuths.Update", verb: "update", coll: "jwt_secrets", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.JWTAuths.Update(ctx, s("alice"), &gokong.JWTAuth{ID: s(pJWT), Algorithm: s("HS512")})
		if err != nil {
			return err
		}
		eq(t, "algorithm", got.Algorithm, "HS512")
		eq(t, "key", got.Key, "alice-iss")
		return nil
	}},
	{name: "JWTAuths.Delete", verb: "remove", coll: "jwt_secrets", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		return c.JWTAuths.Delete(ctx, s("alice"), s(pJWT))
	}},

	// hmac-auth.
	{name: "HMACAuths.Create", verb: "create", coll: "hmacauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.HMACAuths.Create(ctx, s("bob"), &gokong.HMACAuth{Username: s("bob-h")})
		if err != nil {
			return err
		}
		if got.Secret == nil || *got.Secret == "" {
			t.Fatalf("no secret generated: %+v", got)
		}
		return nil
	}},
	{name: "HMACAuths.Update", verb: "update", coll: "hmacauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.HMACAuths.Update(ctx, s("alice"), &gokong.HMACAuth{ID: s(pHMAC), Secret: s("new-secret")})
		if err != nil {
			return err
		}
		eq(t, "secret", got.Secret, "new-secret")
		return nil
	}},
	{name: "HMACAuths.Delete", verb: "remove", coll: "hmacauth_credentials", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		return c.HMACAuths.Delete(ctx, s("alice"), s("alice-h"))
	}},

	// acl.
	{name: "ACLs.Create", verb: "create", coll: "acls", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		if _, err := c.ACLs.Create(ctx, s("bob"), &gokong.ACLGroup{Group: s("admins")}); err != nil {
			return err
		}
		// A consumer is in a group once.
		_, err := c.ACLs.Create(ctx, s("bob"), &gokong.ACLGroup{Group: s("admins")})
		if apiStatus(err) != http.StatusConflict {
			t.Fatalf("second membership of one group: %v", err)
		}
		return nil
	}},
	{name: "ACLs.Update", verb: "update", coll: "acls", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.ACLs.Update(ctx, s("alice"), &gokong.ACLGroup{ID: s(pACL), Group: s("ops")})
		if err != nil {
			return err
		}
		eq(t, "group", got.Group, "ops")
		return nil
	}},
	{name: "ACLs.Delete", verb: "remove", coll: "acls", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		if err := c.ACLs.Delete(ctx, s("alice"), s("admins")); err != nil {
			return err
		}
		_, err := c.ACLs.GetByID(ctx, s(pACL))
		notFound(t, err)
		return nil
	}},

	// Plugins.
	{name: "Plugins.Create", verb: "create", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.Create(ctx, &gokong.Plugin{Name: s("key-auth")})
		if err != nil {
			return err
		}
		if got.Config["key_names"] == nil || len(got.Protocols) == 0 {
			t.Fatalf("defaults not filled: %+v", got)
		}
		return nil
	}},
	{name: "Plugins.Create with id", verb: "create or update", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.Create(ctx, &gokong.Plugin{ID: s(pNew), Name: s("cors")})
		if err != nil {
			return err
		}
		eq(t, "id", got.ID, pNew)
		return nil
	}},
	{name: "Plugins.CreateForService", verb: "create", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.CreateForService(ctx, s("s"), &gokong.Plugin{Name: s("cors")})
		if err != nil {
			return err
		}
		eq(t, "service.id", got.Service.ID, pSvc)
		return nil
	}},
	{name: "Plugins.CreateForRoute", verb: "create", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.CreateForRoute(ctx, s("r"), &gokong.Plugin{Name: s("cors")})
		if err != nil {
			return err
		}
		eq(t, "route.id", got.Route.ID, pRoute)
		return nil
	}},
	{name: "Plugins.Update", verb: "update", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.Update(ctx, &gokong.Plugin{ID: s(pOnSvc), Config: gokong.Configuration{"minute": 7}})
		if err != nil {
			return err
		}
		if got.Config["minute"] != float64(7) {
			t.Fatalf("config %v", got.Config)
		}
		return nil
	}},
	{name: "Plugins.UpdateForService", verb: "update", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.UpdateForService(ctx, s("s"), &gokong.Plugin{ID: s(pOnSvc), Enabled: gokong.Bool(false)})
		if err != nil {
			return err
		}
		if got.Enabled == nil || *got.Enabled {
			t.Fatalf("enabled %v", got.Enabled)
		}
		return nil
	}},
	{name: "Plugins.UpdateForRoute", verb: "update", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		got, err := c.Plugins.UpdateForRoute(ctx, s(pRoute), &gokong.Plugin{ID: s(pOnRt), Config: gokong.Configuration{"header_name": "X-Id"}})
		if err != nil {
			return err
		}
		if got.Config["header_name"] != "X-Id" {
			t.Fatalf("config %v", got.Config)
		}
		return nil
	}},
	{name: "Plugins.Delete", verb: "remove", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		if err := c.Plugins.Delete(ctx, s(pOnCons)); err != nil {
			return err
		}
		_, err := c.Plugins.Get(ctx, s(pOnCons))
		notFound(t, err)
		return nil
	}},
	{name: "Plugins.DeleteForService", verb: "remove", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		return c.Plugins.DeleteForService(ctx, s("s"), s(pOnSvc))
	}},
	{name: "Plugins.DeleteForRoute", verb: "remove", coll: "plugins", run: func(t *testing.T, ctx context.Context, c *gokong.Client) error {
		return c.Plugins.DeleteForRoute(ctx, s("r"), s(pOnRt))
	}},
}

func TestGoKongParity(t *testing.T) {
	ctx := context.Background()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			e := newEnv(t, m)
			seedParityFixture(t, e, m)
			for _, tc := range parityReads {
				t.Run(tc.name, func(t *testing.T) {
					if err := tc.run(t, ctx, e.client); err != nil {
						t.Fatalf("unexpected error: %v", err)
					}
				})
			}
			for _, tc := range parityWrites {
				t.Run(tc.name, func(t *testing.T) {
					// Each write starts from the fixture.
					e := newEnv(t, m)
					seedParityFixture(t, e, m)
					err := tc.run(t, ctx, e.client)
					if m == dbmode {
						if err != nil {
							t.Fatalf("unexpected error: %v", err)
						}
						return
					}
					// go-kong keeps only the message of an error body.
					apiErr := mustAPIError(t, err, http.StatusMethodNotAllowed)
					want := regexp.MustCompile(`^HTTP status 405 \(message: "cannot ` + tc.verb + ` '` + tc.coll +
						`' entities( by '[a-z_]+')? when not using a database"\)$`)
					if !want.MatchString(apiErr.Error()) {
						t.Fatalf("DB-less refusal %q, want %s", apiErr.Error(), want)
					}
				})
			}
		})
	}
}

// The root's listener lists follow the node's listen settings as Kong
// parses them.
func TestRootListeners(t *testing.T) {
	for _, tc := range []struct {
		name          string
		proxy, stream string
		wantProxy     []gokong.ProxyListener
		wantStream    []gokong.StreamListener
		wantErr       bool
	}{
		{name: "flags in Kong's order, IPv6 bracketed", proxy: "[::]:8443 reuseport http2 ssl, 127.0.0.1:8000 proxy_protocol deferred bind",
			stream: "0.0.0.0:9000 udp, 0.0.0.0:9443 ssl backlog=511",
			wantProxy: []gokong.ProxyListener{
				{Listener: "[::]:8443 ssl http2 reuseport", IP: "[::]", Port: 8443, SSL: true, HTTP2: true, ReusePort: true},
				{Listener: "127.0.0.1:8000 proxy_protocol deferred bind", IP: "127.0.0.1", Port: 8000, ProxyProtocol: true, Deferred: true, Bind: true},
			},
			wantStream: []gokong.StreamListener{
				{Listener: "0.0.0.0:9000 udp", IP: "0.0.0.0", Port: 9000, UDP: true},
				{Listener: "0.0.0.0:9443 ssl backlog=511", IP: "0.0.0.0", Port: 9443, SSL: true},
			}},
		{name: "off", proxy: "off", stream: "off", wantProxy: []gokong.ProxyListener{}, wantStream: []gokong.StreamListener{}},
		{name: "no port", proxy: "0.0.0.0 ssl", wantErr: true},
		{name: "unknown flag", proxy: "0.0.0.0:8000 fast", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := sim.NewNode(sim.Options{ProxyListen: tc.proxy, StreamListen: tc.stream, Logger: quietLogger()})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "proxy_listen") {
					t.Fatalf("NewNode: %v, want a proxy_listen error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			base := "http://kong-0:8001"
			c, err := gokong.NewClient(&base, &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())})
			if err != nil {
				t.Fatal(err)
			}
			proxies, streams, err := c.Listeners(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(proxies, tc.wantProxy) || !slices.Equal(streams, tc.wantStream) {
				t.Fatalf("proxy %+v\nstream %+v", proxies, streams)
			}
		})
	}
}

// GET /tags lists every tag of every entity, paginated; GET /tags/{tag}
// those of one tag.
func TestTagsListing(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			e := newEnv(t, m)
			seedParityFixture(t, e, m)
			code, body := e.do(t, http.MethodGet, "/tags/team-a", "")
			want := []any{
				map[string]any{"entity_name": "consumers", "entity_id": pAlice, "tag": "team-a"},
				map[string]any{"entity_name": "keyauth_credentials", "entity_id": pKey, "tag": "team-a"},
			}
			if code != http.StatusOK || !reflect.DeepEqual(body["data"], want) || body["next"] != nil {
				t.Fatalf("GET /tags/team-a = %d %v", code, body)
			}
			code, body = e.do(t, http.MethodGet, "/tags?size=1", "")
			if code != http.StatusOK || len(body["data"].([]any)) != 1 || body["offset"] == nil {
				t.Fatalf("GET /tags?size=1 = %d %v", code, body)
			}
			code, body = e.do(t, http.MethodGet, "/tags?size=1&offset="+body["offset"].(string), "")
			if code != http.StatusOK || !reflect.DeepEqual(body["data"], want[1:]) || body["next"] != nil {
				t.Fatalf("second page = %d %v", code, body)
			}
			if code, _ := e.do(t, http.MethodPost, "/tags", "{}"); code != http.StatusMethodNotAllowed {
				t.Fatalf("POST /tags = %d", code)
			}
			if code, _ := e.do(t, http.MethodGet, "/tags/a,b", ""); code != http.StatusBadRequest {
				t.Fatalf("GET /tags/a,b = %d", code)
			}
		})
	}
}
