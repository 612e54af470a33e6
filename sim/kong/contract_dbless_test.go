package kong_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	gokong "github.com/kong/go-kong/kong"

	sim "konductor.dev/sim/kong"
)

func TestRootInfo(t *testing.T) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			e := newEnv(t, m)
			root, err := e.client.Root(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if v := gokong.VersionFromInfo(root); v != "3.9.1" {
				t.Errorf("version = %q, want 3.9.1", v)
			}
			if _, err := gokong.ParseSemanticVersion(gokong.VersionFromInfo(root)); err != nil {
				t.Errorf("version not parseable: %v", err)
			}
			conf := root["configuration"].(map[string]any)
			if conf["database"] != string(m) || conf["router_flavor"] != "traditional_compatible" || conf["role"] != "traditional" {
				t.Errorf("configuration = %v", conf)
			}
			if root["node_id"] != "11111111-2222-3333-4444-555555555555" || root["hostname"] != "kong-0" || root["tagline"] == nil {
				t.Errorf("root = %v", root)
			}
			avail := root["plugins"].(map[string]any)["available_on_server"].(map[string]any)
			for _, p := range []string{"cors", "rate-limiting", "key-auth", "request-transformer", "response-transformer",
				"ip-restriction", "acl", "basic-auth", "jwt", "prometheus", "correlation-id"} {
				if avail[p] == nil {
					t.Errorf("plugin %s not available", p)
				}
			}
		})
	}
}

func TestStatusDBLess(t *testing.T) {
	e := newEnv(t, dbless)
	st, err := e.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.ConfigurationHash != sim.ZeroHash {
		t.Errorf("fresh hash = %q, want zeros", st.ConfigurationHash)
	}
	code, body := e.do(t, http.MethodGet, "/status", "")
	if code != 200 || body["database"] != nil {
		t.Errorf("DB-less /status = %d %v, want no database key", code, body)
	}
}

func TestConfigLoadAndReload(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbless)
	status := func() string {
		st, err := e.client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.ConfigurationHash
	}
	if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(sampleConfig), true, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	h1 := status()
	if len(h1) != 32 || h1 == sim.ZeroHash {
		t.Fatalf("hash after load = %q", h1)
	}
	// Unchanged config (even re-encoded as JSON and wrapped) → 304.
	wrapped, _ := json.Marshal(map[string]string{"config": sampleConfig})
	req, _ := http.NewRequest(http.MethodPost, "http://kong-0:8001/config?check_hash=1", strings.NewReader(string(wrapped)))
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("unchanged config with check_hash: %d, want 304", resp.StatusCode)
	}
	if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(sampleConfig), true, true); err != nil {
		t.Fatalf("reload unchanged: %v", err)
	}
	// Entities are readable through go-kong.
	svc, err := e.client.Services.Get(ctx, gokong.String("default.echo.80"))
	if err != nil {
		t.Fatal(err)
	}
	if *svc.Protocol != "http" || *svc.Retries != 5 || *svc.ConnectTimeout != 60000 {
		t.Errorf("service defaults not filled: %+v", svc)
	}
	routes, err := e.client.Routes.ListAll(ctx)
	if err != nil || len(routes) != 1 || *routes[0].StripPath || *routes[0].PreserveHost {
		t.Fatalf("routes = %v, %v", routes, err)
	}
	targets, err := e.client.Targets.ListAll(ctx, gokong.String("echo.default.80.svc"))
	if err != nil || len(targets) != 2 {
		t.Fatalf("targets = %v, %v", targets, err)
	}
	if got := []string{*targets[0].Target, *targets[1].Target}; !(contains(got, "10.244.0.6:8000") && contains(got, "10.244.0.5:8080")) {
		t.Errorf("targets = %v, want default port 8000 filled", got)
	}
	raw, err := e.client.Config(ctx)
	if err != nil || !strings.Contains(string(raw), "default.echo.80") {
		t.Fatalf("GET /config = %q, %v", raw, err)
	}
	// GET /config round-trips to the same hash.
	if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(string(raw)), false, false); err != nil {
		t.Fatalf("reload exported: %v", err)
	}
	if h := status(); h != h1 {
		t.Errorf("exported config hashes to %s, want %s", h, h1)
	}
	changed := strings.Replace(sampleConfig, "port: 80\n", "port: 8080\n", 1)
	if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(changed), true, true); err != nil {
		t.Fatal(err)
	}
	if h := status(); h == h1 || h == sim.ZeroHash {
		t.Errorf("hash did not change: %s", h)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestInvalidConfigKeepsOldOne(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbless)
	if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(sampleConfig), true, true); err != nil {
		t.Fatal(err)
	}
	before := e.node.ConfigHash()
	bad := `{"_format_version":"3.0","services":[{"name":"a","host":"a.svc","routes":[
	  {"name":"r1","paths":["/ok","nope"]},
	  {"name":"r2"}]},
	  {"name":"b","host":"b.svc","bogus":1}]}`
	err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(bad), true, true)
	apiErr := mustAPIError(t, err, http.StatusBadRequest)
	var body struct {
		Code            int                  `json:"code"`
		Name            string               `json:"name"`
		Message         string               `json:"message"`
		Fields          map[string]any       `json:"fields"`
		FlattenedErrors []sim.FlattenedError `json:"flattened_errors"`
	}
	if err := json.Unmarshal(apiErr.Raw(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Code != 14 || body.Name != "invalid declarative configuration" || !strings.HasPrefix(body.Message, "declarative config is invalid: ") {
		t.Errorf("error head = %d %q %q", body.Code, body.Name, body.Message)
	}
	if body.Fields["services"] == nil {
		t.Errorf("nested fields missing: %v", body.Fields)
	}
	want := map[string]sim.FieldError{
		"r1": {Type: "field", Field: "paths.2", Message: "should start with: / (fixed path) or ~/ (regex path)"},
		"r2": {Type: "entity", Message: "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"},
		"b":  {Type: "field", Field: "bogus", Message: "unknown field"},
	}
	if len(body.FlattenedErrors) != len(want) {
		t.Fatalf("flattened_errors = %+v", body.FlattenedErrors)
	}
	for _, fe := range body.FlattenedErrors {
		w, ok := want[fe.EntityName]
		if !ok || len(fe.Errors) != 1 || fe.Errors[0] != w {
			t.Errorf("flattened error for %q = %+v, want %+v", fe.EntityName, fe.Errors, w)
		}
		if fe.EntityID == "" || fe.Entity == nil || fe.EntityType == "" {
			t.Errorf("flattened error lacks entity identity: %+v", fe)
		}
	}
	if h := e.node.ConfigHash(); h != before {
		t.Errorf("invalid config changed the hash: %s -> %s", before, h)
	}
	if _, err := e.client.Services.Get(ctx, gokong.String("default.echo.80")); err != nil {
		t.Errorf("old config lost: %v", err)
	}
	// Without flatten_errors there is no flattened list.
	code, resp := e.do(t, http.MethodPost, "/config", bad)
	if code != 400 || resp["flattened_errors"] != nil || resp["fields"] == nil {
		t.Errorf("unflattened error = %d %v", code, resp)
	}
	code, resp = e.do(t, http.MethodPost, "/config", "")
	if code != 400 || !strings.Contains(resp["message"].(string), "expected a declarative configuration") {
		t.Errorf("empty body = %d %v", code, resp)
	}
}

func TestDBLessRefusesEntityWrites(t *testing.T) {
	e := newEnv(t, dbless)
	_, err := e.client.Services.Create(context.Background(), &gokong.Service{Name: gokong.String("s"), Host: gokong.String("h")})
	mustAPIError(t, err, http.StatusMethodNotAllowed)
	code, body := e.do(t, http.MethodPost, "/services", `{"host":"h"}`)
	if code != 405 || body["code"] != 12.0 || body["name"] != "operation unsupported" ||
		body["message"] != "cannot create 'services' entities when not using a database" {
		t.Errorf("POST /services in DB-less = %d %v", code, body)
	}
	code, body = e.do(t, http.MethodDelete, "/services/x", "")
	if code != 405 || body["code"] != 12.0 || body["fields"] != nil ||
		body["message"] != "cannot remove 'services' entities by 'name' when not using a database" {
		t.Errorf("DELETE in DB-less = %d %v", code, body)
	}
}

func TestReadiness(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, dbless)
	status := &http.Client{Transport: sim.NewInMemoryTransport(e.node.Status())}
	ready := func() (int, string) {
		resp, err := status.Get("http://kong-0:8100/status/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b["message"]
	}
	if code, msg := ready(); code != 503 || msg != "no configuration available (empty configuration present)" {
		t.Errorf("empty node ready = %d %q", code, msg)
	}
	if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(sampleConfig), false, false); err != nil {
		t.Fatal(err)
	}
	if code, msg := ready(); code != 200 || msg != "ready" {
		t.Errorf("configured node ready = %d %q", code, msg)
	}
	resp, err := status.Post("http://kong-0:8100/status/ready", "application/x-www-form-urlencoded", strings.NewReader("status=draining"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, msg := ready(); code != 503 || msg != "draining" {
		t.Errorf("draining node ready = %d %q", code, msg)
	}
	// An empty configuration makes the node unready again.
	if err := e.client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(`{"_format_version":"3.0"}`), false, false); err != nil {
		t.Fatal(err)
	}
	if e.node.ConfigHash() != sim.ZeroHash {
		t.Errorf("empty config hash = %s", e.node.ConfigHash())
	}
}

func TestRestartStartsEmptyUnlessDeclarativeFile(t *testing.T) {
	n, err := sim.NewNode(sim.Options{})
	if err != nil || n.ConfigHash() != sim.ZeroHash {
		t.Fatalf("fresh node: %v %s", err, n.ConfigHash())
	}
	n, err = sim.NewNode(sim.Options{DeclarativeConfig: []byte(sampleConfig)})
	if err != nil || n.ConfigHash() == sim.ZeroHash {
		t.Fatalf("node with declarative file: %v %s", err, n.ConfigHash())
	}
	if _, err := sim.NewNode(sim.Options{DeclarativeConfig: []byte(`_format_version: "1.0"`)}); err == nil {
		t.Error("invalid declarative file accepted")
	}
}

func TestAuditRecordsWriterAndEpoch(t *testing.T) {
	e := newEnv(t, dbless)
	code, _ := e.do(t, http.MethodPost, "/config", sampleConfig, "X-Konductor-Writer", "ctrl-a", "X-Konductor-Epoch", "7")
	if code != 201 {
		t.Fatalf("load = %d", code)
	}
	e.do(t, http.MethodPost, "/config", "_format_version: '3.0'") // no headers
	a := e.node.Audit()
	if len(a) != 2 || a[0].Writer != "ctrl-a" || a[0].Epoch != 7 || a[0].Hash == sim.ZeroHash ||
		a[1].Writer != "" || a[1].Epoch != 0 || a[1].Hash != sim.ZeroHash || a[0].Method != "POST" || a[0].Path != "/config" {
		t.Fatalf("audit = %+v", a)
	}
	resp, err := e.http.Get("http://kong-0:8001/_kongsim/audit")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []sim.AuditEntry
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || len(got) != 2 || got[0].Writer != "ctrl-a" {
		t.Errorf("GET /_kongsim/audit = %+v, %v", got, err)
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	e := newEnv(t, dbless)
	for _, c := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"GET", "/nope", 404, "Not found"},
		{"GET", "/services/a/nope", 404, "Not found"},
		{"GET", "/services/missing", 404, "Not found"},
		{"DELETE", "/", 405, "Method not allowed"},
		{"PUT", "/config", 405, "Method not allowed"},
		{"PATCH", "/services", 405, "Method not allowed"},
		{"GET", "/schemas/plugins/nope", 404, "No plugin named 'nope'"},
		{"GET", "/schemas/nope", 404, "Not found"},
	} {
		code, body := e.do(t, c.method, c.path, "")
		if code != c.code || body["message"] != c.msg {
			t.Errorf("%s %s = %d %v, want %d %q", c.method, c.path, code, body, c.code, c.msg)
		}
	}
}

func TestConfigAsFormUpload(t *testing.T) {
	e := newEnv(t, dbless)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("config", "kong.yml")
	_, _ = fw.Write([]byte(sampleConfig))
	mw.Close()
	resp, err := e.http.Post("http://kong-0:8001/config", mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || e.node.ConfigHash() == sim.ZeroHash {
		t.Fatalf("multipart upload = %d", resp.StatusCode)
	}
	form := url.Values{"config": {`{"_format_version":"3.0","services":[{"host":"x"}]}`}}
	resp, err = e.http.PostForm("http://kong-0:8001/config", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || e.node.Config().Count() != 1 {
		t.Fatalf("form upload = %d, %d entities", resp.StatusCode, e.node.Config().Count())
	}
	root, err := e.client.Root(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := root["plugins"].(map[string]any)["enabled_in_cluster"].([]any); len(got) != 0 {
		t.Errorf("enabled_in_cluster = %v", got)
	}
}
