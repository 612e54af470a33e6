package scenarios

import (
	"flag"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/controller/testsupport/bubble"
	"konductor.dev/sim/world"
)

var (
	seedFlag = flag.Uint64("seed", 0, "run only this nemesis seed (replay)")
	// 500 seeds plus every generated plan take about two minutes on two
	// cores; seeds 1-1500 all pass (konductor-sim -seeds 1500).
	seedsFlag = flag.Int("seeds", TestSeeds, "number of nemesis seeds to run")
)

// frozenAfter is how long a world's virtual time may stand still in wall
// time before the run counts as frozen: a goroutine blocked on something
// the synctest bubble cannot see (a sync.Mutex held across a wait for
// virtual time, as pushes serialised behind one lock are) keeps the bubble
// from ever advancing, and the test would otherwise hang until its
// timeout. A healthy world advances every 500ms of virtual time within
// milliseconds.
const frozenAfter = 90 * time.Second

func runWorld(t *testing.T, cfg world.Config) *world.Result {
	t.Helper()
	w := bubble.Watch(frozenAfter, func(at time.Duration) {
		// Only a panic ends a test whose goroutine cannot return; the
		// stacks it prints show what blocks.
		panic(fmt.Sprintf("seed %d: the world froze: virtual time stood at %v for %v of wall time (replay: go run ./cmd/konductor-sim -seed %d, or -scenario NAME -seed %d)",
			cfg.Seed, at, frozenAfter, cfg.Seed, cfg.Seed))
	})
	defer w.Stop()
	cfg.Progress = w.Moved
	var res *world.Result
	synctest.Test(t, func(t *testing.T) {
		var err error
		if res, err = world.Run(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
	})
	return res
}

// requireClean fails with every violation, the seed and the replay line.
func requireClean(t *testing.T, res *world.Result, replay string) {
	t.Helper()
	if !res.Failed() {
		return
	}
	for _, v := range res.Violations {
		t.Error(v)
	}
	for _, s := range res.Steps {
		t.Log("step:", s)
	}
	t.Errorf("seed %d failed; replay: %s", res.Seed, replay)
}

func TestNamedScenarios(t *testing.T) {
	for _, sc := range Named {
		t.Run(sc.Name, func(t *testing.T) {
			start := time.Now()
			res := runWorld(t, sc.Config(1))
			wall := time.Since(start)
			t.Logf("%s: %s; failovers %v; recoveries %v; %v simulated in %v", sc.About, res.Summary(), res.Failovers, res.Recoveries, res.Virtual, wall)
			requireClean(t, res, fmt.Sprintf("go run ./cmd/konductor-sim -scenario %s -seed 1", sc.Name))
		})
	}
}

func TestNemesisSeeds(t *testing.T) {
	first, n := uint64(1), *seedsFlag
	if *seedFlag != 0 {
		first, n = *seedFlag, 1
	}
	if testing.Short() {
		n = min(n, 20)
	}
	start := time.Now()
	var failovers atomic.Int64
	// The group returns when every parallel seed has finished; each seed
	// is its own bubble, so they run side by side (go test -parallel).
	t.Run("seeds", func(t *testing.T) {
		for seed := first; seed < first+uint64(n); seed++ {
			// One subtest per seed, so that even a panic names the seed.
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				res := runWorld(t, Nemesis(seed))
				failovers.Add(int64(len(res.Failovers)))
				requireClean(t, res, fmt.Sprintf("go test ./sim/scenarios -run TestNemesisSeeds -seed %d", seed))
			})
		}
	})
	wall := time.Since(start)
	t.Logf("%d seeds, %d failovers in %v (%.0f failovers per wall minute)", n, failovers.Load(), wall, float64(failovers.Load())/wall.Minutes())
}

func TestGeneratedPlans(t *testing.T) {
	ref := runWorld(t, world.Config{Seed: 1, Steps: world.ReferenceSteps()})
	requireClean(t, ref, "go test ./sim/scenarios -run TestGeneratedPlans")
	plans := world.GeneratePlans(ref, 2)
	if len(plans) < ref.Writes {
		t.Fatalf("%d plans for %d reference writes", len(plans), ref.Writes)
	}
	for _, p := range plans {
		res := runWorld(t, world.Config{Seed: 1, Steps: p.Steps, Expected: ref.FinalHash})
		requireClean(t, res, "go test ./sim/scenarios -run TestGeneratedPlans/"+p.Name)
	}
	t.Logf("%d generated plans from a reference run with %d controller writes", len(plans), ref.Writes)
}

func TestSameSeedSameTrace(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 10
	}
	hashes := map[string]int{}
	for range runs {
		hashes[runWorld(t, Nemesis(42)).TraceHash]++
	}
	if len(hashes) != 1 {
		t.Errorf("seed 42 gave %d different trace hashes in %d runs: %v", len(hashes), runs, hashes)
	}
}
