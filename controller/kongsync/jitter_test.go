package kongsync

import (
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func constRand(v float64) Rand { return func() float64 { return v } }

func TestBackoffAndJitterBounds(t *testing.T) {
	const lo, hi = 250 * time.Millisecond, 30 * time.Second
	below1 := math.Nextafter(1, 0)
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"first retry, lowest draw", constRand(0).Backoff(lo, hi, 1), lo},
		{"first retry, highest draw", constRand(below1).Backoff(lo, hi, 1), lo + lo/10},
		{"third retry doubles twice", constRand(0).Backoff(lo, hi, 3), 4 * lo},
		{"capped at hi", constRand(0).Backoff(lo, hi, 40), hi},
		{"capped, highest draw", constRand(below1).Backoff(lo, hi, 40), hi + hi/10},
		{"jitter, lowest draw", constRand(0).Jitter(10 * time.Second), 9 * time.Second},
		{"jitter, middle draw", constRand(0.5).Jitter(10 * time.Second), 10 * time.Second},
		{"jitter, highest draw", constRand(below1).Jitter(10 * time.Second), 11 * time.Second},
		{"jitter of zero", constRand(0.7).Jitter(0), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestGlobalSourceStaysWithinBounds(t *testing.T) {
	for range 1000 {
		if d := Backoff(time.Second, time.Minute, 2); d < 2*time.Second || d > 2*time.Second+200*time.Millisecond {
			t.Fatalf("Backoff = %v, want within [2s, 2.2s]", d)
		}
		if d := Jitter(10 * time.Second); d < 9*time.Second || d > 11*time.Second {
			t.Fatalf("Jitter = %v, want within [9s, 11s]", d)
		}
	}
}

func TestSeededRandReplays(t *testing.T) {
	draws := func(r Rand) []time.Duration {
		var out []time.Duration
		for n := 1; n <= 20; n++ {
			out = append(out, r.Backoff(time.Second, time.Minute, n), r.Jitter(10*time.Second))
		}
		return out
	}
	a, b, other := draws(SeededRand(7, 1)), draws(SeededRand(7, 1)), draws(SeededRand(7, 2))
	same := true
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d: %v then %v from the same seed and stream", i, a[i], b[i])
		}
		same = same && a[i] == other[i]
	}
	if same {
		t.Fatal("another stream of the same seed drew the same values")
	}
}

// The check schedule follows Options.Rand, one stream per target: with the
// lowest draw every hash check comes at 90% of DriftInterval (the liveness
// poll, which draws from the same stream, is off here).
func TestWorkersDrawFromTheirOwnStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
		r.s.SetDesired(desired(1, ""))
		synctest.Wait()
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
