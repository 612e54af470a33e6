package kong_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	gokong "github.com/kong/go-kong/kong"
)

var ctx = context.Background()

func TestServiceAndRouteCRUD(t *testing.T) {
	e := newEnv(t, dbmode)
	svc, err := e.client.Services.Create(ctx, &gokong.Service{Name: gokong.String("echo"), Host: gokong.String("echo.svc")})
	if err != nil {
		t.Fatal(err)
	}
	if *svc.Port != 80 || *svc.Protocol != "http" || *svc.Retries != 5 || *svc.ReadTimeout != 60000 || svc.ID == nil || svc.CreatedAt == nil {
		t.Errorf("created service = %+v", svc)
	}
	got, err := e.client.Services.Get(ctx, svc.ID)
	if err != nil || *got.Name != "echo" {
		t.Fatalf("get by id: %v %v", got, err)
	}
	got, err = e.client.Services.Get(ctx, gokong.String("echo"))
	if err != nil || *got.ID != *svc.ID {
		t.Fatalf("get by name: %v %v", got, err)
	}
	svc.Port = gokong.Int(8080)
	upd, err := e.client.Services.Update(ctx, &gokong.Service{ID: svc.ID, Port: gokong.Int(8080)})
	if err != nil || *upd.Port != 8080 || *upd.Host != "echo.svc" {
		t.Fatalf("patch: %+v %v", upd, err)
	}

	route, err := e.client.Routes.CreateInService(ctx, svc.ID, &gokong.Route{
		Name: gokong.String("r"), Paths: gokong.StringSlice("/echo"), Tags: gokong.StringSlice("a"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !*route.StripPath || *route.PreserveHost || *route.PathHandling != "v0" || *route.HTTPSRedirectStatusCode != 426 ||
		*route.RegexPriority != 0 || !*route.RequestBuffering || !*route.ResponseBuffering ||
		len(route.Protocols) != 2 || *route.Service.ID != *svc.ID {
		t.Errorf("route defaults = %+v", route)
	}
	listed, _, err := e.client.Routes.ListForService(ctx, gokong.String("echo"), nil)
	if err != nil || len(listed) != 1 {
		t.Fatalf("routes of service: %v %v", listed, err)
	}
	back, err := e.client.Services.GetForRoute(ctx, route.ID)
	if err != nil || *back.ID != *svc.ID {
		t.Fatalf("service of route: %v %v", back, err)
	}
	// Create with an id goes through PUT; PUT fully replaces.
	id := "6b3c8a0e-7b1f-4a57-8a43-2f7a3b2f1c11"
	r2, err := e.client.Routes.Create(ctx, &gokong.Route{ID: gokong.String(id), Hosts: gokong.StringSlice("x.com"),
		Service: &gokong.Service{ID: svc.ID}, StripPath: gokong.Bool(false)})
	if err != nil || *r2.ID != id || *r2.StripPath {
		t.Fatalf("PUT create: %+v %v", r2, err)
	}
	r2, err = e.client.Routes.Create(ctx, &gokong.Route{ID: gokong.String(id), Hosts: gokong.StringSlice("y.com")})
	if err != nil || !*r2.StripPath || r2.Service != nil || *r2.Hosts[0] != "y.com" {
		t.Fatalf("PUT replace: %+v %v", r2, err)
	}

	// A service with routes cannot be deleted.
	err = e.client.Services.Delete(ctx, svc.ID)
	mustAPIError(t, err, http.StatusBadRequest)
	if !strings.Contains(err.Error(), "an existing 'routes' entity references this 'services' entity") {
		t.Errorf("delete referenced service: %v", err)
	}
	if err := e.client.Routes.Delete(ctx, gokong.String("r")); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Services.Delete(ctx, gokong.String("echo")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Services.Get(ctx, svc.ID); !gokong.IsNotFoundErr(err) {
		t.Errorf("deleted service still found: %v", err)
	}
	// Deleting what is absent is 204.
	if err := e.client.Services.Delete(ctx, gokong.String("echo")); err != nil {
		t.Errorf("delete absent: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	e := newEnv(t, dbmode)
	if _, err := e.client.Services.Create(ctx, &gokong.Service{Name: gokong.String("dup"), Host: gokong.String("h")}); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Services.Create(ctx, &gokong.Service{Name: gokong.String("dup"), Host: gokong.String("h")})
	mustAPIError(t, err, http.StatusConflict)
	code, body := e.do(t, http.MethodPost, "/services", `{"name":"dup","host":"h"}`)
	if code != 409 || body["code"] != 5.0 || body["name"] != "unique constraint violation" || body["message"] != `UNIQUE violation detected on '{name="dup"}'` {
		t.Errorf("409 body = %v", body)
	}
	for _, c := range []struct {
		path, body string
		status     int
		code       float64
		msg        string
	}{
		{"/services", `{"name":"x"}`, 400, 2, "schema violation (host: required field missing)"},
		{"/services", `{"host":"h","port":"x","bogus":1}`, 400, 2, "2 schema violations (bogus: unknown field; port: expected an integer)"},
		{"/routes", `{"name":"r"}`, 400, 2, "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https')"},
		{"/routes", `{"paths":["/a"],"service":{"id":"6b3c8a0e-7b1f-4a57-8a43-2f7a3b2f1c11"}}`, 400, 4,
			`the foreign key '{id="6b3c8a0e-7b1f-4a57-8a43-2f7a3b2f1c11"}' does not reference an existing 'services' entity.`},
		{"/plugins", `{"name":"nope"}`, 400, 2, "schema violation (name: plugin 'nope' not enabled; add it to the 'plugins' configuration property)"},
		{"/plugins", `{"name":"rate-limiting","config":{}}`, 400, 2,
			"schema violation (at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year')"},
	} {
		code, body := e.do(t, http.MethodPost, c.path, c.body)
		if code != c.status || body["code"] != c.code || body["message"] != c.msg {
			t.Errorf("POST %s %s = %d %v, want %d code %v %q", c.path, c.body, code, body, c.status, c.code, c.msg)
		}
	}
	if _, err := e.client.Services.Update(ctx, &gokong.Service{ID: gokong.String("6b3c8a0e-7b1f-4a57-8a43-2f7a3b2f1c11")}); !gokong.IsNotFoundErr(err) {
		t.Errorf("PATCH absent = %v, want 404", err)
	}
}

func TestUpstreamTargetCRUD(t *testing.T) {
	e := newEnv(t, dbmode)
	up, err := e.client.Upstreams.Create(ctx, &gokong.Upstream{Name: gokong.String("echo.default.80.svc")})
	if err != nil {
		t.Fatal(err)
	}
	if *up.Algorithm != "round-robin" || *up.Slots != 10000 || *up.HashOn != "none" || up.Healthchecks == nil ||
		*up.Healthchecks.Active.HTTPPath != "/" {
		t.Errorf("upstream defaults = %+v", up)
	}
	t1, err := e.client.Targets.Create(ctx, up.Name, &gokong.Target{Target: gokong.String("10.0.0.1")})
	if err != nil || *t1.Target != "10.0.0.1:8000" || *t1.Weight != 100 {
		t.Fatalf("target: %+v %v", t1, err)
	}
	if _, err := e.client.Targets.Create(ctx, up.ID, &gokong.Target{Target: gokong.String("10.0.0.1:8000")}); apiStatus(err) != 409 {
		t.Errorf("duplicate target = %v, want 409", err)
	}
	// Create with id: go-kong PUTs (404 when absent), then POSTs.
	id := "0e1d6c43-8f51-4b73-9a2b-8c7f1e2d3a4b"
	t2, err := e.client.Targets.Create(ctx, up.Name, &gokong.Target{ID: gokong.String(id), Target: gokong.String("10.0.0.2:80"), Weight: gokong.Int(0)})
	if err != nil || *t2.ID != id || *t2.Weight != 0 {
		t.Fatalf("target with id: %+v %v", t2, err)
	}
	t2.Weight = gokong.Int(50)
	t2, err = e.client.Targets.Update(ctx, up.Name, gokong.String("10.0.0.2:80"), t2)
	if err != nil || *t2.Weight != 50 {
		t.Fatalf("target update: %+v %v", t2, err)
	}
	list, err := e.client.Targets.ListAll(ctx, up.Name)
	if err != nil || len(list) != 2 {
		t.Fatalf("targets = %v %v", list, err)
	}
	// Deleting the upstream deletes its targets.
	if err := e.client.Upstreams.Delete(ctx, up.Name); err != nil {
		t.Fatal(err)
	}
	up, err = e.client.Upstreams.Create(ctx, &gokong.Upstream{Name: up.Name})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := e.client.Targets.ListAll(ctx, up.Name); err != nil || len(list) != 0 {
		t.Errorf("targets after upstream delete and re-create = %v %v", list, err)
	}
	// Kong 3 serves targets only below their upstream.
	for _, path := range []string{"/targets", "/targets/" + id, "/targets/" + id + "/upstream"} {
		code, body := e.do(t, http.MethodGet, path, "")
		if code != http.StatusNotFound || body["message"] != "Not found" {
			t.Errorf("GET %s = %d %v, want 404 Not found", path, code, body)
		}
	}
}

func TestPluginConsumerCRUD(t *testing.T) {
	e := newEnv(t, dbmode)
	svc, err := e.client.Services.Create(ctx, &gokong.Service{Name: gokong.String("s"), Host: gokong.String("h")})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := e.client.Consumers.Create(ctx, &gokong.Consumer{Username: gokong.String("alice"), CustomID: gokong.String("a-1")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.client.Consumers.Get(ctx, gokong.String("alice")); err != nil || *got.ID != *cons.ID {
		t.Fatalf("consumer by username: %v %v", got, err)
	}
	p, err := e.client.Plugins.CreateForService(ctx, gokong.String("s"), &gokong.Plugin{
		Name: gokong.String("rate-limiting"), Config: gokong.Configuration{"minute": 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Config["policy"] != "local" || p.Config["minute"] != 5.0 || !*p.Enabled || len(p.Protocols) != 4 || *p.Service.ID != *svc.ID {
		t.Errorf("plugin defaults = %+v", p)
	}
	if _, err := e.client.Plugins.CreateForService(ctx, svc.ID, &gokong.Plugin{Name: gokong.String("rate-limiting"), Config: gokong.Configuration{"hour": 1}}); apiStatus(err) != 409 {
		t.Errorf("second rate-limiting on one service = %v, want 409", err)
	}
	p, err = e.client.Plugins.Update(ctx, &gokong.Plugin{ID: p.ID, Config: gokong.Configuration{"hour": 100}})
	if err != nil || p.Config["minute"] != 5.0 || p.Config["hour"] != 100.0 {
		t.Fatalf("plugin patch merges config: %+v %v", p, err)
	}
	cp, err := e.client.Plugins.Create(ctx, &gokong.Plugin{Name: gokong.String("correlation-id"), Consumer: &gokong.Consumer{ID: cons.ID}})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := e.client.Plugins.ListAllForService(ctx, svc.ID)
	if err != nil || len(mine) != 1 {
		t.Fatalf("plugins of service = %v %v", mine, err)
	}
	all, err := e.client.Plugins.ListAll(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("plugins = %v %v", all, err)
	}
	// Plugins go with the entity they hang on; a service with only plugins
	// can be deleted.
	if err := e.client.Consumers.Delete(ctx, cons.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Plugins.Get(ctx, cp.ID); !gokong.IsNotFoundErr(err) {
		t.Errorf("consumer plugin survived its consumer: %v", err)
	}
	if err := e.client.Services.Delete(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	if all, _ := e.client.Plugins.ListAll(ctx); len(all) != 0 {
		t.Errorf("plugins left: %v", all)
	}
}

func TestCertificateSNICRUD(t *testing.T) {
	e := newEnv(t, dbmode)
	cert, key := selfSigned(t, "example.com")
	c, err := e.client.Certificates.Create(ctx, &gokong.Certificate{Cert: gokong.String(cert), Key: gokong.String(key),
		SNIs: gokong.StringSlice("example.com")})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SNIs) != 1 || *c.SNIs[0] != "example.com" {
		t.Errorf("certificate snis = %v", c.SNIs)
	}
	sni, err := e.client.SNIs.Create(ctx, &gokong.SNI{Name: gokong.String("www.example.com"), Certificate: &gokong.Certificate{ID: c.ID}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.Certificates.Get(ctx, c.ID)
	if err != nil || len(got.SNIs) != 2 {
		t.Fatalf("certificate = %+v %v", got, err)
	}
	snis, _, err := e.client.SNIs.ListForCertificate(ctx, c.ID, nil)
	if err != nil || len(snis) != 2 {
		t.Fatalf("snis of certificate = %v %v", snis, err)
	}
	if _, err := e.client.SNIs.Create(ctx, &gokong.SNI{Name: gokong.String("www.example.com"), Certificate: &gokong.Certificate{ID: c.ID}}); apiStatus(err) != 409 {
		t.Errorf("duplicate sni = %v", err)
	}
	if _, err := e.client.SNIs.Update(ctx, &gokong.SNI{ID: sni.ID, Tags: gokong.StringSlice("t")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Certificates.Create(ctx, &gokong.Certificate{Cert: gokong.String("junk"), Key: gokong.String(key)}); apiStatus(err) != 400 {
		t.Errorf("junk certificate = %v", err)
	}
	ca, err := e.client.CACertificates.Create(ctx, &gokong.CACertificate{Cert: gokong.String(cert)})
	if err != nil || ca.CertDigest == nil || len(*ca.CertDigest) != 64 {
		t.Fatalf("ca certificate = %+v %v", ca, err)
	}
	if _, err := e.client.CACertificates.Create(ctx, &gokong.CACertificate{Cert: gokong.String(cert)}); apiStatus(err) != 409 {
		t.Errorf("duplicate ca certificate = %v", err)
	}
	if err := e.client.CACertificates.Delete(ctx, ca.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Certificates.Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if all, _ := e.client.SNIs.ListAll(ctx); len(all) != 0 {
		t.Errorf("snis survived their certificate: %v", all)
	}
}

func TestPaginationAndTags(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			e := newEnv(t, m)
			tags := [][]string{{"a"}, {"a", "b"}, {"b"}, {"c"}, {"a", "b", "c"}}
			if m == dbless {
				var sb strings.Builder
				sb.WriteString(`{"_format_version":"3.0","services":[`)
				for i, tg := range tags {
					b, _ := json.Marshal(tg)
					if i > 0 {
						sb.WriteString(",")
					}
					fmt.Fprintf(&sb, `{"name":"s%d","host":"h%d","tags":%s}`, i, i, b)
				}
				sb.WriteString("]}")
				if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(sb.String()), false, false); err != nil {
					t.Fatal(err)
				}
			} else {
				for i, tg := range tags {
					if _, err := e.client.Services.Create(ctx, &gokong.Service{Name: gokong.String(fmt.Sprintf("s%d", i)),
						Host: gokong.String(fmt.Sprintf("h%d", i)), Tags: gokong.StringSlice(tg...)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			var pages [][]string
			opt := &gokong.ListOpt{Size: 2}
			for opt != nil {
				var page []*gokong.Service
				var err error
				page, opt, err = e.client.Services.List(ctx, opt)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, s := range page {
					names = append(names, *s.Name)
				}
				pages = append(pages, names)
			}
			if len(pages) != 3 || len(pages[0]) != 2 || len(pages[1]) != 2 || len(pages[2]) != 1 {
				t.Errorf("pages = %v", pages)
			}
			all, err := e.client.Services.ListAll(ctx)
			if err != nil || len(all) != 5 {
				t.Fatalf("ListAll = %d %v", len(all), err)
			}
			names := func(opt *gokong.ListOpt) []string {
				var out []string
				for opt != nil {
					page, next, err := e.client.Services.List(ctx, opt)
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range page {
						out = append(out, *s.Name)
					}
					opt = next
				}
				sort.Strings(out)
				return out
			}
			and := names(&gokong.ListOpt{Size: 1, Tags: gokong.StringSlice("a", "b"), MatchAllTags: true})
			or := names(&gokong.ListOpt{Size: 1, Tags: gokong.StringSlice("a", "c")})
			if strings.Join(and, ",") != "s1,s4" || strings.Join(or, ",") != "s0,s1,s3,s4" {
				t.Errorf("AND = %v, OR = %v", and, or)
			}
			code, body := e.do(t, http.MethodGet, "/services?size=2", "")
			if code != 200 || body["offset"] == nil || !strings.HasPrefix(body["next"].(string), "/services?") {
				t.Errorf("first page = %v", body)
			}
			code, body = e.do(t, http.MethodGet, "/services?size=1001", "")
			if code != 400 || body["code"] != 9.0 {
				t.Errorf("size=1001 = %d %v", code, body)
			}
			code, body = e.do(t, http.MethodGet, "/services?offset=!!", "")
			if code != 400 || body["code"] != 7.0 {
				t.Errorf("bad offset = %d %v", code, body)
			}
			code, body = e.do(t, http.MethodGet, "/services?tags=a,b/c", "")
			if code != 400 {
				t.Errorf("mixed tag filter = %d %v", code, body)
			}
			code, body = e.do(t, http.MethodGet, "/routes", "")
			if code != 200 || body["next"] != nil || body["data"] == nil || len(body["data"].([]any)) != 0 {
				t.Errorf("empty list = %v", body)
			}
		})
	}
}

func TestSchemaDefaultsEqualStored(t *testing.T) {
	e := newEnv(t, dbmode)
	for _, c := range []struct{ coll, create string }{
		{"services", `{"host":"h"}`},
		{"routes", `{"paths":["/"]}`},
		{"upstreams", `{"name":"u"}`},
		{"consumers", `{"username":"u"}`},
	} {
		code, stored := e.do(t, http.MethodPost, "/"+c.coll, c.create)
		if code != 201 {
			t.Fatalf("create %s = %d %v", c.coll, code, stored)
		}
		code, schema := e.do(t, http.MethodGet, "/schemas/"+c.coll, "")
		if code != 200 {
			t.Fatalf("schema %s = %d", c.coll, code)
		}
		for _, f := range schema["fields"].([]any) {
			for name, def := range f.(map[string]any) {
				d, ok := def.(map[string]any)["default"]
				if !ok {
					continue
				}
				a, _ := json.Marshal(d)
				b, _ := json.Marshal(stored[name])
				if string(a) != string(b) {
					t.Errorf("%s.%s: schema default %s, stored %s", c.coll, name, a, b)
				}
			}
		}
	}
	code, ps := e.do(t, http.MethodGet, "/schemas/plugins/cors", "")
	if code != 200 || !strings.Contains(fmt.Sprint(ps), "protocols") || !strings.Contains(fmt.Sprint(ps), "config") {
		t.Errorf("plugin schema = %d %v", code, ps)
	}
	sch, err := e.client.Plugins.GetFullSchema(ctx, gokong.String("rate-limiting"))
	if err != nil || sch["fields"] == nil {
		t.Errorf("go-kong plugin schema = %v %v", sch, err)
	}
}

func TestFormBodies(t *testing.T) {
	e := newEnv(t, dbmode)
	post := func(path string, form url.Values) (int, map[string]any) {
		resp, err := e.http.PostForm("http://kong-0:8001"+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, svc := post("/services", url.Values{"name": {"s"}, "url": {"https://example.com:8443/api"}, "retries": {"2"}})
	if code != 201 || svc["port"] != 8443.0 || svc["protocol"] != "https" || svc["path"] != "/api" || svc["retries"] != 2.0 {
		t.Fatalf("form service = %d %v", code, svc)
	}
	code, route := post("/routes", url.Values{"service.name": {"s"}, "paths[]": {"/a", "/b"}, "strip_path": {"false"}, "hosts": {"x.com"}})
	if code != 201 || route["strip_path"] != false || len(route["paths"].([]any)) != 2 || len(route["hosts"].([]any)) != 1 ||
		route["service"].(map[string]any)["id"] != svc["id"] {
		t.Fatalf("form route = %d %v", code, route)
	}
	code, plugin := post("/services/s/plugins", url.Values{"name": {"rate-limiting"}, "config.minute": {"10"}, "config.policy": {"local"}})
	if code != 201 || plugin["config"].(map[string]any)["minute"] != 10.0 {
		t.Fatalf("form plugin = %d %v", code, plugin)
	}
	if code, body := post("/services", url.Values{"host": {"h"}, "port": {"eighty"}}); code != 400 || body["code"] != 2.0 {
		t.Errorf("bad form value = %d %v", code, body)
	}
}
