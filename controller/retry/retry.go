// Package retry is the timing that the Kong pushers (kongsync, dbsync)
// share: exponential backoff with jitter between retries, and jittered
// periods for recurring checks, drawn from a Rand that production leaves
// nil (the global source) and the simulator seeds, so that one seed
// replays the same virtual times. Sleep, the wait between two attempts
// that a cancelled context cuts short, serves the elector and the manager
// too.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep waits for d or until ctx is done, and reports whether d elapsed,
// so that a retry loop stops at once when its context is cancelled.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Rand draws uniform numbers in [0, 1) for retry and check jitter. The nil
// Rand draws from math/rand/v2's global source, which is what production
// wants; the simulator passes seeded streams so that one seed replays the
// same virtual times.
type Rand func() float64

// Seeded returns a Rand that draws from a PCG stream of seed and
// stream. It is not safe for concurrent use: give each goroutine its own.
func Seeded(seed, stream uint64) Rand {
	return rand.New(rand.NewPCG(seed, stream)).Float64
}

func (r Rand) float64() float64 {
	if r == nil {
		return rand.Float64()
	}
	return r()
}

// upTo returns a duration in [0, d].
func (r Rand) upTo(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	// Float64 never returns 1, so d+1 keeps d itself reachable while the
	// result stays within [0, d].
	return min(time.Duration(r.float64()*float64(d+1)), d)
}

// Backoff returns the delay before retry n (n >= 1): lo doubled per retry,
// capped at hi, plus up to 10% jitter so writers that failed together do
// not retry in lockstep.
func (r Rand) Backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d + r.upTo(d/10)
}

// Jitter spreads d by ±10% so periodic checks do not run in lockstep.
func (r Rand) Jitter(d time.Duration) time.Duration {
	spread := d / 5
	return d - spread/2 + r.upTo(spread)
}

// Backoff is Rand.Backoff drawing from the global source.
func Backoff(lo, hi time.Duration, n int) time.Duration { return Rand(nil).Backoff(lo, hi, n) }

// Jitter is Rand.Jitter drawing from the global source.
func Jitter(d time.Duration) time.Duration { return Rand(nil).Jitter(d) }
