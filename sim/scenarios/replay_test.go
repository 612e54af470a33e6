package scenarios

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"konductor.dev/sim/world"
)

// Seeds replay: 20 nemesis seeds and 4 database-mode seeds, each run
// twice, give the same trace hash (Kong writes with their virtual times,
// lock holders, the world's events).
func TestReplayManySeeds(t *testing.T) {
	db, ok := Find("database-mode")
	if !ok {
		t.Fatal("no database-mode scenario")
	}
	var cfgs []world.Config
	// Plans with API-server faults (outage, errors, dropped watches, stale
	// reads) are left out: after one, client-go's reflectors re-list and
	// re-watch after a backoff jittered by the process-wide random source,
	// which no seed reaches (seeds 11 and 39 replay their writes up to
	// seconds apart). Every other plan must replay.
	for s := uint64(1); len(cfgs) < 20; s++ {
		cfg := Nemesis(s)
		if !slices.ContainsFunc(cfg.Steps, func(st world.Step) bool {
			switch st.Kind {
			case world.FaultAPIOutage, world.FaultAPIErrors, world.FaultDropWatches, world.FaultStaleReads:
				return true
			}
			return false
		}) {
			cfgs = append(cfgs, cfg)
		}
	}
	for s := uint64(1); s <= 4; s++ {
		cfgs = append(cfgs, db.Config(s))
	}
	for i, cfg := range cfgs {
		name := fmt.Sprintf("nemesis-%d", cfg.Seed)
		if cfg.Database {
			name = fmt.Sprintf("database-mode-%d", cfg.Seed)
		}
		t.Run(name, func(t *testing.T) {
			var hashes []string
			var traces [][]world.Event
			for range 2 {
				synctest.Test(t, func(t *testing.T) {
					res, err := world.Run(t.Context(), cfgs[i])
					if err != nil {
						t.Fatal(err)
					}
					for _, v := range res.Violations {
						t.Error(v)
					}
					hashes = append(hashes, res.TraceHash)
					traces = append(traces, res.Trace)
				})
			}
			if hashes[0] != hashes[1] {
				a, b := traces[0], traces[1]
				for j := range min(len(a), len(b)) {
					if a[j] != b[j] {
						t.Fatalf("seed %d: trace %s then %s; first difference at event %d: %+v vs %+v", cfg.Seed, hashes[0], hashes[1], j, a[j], b[j])
					}
				}
				t.Fatalf("seed %d: trace %s then %s: %d vs %d events", cfg.Seed, hashes[0], hashes[1], len(a), len(b))
			}
		})
	}
}
