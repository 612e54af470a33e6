package kongsync

import (
	"testing"
	"time"

	"konductor.dev/controller/testsupport/bubble"
)

// lastPostAt is when the replica last accepted a push.
func lastPostAt(t *testing.T, k *fakeKong) time.Time {
	t.Helper()
	ps := k.posts()
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].status == 201 {
			return ps[i].at
		}
	}
	t.Fatal("no accepted push")
	return time.Time{}
}

// A Kong restarted in place is configured again within one liveness period
// of answering, long before the drift check (9s at the earliest) would
// notice. Each case fails if the signal it names is ignored.
func TestRestartedKongIsConfiguredByTheFastPath(t *testing.T) {
	const otherConfig = `{"_format_version":"3.0","services":[{"name":"from-a-file","host":"x","port":80}]}`
	// The liveness poll plus its jitter; the push itself takes no virtual time.
	bound := DefaultLivenessInterval * 11 / 10
	cases := []struct {
		name    string
		options func(o *Options)
		// restart restarts kong-b and returns when its Admin API answers
		// again.
		restart func(r *rig) time.Time
		within  time.Duration
	}{
		{name: "empty hash seen by the liveness poll", within: bound, restart: func(r *rig) time.Time {
			// Emptied with its request counter left as it was: only the
			// hash tells.
			r.kongs["kong-b"].set(func(k *fakeKong) { k.hash, k.body = zeroHash, nil })
			return time.Now()
		}},
		{name: "request counter went back (restarted with another configuration)", within: bound, restart: func(r *rig) time.Time {
			r.kongs["kong-b"].restartWith(otherConfig)
			return time.Now()
		}},
		{name: "answer after failed polls (down 3s, back with another configuration)", within: DefaultLivenessInterval, restart: func(r *rig) time.Time {
			r.net.setDown("kong-b:8001", true)
			r.kongs["kong-b"].tamper(otherConfig) // its counter kept: only the failed polls tell
			advance(3 * time.Second)
			r.net.setDown("kong-b:8001", false)
			return time.Now()
		}},
		{name: "Suspect (endpoint readiness flipped), no liveness poll", options: func(o *Options) { o.LivenessInterval = -1 },
			restart: func(r *rig) time.Time {
				r.kongs["kong-b"].tamper(otherConfig) // counter kept: only Suspect tells
				r.s.Suspect("kong-b")
				return time.Now()
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bubble.Test(t, func(t *testing.T) {
				r := newRig(t, three, tc.options)
				defer r.shutdown()
				d1 := r.setDesired(desired(1, ""))
				advance(3 * time.Second) // steady state: a few polls done

				answering := tc.restart(r)
				advance(2 * time.Second)
				r.requireConfig("kong-b", d1)
				took := lastPostAt(t, r.kongs["kong-b"]).Sub(answering)
				if took > tc.within || took >= DefaultDriftInterval*9/10 {
					t.Fatalf("kong-b configured %v after it answered again, want within %v (the drift check would take >= 9s)", took, tc.within)
				}
				t.Logf("configured %v after answering", took)
				for _, n := range []string{"kong-a", "kong-c"} {
					if got := len(r.kongs[n].posts()); got != 1 {
						t.Fatalf("%s got %d pushes, want 1", n, got)
					}
				}
				if st := r.status("kong-b"); !st.Healthy || st.AppliedVersion != 1 {
					t.Fatalf("kong-b after repair: %+v", st)
				}
			})
		})
	}
}

// A configuration replaced behind our back, with no sign of a restart, is
// left to the drift check: two writers must not fight at the poll's rate.
func TestForeignConfigurationWaitsForTheDriftCheck(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		d1 := r.setDesired(desired(1, ""))
		start := time.Now()
		r.kongs["kong-b"].tamper(`{"_format_version":"3.0","services":[]}`)
		advance(DefaultDriftInterval * 9 / 10)
		if got := len(r.kongs["kong-b"].posts()); got != 1 {
			t.Fatalf("kong-b got %d pushes before the drift interval, want 1", got)
		}
		advance(DefaultDriftInterval * 3 / 10)
		r.requireConfig("kong-b", d1)
		if took := lastPostAt(t, r.kongs["kong-b"]).Sub(start); took < DefaultDriftInterval*9/10 {
			t.Fatalf("repaired after %v, before the drift check", took)
		}
	})
}

// The liveness poll costs one GET /status per replica per interval, from
// the writer only: a replica that may not write polls at the drift
// interval.
func TestLivenessPollRate(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		r.setDesired(desired(1, ""))
		gets := func() int {
			k := r.kongs["kong-a"]
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.statusGets
		}
		before := gets()
		advance(time.Minute)
		polls := gets() - before
		// 60s / 500ms ±10% jitter.
		if polls < 109 || polls > 134 {
			t.Fatalf("%d GET /status in a minute as writer, want about 120", polls)
		}

		r.gate.set(r.gate.term, false)
		advance(DefaultLivenessInterval * 2) // the poll in flight ends
		before = gets()
		advance(time.Minute)
		if polls := gets() - before; polls > 7 {
			t.Fatalf("%d GET /status in a minute without a term, want at most one per drift interval", polls)
		}
	})
}
