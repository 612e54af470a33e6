package dbsynctest

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	kongsim "konductor.dev/sim/kong"
)

// requestLatency is what one Admin API request costs in the takeover
// tests, so that a listing takes virtual time.
const requestLatency = 10 * time.Millisecond

// standby is a second Syncer on the world's nodes, with a gate of its own
// that starts closed: a replica that does not lead yet.
type standby struct {
	s    *dbsync.Syncer
	gate *gate
	reg  *prometheus.Registry
}

// newStandby starts a standby Syncer with the given WarmInterval; it stops
// when the test returns.
func (w *world) newStandby(warm time.Duration) *standby {
	sb := &standby{gate: &gate{term: fence.Term{Identity: "konductor-1-fghij", Epoch: epoch + 1}}, reg: prometheus.NewRegistry()}
	sb.s = dbsync.New(dbsync.Options{
		Client: &http.Client{Transport: w.router}, Gate: sb.gate, Identity: sb.gate.term.Identity,
		Concurrency: 4, Timeout: 5 * time.Second, BackoffMin: 500 * time.Millisecond, BackoffMax: 8 * time.Second,
		DriftInterval: driftInterval, WarmInterval: warm, Registerer: sb.reg,
	})
	sb.s.SetTargets([]kongsync.Target{{Name: "kong-0:8001", URL: "http://kong-0:8001"}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sb.s.Run(ctx) })
	w.t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return sb
}

// takeOver ends the world's Syncer's term and opens the standby's; it
// returns the instant the standby's term began.
func (w *world) takeOver(sb *standby) time.Time {
	w.gate.set(false)
	sb.gate.mu.Lock()
	sb.gate.open = true
	sb.gate.mu.Unlock()
	at := time.Now()
	sb.s.Resync()
	return at
}

// waitStandbyApplied advances virtual time until the standby applied v.
func (w *world) waitStandbyApplied(sb *standby, v uint64) {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !sb.s.AllApplied(v) {
		if time.Now().After(deadline) {
			w.t.Fatalf("version %d not applied by the new leader within a minute; status %+v", v, sb.s.Status())
		}
		time.Sleep(time.Millisecond)
	}
	synctest.Wait()
}

// writesOf returns the audited writes of one epoch, in time order.
func (w *world) writesOf(e int64) []kongsim.AuditEntry {
	var out []kongsim.AuditEntry
	for _, a := range w.ourWrites() {
		if a.Epoch == e {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b kongsim.AuditEntry) int { return a.Time.Compare(b.Time) })
	return out
}

// TestTakeoverWritesFromTheWarmListing: a standby that holds a recent
// listing writes the change it translated one request after its term
// begins, before re-listing Kong; a standby without one (WarmInterval off)
// must list first, which takes longer. Virtual time makes the figures
// exact: each Admin API request costs 10ms.
func TestTakeoverWritesFromTheWarmListing(t *testing.T) {
	for _, tc := range []struct {
		name       string
		warm       time.Duration
		listing    string
		firstWrite time.Duration // after the term began, at most (warm) or at least (cold)
	}{
		// The change's first phase goes out at once: one request.
		{"warm", 5 * time.Second, "warm", requestLatency},
		// The upstreams must be listed before their targets: at least
		// two rounds of requests, then the first write.
		{"cold", -1, "cold", 3 * requestLatency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T) {
				w := newWorld(t, worldOptions{})
				w.router.latency = requestLatency
				as := apps(30)
				d1 := desired(t, as[:29], 1)
				w.syncer.SetDesired(d1)
				w.waitApplied(1)

				sb := w.newStandby(tc.warm)
				sb.s.SetDesired(d1)
				w.advance(6 * time.Second)
				if n := len(w.writesOf(epoch + 1)); n != 0 {
					t.Fatalf("the standby wrote %d entities before its term", n)
				}
				if tc.warm > 0 && sb.s.Status().WarmListed.IsZero() {
					t.Fatal("the standby holds no listing after its WarmInterval")
				}

				// A change reaches the standby; then it takes over.
				d2 := desired(t, as, 2)
				sb.s.SetDesired(d2)
				w.advance(time.Second)
				began := w.takeOver(sb)
				w.waitStandbyApplied(sb, 2)
				w.expectCounts(d2)

				writes := w.writesOf(epoch + 1)
				if len(writes) == 0 {
					t.Fatal("the new leader wrote nothing")
				}
				took := writes[0].Time.Sub(began)
				t.Logf("%s takeover: first write %v after the term began, %d writes", tc.name, took, len(writes))
				if tc.listing == "warm" && took > tc.firstWrite {
					t.Errorf("the first write came %v after the term began, want at most %v: the takeover waited for a listing", took, tc.firstWrite)
				}
				if tc.listing == "cold" && took < tc.firstWrite {
					t.Errorf("the first write came %v after the term began, want at least %v without a warm listing", took, tc.firstWrite)
				}
				tk := sb.s.Status().Takeovers
				if len(tk) != 1 || tk[0].Listing != tc.listing {
					t.Fatalf("takeovers %+v, want one %q", tk, tc.listing)
				}
				if got := counterOf(t, sb.reg, "konductor_kong_db_takeovers_total", "listing", tc.listing); got != 1 {
					t.Errorf("konductor_kong_db_takeovers_total{listing=%q} = %v, want 1", tc.listing, got)
				}
				// The writes before the re-listing are not repeated by it.
				if n := len(writes); n != total(d2)-total(d1) {
					t.Errorf("%d writes for a change of %d entities", n, total(d2)-total(d1))
				}
			})
		})
	}
}

// TestTakeoverWithAStaleWarmListing: after the standby's listing the old
// leader still changed Kong (an app removed, another added). The new
// leader's desired configuration lags behind (it still has the removed
// app and not the added one): whatever it writes from its stale listing,
// the database ends up exactly on its desired configuration, and
// deletes wait for a complete fresh listing: while routes cannot be
// listed, nothing is deleted and the version is not reported applied.
func TestTakeoverWithAStaleWarmListing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.router.latency = requestLatency
		as := apps(12)
		d1 := desired(t, as[:10], 1)
		w.syncer.SetDesired(d1)
		w.waitApplied(1)

		sb := w.newStandby(5 * time.Second)
		sb.s.SetDesired(d1)
		w.advance(6 * time.Second)

		// The old leader goes on after the standby listed: app-1 out,
		// app-10 in.
		d2 := desired(t, append(slices.Clone(as[2:10]), as[0], as[10]), 2)
		w.syncer.SetDesired(d2)
		w.waitApplied(2)

		// The standby's own view: app-1 still there, app-10 not yet,
		// app-11 new.
		d3 := desired(t, append(slices.Clone(as[:10]), as[11]), 3)
		sb.s.SetDesired(d3)
		w.advance(time.Second)
		w.router.mu.Lock()
		w.router.failList = "routes"
		w.router.mu.Unlock()
		w.takeOver(sb)
		w.advance(10 * time.Second)
		for _, e := range w.writesOf(epoch + 1) {
			if e.Method == http.MethodDelete {
				t.Fatalf("deleted %s without a complete listing", e.Path)
			}
		}
		if sb.s.AllApplied(3) {
			t.Fatal("version 3 reported applied without a complete listing")
		}
		if st := sb.s.Status(); !strings.Contains(st.LastError, "listing routes") {
			t.Errorf("status error %q does not name the failed listing", st.LastError)
		}

		w.router.mu.Lock()
		w.router.failList = ""
		w.router.mu.Unlock()
		w.waitStandbyApplied(sb, 3)
		w.expectCounts(d3)
		// A second sync finds nothing to do: the database is exactly d3.
		before := len(w.writesOf(epoch + 1))
		sb.s.Resync()
		w.advance(time.Second)
		if n := len(w.writesOf(epoch+1)) - before; n != 0 {
			t.Errorf("a resync after convergence wrote %d entities", n)
		}
	})
}

// TestChangeDuringTakeoverListing: changes that arrive while the new
// leader re-lists Kong are written from the warm listing at once; one of
// them is then withdrawn before the listing ends. The verified pass
// deletes what was written for it, whether the listing saw that write or
// not, and the database ends exactly on the newest configuration.
func TestChangeDuringTakeoverListing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.router.latency = requestLatency
		as := apps(40)
		d1 := desired(t, as[:38], 1)
		w.syncer.SetDesired(d1)
		w.waitApplied(1)

		sb := w.newStandby(5 * time.Second)
		sb.s.SetDesired(d1)
		w.advance(6 * time.Second)
		began := w.takeOver(sb)

		// 38 upstreams' targets take several rounds of listing: app-38
		// arrives during the listing and is written at once; app-39
		// replaces it just after.
		time.Sleep(5 * time.Millisecond)
		sb.s.SetDesired(desired(t, as[:39], 2))
		time.Sleep(40 * time.Millisecond)
		synctest.Wait()
		var early bool
		for _, e := range w.writesOf(epoch + 1) {
			if strings.HasPrefix(e.Path, "/services/") && e.Method == http.MethodPut {
				early = true
			}
		}
		if !early {
			t.Errorf("the change that arrived %v after the term began was not written within 45ms", 5*time.Millisecond)
		}
		d3 := desired(t, append(slices.Clone(as[:38]), as[39]), 3)
		sb.s.SetDesired(d3)
		w.waitStandbyApplied(sb, 3)
		w.expectCounts(d3)
		t.Logf("converged %v after the term began", time.Since(began))
	})
}

// counterOf returns a counter's value in reg (0 when absent).
func counterOf(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestChangeWrittenBeforeListing: a leader that synced before holds that
// listing, with its own writes applied, and writes a new change from it at
// once; the listing that every sync makes (for deletes and drift) comes
// after. Without the held listing the first write would wait for at least
// two rounds of listing requests.
func TestChangeWrittenBeforeListing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		w.router.latency = requestLatency
		as := apps(30)
		w.syncer.SetDesired(desired(t, as[:29], 1))
		w.waitApplied(1)
		w.advance(time.Second)
		before := len(w.writesOf(epoch))

		d2 := desired(t, as, 2)
		set := time.Now()
		w.syncer.SetDesired(d2)
		w.waitApplied(2)
		w.expectCounts(d2)
		writes := w.writesOf(epoch)[before:]
		if len(writes) != total(d2)-total(desired(t, as[:29], 1)) {
			t.Fatalf("%d writes for a change of one app", len(writes))
		}
		if took := writes[0].Time.Sub(set); took > requestLatency {
			t.Errorf("the change's first write came %v after it was set, want at most %v: the sync waited for a listing", took, requestLatency)
		}
	})
}
