package world

import (
	"testing"
	"time"

	"konductor.dev/controller/options"
)

// A Kong restarted in place (same address, empty) is configured again by
// the fast path, well within a second of answering, not by the drift check
// (9s at the earliest with the default 10s interval): the world's recovery
// bound is set to one second, and every recovery is checked against it.
// Without the liveness poll, recoveries take the drift interval and this
// fails.
func TestKongRestartedInPlaceIsConfiguredByTheFastPath(t *testing.T) {
	steps := []Step{
		{At: 20 * time.Second, Kind: FaultKongRestart, Kong: 0},
		{At: 31 * time.Second, Kind: FaultKongRestart, Kong: 1},
		{At: 31 * time.Second, Kind: FaultKongRestart, Kong: 2},
		{At: 47*time.Second + 300*time.Millisecond, Kind: FaultKongRestart, Kong: 0},
	}
	for _, seed := range []uint64{1, 2, 3} {
		res := run(t, Config{Seed: seed, Kongs: 3, Steps: steps, RecoveryBound: time.Second})
		for _, v := range res.Violations {
			t.Errorf("seed %d: %v", seed, v)
		}
		if len(res.Recoveries) != len(steps) {
			t.Fatalf("seed %d: %d recoveries measured, want %d", seed, len(res.Recoveries), len(steps))
		}
		drift := options.Default().KongDriftCheckInterval
		for i, d := range res.Recoveries {
			if d >= time.Second || d >= drift*9/10 {
				t.Errorf("seed %d: restart %d configured after %v: not the fast path (drift check every %v)", seed, i, d, drift)
			}
		}
		t.Logf("seed %d: recoveries %v", seed, res.Recoveries)
	}
}
