package kongsync

import (
	"sync"
	"testing"
	"time"

	"konductor.dev/controller/testsupport/bubble"
)

func constRand(v float64) Rand { return func() float64 { return v } }

// The check schedule follows Options.Rand, one stream per target: with the
// lowest draw every hash check comes at 90% of DriftInterval (the liveness
// poll, which draws from the same stream, is off here).
func TestWorkersDrawFromTheirOwnStream(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		asked := map[string]int{}
		r := newRig(t, three, func(o *Options) {
			o.LivenessInterval = -1
			o.Rand = func(target string) Rand {
				mu.Lock()
				defer mu.Unlock()
				asked[target]++
				return constRand(0)
			}
		})
		defer r.shutdown()
		r.setDesired(desired(1, ""))
		gets := func(n string) int {
			k := r.kongs[n]
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.statusGets
		}
		after := gets("kong-a") // the read right after the push
		advance(DefaultDriftInterval*9/10 - time.Nanosecond)
		if g := gets("kong-a"); g != after {
			t.Fatalf("hash checked before 90%% of the drift interval (%d reads)", g-after)
		}
		advance(time.Nanosecond)
		if g := gets("kong-a"); g != after+1 {
			t.Fatalf("%d hash checks at 90%% of the drift interval, want 1", g-after)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, n := range three {
			if asked[n] != 1 {
				t.Fatalf("stream for %s requested %d times, want once", n, asked[n])
			}
		}
	})
}
