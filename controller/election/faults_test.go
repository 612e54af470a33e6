package election

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"konductor.dev/controller/testsupport/bubble"
)

var faultSeeds = flag.Uint64("election.seeds", 12, "seeds per timing profile in TestRandomFaultSchedules")

// TestRandomFaultSchedules runs three electors through seeded schedules of
// faults — requests refused, requests hanging, healing, graceful stops,
// crashes, replacements — with random API latency. The cluster checks at
// every term start and every 100ms that at most one elector grants and that
// epochs rise; after the faults stop, exactly one must lead. A failure names
// its seed, and the same seed replays the same schedule.
func TestRandomFaultSchedules(t *testing.T) {
	timings := []struct {
		name                 string
		lease, renew, retry  time.Duration
		maxLatency, maxPause time.Duration
	}{
		{"defaults", testLease, testRenew, testRetry, 30 * time.Millisecond, 6 * time.Second},
		// Renewals faster than the record's one-second time resolution,
		// and a margin under a second.
		{"tight", 3 * time.Second, 2500 * time.Millisecond, 400 * time.Millisecond, 20 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, tm := range timings {
		for seed := range *faultSeeds {
			lockType := lockTypes[seed%2]
			t.Run(fmt.Sprintf("%s/%s/seed=%d", tm.name, lockType, seed), func(t *testing.T) {
				bubble.Test(t, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(seed, 0x4b4f4e47))
					c := newCluster(t, lockType)
					// The server calls latency under its lock, from many goroutines.
					netRng := rand.New(rand.NewPCG(seed, 0x6e6574))
					c.srv.latency = func() time.Duration { return time.Duration(netRng.Int64N(int64(tm.maxLatency))) }
					timing := func(_ *node, cfg *Config) {
						cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = tm.lease, tm.renew, tm.retry
					}
					var running []*node
					next := 0
					spawn := func() {
						running = append(running, c.start(nodeName(next), timing))
						next++
					}
					for range 3 {
						spawn()
					}
					for range 40 {
						// Virtual time passes; terms may start meanwhile.
						time.Sleep(time.Duration(rng.Int64N(int64(tm.maxPause))))
						i := rng.IntN(len(running))
						n := running[i]
						switch rng.IntN(6) {
						case 0:
							c.srv.setDown(n.id, true)
						case 1:
							c.srv.stall(n.id)
						case 2, 3:
							c.srv.heal(n.id)
						case 4: // graceful stop, replaced by a new replica
							c.srv.heal(n.id)
							_ = c.stop(n)
							running = slices.Delete(running, i, i+1)
							spawn()
						case 5: // crash, replaced by a new replica
							c.srv.setDown(n.id, true)
							_ = c.stop(n)
							running = slices.Delete(running, i, i+1)
							spawn()
						}
					}
					for _, n := range running {
						c.srv.heal(n.id)
					}
					time.Sleep(2*tm.lease + tm.retry)
					var leaders []string
					for _, n := range running {
						if n.e.IsLeader() {
							leaders = append(leaders, n.id)
						}
					}
					if len(leaders) != 1 {
						t.Errorf("after the faults stopped: leaders %v, want exactly one", leaders)
					}
					c.mu.Lock()
					terms := len(c.terms)
					c.mu.Unlock()
					t.Logf("%d terms", terms)
				})
			})
		}
	}
}
