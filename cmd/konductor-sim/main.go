// Command konductor-sim runs konductor's deterministic simulation: the real
// controller against the fake API server and fake Kong nodes under virtual
// time. It runs one named scenario, one nemesis seed, or N nemesis seeds,
// prints a report (failover and recovery times, invariants, faults fired)
// and exits 1 on a violation, with the line that replays it.
//
// Virtual time needs a testing/synctest bubble, which only a test can open,
// so the command runs its work as a test through testing.Main.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"konductor.dev/controller/options"
	"konductor.dev/controller/testsupport/bubble"
	"konductor.dev/sim/scenarios"
	"konductor.dev/sim/world"
)

var (
	scenario = flag.String("scenario", "", "run this named scenario (see -list); empty: nemesis seeds")
	seed     = flag.Uint64("seed", 0, "run only this seed (replay)")
	seeds    = flag.Int("seeds", 100, "number of nemesis seeds to run, from 1 (with -scenario: run the scenario with seeds 1..N)")
	seedsSet bool
	list     = flag.Bool("list", false, "list the named scenarios")
	evidence = flag.Bool("pod-evidence", true, "the controllers' --election-pod-evidence: standbys take over when the kubelet reports the leader's container terminated")
	failfast = flag.Bool("failfast", false, "stop at the first run that breaks an invariant")
	stall    = flag.Duration("stall", 2*time.Minute, "fail a run whose virtual time has not advanced for this long (wall clock)")
	runLimit = flag.Duration("run-timeout", 5*time.Minute, "fail a run that takes longer than this (wall clock; a healthy one takes about a second)")
	from     = flag.Uint64("from", 1, "first nemesis seed of -seeds (the run covers from..from+seeds-1)")
	repeat   = flag.Int("repeat", 1, "run each seed this many times (replay after API-server faults is not exact: see the package doc of sim/world); with -failfast, stop at the first failing run")
	trace    = flag.Bool("trace", false, "print the trace (world events, Kong writes, lock holders) of every failing run, and with -seed of every run")
	parallel = flag.Int("parallel", runtime.GOMAXPROCS(0), "runs at a time (each run is its own virtual-time bubble and uses about one core); the report is the same for any value")
	soak     = flag.Int("soak", 0, "run the nemesis seeds make test runs (1..scenarios.TestSeeds, each a fresh world) this many times in a row; stop at the first failure with its seed, the run number and the replay line; print each run's wall and CPU time and the totals (with -seeds N: the first N seeds only)")
)

func main() {
	testing.Init()
	flag.Parse()
	flag.Visit(func(f *flag.Flag) { seedsSet = seedsSet || f.Name == "seeds" })
	// client-go's reflectors log every dropped watch the simulator
	// injects; the report says what happened.
	klog.SetLogger(logr.Discard())
	world.TuneGC()
	if *list {
		for _, sc := range scenarios.Named {
			fmt.Printf("%-18s %s\n", sc.Name, sc.About)
		}
		return
	}
	// testing.Main parses the test flags itself; keep ours out of its way.
	os.Args = os.Args[:1]
	testing.Main(func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) },
		[]testing.InternalTest{{Name: "Simulation", F: simulate}}, nil, nil)
}

func simulate(t *testing.T) {
	if *soak > 0 {
		soakRuns(t, *soak)
		return
	}
	var cfgs []world.Config
	var replay func(uint64) string
	switch {
	case *scenario != "":
		sc, ok := scenarios.Find(*scenario)
		if !ok {
			t.Fatalf("-scenario %q: no such scenario (see -list)", *scenario)
		}
		// One seed, or with an explicit -seeds N the seeds 1..N.
		first, n := max(*seed, 1), 1
		if *seed == 0 && seedsSet {
			n = *seeds
		}
		for s := first; s < first+uint64(n); s++ {
			cfgs = append(cfgs, sc.Config(s))
		}
		replay = func(n uint64) string {
			return fmt.Sprintf("go run ./cmd/konductor-sim -scenario %s -seed %d", sc.Name, n)
		}
	default:
		first, n := max(*from, 1), *seeds
		if *seed != 0 {
			first, n = *seed, 1
		}
		for s := first; s < first+uint64(n); s++ {
			cfgs = append(cfgs, scenarios.Nemesis(s))
		}
		replay = func(n uint64) string { return fmt.Sprintf("go run ./cmd/konductor-sim -seed %d", n) }
	}
	for i := range cfgs {
		cfgs[i].Options = withPodEvidence(cfgs[i].Options, *evidence)
	}
	if *repeat > 1 {
		once := cfgs
		cfgs = nil
		for _, c := range once {
			for range *repeat {
				cfgs = append(cfgs, c)
			}
		}
	}
	start := time.Now()
	results := runAll(t, cfgs, replay)
	var failovers, recoveries, applied, inDB []time.Duration
	byKind := map[string][]time.Duration{}
	fired := map[string]int{}
	var failed []*world.Result
	var virtual time.Duration
	var volumePeak float64
	for _, res := range results {
		failovers = append(failovers, res.Failovers...)
		recoveries = append(recoveries, res.Recoveries...)
		applied = append(applied, res.ChangesApplied...)
		inDB = append(inDB, res.ChangesInDatabase...)
		for k, v := range res.FailoversByKind {
			byKind[k] = append(byKind[k], v...)
		}
		virtual += res.Virtual
		volumePeak = max(volumePeak, res.WriteVolumePeak)
		for k, v := range res.Fired {
			fired[k] += v
		}
		if res.Failed() {
			failed = append(failed, res)
		}
		if len(cfgs) == 1 || *repeat > 1 {
			fmt.Println(res.Summary())
		}
		if *trace && *seed != 0 && !res.Failed() {
			printTrace(res)
		}
	}
	wall := time.Since(start)
	fmt.Printf("\nkonductor-sim: %d runs, %v simulated in %v wall\n", len(cfgs), virtual.Round(time.Second), wall.Round(time.Millisecond))
	fmt.Printf("invariants checked: %s\n", strings.Join(world.Oracles, ", "))
	fmt.Printf("failover (leader lost → new holder): %s\n", stats(failovers))
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Printf("  after %-18s %s\n", k+":", stats(byKind[k]))
	}
	fmt.Printf("change made at a leader kill or stop → applied on every Kong: %s\n", stats(applied))
	if len(inDB) > 0 {
		fmt.Printf("  (database mode) → its route written to the database: %s\n", stats(inDB))
	}
	fmt.Printf("Kong recovery (started empty → configured): %s\n", stats(recoveries))
	fmt.Printf("write volume: the busiest kind of write used %.0f%% of its budget in one window\n", 100*volumePeak)
	if len(failovers) > 0 {
		fmt.Printf("simulated failovers per wall minute: %.0f\n", float64(len(failovers))/wall.Minutes())
	}
	keys := make([]string, 0, len(fired))
	for k := range fired {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println("faults fired:")
	for _, k := range keys {
		fmt.Printf("  %-22s %d\n", k, fired[k])
	}
	for _, res := range failed {
		printFailure(fmt.Sprintf("\nFAIL seed %d (%s)", res.Seed, res.Summary()), res, replay(res.Seed))
	}
	if len(failed) > 0 {
		t.Fail()
		return
	}
	fmt.Println("\nall invariants held")
}

// runAll runs cfgs -parallel at a time and returns their results in the
// order of cfgs, so the report does not depend on scheduling. With
// -failfast no run starts after one has failed, and the results end at the
// first failure in that order.
func runAll(t *testing.T, cfgs []world.Config, replay func(uint64) string) []*world.Result {
	results := make([]*world.Result, len(cfgs))
	var failedOnce atomic.Bool
	slots := make(chan struct{}, max(*parallel, 1))
	var wg sync.WaitGroup
	for i := range cfgs {
		if *failfast && failedOnce.Load() {
			break
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			cfg := cfgs[i]
			stop := watch(&cfg, replay)
			defer stop()
			synctest.Test(t, func(t *testing.T) {
				res, err := world.Run(t.Context(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				results[i] = res
			})
			if results[i] != nil && results[i].Failed() {
				failedOnce.Store(true)
			}
		})
	}
	wg.Wait()
	done := results[:0]
	for _, res := range results {
		if res == nil {
			break
		}
		done = append(done, res)
		if *failfast && res.Failed() {
			break
		}
	}
	return done
}

func printTrace(res *world.Result) {
	for _, e := range res.Trace {
		fmt.Printf("  trace %v %s %s\n", e.At, e.Kind, e.Detail)
	}
}

// stats is "n=… min … p50 … p99 … max …".
func stats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("n=%d min %v p50 %v p99 %v max %v", len(s), r(s[0]), r(q(0.5)), r(q(0.99)), r(s[len(s)-1]))
}

// withPodEvidence sets --election-pod-evidence after the scenario's own
// option tweaks.
func withPodEvidence(tweak func(*options.Options), on bool) func(*options.Options) {
	return func(o *options.Options) {
		if tweak != nil {
			tweak(o)
		}
		o.ElectionPodEvidence = on
	}
}

// watch starts the progress watchdog of one run: virtual time that stands
// still for -stall of wall time means the run hangs (a goroutine blocked
// on something synctest cannot see, such as a mutex, keeps the bubble from
// ever advancing). It then reports the seed and the replay line, writes
// every goroutine's stack to a file, and exits 1 rather than hang.
func watch(cfg *world.Config, replay func(uint64) string) (stop func()) {
	seed := cfg.Seed
	var fail sync.Once
	failed := func(why string, at time.Duration) {
		fail.Do(func() {
			buf := make([]byte, 64<<20)
			buf = buf[:runtime.Stack(buf, true)]
			dump := filepath.Join(os.TempDir(), fmt.Sprintf("konductor-sim-stall-seed-%d.txt", seed))
			_ = os.WriteFile(dump, buf, 0o644)
			fmt.Printf("\nFAIL seed %d (%s)\n", seed, why)
			fmt.Printf("   [progress] at %v: the run stopped making progress; goroutines: %s\n", at, dump)
			fmt.Println("  replay:", replay(seed))
			os.Exit(1)
		})
	}
	// Progress is called inside the bubble, where time.Now is virtual:
	// only the virtual reading crosses over to the watchdog.
	w := bubble.Watch(*stall, func(at time.Duration) {
		failed(fmt.Sprintf("no progress: virtual time stood at %v for %v of wall time", at, *stall), at)
	})
	cfg.Progress = w.Moved
	noEnd := time.AfterFunc(*runLimit, func() {
		at := w.At()
		failed(fmt.Sprintf("no end: virtual time at %v after %v of wall time (-run-timeout)", at, *runLimit), at)
	})
	return func() {
		noEnd.Stop()
		w.Stop()
	}
}

// printFailure prints a failed run under headline: its steps, violations,
// trace (with -trace) and the replay command line.
func printFailure(headline string, res *world.Result, replay string) {
	fmt.Println(headline)
	for _, s := range res.Steps {
		fmt.Println("  step:", s)
	}
	for _, v := range res.Violations {
		fmt.Println("  ", v)
	}
	if *trace {
		printTrace(res)
	}
	fmt.Println("  replay:", replay)
}
