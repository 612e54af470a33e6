package kongsync

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/testsupport/bubble"
)

func postsOf(k *fakeKong, d Desired) []write {
	var out []write
	for _, w := range k.posts() {
		if w.body == string(d.Body) {
			out = append(out, w)
		}
	}
	return out
}

var three = []string{"kong-a", "kong-b", "kong-c"}

func TestAllTargetsConvergeAndChangesPropagate(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		start := time.Now()

		for _, n := range three {
			if p := r.kongs[n].posts(); len(p) != 0 {
				t.Fatalf("%s got %d pushes before any Desired was set", n, len(p))
			}
		}
		d1 := r.setDesired(desired(1, ""))
		for _, n := range three {
			r.requireConfig(n, d1)
			st := r.status(n)
			if !st.Healthy || st.AppliedVersion != 1 || st.ReportedHash != kongHash(d1.Body) || st.LastError != "" {
				t.Fatalf("status of %s = %+v", n, st)
			}
		}
		if !r.s.AllApplied(1) || r.s.AllApplied(2) {
			t.Fatal("AllApplied disagrees with the targets")
		}

		d2 := r.setDesired(desired(2, "-changed"))
		for _, n := range three {
			r.requireConfig(n, d2)
		}
		if !r.s.AllApplied(2) {
			t.Fatal("AllApplied(2) false after propagation")
		}
		if elapsed := time.Since(start); elapsed != 0 {
			t.Fatalf("propagation took %v of virtual time; want it immediate", elapsed)
		}

		// A quiet period only reads /status: no further writes.
		advance(time.Minute)
		for _, n := range three {
			if p := r.kongs[n].posts(); len(p) != 2 {
				t.Fatalf("%s got %d pushes, want 2", n, len(p))
			}
		}
	})
}

// driftCases are the two ways a replica's configuration drifts from ours.
var driftCases = []struct {
	name  string
	drift func(k *fakeKong)
}{
	{name: "restarted empty", drift: func(k *fakeKong) { k.restart() }},
	{name: "edited behind our back", drift: func(k *fakeKong) {
		k.tamper(`{"_format_version":"3.0","services":[]}`)
	}},
}

func TestDriftIsRepaired(t *testing.T) {
	for _, tc := range driftCases {
		t.Run(tc.name, func(t *testing.T) {
			bubble.Test(t, func(t *testing.T) {
				r := newRig(t, three, nil)
				defer r.shutdown()
				d1 := r.setDesired(desired(1, ""))

				tc.drift(r.kongs["kong-b"])
				advance(DefaultDriftInterval * 12 / 10)

				for _, n := range three {
					r.requireConfig(n, d1)
				}
				if got := len(r.kongs["kong-b"].posts()); got != 2 {
					t.Fatalf("kong-b got %d pushes, want 2 (initial and repair)", got)
				}
				for _, n := range []string{"kong-a", "kong-c"} {
					if got := len(r.kongs[n].posts()); got != 1 {
						t.Fatalf("%s got %d pushes, want 1: healthy replicas are left alone", n, got)
					}
				}
				repairs := testutil.ToFloat64(r.s.metrics.driftRepairs.WithLabelValues("kong-b"))
				if repairs != 1 {
					t.Fatalf("drift repairs for kong-b = %v, want 1", repairs)
				}
			})
		})
	}
}

func TestStalledTargetDoesNotDelayOthers(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		d1, d2 := desired(1, ""), desired(2, "-next")
		r.setDesired(d1)

		r.kongs["kong-b"].set(func(k *fakeKong) { k.stall = true })
		start := time.Now()
		r.setDesired(d2)
		// kong-b's push is hanging; the others applied without waiting.
		if elapsed := time.Since(start); elapsed != 0 {
			t.Fatalf("the others took %v of virtual time", elapsed)
		}
		r.requireConfig("kong-a", d2)
		r.requireConfig("kong-c", d2)
		r.requireConfig("kong-b", d1)
		if st := r.status("kong-b"); st.AppliedVersion != 1 {
			t.Fatalf("kong-b applied version %d while stalled", st.AppliedVersion)
		}

		// The hanging push times out at PushTimeout; a retry lands soon after.
		r.kongs["kong-b"].set(func(k *fakeKong) { k.stall = false })
		advance(DefaultPushTimeout + 2*DefaultBackoffMin)
		posts := r.kongs["kong-b"].posts()
		if len(posts) != 3 || posts[1].status != 0 || posts[1].at.Sub(start) != DefaultPushTimeout || posts[2].status != http.StatusCreated {
			t.Fatalf("kong-b writes = %+v; want initial, timed out at %v, retried", posts, DefaultPushTimeout)
		}
		r.requireConfig("kong-b", d2)
		if !r.s.AllApplied(2) {
			t.Fatal("not all applied after kong-b recovered")
		}
	})
}

func TestRejectionKeepsLastGoodConfigAndBacksOff(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r, k := newRejectingRig(t)
		defer r.shutdown()
		d1, bad, d3 := desired(1, ""), desired(2, "INVALID"), desired(3, "-fixed")
		r.setDesired(d1)

		start := time.Now()
		r.s.SetDesired(bad)
		advance(20 * time.Second)

		r.requireConfig("kong-a", d1)
		st := r.status("kong-a")
		if st.AppliedVersion != 1 || st.Healthy || !strings.Contains(st.LastError, "rejected") {
			t.Fatalf("status after rejection: %+v", st)
		}
		r.mu.Lock()
		firstRejection := r.rejected[0]
		r.mu.Unlock()
		want := []Rejection{
			{EntityType: "route", EntityName: "default.echo.0", EntityID: "6b1c5a4e-0000-4000-8000-000000000001",
				Tags: []string{"k8s-name:echo", "k8s-namespace:default"}, Field: "paths.1",
				Message: "should start with: / (fixed path) or ~/ (regex path)"},
			{EntityType: "route", EntityName: "default.echo.0", EntityID: "6b1c5a4e-0000-4000-8000-000000000001",
				Tags:    []string{"k8s-name:echo", "k8s-namespace:default"},
				Message: "must set one of 'methods', 'hosts', 'headers', 'paths'"},
		}
		if fmt.Sprint(firstRejection) != fmt.Sprint(want) {
			t.Fatalf("rejections = %+v\nwant %+v", firstRejection, want)
		}

		// Retries of the same Desired are spaced exponentially, and only
		// the rejected Desired is sent: nothing smaller to "fix" it.
		for _, w := range k.posts()[1:] {
			if w.body != string(bad.Body) {
				t.Fatalf("pushed %q while the rejected config was pending", w.body)
			}
		}
		attempts := postsOf(k, bad)
		if len(attempts) < 4 || len(attempts) > 8 {
			t.Fatalf("%d attempts in 20s; want exponential backoff (about 7)", len(attempts))
		}
		for i := 2; i < len(attempts); i++ {
			prev := attempts[i-1].at.Sub(attempts[i-2].at)
			gap := attempts[i].at.Sub(attempts[i-1].at)
			if gap < prev*3/2 {
				t.Fatalf("retry gaps not growing: %v then %v", prev, gap)
			}
		}
		if attempts[0].at != start {
			t.Fatalf("first attempt at +%v, want immediate", attempts[0].at.Sub(start))
		}

		// A newer Desired goes at once, whatever the backoff.
		before := time.Now()
		r.setDesired(d3)
		r.requireConfig("kong-a", d3)
		if got := postsOf(k, d3); len(got) != 1 || got[0].at != before {
			t.Fatalf("newer desired pushed %d times, first at %v", len(got), got)
		}
		if st := r.status("kong-a"); !st.Healthy || st.AppliedVersion != 3 {
			t.Fatalf("status after fix: %+v", st)
		}
	})
}

func TestRestartWhileRejectedRestoresLastGood(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r, k := newRejectingRig(t)
		defer r.shutdown()
		d1, bad := desired(1, ""), desired(2, "INVALID")
		r.setDesired(d1)
		r.setDesired(bad)

		k.restart()
		advance(DefaultDriftInterval * 12 / 10)
		r.requireConfig("kong-a", d1)
		if st := r.status("kong-a"); st.AppliedVersion != 1 {
			t.Fatalf("applied version %d, want 1 (last good)", st.AppliedVersion)
		}
	})
}

func TestGateDeniedMeansNoWrites(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		r.gate.set(fence.Term{}, false)
		r.s.SetDesired(desired(1, ""))
		advance(time.Minute)
		for _, n := range three {
			if p := r.kongs[n].posts(); len(p) != 0 {
				t.Fatalf("%s got %d writes without a term", n, len(p))
			}
		}

		// Winning leadership: the caller grants a term and resyncs.
		term := fence.Term{Identity: "konductor-1-xyz", Epoch: 9, ValidUntil: time.Now().Add(time.Minute)}
		r.gate.set(term, true)
		r.s.Resync()
		synctest.Wait()
		for _, n := range three {
			r.requireConfig(n, desired(1, ""))
			for _, w := range r.kongs[n].posts() {
				if w.writer != "konductor-1-xyz" || w.epoch != "9" {
					t.Fatalf("%s write stamped %q/%q, want konductor-1-xyz/9", n, w.writer, w.epoch)
				}
			}
		}
	})
}

func TestWritesCarryIdentityAndEpoch(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		r.setDesired(desired(1, ""))
		r.kongs["kong-a"].restart()
		r.s.SetDesired(desired(2, ""))
		advance(time.Minute)
		for _, n := range three {
			posts := r.kongs[n].posts()
			if len(posts) == 0 {
				t.Fatalf("%s got no writes", n)
			}
			for _, w := range posts {
				if w.writer != "konductor-0-abc" || w.epoch != "3" {
					t.Fatalf("%s write stamped %q/%q", n, w.writer, w.epoch)
				}
			}
		}
	})
}

func TestPushIsBoundedByTerm(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		start := time.Now()
		r.gate.set(ourTerm(start.Add(2*time.Second)), true)
		r.kongs["kong-a"].set(func(k *fakeKong) { k.stall = true })
		r.s.SetDesired(desired(1, ""))
		advance(3 * time.Second)
		posts := r.kongs["kong-a"].posts()
		if len(posts) != 1 {
			t.Fatalf("%d writes, want 1 (no write after the term ended)", len(posts))
		}
		if ended := posts[0].at.Sub(start); ended != 2*time.Second {
			t.Fatalf("stalled push ended after %v, want the term's 2s (not PushTimeout)", ended)
		}
	})
}

func TestThrottledPushHonoursRetryAfter(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		k := r.kongs["kong-a"]
		d1, d2 := desired(1, ""), desired(2, "-next")
		r.setDesired(d1)

		// Longer than DriftInterval: the hash checks in between must not
		// cut the wait short.
		k.set(func(k *fakeKong) { k.busy, k.retryAfter = 1, "15" })
		r.s.SetDesired(d2)
		advance(20 * time.Second)
		posts := k.posts()[1:]
		if len(posts) != 2 || posts[0].status != http.StatusTooManyRequests || posts[1].status != http.StatusCreated {
			t.Fatalf("writes = %+v", posts)
		}
		if gap := posts[1].at.Sub(posts[0].at); gap != 15*time.Second {
			t.Fatalf("retried after %v, want Retry-After's 15s", gap)
		}
		r.requireConfig("kong-a", d2)
	})
}

func TestUnreachableTargetIsConfiguredWhenItReturns(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		r.net.setDown("kong-b:8001", true)
		d1 := r.setDesired(desired(1, ""))
		r.requireConfig("kong-a", d1)
		r.requireConfig("kong-c", d1)
		if st := r.status("kong-b"); st.Healthy || st.AppliedVersion != 0 || st.LastError == "" {
			t.Fatalf("kong-b while down: %+v", st)
		}
		advance(5 * time.Second)
		r.net.setDown("kong-b:8001", false)
		advance(DefaultBackoffMax)
		r.requireConfig("kong-b", d1)
		if !r.s.AllApplied(1) {
			t.Fatal("not all applied after kong-b returned")
		}
	})
}

func TestTargetsComeAndGo(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		d1 := r.setDesired(desired(1, ""))

		r.s.SetTargets(r.targets("kong-a", "kong-b"))
		synctest.Wait()
		r.requireConfig("kong-b", d1)

		r.s.SetTargets(r.targets("kong-b"))
		synctest.Wait()
		names := []string{}
		for _, st := range r.s.Status() {
			names = append(names, st.Target.Name)
		}
		if !slices.Equal(names, []string{"kong-b"}) {
			t.Fatalf("targets = %v", names)
		}
		if n := testutil.CollectAndCount(r.s.metrics.pushes); n != 1 {
			t.Fatalf("%d push series after removing kong-a, want 1", n)
		}
		if err := testutil.GatherAndCompare(r.reg, strings.NewReader(`
# HELP konductor_kong_targets Kong replicas currently configured by this controller.
# TYPE konductor_kong_targets gauge
konductor_kong_targets 1
# HELP konductor_kong_config_applied_version Version of the last desired configuration the Kong replica accepted (0: none).
# TYPE konductor_kong_config_applied_version gauge
konductor_kong_config_applied_version{target="kong-b"} 1
`), "konductor_kong_targets", "konductor_kong_config_applied_version"); err != nil {
			t.Fatal(err)
		}
		advance(90 * time.Second)
		if n := testutil.CollectAndCount(r.s.metrics.state, "konductor_kong_config_age_seconds"); n != 1 {
			t.Fatalf("%d age series, want 1", n)
		}

		// No targets at all (Kong scaled to 0) is a valid state.
		r.s.SetTargets(nil)
		synctest.Wait()
		if len(r.s.Status()) != 0 || !r.s.AllApplied(1) {
			t.Fatal("scaling to zero targets misbehaved")
		}
	})
}

func TestRunWaitsForPushInFlight(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		r.kongs["kong-a"].set(func(k *fakeKong) { k.stall = true })
		r.setDesired(desired(1, ""))
		start := time.Now()
		r.shutdown()
		if waited := time.Since(start); waited != DefaultPushTimeout {
			t.Fatalf("Run returned after %v, want the in-flight push's timeout %v", waited, DefaultPushTimeout)
		}
		if err := r.s.Run(context.Background()); err == nil {
			t.Fatal("second Run succeeded")
		}
	})
}

func TestOlderDesiredIsIgnored(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		d2 := desired(2, "")
		r.s.SetDesired(d2)
		r.setDesired(desired(1, "-stale"))
		r.requireConfig("kong-a", d2)
	})
}

func TestLapsedTermIsRetriedOnceRenewed(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		r.gate.set(ourTerm(time.Now().Add(-time.Second)), true)
		d1 := desired(1, "")
		r.s.SetDesired(d1)
		advance(time.Second)
		if p := r.kongs["kong-a"].posts(); len(p) != 0 {
			t.Fatalf("%d writes under a lapsed term", len(p))
		}
		// Renewal extends the term without waking the syncer.
		r.gate.set(ourTerm(time.Now().Add(time.Minute)), true)
		advance(time.Second)
		r.requireConfig("kong-a", d1)
	})
}

func TestMalformedTargetURLIsReported(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		r.s.SetTargets(append(r.targets("kong-a"), Target{Name: "kong-x", URL: "not a url"}))
		r.setDesired(desired(1, ""))
		st := r.status("kong-x")
		if st.AppliedVersion != 0 || !strings.Contains(st.LastError, "kong-x") || !strings.Contains(st.LastError, "not a url") {
			t.Fatalf("status of malformed target = %+v", st)
		}
		if r.s.AllApplied(1) {
			t.Fatal("AllApplied true with a target that can never be configured")
		}
		r.requireConfig("kong-a", desired(1, ""))
	})
}

func TestNewDesiredHashesBody(t *testing.T) {
	d := NewDesired([]byte("{}"), 4)
	if d.Hash != "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" || d.Version != 4 || string(d.Body) != "{}" {
		t.Fatalf("NewDesired = %+v", d)
	}
}

func TestDriftWithdrawsAppliedVersionUntilRepaired(t *testing.T) {
	for _, tc := range driftCases {
		t.Run(tc.name, func(t *testing.T) {
			bubble.Test(t, func(t *testing.T) {
				r := newRig(t, three, nil)
				defer r.shutdown()
				d1 := r.setDesired(desired(1, ""))
				if !r.s.AllApplied(1) {
					t.Fatal("not all applied after the first push")
				}

				// Leadership is lost, so the drift can be seen but not
				// repaired yet.
				r.gate.set(fence.Term{}, false)
				tc.drift(r.kongs["kong-b"])
				advance(DefaultDriftInterval * 12 / 10)

				if st := r.status("kong-b"); st.AppliedVersion != 0 {
					t.Fatalf("kong-b drifted but still counts version %d as applied: %+v", st.AppliedVersion, st)
				}
				if r.s.AllApplied(1) {
					t.Fatal("AllApplied(1) true while kong-b serves something else")
				}
				for _, n := range []string{"kong-a", "kong-c"} {
					if st := r.status(n); st.AppliedVersion != 1 {
						t.Fatalf("%s lost its applied version without drifting: %+v", n, st)
					}
				}
				if err := testutil.GatherAndCompare(r.reg, strings.NewReader(`
# HELP konductor_kong_config_applied_version Version of the last desired configuration the Kong replica accepted (0: none).
# TYPE konductor_kong_config_applied_version gauge
konductor_kong_config_applied_version{target="kong-a"} 1
konductor_kong_config_applied_version{target="kong-b"} 0
konductor_kong_config_applied_version{target="kong-c"} 1
`), "konductor_kong_config_applied_version"); err != nil {
					t.Fatal(err)
				}

				// Leading again: the repair lands and the version counts again.
				r.gate.set(fence.Term{Identity: "konductor-0-abc", Epoch: 4}, true)
				r.s.Resync()
				synctest.Wait()
				r.requireConfig("kong-b", d1)
				if st := r.status("kong-b"); st.AppliedVersion != 1 || !r.s.AllApplied(1) {
					t.Fatalf("after the repair: %+v, AllApplied(1)=%v", st, r.s.AllApplied(1))
				}
			})
		})
	}
}

// TestBlockedPushDelaysNoOtherReplica holds one replica's POST /config
// inside Kong (as a Kong stuck loading would) and requires the others to
// take two new configurations meanwhile. It runs on real goroutines and
// the wall clock: inside a synctest bubble a worker waiting on a shared
// mutex is not durably blocked, so serialised pushes would hang the test
// instead of failing it. Here they fail it: the held push is released only
// after the others were waited for.
func TestBlockedPushDelaysNoOtherReplica(t *testing.T) {
	const bound = 10 * time.Second
	net := newMemNet()
	kongs := map[string]*fakeKong{}
	var targets []Target
	for _, n := range three {
		kongs[n] = newFakeKong()
		net.add(n+":8001", kongs[n])
		targets = append(targets, Target{Name: n, URL: "http://" + n + ":8001"})
	}
	applied := make(chan string, 64)
	s := New(Options{
		Client:      &http.Client{Transport: net},
		Identity:    "test",
		PushTimeout: time.Minute, // the held push is not ended by its timeout
		OnApplied:   func(tg Target, d Desired) { applied <- fmt.Sprintf("%s@%d", tg.Name, d.Version) },
	})
	s.SetTargets(targets)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	block := make(chan struct{})
	var released sync.Once
	release := func() { released.Do(func() { close(block) }) }
	defer func() { release(); cancel(); <-done }()

	await := func(what string, want ...string) {
		t.Helper()
		missing := map[string]bool{}
		for _, w := range want {
			missing[w] = true
		}
		timeout := time.After(bound)
		for len(missing) > 0 {
			select {
			case got := <-applied:
				delete(missing, got)
			case <-timeout:
				t.Fatalf("%s: %v not applied within %v", what, slices.Sorted(maps.Keys(missing)), bound)
			}
		}
	}
	s.SetDesired(desired(1, ""))
	await("first push", "kong-a@1", "kong-b@1", "kong-c@1")

	entered := make(chan struct{}, 4)
	kongs["kong-b"].set(func(k *fakeKong) { k.block, k.entered = block, entered })
	s.SetDesired(desired(2, "-two"))
	select {
	case <-entered:
	case <-time.After(bound):
		t.Fatalf("kong-b's push never reached Kong within %v", bound)
	}
	// kong-b's push is held inside Kong from here on.
	start := time.Now()
	s.SetDesired(desired(3, "-three"))
	await("while kong-b is held: the other replicas were kept waiting (pushes serialised?)", "kong-a@3", "kong-c@3")
	delay := time.Since(start)
	if st := s.Status(); st[1].Target.Name != "kong-b" || st[1].AppliedVersion != 1 {
		t.Fatalf("kong-b applied %+v while held", st[1])
	}
	t.Logf("the other replicas took version 3 %v after it was set, kong-b held", delay)

	release()
	await("after release", "kong-b@3")
}

// A Kong that refuses everything, after losing the configuration it had
// accepted: the worker restores the last good configuration and retries
// the desired one with backoff, never the two in turn without pause (a
// tight loop that froze virtual time and flooded Kong with writes).
func TestKongRefusingEverythingAfterDriftIsRetriedWithBackoff(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		k := r.kongs["kong-a"]
		r.setDesired(desired(1, ""))
		k.set(func(k *fakeKong) { k.rejectWord = `"` }) // every body
		r.setDesired(desired(2, ""))
		// Without backoff the worker would never block; past this many
		// writes Kong stalls them, so that virtual time moves on and the
		// test reports instead of hanging.
		k.set(func(k *fakeKong) { k.stallAfter = len(k.writes) + 200 })
		k.restart()
		start := len(k.posts())
		advance(time.Minute)
		got := len(k.posts()) - start
		at := map[time.Time]int{}
		most := 0
		for _, w := range k.posts()[start:] {
			at[w.at]++
			most = max(most, at[w.at])
		}
		if got > 30 || most > 2 {
			t.Fatalf("%d writes in a minute to a Kong that refuses everything, up to %d at one instant; want backoff", got, most)
		}
		if got == 0 {
			t.Fatal("no write at all: the restore of the last good configuration was never tried")
		}
	})
}
