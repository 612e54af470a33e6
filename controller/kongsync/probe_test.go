package kongsync

import (
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongclient"
	"konductor.dev/controller/testsupport/bubble"
)

func (k *fakeKong) rootReads() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rootGets
}

func TestProbedKongWithDatabaseIsNotConfigured(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var reported []string
		r := newRig(t, nil, func(o *Options) {
			o.ProbeTargets = true
			o.OnIncompatible = func(tg Target, root kongclient.Root) {
				mu.Lock()
				defer mu.Unlock()
				reported = append(reported, tg.Name+"="+root.Database)
			}
		})
		defer r.shutdown()
		ts := r.targets(three...)
		r.kongs["kong-b"].set(func(k *fakeKong) { k.database = "postgres" })
		r.s.SetTargets(ts)
		d1 := r.setDesired(desired(1, ""))

		r.requireConfig("kong-a", d1)
		r.requireConfig("kong-c", d1)
		if p := r.kongs["kong-b"].posts(); len(p) != 0 {
			t.Fatalf("kong-b runs with a database and got %d pushes", len(p))
		}
		st := r.status("kong-b")
		if st.AppliedVersion != 0 || st.Healthy || !st.Incompatible() || !strings.Contains(st.LastError, `database "postgres"`) || !strings.Contains(st.LastError, "kong-b") {
			t.Fatalf("status of kong-b = %+v", st)
		}
		if r.s.AllApplied(1) {
			t.Fatal("AllApplied(1) true while kong-b is not configured")
		}

		// Re-probed every drift interval, reported once.
		advance(3 * DefaultDriftInterval)
		if n := r.kongs["kong-b"].rootReads(); n < 3 {
			t.Fatalf("kong-b probed %d times in three drift intervals", n)
		}
		if p := r.kongs["kong-b"].posts(); len(p) != 0 {
			t.Fatalf("kong-b got %d pushes", len(p))
		}
		mu.Lock()
		if len(reported) != 1 || reported[0] != "kong-b=postgres" {
			t.Fatalf("reported %v, want kong-b=postgres once", reported)
		}
		mu.Unlock()
		if err := testutil.GatherAndCompare(r.reg, strings.NewReader(`
# HELP konductor_kong_target_incompatible 1 when the Kong replica reported a database mode this controller does not configure (it is not pushed to), else 0.
# TYPE konductor_kong_target_incompatible gauge
konductor_kong_target_incompatible{database="off",target="kong-a"} 0
konductor_kong_target_incompatible{database="postgres",target="kong-b"} 1
konductor_kong_target_incompatible{database="off",target="kong-c"} 0
`), "konductor_kong_target_incompatible"); err != nil {
			t.Fatal(err)
		}

		// Redeployed DB-less at the same address: configured.
		r.kongs["kong-b"].set(func(k *fakeKong) { k.database = "" })
		advance(DefaultDriftInterval * 12 / 10)
		r.requireConfig("kong-b", d1)
		if st := r.status("kong-b"); st.Incompatible() || st.AppliedVersion != 1 || !r.s.AllApplied(1) {
			t.Fatalf("after redeploying DB-less: %+v", st)
		}
	})
}

func TestProbesOnlyWhenAllowedToWriteAndOnce(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, func(o *Options) { o.ProbeTargets = true })
		defer r.shutdown()
		r.gate.set(fence.Term{}, false)
		r.s.SetDesired(desired(1, ""))
		advance(time.Minute)
		if n := r.kongs["kong-a"].rootReads(); n != 0 {
			t.Fatalf("a standby probed %d times", n)
		}
		r.gate.set(fence.Term{Identity: "konductor-0-abc", Epoch: 4}, true)
		r.s.Resync()
		synctest.Wait()
		r.requireConfig("kong-a", desired(1, ""))
		r.s.SetDesired(desired(2, "-next"))
		advance(time.Minute)
		r.requireConfig("kong-a", desired(2, "-next"))
		if n := r.kongs["kong-a"].rootReads(); n != 1 {
			t.Fatalf("probed %d times, want once before the first push", n)
		}
	})
}

func TestUnansweredProbeIsRetried(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, func(o *Options) { o.ProbeTargets = true })
		defer r.shutdown()
		r.net.setDown("kong-a:8001", true)
		r.s.SetDesired(desired(1, ""))
		advance(5 * time.Second)
		if st := r.status("kong-a"); st.Healthy || st.LastError == "" || st.AppliedVersion != 0 {
			t.Fatalf("status while Kong does not answer: %+v", st)
		}
		r.net.setDown("kong-a:8001", false)
		advance(DefaultBackoffMax)
		r.requireConfig("kong-a", desired(1, ""))
	})
}
