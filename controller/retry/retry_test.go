package retry

import (
	"context"
	"math"
	"testing"
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

func TestSeededReplays(t *testing.T) {
	draws := func(r Rand) []time.Duration {
		var out []time.Duration
		for n := 1; n <= 20; n++ {
			out = append(out, r.Backoff(time.Second, time.Minute, n), r.Jitter(10*time.Second))
		}
		return out
	}
	a, b, other := draws(Seeded(7, 1)), draws(Seeded(7, 1)), draws(Seeded(7, 2))
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

func TestSleep(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want bool
	}{
		{"elapses", context.Background(), time.Millisecond, true},
		{"cut short by a cancelled context", cancelled, time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sleep(tt.ctx, tt.d); got != tt.want {
				t.Errorf("Sleep(%v) = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
}
