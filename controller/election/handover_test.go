package election

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"konductor.dev/controller/testsupport/bubble"
)

// TestHandoverTimes measures, in virtual time, 30 graceful handovers and 30
// crash failovers among three electors with 2–20ms API latency per request
// and a random phase against the renewal cycle, and reports the spread (run
// with -v). It fails only on the documented bounds: graceful well under a
// second, crash within LeaseDuration+RetryPeriod. The cluster's
// single-leader and rising-epoch checks run throughout.
func TestHandoverTimes(t *testing.T) {
	const reps = 30
	for _, kind := range []string{"graceful", "crash"} {
		t.Run(kind, func(t *testing.T) {
			var took []time.Duration
			for rep := range reps {
				bubble.Test(t, func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(rep), 8))
					c := newCluster(t, LockTypeConfigMaps)
					// The server calls latency under its lock, from many goroutines.
					netRng := rand.New(rand.NewPCG(uint64(rep), 9))
					c.srv.latency = func() time.Duration {
						return 2*time.Millisecond + time.Duration(netRng.Int64N(int64(18*time.Millisecond)))
					}
					_, first := c.elect(3)
					c.expectNoTerm(5*time.Second + time.Duration(rng.Int64N(int64(3*testRetry))))
					at := time.Now()
					if kind == "graceful" {
						if err := c.stop(c.node(first.id)); err != nil {
							t.Fatalf("graceful stop: %v", err)
						}
					} else {
						c.crash(c.node(first.id))
					}
					ev := c.awaitTerm(testLease + testRetry)
					took = append(took, ev.at.Sub(at))
				})
			}
			slices.Sort(took)
			pick := func(q float64) time.Duration { return took[int(q*float64(len(took)-1))] }
			t.Logf("%s handover over %d runs (virtual time, measured from stop/crash to the next term): min %v  p50 %v  p99 %v  max %v",
				kind, len(took), took[0], pick(0.5), pick(0.99), took[len(took)-1])
			limit := time.Second
			if kind == "crash" {
				limit = testLease + testRetry
			}
			if took[len(took)-1] > limit {
				t.Errorf("slowest %s handover %v exceeds %v", kind, took[len(took)-1], limit)
			}
		})
	}
}
