package dbsynctest

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kong/go-kong/kong"
	"github.com/prometheus/client_golang/prometheus"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate"
	"konductor.dev/controller/translate/declarative"
	kongsim "konductor.dev/sim/kong"
)

func methods(es []kongsim.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Method+" "+strings.SplitN(strings.TrimPrefix(e.Path, "/"), "/", 2)[0])
	}
	slices.Sort(out)
	return out
}

func total(d dbsync.Desired) int {
	n := 0
	for _, c := range d.Config.Counts() {
		n += c
	}
	return n
}

func TestInitialSyncCreatesEverything(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := desired(t, apps(3), 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		w.expectCounts(d)

		writes := w.ourWrites()
		if len(writes) != total(d) {
			t.Errorf("%d writes for %d entities", len(writes), total(d))
		}
		for _, e := range writes {
			if e.Writer != identity || e.Epoch != epoch {
				t.Errorf("write %s %s carried writer %q epoch %d, want %q %d", e.Method, e.Path, e.Writer, e.Epoch, identity, epoch)
			}
		}
		if got := w.metric("konductor_kong_db_entity_writes_total", map[string]string{"kind": "routes", "operation": "create"}); got != 3 {
			t.Errorf("routes created metric = %v, want 3", got)
		}
		// Every node of the database serves it after its next poll.
		w.advance(2 * updateFrequency)
		if got := w.node(0).Config().Count(); got != total(d) {
			t.Errorf("node serves %d entities, want %d", got, total(d))
		}
	})
}

func TestNoOpSyncWritesNothing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := desired(t, apps(3), 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		before := len(w.ourWrites())

		w.syncer.Resync()
		w.advance(3 * driftInterval)
		// The same configuration translated again (new Config value,
		// same content) is no change either.
		again := desired(t, apps(3), 2)
		w.syncer.SetDesired(again)
		w.waitApplied(2)

		if after := len(w.ourWrites()); after != before {
			t.Errorf("a resync, drift checks and a re-translation wrote %d entities; want none: %v", after-before, w.ourWrites()[before:])
		}
		if got := w.metric("konductor_kong_db_syncs_total", map[string]string{"outcome": "unchanged"}); got < 3 {
			t.Errorf("unchanged syncs = %v, want at least 3 (resync, drift checks, v2)", got)
		}
	})
}

func TestChangeAppliesMinimalWrites(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		as := apps(3)
		w.syncer.SetDesired(desired(t, as, 1))
		w.waitApplied(1)

		// One endpoint replaced, one Ingress annotated.
		before := len(w.ourWrites())
		as[1].endpoints = []string{"10.1.1.2", "10.1.1.3"}
		as[2].stripPath = true
		d2 := desired(t, as, 2)
		w.syncer.SetDesired(d2)
		w.waitApplied(2)
		w.expectCounts(d2)
		got := methods(w.ourWrites()[before:])
		want := []string{"DELETE upstreams", "POST upstreams", "PUT routes"}
		if !slices.Equal(got, want) {
			t.Errorf("writes for one new endpoint, one gone and one route changed: %q, want %q", got, want)
		}

		// An Ingress removed: its route, service, upstream and targets go,
		// and nothing else is written.
		before = len(w.ourWrites())
		d3 := desired(t, as[:2], 3)
		w.syncer.SetDesired(d3)
		w.waitApplied(3)
		w.expectCounts(d3)
		got = methods(w.ourWrites()[before:])
		want = []string{"DELETE routes", "DELETE services", "DELETE upstreams", "DELETE upstreams", "DELETE upstreams"}
		if !slices.Equal(got, want) {
			t.Errorf("writes for a removed Ingress: %q, want %q", got, want)
		}
	})
}

func TestDriftIsRestored(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := desired(t, apps(3), 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		before := len(w.ourWrites())

		// Behind our back: a route deleted, a service's port changed, a
		// target's weight set to zero.
		ctx := context.Background()
		admin := w.admin(0)
		route := d.Config.Services[1].Routes[0]
		svc := d.Config.Services[2]
		up := d.Config.Upstreams[0]
		if err := admin.Routes.Delete(ctx, route.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Services.Update(ctx, &kong.Service{ID: svc.ID, Port: kong.Int(8080)}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Targets.Update(ctx, up.ID, up.Targets[0].ID, &kong.Target{Target: up.Targets[0].Target, Weight: kong.Int(0)}); err != nil {
			t.Fatal(err)
		}

		w.advance(driftInterval + driftInterval/2)
		got := methods(w.ourWrites()[before:])
		want := []string{"PUT routes", "PUT services", "PUT upstreams"}
		if !slices.Equal(got, want) {
			t.Fatalf("drift repair writes: %q, want %q", got, want)
		}
		w.expectCounts(d)
		s, err := admin.Services.Get(ctx, svc.ID)
		if err != nil || *s.Port != 80 {
			t.Errorf("service port after repair: %v (err %v), want 80", s, err)
		}
		r, err := admin.Routes.Get(ctx, route.ID)
		if err != nil || *r.Name != *route.Name {
			t.Errorf("route after repair: %v (err %v)", r, err)
		}
		for kind, n := range map[string]float64{"routes": 1, "services": 1, "targets": 1} {
			if got := w.metric("konductor_kong_db_drift_repairs_total", map[string]string{"kind": kind}); got != n {
				t.Errorf("drift repairs of %s = %v, want %v", kind, got, n)
			}
		}
	})
}

func TestUnmanagedEntitiesAreNeverTouched(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{allowEmpty: true})
		ctx := context.Background()
		admin := w.admin(0)
		legacy, err := admin.Services.Create(ctx, &kong.Service{Name: kong.String("legacy"), Host: kong.String("legacy.internal")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Routes.Create(ctx, &kong.Route{Name: kong.String("legacy"), Paths: kong.StringSlice("/legacy"),
			Service: &kong.Service{ID: legacy.ID}, Tags: kong.StringSlice("team:payments")}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Upstreams.Create(ctx, &kong.Upstream{Name: kong.String("other"), Tags: kong.StringSlice("managed-by-someone-else")}); err != nil {
			t.Fatal(err)
		}
		snapshot := w.stored()

		w.syncer.SetDesired(desired(t, apps(3), 1))
		w.waitApplied(1)
		empty := declarative.New()
		w.syncer.SetDesired(dbsync.Desired{Config: empty, Hash: "empty", Version: 2})
		w.waitApplied(2)
		w.advance(2 * driftInterval)

		if got := w.managedCounts(); len(got) != 0 {
			t.Errorf("managed entities left after an allowed empty configuration: %v", got)
		}
		after := w.stored()
		for typ, byID := range snapshot {
			for id, body := range byID {
				if !bytes.Equal(after[typ][id], body) {
					t.Errorf("unmanaged %s %s changed or deleted:\nbefore %s\nafter  %s", typ, id, body, after[typ][id])
				}
			}
		}
	})
}

func TestEmptyDesiredIsRefused(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := desired(t, apps(3), 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		before := len(w.ourWrites())

		w.syncer.SetDesired(dbsync.Desired{Config: declarative.New(), Hash: "empty", Version: 2})
		w.advance(3 * driftInterval)
		if n := len(w.ourWrites()) - before; n != 0 {
			t.Errorf("an empty configuration made %d writes", n)
		}
		w.expectCounts(d)
		if w.syncer.AllApplied(2) {
			t.Error("the refused empty configuration counts as applied")
		}
		if st := w.syncer.Status(); !strings.Contains(st.LastError, "refusing to delete all") {
			t.Errorf("status error %q does not explain the refusal", st.LastError)
		}
	})
}

func TestDatabaseOutageDeletesNothing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{nodes: 2})
		as := apps(3)
		w.syncer.SetDesired(desired(t, as, 1))
		w.waitApplied(1)
		before := len(w.ourWrites())
		held := w.stored()

		w.db.SetAvailable(false)
		d2 := desired(t, as[:2], 2)
		w.syncer.SetDesired(d2)
		w.advance(time.Minute)
		if w.syncer.AllApplied(2) {
			t.Fatal("version 2 reported applied while the database is down")
		}
		if st := w.syncer.Status(); st.LastError == "" {
			t.Error("status shows no error during the outage")
		}
		if n := len(w.ourWrites()) - before; n != 0 {
			t.Errorf("%d writes accepted during the outage", n)
		}
		errorsSeen := w.metric("konductor_kong_db_syncs_total", map[string]string{"outcome": "error"})
		if errorsSeen < 3 {
			t.Errorf("failed syncs during a minute of outage = %v; want retries", errorsSeen)
		}
		if errorsSeen > 30 {
			t.Errorf("failed syncs during a minute of outage = %v; backoff does not back off", errorsSeen)
		}

		// Back up: nothing was lost meanwhile, and the change then applies.
		w.db.SetAvailable(true)
		after := w.stored()
		for typ, byID := range held {
			for id := range byID {
				if _, ok := after[typ][id]; !ok {
					t.Errorf("%s %s lost during the outage", typ, id)
				}
			}
		}
		w.waitApplied(2)
		w.expectCounts(d2)
	})
}

func TestClosedGateWritesNothing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.gate.set(false)
		d := desired(t, apps(3), 1)
		w.syncer.SetDesired(d)
		w.advance(time.Minute)
		if n := len(w.ourWrites()); n != 0 {
			t.Fatalf("%d writes without a term", n)
		}

		// Permitted, but the term already ended: still nothing.
		w.gate.mu.Lock()
		w.gate.term.ValidUntil = time.Now().Add(-time.Second)
		w.gate.open = true
		w.gate.mu.Unlock()
		w.syncer.Resync()
		w.advance(time.Minute)
		if n := len(w.ourWrites()); n != 0 {
			t.Fatalf("%d writes with an expired term", n)
		}
		if got := w.managedCounts(); len(got) != 0 {
			t.Fatalf("database holds %v without any permitted write", got)
		}

		// A fresh term: the standby turned leader writes at once.
		w.gate.mu.Lock()
		w.gate.term = fence.Term{Identity: identity, Epoch: epoch + 1, ValidUntil: time.Now().Add(time.Hour)}
		w.gate.mu.Unlock()
		w.syncer.Resync()
		w.waitApplied(1)
		w.expectCounts(d)
		for _, e := range w.ourWrites() {
			if e.Epoch != epoch+1 {
				t.Errorf("write %s %s in epoch %d, want %d", e.Method, e.Path, e.Epoch, epoch+1)
			}
		}
	})
}

func TestFailsOverToAnotherNode(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{nodes: 2})
		w.router.setDown("kong-0:8001", true)
		d := desired(t, apps(3), 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		w.expectCounts(d)
		if st := w.syncer.Status(); st.Current.Name != "kong-1:8001" {
			t.Errorf("syncing through %q, want kong-1:8001 (kong-0 is down)", st.Current.Name)
		}
		if n := len(w.node(1).Audit()); n != total(d) {
			t.Errorf("node kong-1 audited %d writes, want %d", n, total(d))
		}

		w.router.setDown("kong-0:8001", false)
		w.router.setDown("kong-1:8001", true)
		as := apps(4)
		d2 := desired(t, as, 2)
		w.syncer.SetDesired(d2)
		w.waitApplied(2)
		w.expectCounts(d2)
		if st := w.syncer.Status(); st.Current.Name != "kong-0:8001" {
			t.Errorf("syncing through %q, want kong-0:8001 (kong-1 is down)", st.Current.Name)
		}
	})
}

func TestRejectedEntityIsReportedAndTheRestApplies(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := desired(t, apps(3), 1)
		tags := d.Config.Services[0].Routes[0].Tags
		badID := uuid.NewString()
		d.Config.Services[0].Routes = append(d.Config.Services[0].Routes, &kong.Route{
			ID: &badID, Name: kong.String("bad-regex"), Paths: kong.StringSlice("~/(unclosed"), Tags: tags,
		})
		d.Hash += "+bad-regex"
		w.syncer.SetDesired(d)
		w.advance(10 * time.Second)

		if w.syncer.AllApplied(1) {
			t.Error("a configuration with a rejected route counts as applied")
		}
		w.mu.Lock()
		rs := append([]kongsync.Rejection(nil), w.rejections...)
		w.mu.Unlock()
		if len(rs) == 0 || rs[0].EntityType != "routes" || rs[0].EntityName != "bad-regex" || rs[0].EntityID != badID {
			t.Fatalf("rejections %+v, want the route bad-regex", rs)
		}
		if ref, ok := translate.ObjectFromTags(rs[0].Tags); !ok || ref.Kind != "Ingress" {
			t.Errorf("rejection tags %v do not name the Ingress", rs[0].Tags)
		}
		got := w.managedCounts()
		if got["routes"] != 3 || got["services"] != 3 {
			t.Errorf("the rest of the configuration was not applied: %v", got)
		}

		w.syncer.SetDesired(desired(t, apps(3), 2))
		w.waitApplied(2)
	})
}

// TestFailedListingDeletesNothing: while routes cannot be listed, nothing
// is deleted (app-1 stays) and the version is not reported applied; only
// the new app's entities, which the listing the Syncer holds says are
// missing, are written ahead of the listing, and once, not on every retry.
func TestFailedListingDeletesNothing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		as := apps(4)
		d1 := desired(t, as[:3], 1)
		w.syncer.SetDesired(d1)
		w.waitApplied(1)
		before := len(w.ourWrites())

		w.router.mu.Lock()
		w.router.failList = "routes"
		w.router.mu.Unlock()
		d2 := desired(t, []app{as[0], as[2], as[3]}, 2)
		w.syncer.SetDesired(d2)
		w.advance(30 * time.Second)
		made := w.ourWrites()[before:]
		for _, e := range made {
			if e.Method == http.MethodDelete {
				t.Errorf("%s %s without a complete listing", e.Method, e.Path)
			}
		}
		if want := total(desired(t, as[3:], 3)); len(made) != want {
			t.Errorf("%d writes ahead of the failing listing, want the new app's %d", len(made), want)
		}
		if w.syncer.AllApplied(2) {
			t.Error("version 2 reported applied without a complete listing")
		}
		if st := w.syncer.Status(); !strings.Contains(st.LastError, "listing routes") {
			t.Errorf("status error %q does not name the failed listing", st.LastError)
		}

		w.router.mu.Lock()
		w.router.failList = ""
		w.router.mu.Unlock()
		w.waitApplied(2)
		w.expectCounts(d2)
	})
}

// flippingGate grants epoch 7 for a number of permits, then epoch 8: a
// leadership change in the middle of a sync.
type flippingGate struct {
	mu   sync.Mutex
	left int
}

func (g *flippingGate) Permit() (fence.Term, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.left > 0 {
		g.left--
		return fence.Term{Identity: identity, Epoch: epoch}, true
	}
	return fence.Term{Identity: identity, Epoch: epoch + 1}, true
}

func TestTermChangeStopsTheSync(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		// The new syncer replaces the world's: same nodes, other gate.
		g := &flippingGate{left: 6}
		reg := prometheus.NewRegistry()
		s := dbsync.New(dbsync.Options{
			Client: &http.Client{Transport: w.router}, Gate: g, Identity: identity,
			Concurrency: 1, BackoffMin: time.Second, Registerer: reg,
		})
		s.SetTargets([]kongsync.Target{{Name: "kong-0:8001", URL: "http://kong-0:8001"}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.Run(ctx)
		}()
		defer func() { cancel(); <-done }()

		d := desired(t, apps(3), 1)
		s.SetDesired(d)
		deadline := time.Now().Add(time.Minute)
		for !s.AllApplied(1) {
			if time.Now().After(deadline) {
				t.Fatalf("not applied in the new term: %+v", s.Status())
			}
			time.Sleep(100 * time.Millisecond)
		}
		w.expectCounts(d)
		// Permits: one for the loop, one to start the sync, then one per
		// write: four writes in epoch 7, then the sync stops and the next
		// one, in epoch 8, writes the rest.
		inOld, last := 0, int64(0)
		for _, e := range w.ourWrites() {
			if e.Epoch == epoch {
				inOld++
			}
			if e.Epoch < last {
				t.Errorf("write %s %s in epoch %d after a write in epoch %d", e.Method, e.Path, e.Epoch, last)
			}
			last = e.Epoch
		}
		if inOld != 4 {
			t.Errorf("%d writes in the old term, want 4", inOld)
		}
		if got := counter(t, reg, "konductor_kong_db_syncs_total", "outcome", "not_writer"); got != 1 {
			t.Errorf("syncs stopped by the term change = %v, want 1", got)
		}
		if last != epoch+1 {
			t.Errorf("last write in epoch %d, want %d", last, epoch+1)
		}
	})
}
