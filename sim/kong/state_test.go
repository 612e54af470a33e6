package kong

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"konductor.dev/sim/kong/store"
)

// TestIncrementalStateMatchesRebuild checks that State.with (used after
// every DB-mode write) yields exactly what a full rebuild yields.
func TestIncrementalStateMatchesRebuild(t *testing.T) {
	base, err := ParseDeclarative([]byte(fuzzSeeds[1]), 1)
	if err != nil {
		t.Fatal(err)
	}
	svcs := schemas["services"]
	svc := base.byName("services", "s")
	changed := cloneValue(svc).(map[string]any)
	changed["port"] = 8080.0
	changed["name"] = "renamed"
	var added []put
	for i := 0; i < 3; i++ {
		e, errs := normalizeEntity(svcs, map[string]any{"name": fmt.Sprintf("n%d", i), "host": "h"}, nil)
		if errs != nil {
			t.Fatal(errs)
		}
		e["id"] = fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i)
		added = append(added, put{svcs, e})
	}
	route := base.byName("routes", "top")
	puts := append([]put{{svcs, changed}}, added...)
	dels := []store.Key{{Type: "routes", ID: asString(route["id"])}}

	got := base.with(puts, dels)

	ents := base.entities()
	var routes []entity
	for _, r := range ents["routes"] {
		if r["id"] != route["id"] {
			routes = append(routes, r)
		}
	}
	ents["routes"] = routes
	for i, s := range ents["services"] {
		if s["id"] == changed["id"] {
			ents["services"][i] = changed
		}
	}
	for _, p := range added {
		ents["services"] = append(ents["services"], p.e)
	}
	want := newState(ents)
	if got.Hash() != want.Hash() || got.Count() != want.Count() {
		t.Fatalf("incremental %s/%d, rebuilt %s/%d", got.Hash(), got.Count(), want.Hash(), want.Count())
	}
	if got.byName("services", "s") != nil || got.byName("services", "renamed") == nil || got.byName("routes", "top") != nil {
		t.Error("name index not maintained")
	}
	if base.byName("services", "s") == nil || base.Count() == got.Count() {
		t.Error("base state was modified")
	}
	svcList := got.list("services")
	for i := 1; i < len(svcList); i++ {
		if asString(svcList[i-1]["id"]) >= asString(svcList[i]["id"]) {
			t.Fatal("ids not sorted")
		}
	}
	if len(got.childrenOf("routes", "service", asString(route["service"].(map[string]any)["id"]))) !=
		len(base.childrenOf("routes", "service", asString(route["service"].(map[string]any)["id"])))-1 {
		t.Error("parent index not maintained")
	}
}

// TestConcurrentLoadIsRefused holds one POST /config inside its body read
// and checks that a second one gets 429 with Retry-After.
func TestConcurrentLoadIsRefused(t *testing.T) {
	n, err := NewNode(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	first := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		n.Admin().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/config", pr))
		first <- rec.Code
	}()
	// The handler reads the body only while holding the load lock, so once
	// this write is consumed the first load is in progress.
	if _, err := pw.Write([]byte(`{"_format_version":`)); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	n.Admin().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/config", strings.NewReader(`{"_format_version":"3.0"}`)))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("concurrent load = %d (Retry-After %q), want 429", rec.Code, rec.Header().Get("Retry-After"))
	}
	if _, err := pw.Write([]byte(`"3.0","services":[{"host":"h"}]}`)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-first; code != http.StatusCreated {
		t.Errorf("first load = %d", code)
	}
}

// TestHashIgnoresWriteOrder checks that the incrementally kept hash
// depends on the entities only: adding them one write at a time in any
// order, or adding and removing one, lands on the rebuilt state's hash.
func TestHashIgnoresWriteOrder(t *testing.T) {
	var puts []put
	ents := map[string][]entity{}
	for i := 0; i < 20; i++ {
		e, errs := normalizeEntity(schemas["services"], map[string]any{"name": fmt.Sprintf("s%02d", i), "host": "h"}, nil)
		if errs != nil {
			t.Fatal(errs)
		}
		e["id"] = fmt.Sprintf("00000000-0000-4000-8000-0000000000%02d", i)
		e["created_at"] = float64(i)
		puts = append(puts, put{schemas["services"], e})
		ents["services"] = append(ents["services"], e)
	}
	want := newState(ents)
	forward, backward := emptyState(), emptyState()
	for i := range puts {
		forward = forward.with(puts[i:i+1], nil)
		backward = backward.with(puts[len(puts)-1-i:len(puts)-i], nil)
	}
	if forward.Hash() != want.Hash() || backward.Hash() != want.Hash() {
		t.Fatalf("forward %s, backward %s, rebuilt %s", forward.Hash(), backward.Hash(), want.Hash())
	}
	extra := put{schemas["services"], cloneValue(puts[0].e).(map[string]any)}
	extra.e["id"] = "00000000-0000-4000-8000-000000000099"
	extra.e["name"] = "extra"
	again := want.with([]put{extra}, nil).with(nil, []store.Key{{Type: "services", ID: "00000000-0000-4000-8000-000000000099"}})
	if again.Hash() != want.Hash() || again.Count() != want.Count() {
		t.Errorf("add then remove: %s/%d, want %s/%d", again.Hash(), again.Count(), want.Hash(), want.Count())
	}
	if emptyState().with(puts[:1], nil).with(nil, []store.Key{{Type: "services", ID: asString(puts[0].e["id"])}}).Hash() != ZeroHash {
		t.Error("emptied state does not hash to ZeroHash")
	}
}

// TestScopedScan checks that listings below a parent walk only that
// parent's children, in id order, and resume after an offset.
func TestScopedScan(t *testing.T) {
	ents := map[string][]entity{}
	for u := 0; u < 2; u++ {
		up, errs := normalizeEntity(schemas["upstreams"], map[string]any{"name": fmt.Sprintf("u%d", u)}, nil)
		if errs != nil {
			t.Fatal(errs)
		}
		up["id"] = fmt.Sprintf("00000000-0000-4000-8000-00000000010%d", u)
		ents["upstreams"] = append(ents["upstreams"], up)
		for i := 4; i >= 0; i-- {
			tg, errs := normalizeEntity(schemas["targets"], map[string]any{
				"target": fmt.Sprintf("10.0.%d.%d:80", u, i), "upstream": map[string]any{"id": up["id"]},
			}, nil)
			if errs != nil {
				t.Fatal(errs)
			}
			tg["id"] = fmt.Sprintf("00000000-0000-4000-8000-0000000002%d%d", u, i)
			ents["targets"] = append(ents["targets"], tg)
		}
	}
	st := newState(ents)
	sc := &scope{field: "upstream", parentID: "00000000-0000-4000-8000-000000000101"}
	tests := []struct {
		after string
		want  []string
	}{
		{"", []string{"210", "211", "212", "213", "214"}},
		{"00000000-0000-4000-8000-000000000211", []string{"212", "213", "214"}},
		{"00000000-0000-4000-8000-000000000214", nil},
	}
	for _, tc := range tests {
		var got []string
		st.scan("targets", sc, tc.after, func(e entity) bool {
			got = append(got, asString(e["id"])[33:])
			return true
		})
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("after %q: got %v, want %v", tc.after, got, tc.want)
		}
	}
	if st.byName("targets", "00000000-0000-4000-8000-000000000100:10.0.0.3:80") == nil {
		t.Error("target not found by upstream and address")
	}
}

// A row stamped by a declarative load renders, in a State of any later
// load time, exactly as a row the later load would build from the stamped
// entity, whichever timestamps were literal; stamps of another width
// (5 against 1000) change the encoding's length.
func TestReusedRowRendersAsFreshRow(t *testing.T) {
	svcs := schemas["services"]
	tests := []struct {
		name    string
		literal map[string]any // timestamps the document gave
	}{
		{"both stamped by the load", nil},
		{"literal created_at, updated_at copies it", map[string]any{"created_at": 5.0}},
		{"literal updated_at", map[string]any{"updated_at": 7.0}},
		{"both literal", map[string]any{"created_at": 5.0, "updated_at": 7.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// rowAt builds the row a load at time at makes (see
			// declLoad.finish).
			rowAt := func(at int64) *row {
				in := map[string]any{"name": "s", "host": "h"}
				for k, v := range tt.literal {
					in[k] = v
				}
				e, errs := normalizeEntity(svcs, in, nil)
				if errs != nil {
					t.Fatal(errs)
				}
				e["id"] = "00000000-0000-4000-8000-000000000001"
				l := newDeclLoad(at, DefaultRouterFlavor)
				it := &declItem{ent: e}
				it.stamp = stampUse{created: e["created_at"] == nil, updated: e["updated_at"] == nil}
				l.stampTimes(it)
				r, _ := newRow(svcs, it.ent, nil)
				if it.stamp.created {
					r.restamp = it.stamp
				}
				return r
			}
			old := rowAt(100)
			first := maps.Clone(old.e)
			for _, at := range []int64{100, 200, 5, 1000, 1_700_000_000} {
				want := rowAt(at)
				wantEnc := want.appendEnc(nil, at)
				if !reflect.DeepEqual(old.entityAt(at), want.entityAt(at)) || !bytes.Equal(old.appendEnc(nil, at), wantEnc) ||
					old.encLen(at) != len(wantEnc) || !bytes.Equal(wantEnc, want.enc) ||
					old.createdAt(at) != want.createdAt(at) || old.sum != want.sum {
					t.Errorf("at %d: reused row\n %v %s (%d bytes)\nwant\n %v %s", at, old.entityAt(at), old.appendEnc(nil, at), old.encLen(at), want.e, want.enc)
				}
			}
			if !reflect.DeepEqual(old.e, first) {
				t.Errorf("rendering changed the row: %v, want %v", old.e, first)
			}
		})
	}
}
