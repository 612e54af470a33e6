package election

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/testsupport/bubble"
)

var lockTypes = []string{LockTypeConfigMaps, LockTypeLeases}

// Three electors; the leader is stopped gracefully or crashed, in turn, and
// replaced by a new replica. At every instant at most one grants, and every
// term has a higher epoch than the last (checked by the cluster).
func TestOneLeaderAtATimeAndEpochsRise(t *testing.T) {
	electOnEachLock(t, 3, func(t *testing.T, c *cluster, _ []*node, first termEvent) {
		if first.term.Epoch != 1 {
			t.Fatalf("first term has epoch %d, want 1 on a fresh lock", first.term.Epoch)
		}
		leader, next := first, 3
		for round := range 8 {
			// Let the term run for a while: renewals must keep it.
			c.expectNoTerm(3*testLease + time.Duration(round)*700*time.Millisecond)
			if !c.node(leader.id).e.IsLeader() {
				t.Fatalf("round %d: %s lost its term while nothing failed", round, leader.id)
			}
			if round%2 == 0 {
				if err := c.stop(c.node(leader.id)); err != nil {
					t.Fatalf("graceful stop of %s: %v", leader.id, err)
				}
			} else {
				c.crash(c.node(leader.id))
			}
			c.start(nodeName(next))
			next++
			ev := c.awaitTerm(testLease + testRetry)
			if ev.id == leader.id {
				t.Fatalf("round %d: stopped %s started a term", round, ev.id)
			}
			leader = ev
		}
		if len(c.terms) != 9 {
			t.Fatalf("%d terms, want 9", len(c.terms))
		}
	})
}

// A crashed leader (no release) is replaced within LeaseDuration+RetryPeriod
// of the crash, and no sooner than LeaseDuration after its last write.
func TestCrashedLeaderIsReplacedAfterLeaseExpiry(t *testing.T) {
	electOnEachLock(t, 3, func(t *testing.T, c *cluster, _ []*node, first termEvent) {
		// Crash between two renewals, not on one.
		c.expectNoTerm(20*time.Second + 700*time.Millisecond)
		crashedAt := time.Now()
		c.crash(c.node(first.id))
		_, lastWrite := c.srv.writesBy(first.id)

		ev := c.awaitTerm(testLease + testRetry)
		took := ev.at.Sub(crashedAt)
		t.Logf("crash failover took %v (virtual); last renewal %v before the crash", took, crashedAt.Sub(lastWrite))
		if took > testLease+testRetry {
			t.Errorf("failover took %v, want at most LeaseDuration+RetryPeriod = %v", took, testLease+testRetry)
		}
		if early := ev.at.Sub(lastWrite); early < testLease {
			t.Errorf("%s took over %v after the crashed leader's last write, before its lease (%v) expired", ev.id, early, testLease)
		}
		if ev.term.Epoch != first.term.Epoch+1 {
			t.Errorf("epoch %d after %d, want the next", ev.term.Epoch, first.term.Epoch)
		}
	})
}

// On graceful stop the leader stops granting, drains through BeforeRelease,
// releases, and a watching standby takes over immediately.
func TestGracefulReleaseHandsOverAtOnce(t *testing.T) {
	electOnEachLock(t, 3, func(t *testing.T, c *cluster, nodes []*node, first termEvent) {
		c.expectNoTerm(7*time.Second + 300*time.Millisecond)
		leader := c.node(first.id)

		drained := false
		leader.beforeRelease = func(ctx context.Context) {
			if _, ok := leader.e.Permit(); ok {
				t.Error("Permit still granted during BeforeRelease")
			}
			if n, _ := c.srv.writesBy(leader.id); n == 0 {
				t.Error("no writes recorded for the leader")
			}
			if holder := c.recordHolder(t); holder != leader.id {
				t.Errorf("lock held by %q during BeforeRelease, want still %q", holder, leader.id)
			}
			// A writer finishing in-flight requests.
			<-time.After(150 * time.Millisecond)
			drained = true
		}
		stopAt := time.Now()
		if err := c.stop(leader); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
		_, releasedAt := c.srv.writesBy(leader.id)
		ev := c.awaitTerm(testRetry)
		if !drained {
			t.Fatal("BeforeRelease did not run to completion")
		}
		if got := len(leader.stops()); got != 1 {
			t.Errorf("OnStoppedLeading called %d times, want 1", got)
		}
		took := ev.at.Sub(releasedAt)
		t.Logf("graceful handover: %v from stop, %v from the release write (virtual)", ev.at.Sub(stopAt), took)
		if took > 10*time.Millisecond {
			t.Errorf("standby took over %v after the release write, want immediately", took)
		}
		if c.recordHolder(t) != ev.id {
			t.Errorf("record holder %q, want %q", c.recordHolder(t), ev.id)
		}
	})
}

// recordHolder reads the lock record as the API server has it.
func (c *cluster) recordHolder(t *testing.T) string {
	t.Helper()
	probe, err := New(Config{
		Client: c.srv.client("probe"), Namespace: "kong", Name: LockName("", ""), LockType: c.lockType, Identity: "probe",
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := probe.lock.Get(context.Background())
	if err != nil {
		t.Fatalf("reading the lock: %v", err)
	}
	return rec.HolderIdentity
}

// A leader cut off from the API server keeps running but stops granting
// before its lease can expire at the others; when it can reach the server
// again it follows the new leader.
//
// Two kinds of partition: requests refused at once, and requests that hang
// (the elector's loop is then stuck in a request and Permit must expire on
// its own clock).
func TestPartitionedLeaderStopsGrantingBeforeOthersTakeOver(t *testing.T) {
	for _, tc := range []struct {
		lockType string
		hang     bool
	}{{LockTypeConfigMaps, false}, {LockTypeLeases, false}, {LockTypeConfigMaps, true}, {LockTypeLeases, true}} {
		name := tc.lockType + "/refused"
		if tc.hang {
			name = tc.lockType + "/hanging"
		}
		lt := tc.lockType
		t.Run(name, func(t *testing.T) {
			bubble.Test(t, func(t *testing.T) {
				c := newCluster(t, lt)
				_, first := c.elect(3)
				old := c.node(first.id)

				// A writer on the old leader asks for a term every 10ms.
				var lastOK fence.Term
				var lastOKAt time.Time
				writerCtx, stopWriter := context.WithCancel(t.Context())
				writerDone := make(chan struct{})
				go func() {
					defer close(writerDone)
					tick := time.NewTicker(10 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-writerCtx.Done():
							return
						case <-tick.C:
						}
						if term, ok := old.e.Permit(); ok {
							lastOK, lastOKAt = term, time.Now()
						}
					}
				}()

				c.expectNoTerm(9*time.Second + 500*time.Millisecond)
				partitionedAt := time.Now()
				if tc.hang {
					c.srv.stall(old.id)
				} else {
					c.srv.setDown(old.id, true)
				}
				ev := c.awaitTerm(testLease + testRetry)
				stopWriter()
				<-writerDone

				if got := testutil.ToFloat64(old.e.metrics.isLeader); got != 0 {
					t.Errorf("old leader's is_leader gauge = %v after its term ended, want 0", got)
				}
				if lastOK.Epoch != first.term.Epoch {
					t.Fatalf("writer's last term %+v, want epoch %d", lastOK, first.term.Epoch)
				}
				if !lastOK.ValidUntil.Before(ev.at) {
					t.Errorf("old leader's last term valid until %v, not before the new leader started at %v", lastOK.ValidUntil, ev.at)
				}
				if lastOKAt.After(lastOK.ValidUntil) || lastOK.ValidUntil.After(partitionedAt.Add(testRenew)) {
					t.Errorf("last permit at %v valid until %v; partitioned at %v", lastOKAt, lastOK.ValidUntil, partitionedAt)
				}
				// A loop stuck in a hanging request notices only when the
				// request returns; a refused one at the term's end.
				if stops := old.stops(); !tc.hang && (len(stops) != 1 || stops[0].After(lastOK.ValidUntil)) {
					t.Errorf("OnStoppedLeading at %v, want once, by %v", stops, lastOK.ValidUntil)
				}
				t.Logf("partitioned at +0; old leader stopped granting at +%v; new leader at +%v (virtual)",
					lastOK.ValidUntil.Sub(partitionedAt), ev.at.Sub(partitionedAt))

				// Heal: the old leader becomes a standby following the new one.
				c.srv.heal(old.id)
				c.expectNoTerm(2 * testRetry)
				if stops := old.stops(); len(stops) != 1 {
					t.Errorf("OnStoppedLeading called %d times, want 1", len(stops))
				}
				if old.e.IsLeader() || old.e.Leader() != ev.id || old.e.Epoch() != ev.term.Epoch {
					t.Errorf("healed old leader: IsLeader=%v Leader=%q Epoch=%d; want standby of %q epoch %d",
						old.e.IsLeader(), old.e.Leader(), old.e.Epoch(), ev.id, ev.term.Epoch)
				}
			})
		})
	}
}

// Without the "watch" verb the elector still elects, by polling.
func TestForbiddenWatchFallsBackToPolling(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeConfigMaps)
		c.srv.watchForbidden = true
		_, first := c.elect(3)
		c.expectNoTerm(5 * time.Second)
		if err := c.stop(c.node(first.id)); err != nil {
			t.Fatal(err)
		}
		_, releasedAt := c.srv.writesBy(first.id)
		ev := c.awaitTerm(testRetry + time.Second)
		if took := ev.at.Sub(releasedAt); took > testRetry {
			t.Errorf("takeover by polling took %v, want within RetryPeriod %v", took, testRetry)
		}
	})
}

// A renewal failing for longer than RenewDeadline ends the term even when
// nobody else is there to take over; once the server is back the same
// replica wins a new term with a new epoch.
func TestLapsedTermGetsANewEpoch(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeLeases)
		n := c.start(nodeName(0))
		first := c.awaitTerm(testRetry)
		c.srv.setDown(n.id, true)
		time.Sleep(testRenew + testRetry)
		if n.e.IsLeader() || len(n.stops()) != 1 {
			t.Fatalf("after %v without renewals: IsLeader=%v stops=%d", testRenew+testRetry, n.e.IsLeader(), len(n.stops()))
		}
		c.srv.setDown(n.id, false)
		ev := c.awaitTerm(testLease)
		if ev.id != n.id || ev.term.Epoch != first.term.Epoch+1 {
			t.Fatalf("term %+v by %s, want %s with epoch %d", ev.term, ev.id, n.id, first.term.Epoch+1)
		}
	})
}

// Deleting the lock ends the leader's term and the next one continues the
// epoch sequence rather than restarting it.
func TestDeletedLockEndsTheTermAndEpochsContinue(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeConfigMaps)
		_, first := c.elect(2)
		c.expectNoTerm(testLease)
		cms := c.srv.client("admin").CoreV1().ConfigMaps("kong")
		if err := cms.Delete(context.Background(), LockName("", ""), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		ev := c.awaitTerm(testLease + testRetry)
		if ev.term.Epoch <= first.term.Epoch {
			t.Fatalf("epoch %d after deletion, want above %d", ev.term.Epoch, first.term.Epoch)
		}
	})
}

func TestMetrics(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeConfigMaps)
		a, b := c.start(nodeName(0)), c.start(nodeName(1))
		first := c.awaitTerm(testRetry)
		leader, standby := a, b
		if first.id == b.id {
			leader, standby = b, a
		}
		c.expectNoTerm(testRetry)
		checkGauge(t, leader, "konductor_election_is_leader", 1)
		checkGauge(t, standby, "konductor_election_is_leader", 0)
		checkGauge(t, leader, "konductor_election_epoch", 1)
		checkGauge(t, standby, "konductor_election_epoch", 1)

		if err := c.stop(leader); err != nil {
			t.Fatal(err)
		}
		c.awaitTerm(testRetry)
		if got := testutil.ToFloat64(leader.e.metrics.transitions.WithLabelValues(eventReleased)); got != 1 {
			t.Errorf("released transitions = %v, want 1", got)
		}
		if got := testutil.ToFloat64(standby.e.metrics.transitions.WithLabelValues(eventAcquired)); got != 1 {
			t.Errorf("standby acquired transitions = %v, want 1", got)
		}
		checkGauge(t, standby, "konductor_election_is_leader", 1)
		checkGauge(t, standby, "konductor_election_epoch", 2)
		if n := testutil.CollectAndCount(standby.e.metrics.takeover); n != 1 {
			t.Errorf("takeover histogram has %d series, want 1", n)
		}
		if got, err := testutil.GatherAndCount(standby.reg, "konductor_election_takeover_seconds"); err != nil || got != 1 {
			t.Errorf("gathered takeover series = %d, %v", got, err)
		}
	})
}

func checkGauge(t *testing.T, n *node, name string, want float64) {
	t.Helper()
	var got float64
	switch name {
	case "konductor_election_is_leader":
		got = testutil.ToFloat64(n.e.metrics.isLeader)
	case "konductor_election_epoch":
		got = testutil.ToFloat64(n.e.metrics.epoch)
	}
	if got != want {
		t.Errorf("%s of %s = %v, want %v", name, n.id, got, want)
	}
}

func TestRunOnlyOnce(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeConfigMaps)
		n := c.start(nodeName(0))
		c.awaitTerm(testRetry)
		if err := n.e.Run(t.Context()); err == nil {
			t.Fatal("second Run succeeded, want an error")
		}
	})
}

// The record's times have one-second resolution, so others cannot see
// renewals made within the same second as the first one that changed the
// record; those must not extend the term. Timeline (virtual seconds): the
// leader wins at 0.0 and renews every 0.4; the records written at 2.0, 2.4
// and 2.8 are identical, the standby times the lease from 2.0 and takes over
// at 5.0, so the cut-off leader must stop granting by 4.5, not 5.3.
func TestRenewalsInvisibleToOthersDoNotExtendTheTerm(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeConfigMaps)
		tight := func(_ *node, cfg *Config) {
			cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 3*time.Second, 2500*time.Millisecond, 400*time.Millisecond
		}
		start := time.Now()
		leader := c.start(nodeName(0), tight)
		first := c.awaitTerm(time.Second)
		if first.id != leader.id || first.at != start {
			t.Fatalf("first term %s at +%v, want %s at +0", first.id, first.at.Sub(start), leader.id)
		}
		standby := c.start(nodeName(1), tight)
		time.Sleep(2900*time.Millisecond - time.Since(start))
		term, ok := leader.e.Permit()
		if !ok || term.ValidUntil.Sub(start) != 4500*time.Millisecond {
			t.Fatalf("at +2.9s Permit = %+v, %v; want valid until +4.5s", term, ok)
		}
		c.srv.setDown(leader.id, true)
		ev := c.awaitTerm(5 * time.Second)
		if ev.id != standby.id || ev.at.Sub(start) != 5*time.Second {
			t.Fatalf("next term %s at +%v, want %s at +5s", ev.id, ev.at.Sub(start), standby.id)
		}
	})
}

// countingHandler counts log records per level and message.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Level.String()+" "+r.Message]++
	return nil
}

func (h *countingHandler) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[key]
}

// A standby polling through an API outage warns once, not at every poll,
// and warns again for the next outage.
func TestCandidateErrorsAreWarnedOncePerOutage(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeConfigMaps)
		h := &countingHandler{counts: map[string]int{}}
		withLog := func(_ *node, cfg *Config) { cfg.Logger = slog.New(h) }
		c.start(nodeName(0))
		c.awaitTerm(testRetry)
		standby := c.start(nodeName(1), withLog)
		const key = "WARN reading the lock failed"
		for outage := 1; outage <= 2; outage++ {
			c.srv.setDown(standby.id, true)
			time.Sleep(10 * testRetry)
			if got := h.count(key); got != outage {
				t.Fatalf("outage %d: %q logged %d times, want %d", outage, key, got, outage)
			}
			c.srv.heal(standby.id)
			time.Sleep(2 * testRetry)
		}
	})
}
