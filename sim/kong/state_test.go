package kong

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	for i := 1; i < len(got.tables["services"].ids); i++ {
		if got.tables["services"].ids[i-1] >= got.tables["services"].ids[i] {
			t.Fatal("ids not sorted")
		}
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
