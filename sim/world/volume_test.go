package world

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/sim/apiserver"
)

// The write-volume oracle lets a backoff sequence and one write per
// trigger through, and flags retries that do not back off and a write
// repeated at a fixed period with no trigger.
func TestWriteVolumeOracle(t *testing.T) {
	const window = 10 * time.Second
	every := func(period time.Duration, n int) []time.Duration {
		var out []time.Duration
		for i := range n {
			out = append(out, time.Duration(i)*period)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		at   []time.Duration // attempts, from the start of the second window
		want bool
	}{
		{"one push", []time.Duration{100 * time.Millisecond}, false},
		{"a push and its backoff", []time.Duration{0, 250 * time.Millisecond, 750 * time.Millisecond, 1750 * time.Millisecond, 3750 * time.Millisecond, 7750 * time.Millisecond}, false},
		{"two sequences", []time.Duration{0, 0, 250 * time.Millisecond, 250 * time.Millisecond, 750 * time.Millisecond, 750 * time.Millisecond}, false},
		{"retries every 250ms", every(250*time.Millisecond, 40), true},
		{"a push every liveness poll", every(500*time.Millisecond, 20), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &World{api: apiserver.New(1), opts: defaultOptions(), start: time.Now()}
				// Triggers at 0, window and 2×window: two windows.
				w.trace = []Event{{At: window, Kind: "step"}}
				w.endAt = w.start.Add(2 * window)
				for _, d := range tc.at {
					at := w.start.Add(window + d)
					w.attempts = append(w.attempts, &attempt{start: at, end: at, writer: "konductor-0-1", write: true, epoch: 1, route: "POST /config"})
				}
				peak := w.checkWriteVolume()
				var got []string
				for _, v := range w.violations {
					got = append(got, v.String())
				}
				if (len(got) > 0) != tc.want {
					t.Errorf("violations %v (peak %.2f), want flagged = %v", got, peak, tc.want)
				}
				if tc.want && !strings.Contains(strings.Join(got, "\n"), "kong-0 POST /config") {
					t.Errorf("violations %v do not name the kind of write", got)
				}
			})
		})
	}
}
