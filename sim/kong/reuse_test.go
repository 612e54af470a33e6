package kong

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A node reuses the previous load's entities (declCache). These tests hold
// it to answering exactly as a fresh node that loads the same document.

// model is a declarative document under edit.
type model struct {
	services, routes, upstreams, consumers, plugins, certificates []map[string]any
}

func (m *model) clone() *model {
	c := func(list []map[string]any) []map[string]any {
		out := make([]map[string]any, len(list))
		for i, e := range list {
			out[i] = cloneValue(e).(map[string]any)
		}
		return out
	}
	return &model{c(m.services), c(m.routes), c(m.upstreams), c(m.consumers), c(m.plugins), c(m.certificates)}
}

func (m *model) json() []byte {
	doc := map[string]any{"_format_version": "3.0"}
	for k, v := range map[string][]map[string]any{
		"services": m.services, "routes": m.routes, "upstreams": m.upstreams,
		"consumers": m.consumers, "plugins": m.plugins, "certificates": m.certificates,
	} {
		if len(v) > 0 {
			doc[k] = v
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// fakePEM passes kongsim's certificate and key checks.
func fakePEM(kind string, n int) string {
	return fmt.Sprintf("-----BEGIN %s-----\nAAAA%04d\n-----END %s-----\n", kind, n, kind)
}

// genModel covers what reuse depends on: entities with and without ids
// (ids derived from names, cache keys and content), children nested under
// parents, references by name across collections, and plugins.
func genModel(rng *rand.Rand, services int) *model {
	m := &model{}
	for i := range services {
		svc := map[string]any{"name": fmt.Sprintf("svc-%d", i), "host": fmt.Sprintf("svc-%d.ns.svc", i), "port": 80 + rng.IntN(3)}
		if rng.IntN(2) == 0 {
			svc["id"] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		}
		var routes []any
		for j := range 1 + rng.IntN(2) {
			r := map[string]any{"paths": []any{fmt.Sprintf("/p%d/%d", i, j)}, "hosts": []any{fmt.Sprintf("h%d.example.com", i)}}
			if rng.IntN(3) > 0 {
				r["name"] = fmt.Sprintf("route-%d-%d", i, j)
			}
			if rng.IntN(4) == 0 {
				r["plugins"] = []any{map[string]any{"name": "cors"}}
			}
			routes = append(routes, r)
		}
		svc["routes"] = routes
		if rng.IntN(4) == 0 {
			svc["plugins"] = []any{map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 10}}}
		}
		m.services = append(m.services, svc)
		m.upstreams = append(m.upstreams, map[string]any{
			"name":    fmt.Sprintf("svc-%d.ns.svc", i),
			"targets": []any{map[string]any{"target": fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)}},
		})
	}
	// Top-level entities referencing services by name.
	for i := 0; i < services; i += 3 {
		m.routes = append(m.routes, map[string]any{"name": fmt.Sprintf("top-%d", i), "service": fmt.Sprintf("svc-%d", i), "methods": []any{"GET"}})
	}
	m.plugins = append(m.plugins, map[string]any{"name": "key-auth", "service": "svc-1"})
	m.consumers = append(m.consumers, map[string]any{"username": "alice", "plugins": []any{map[string]any{"name": "rate-limiting", "config": map[string]any{"second": 5}}}})
	m.certificates = append(m.certificates,
		map[string]any{"cert": fakePEM("CERTIFICATE", 1), "key": fakePEM("PRIVATE KEY", 1), "snis": []any{"a.example.com"}},
		map[string]any{"cert": fakePEM("CERTIFICATE", 2), "key": fakePEM("PRIVATE KEY", 2)})
	return m
}

// reuseClock is the nodes' time: tests move it to make loads restamp.
type reuseClock struct{ now time.Time }

func (c *reuseClock) Now() time.Time { return c.now }

func newReuseNode(t *testing.T, clock *reuseClock) *Node {
	t.Helper()
	n, err := NewNode(Options{Now: clock.Now, Logger: slog.New(slog.DiscardHandler), NodeID: "00000000-0000-4000-8000-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func request(t *testing.T, n *Node, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	n.Admin().ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	if cl := rec.Header().Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(b)) {
		t.Fatalf("%s %s: Content-Length %s for a body of %d bytes", method, path, cl, len(b))
	}
	return rec.Code, b
}

// sameAsFresh loads doc into warm (which has loaded earlier documents)
// and into a new node, and requires the same answer and the same state,
// indexes and Admin API reads. It returns whether the load was accepted.
func sameAsFresh(t *testing.T, warm *Node, clock *reuseClock, doc []byte) bool {
	t.Helper()
	fresh := newReuseNode(t, clock)
	before := warm.ConfigHash()
	codeW, bodyW := request(t, warm, http.MethodPost, "/config?flatten_errors=1", doc)
	codeF, bodyF := request(t, fresh, http.MethodPost, "/config?flatten_errors=1", doc)
	if codeW != codeF || !bytes.Equal(bodyW, bodyF) {
		t.Fatalf("POST /config: warm node answered %d %.600s\nfresh node answered %d %.600s", codeW, bodyW, codeF, bodyF)
	}
	if codeW != http.StatusCreated {
		if warm.ConfigHash() != before {
			t.Fatalf("a refused load changed the configuration: %s -> %s", before, warm.ConfigHash())
		}
		return false
	}
	sameState(t, warm.Config(), fresh.Config())
	for _, path := range []string{"/services?size=1000", "/routes?size=1000", "/plugins?size=1000",
		"/upstreams?size=1000", "/targets?size=1000", "/consumers", "/certificates", "/snis", "/services/svc-1/routes"} {
		codeW, bodyW := request(t, warm, http.MethodGet, path, nil)
		codeF, bodyF := request(t, fresh, http.MethodGet, path, nil)
		if codeW != codeF || !bytes.Equal(bodyW, bodyF) {
			t.Fatalf("GET %s: warm node answered %d %.400s\nfresh node answered %d %.400s", path, codeW, bodyW, codeF, bodyF)
		}
	}
	return true
}

// sameState compares everything a State holds: rows with their encodings
// and digests, secondary indexes, sums, and what the proxy is given.
func sameState(t *testing.T, got, want *State) {
	t.Helper()
	if got.Hash() != want.Hash() || got.Count() != want.Count() {
		t.Fatalf("hash/count %s/%d, want %s/%d", got.Hash(), got.Count(), want.Hash(), want.Count())
	}
	if g, w := loadedEntities(got), loadedEntities(want); !bytes.Equal(g, w) {
		t.Fatalf("entities differ:\n got %.800s\nwant %.800s", g, w)
	} else if loadedEntitiesSize(got) != len(g) {
		t.Fatalf("the answer's size is %d bytes, its Content-Length %d", len(g), loadedEntitiesSize(got))
	}
	for _, c := range collections {
		gt, wt := got.tables[c], want.tables[c]
		if gt.sum != wt.sum || gt.encSize(got.stampAt) != wt.encSize(want.stampAt) {
			t.Fatalf("%s: sum/size %v/%d, want %v/%d", c, gt.sum, gt.encSize(got.stampAt), wt.sum, wt.encSize(want.stampAt))
		}
		gr, wr := got.rowsOf(c), want.rowsOf(c)
		for i := range wr {
			g, w := gr[i], wr[i]
			ga, wa := got.stampAt, want.stampAt
			if g.sum != w.sum || !slices.Equal(g.keys, w.keys) || !reflect.DeepEqual(g.entityAt(ga), w.entityAt(wa)) ||
				!bytes.Equal(g.appendEnc(nil, ga), w.appendEnc(nil, wa)) || g.encLen(ga) != w.encLen(wa) ||
				!reflect.DeepEqual(g.wire, w.wire) || g.createdAt(ga) != w.createdAt(wa) {
				t.Fatalf("%s %s: row differs:\n got %+v\nwant %+v", c, w.id, g, w)
			}
		}
		var gk, wk []indexKey
		gt.index.Ascend(func(k indexKey) bool { gk = append(gk, k); return true })
		wt.index.Ascend(func(k indexKey) bool { wk = append(wk, k); return true })
		if !slices.Equal(gk, wk) {
			t.Fatalf("%s: index %v, want %v", c, gk, wk)
		}
	}
	if g, w := got.ProxyConfig(), want.ProxyConfig(); !reflect.DeepEqual(g, w) {
		t.Fatalf("proxy configuration differs:\n got %+v\nwant %+v", g, w)
	}
}

func TestReusedLoadEqualsFreshLoad(t *testing.T) {
	type edit struct {
		name string
		// apply edits the model in place; a nil result keeps the model's
		// own JSON, a non-nil one is sent instead (and the model is
		// restored afterwards).
		apply func(m *model, rng *rand.Rand, clock *reuseClock) []byte
		// refused documents leave the model as it was.
		refused bool
	}
	pick := func(rng *rand.Rand, list []map[string]any) map[string]any { return list[rng.IntN(len(list))] }
	edits := []edit{
		{name: "unchanged document", apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte { return nil }},
		{name: "change a route path", apply: func(m *model, rng *rand.Rand, _ *reuseClock) []byte {
			svc := pick(rng, m.services)
			r := svc["routes"].([]any)[0].(map[string]any)
			r["paths"] = []any{fmt.Sprintf("/changed/%d", rng.IntN(1000))}
			return nil
		}},
		{name: "time passes", apply: func(m *model, _ *rand.Rand, clock *reuseClock) []byte {
			clock.now = clock.now.Add(7 * time.Second)
			return nil
		}},
		{name: "the clock jumps to a time of another width", apply: func(m *model, _ *rand.Rand, clock *reuseClock) []byte {
			// Stamps rendered at the new time are longer or shorter
			// than those the reused rows carry.
			if clock.now.Unix() < 1e10 {
				clock.now = time.Unix(12_345_678_901, 0)
			} else {
				clock.now = time.Unix(1_700_000_000, 0)
			}
			return nil
		}},
		{name: "time passes and a path changes", apply: func(m *model, rng *rand.Rand, clock *reuseClock) []byte {
			clock.now = clock.now.Add(time.Second)
			pick(rng, m.services)["routes"].([]any)[0].(map[string]any)["paths"] = []any{"/moved"}
			return nil
		}},
		{name: "remove an unreferenced service", apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			for i, s := range m.services {
				if s["name"] != "svc-1" && !slices.ContainsFunc(m.routes, func(r map[string]any) bool { return r["service"] == s["name"] }) {
					m.services = slices.Delete(m.services, i, i+1)
					return nil
				}
			}
			return nil
		}},
		{name: "add a service", apply: func(m *model, rng *rand.Rand, _ *reuseClock) []byte {
			n := 1000 + rng.IntN(1000)
			m.services = append(m.services, map[string]any{"name": fmt.Sprintf("new-%d", n), "host": "new.svc",
				"routes": []any{map[string]any{"name": fmt.Sprintf("new-route-%d", n), "paths": []any{"/new"}}}})
			return nil
		}},
		{name: "rename a referenced service (new derived id for its children and referrers)", apply: func(m *model, rng *rand.Rand, _ *reuseClock) []byte {
			for _, s := range m.services {
				old := s["name"]
				if s["id"] != nil || !slices.ContainsFunc(m.routes, func(r map[string]any) bool { return r["service"] == old }) {
					continue
				}
				s["name"] = fmt.Sprintf("renamed-%d", rng.IntN(1e6))
				for _, r := range m.routes {
					if r["service"] == old {
						r["service"] = s["name"]
					}
				}
				return nil
			}
			return nil
		}},
		{name: "point a top-level route at another service", apply: func(m *model, rng *rand.Rand, _ *reuseClock) []byte {
			pick(rng, m.routes)["service"] = pick(rng, m.services)["name"]
			return nil
		}},
		{name: "reorder services", apply: func(m *model, rng *rand.Rand, _ *reuseClock) []byte {
			rng.Shuffle(len(m.services), func(i, j int) { m.services[i], m.services[j] = m.services[j], m.services[i] })
			return nil
		}},
		{name: "duplicate a certificate without id (numbered content id)", apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			m.certificates = append(m.certificates, cloneValue(m.certificates[len(m.certificates)-1]).(map[string]any))
			return nil
		}},
		{name: "drop the duplicate certificate", apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			m.certificates = m.certificates[:2]
			return nil
		}},
		{name: "error: duplicate service name", refused: true, apply: func(m *model, rng *rand.Rand, _ *reuseClock) []byte {
			c := m.clone()
			dup := cloneValue(pick(rng, c.services)).(map[string]any)
			delete(dup, "id")
			c.services = append([]map[string]any{dup}, c.services...)
			return c.json()
		}},
		{name: "error: reference to a missing service", refused: true, apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			c := m.clone()
			c.routes = append(c.routes, map[string]any{"name": "lost", "service": "nowhere", "paths": []any{"/lost"}})
			return c.json()
		}},
		{name: "error: a removed service still referenced", refused: true, apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			c := m.clone()
			for i, s := range c.services {
				if slices.ContainsFunc(c.routes, func(r map[string]any) bool { return r["service"] == s["name"] }) {
					c.services = slices.Delete(c.services, i, i+1)
					break
				}
			}
			return c.json()
		}},
		{name: "error: invalid field in one element", refused: true, apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			c := m.clone()
			c.services[0]["port"] = 70000
			return c.json()
		}},
		{name: "error: malformed JSON after valid elements", refused: true, apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			b := m.json()
			return append(b[:len(b)-1], []byte(`,"services":[}`)...)
		}},
		{name: "the same document as YAML (no reuse)", apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			var v any
			_ = json.Unmarshal(m.json(), &v)
			y, _ := json.MarshalIndent(v, "", "  ")
			return append([]byte("# yaml\n"), y...)
		}},
		{name: "remove everything", apply: func(m *model, _ *rand.Rand, _ *reuseClock) []byte {
			return []byte(`{"_format_version":"3.0"}`)
		}},
	}
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			clock := &reuseClock{now: time.Unix(1_700_000_000, 0)}
			m := genModel(rng, 12)
			warm := newReuseNode(t, clock)
			if !sameAsFresh(t, warm, clock, m.json()) {
				t.Fatal("the generated document was refused")
			}
			// Each edit follows the others, in a seeded order, twice.
			order := append(rng.Perm(len(edits)), rng.Perm(len(edits))...)
			for _, i := range order {
				e := edits[i]
				saved := m.clone()
				doc := e.apply(m, rng, clock)
				if doc == nil {
					doc = m.json()
				} else {
					m = saved
				}
				t.Logf("%s (%d bytes)", e.name, len(doc))
				if accepted := sameAsFresh(t, warm, clock, doc); accepted == e.refused {
					t.Fatalf("%s: accepted = %v", e.name, accepted)
				}
				if e.name == "remove everything" || e.name == "the same document as YAML (no reuse)" {
					// Back to the model, from an emptied or cold cache.
					sameAsFresh(t, warm, clock, m.json())
				}
			}
		})
	}
}

// FuzzDeclarativeReuse loads next three ways, which must agree exactly:
// decoded whole (the path YAML takes), split into elements by a fresh
// node, and split by a node that loaded prev before (reusing what it can).
func FuzzDeclarativeReuse(f *testing.F) {
	base := genModel(rand.New(rand.NewPCG(7, 0)), 4)
	edited := base.clone()
	edited.services[1]["routes"].([]any)[0].(map[string]any)["paths"] = []any{"/edited"}
	edited.services[2]["name"] = "svc-renamed"
	f.Add(base.json(), edited.json())
	f.Add(edited.json(), base.json())
	f.Add(base.json(), []byte(`{"_format_version":"3.0","services":[`+string(must(json.Marshal(base.services[0])))+`,{"host":"x","routes":[1]}]}`))
	for i, s := range fuzzSeeds {
		f.Add([]byte(fuzzSeeds[(i+1)%len(fuzzSeeds)]), []byte(s))
	}
	// Credentials: auto-generated keys, hashed passwords, and _transform
	// (a cached outcome must not cross a change of it).
	creds := `{"_format_version":"3.0","consumers":[{"username":"a","keyauth_credentials":[{}],` +
		`"basicauth_credentials":[{"username":"u","password":"p"}],"acls":[{"group":"g"}]}],` +
		`"basicauth_credentials":[{"username":"v","password":"q","consumer":"a"}]}`
	noTransform := strings.Replace(creds, `{"_format_version":"3.0",`, `{"_format_version":"3.0","_transform":false,`, 1)
	f.Add([]byte(creds), []byte(noTransform))
	f.Add([]byte(noTransform), []byte(creds))
	f.Add([]byte(creds), []byte(creds))
	f.Fuzz(checkReuseAgrees)
}

// checkReuseAgrees is FuzzDeclarativeReuse's property.
func checkReuseAgrees(t *testing.T, prev, next []byte) {
	const t0, t1 = 1700000000, 1700000001
	var slow *State
	var slowErr error
	if doc, err := decodeDocument(next); err != nil {
		slowErr = err
	} else {
		slow, slowErr = parseDocument(doc, t1, emptyState(), DefaultRouterFlavor)
	}
	fresh, freshErr := ParseDeclarative(next, t1)
	prevState, cache, err := (*declCache)(nil).load(prev, t0, emptyState(), DefaultRouterFlavor)
	if err != nil {
		prevState, cache = emptyState(), nil
	}
	warm, _, warmErr := cache.load(next, t1, prevState, DefaultRouterFlavor)
	for _, c := range []struct {
		name string
		st   *State
		err  error
	}{{"fresh", fresh, freshErr}, {"warm", warm, warmErr}} {
		if (c.err == nil) != (slowErr == nil) {
			t.Fatalf("%s load: error %v, decoded whole: error %v", c.name, c.err, slowErr)
		}
		if c.err != nil {
			if g, w := errorJSON(c.err), errorJSON(slowErr); g != w {
				t.Fatalf("%s load error:\n%s\ndecoded whole:\n%s", c.name, g, w)
			}
			continue
		}
		sameState(t, c.st, slow)
	}
}

func errorJSON(err error) string {
	de, ok := err.(*DeclarativeError)
	if !ok {
		return "not a DeclarativeError: " + err.Error()
	}
	return string(must(json.Marshal(map[string]any{"message": de.Message, "fields": de.Fields, "flattened": de.Flattened})))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestReuseUnderConcurrentReads loads documents that share most elements
// while Admin API reads and proxy configuration reads run (run with -race):
// a derived state shares rows and tree nodes with the one readers hold.
func TestReuseUnderConcurrentReads(t *testing.T) {
	clock := &reuseClock{now: time.Unix(1_700_000_000, 0)}
	n := newReuseNode(t, clock)
	m := genModel(rand.New(rand.NewPCG(11, 0)), 20)
	docs := [][]byte{m.json()}
	for i := range 3 {
		m.services[i]["routes"].([]any)[0].(map[string]any)["paths"] = []any{fmt.Sprintf("/v%d", i)}
		docs = append(docs, m.json())
	}
	if code, body := request(t, n, http.MethodPost, "/config", docs[0]); code != http.StatusCreated {
		t.Fatalf("POST /config: %d %.300s", code, body)
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for _, path := range []string{"/services?size=100", "/routes/route-1-0", "/upstreams/svc-2.ns.svc/targets"} {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				// Not request: t.Fatal belongs to the test's goroutine.
				rec := httptest.NewRecorder()
				n.Admin().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != http.StatusOK {
					t.Errorf("GET %s: %d %.300s", path, rec.Code, rec.Body)
				}
				_ = n.Config().ProxyConfig()
			}
		})
	}
	for i := range 24 {
		if i%8 == 7 {
			clock.now = clock.now.Add(time.Second) // restamp under readers too
		}
		if code, body := request(t, n, http.MethodPost, "/config", docs[i%len(docs)]); code != http.StatusCreated {
			t.Fatalf("POST /config: %d %.300s", code, body)
		}
	}
	close(done)
	readers.Wait()
	sameAsFresh(t, n, clock, docs[len(docs)-1])
}

func TestJSONStringLen(t *testing.T) {
	for _, s := range []string{"", "6f2c1a5e-8d0b-4f4e-9b57-6b6f6e677369", `a"b`, `a\b`, "tab\there", "ünï", "\u2028", "bad\xffutf8", "\x00"} {
		if got, want := jsonStringLen(s), len(appendJSONString(nil, s)); got != want {
			t.Errorf("jsonStringLen(%q) = %d, want %d", s, got, want)
		}
	}
}

// TestChangedElementKeepsUnchangedRows changes one route nested in a
// service, a second later: the service, unchanged, keeps its row, and
// the untouched upstreams and targets keep their tables (what the proxy's
// upstreams are kept by); the route gets a new row. The answers are held
// to a fresh node's by TestReusedLoadEqualsFreshLoad.
func TestChangedElementKeepsUnchangedRows(t *testing.T) {
	doc := func(path string) []byte {
		return []byte(`{"_format_version":"3.0",
			"services":[{"name":"s","host":"u","routes":[{"name":"r","paths":["` + path + `"]}]}],
			"upstreams":[{"name":"u","targets":[{"target":"10.0.0.1:80"}]}]}`)
	}
	clock := &reuseClock{now: time.Unix(1_700_000_000, 0)}
	n := newReuseNode(t, clock)
	if code, body := request(t, n, http.MethodPost, "/config", doc("/a")); code != http.StatusCreated {
		t.Fatalf("first load: %d %s", code, body)
	}
	before := n.Config()
	clock.now = clock.now.Add(time.Second)
	if code, body := request(t, n, http.MethodPost, "/config", doc("/b")); code != http.StatusCreated {
		t.Fatalf("second load: %d %s", code, body)
	}
	after := n.Config()
	if b, a := before.rowsOf("services")[0], after.rowsOf("services")[0]; a != b {
		t.Errorf("the unchanged service got a new row")
	}
	if b, a := before.rowsOf("routes")[0], after.rowsOf("routes")[0]; a == b {
		t.Errorf("the changed route kept its row")
	}
	for _, c := range []string{"services", "upstreams", "targets"} {
		if before.tables[c] != after.tables[c] {
			t.Errorf("%s: a new table for the same rows", c)
		}
	}
	if got := after.get("services", before.rowsOf("services")[0].id)["created_at"]; got != float64(clock.now.Unix()) {
		t.Errorf("the kept service reads created_at %v, want the second load's %d", got, clock.now.Unix())
	}
}
