package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"konductor.dev/sim/scenarios"
	"konductor.dev/sim/world"
)

// soakRuns runs the nemesis seeds make test runs, runs times in a row, and
// stops at the first run that breaks an invariant. Each seed is a fresh
// world, as in the test; the seeds of one run go -parallel at a time.
func soakRuns(t *testing.T, runs int) {
	*failfast = true
	n := uint64(scenarios.TestSeeds)
	if seedsSet {
		n = uint64(max(*seeds, 1)) // a shorter soak, of the first seeds only
	}
	var cfgs []world.Config
	for s := uint64(1); s <= n; s++ {
		c := scenarios.Nemesis(s)
		c.Options = withPodEvidence(c.Options, *evidence)
		cfgs = append(cfgs, c)
	}
	fmt.Printf("konductor-sim: soak: nemesis seeds 1..%d (make test runs 1..%d), %d runs in a row, %d at a time\n", n, scenarios.TestSeeds, runs, *parallel)
	var totalWall, totalCPU time.Duration
	for run := 1; run <= runs; run++ {
		replay := func(seed uint64) string {
			return fmt.Sprintf("go run ./cmd/konductor-sim -seed %d (failed in soak run %d; a seed with API-server faults may need -seed %d -repeat 50 -failfast -trace to fail again)", seed, run, seed)
		}
		startWall, startCPU := time.Now(), cpuTime()
		results := runAll(t, cfgs, replay)
		wall, cpu := time.Since(startWall), cpuTime()-startCPU
		totalWall += wall
		totalCPU += cpu
		var failed *world.Result
		var failovers int
		for _, res := range results {
			failovers += len(res.Failovers)
			if res.Failed() && failed == nil {
				failed = res
			}
		}
		fmt.Printf("run %d/%d: %d seeds, %d failovers, wall %v, CPU %v (%.3f CPU-s a seed)\n",
			run, runs, len(results), failovers, wall.Round(time.Millisecond), cpu.Round(time.Millisecond), cpu.Seconds()/float64(max(len(results), 1)))
		if failed != nil {
			printFailure(fmt.Sprintf("\nFAIL seed %d in run %d of %d (%s)", failed.Seed, run, runs, failed.Summary()), failed, replay(failed.Seed))
			printSoakTotals(run, len(cfgs), totalWall, totalCPU)
			t.Fail()
			return
		}
		if len(results) != len(cfgs) {
			t.Fatalf("run %d: %d of %d seeds reported", run, len(results), len(cfgs))
		}
	}
	printSoakTotals(runs, len(cfgs), totalWall, totalCPU)
	fmt.Printf("\nall invariants held in %d runs of %d seeds\n", runs, len(cfgs))
}

func printSoakTotals(runs, seeds int, wall, cpu time.Duration) {
	n := float64(runs * seeds)
	fmt.Printf("soak total: %d runs, %d seed runs, wall %v, CPU %v (%.3f CPU-s a seed, %.3f wall-s a seed)\n",
		runs, runs*seeds, wall.Round(time.Second), cpu.Round(time.Second), cpu.Seconds()/n, wall.Seconds()/n)
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
