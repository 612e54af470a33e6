// Command konductor-mutants runs the mutant catalogue (sim/mutants): each
// planted fault is built into a scratch overlay and run against the
// simulator and the specs that should catch it. It prints a table mutant →
// caught by (oracle, seed) / survived, and the scores; it exits 1 when a
// mutant survives everything or hangs, 2 when the catalogue itself is
// broken (an anchor that no longer exists, a mutant that does not compile).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"time"

	"konductor.dev/sim/mutants"
)

func main() {
	seeds := flag.Int("seeds", 20, "nemesis seeds the simulator runs per mutant (make test runs 20)")
	scenarios := flag.String("scenarios", "leader-crash,graceful-rollout,kong-misbehaves,database-mode", "named scenarios run per mutant, comma-separated")
	only := flag.String("run", "", "run only the mutants whose name matches this regexp")
	noSpecs := flag.Bool("sim-only", false, "run the simulator only, not the specs")
	simTimeout := flag.Duration("sim-timeout", 10*time.Minute, "a simulator run longer than this counts as a hang")
	stall := flag.Duration("stall", 45*time.Second, "the simulator's progress watchdog: virtual time standing still this long fails the run")
	runLimit := flag.Duration("run-timeout", 2*time.Minute, "the simulator fails one world that takes longer than this (wall clock)")
	specTimeout := flag.Duration("spec-timeout", 10*time.Minute, "bound on one mutant's specs")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root, err := mutants.Root(".")
	if err != nil {
		fail(2, err)
	}
	if err := mutants.Check(mutants.Catalogue); err != nil {
		fail(2, err)
	}
	re, err := regexp.Compile(*only)
	if err != nil {
		fail(2, fmt.Errorf("-run: %w", err))
	}
	var todo []mutants.Mutant
	for _, m := range mutants.Catalogue {
		if re.MatchString(m.Name) {
			todo = append(todo, m)
		}
	}
	// Every selected entry must apply before anything runs.
	for _, m := range todo {
		if _, err := m.Apply(root); err != nil {
			fail(2, err)
		}
	}
	var scs []string
	for _, s := range strings.Split(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			scs = append(scs, s)
		}
	}
	o := mutants.Options{Root: root, Seeds: *seeds, Scenarios: scs, SimTimeout: *simTimeout, Stall: *stall, RunTimeout: *runLimit, NoSpecs: *noSpecs, SpecTimeout: *specTimeout}

	fmt.Printf("%-40s %-44s %s\n", "mutant", "simulator", "specs")
	var bySim, byAny, hangs int
	var survivors []string
	for _, m := range todo {
		v, err := mutants.Run(ctx, o, m)
		if err != nil {
			fail(2, err)
		}
		sim, specs := or(v.Sim, "survived"), or(v.Specs, "survived")
		if o.NoSpecs {
			specs = "-"
		}
		fmt.Printf("%-40s %-44s %s   (%v)\n", m.Name, sim, specs, v.Took.Round(time.Second))
		if v.Replay != "" {
			fmt.Printf("%-40s   replay: %s\n", "", v.Replay)
		}
		if v.Sim != "" && !v.Hang {
			bySim++
		}
		if v.Caught() {
			byAny++
		} else {
			survivors = append(survivors, m.Name)
		}
		if v.Hang {
			hangs++
		}
	}
	n := len(todo)
	fmt.Printf("\nscore: simulator %d/%d (%.0f%%), simulator or specs %d/%d (%.0f%%), hangs %d\n",
		bySim, n, pct(bySim, n), byAny, n, pct(byAny, n), hangs)
	if len(survivors) > 0 {
		fmt.Println("survived:", strings.Join(survivors, ", "))
	}
	if len(survivors) > 0 || hangs > 0 {
		os.Exit(1)
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "konductor-mutants:", err)
	os.Exit(code)
}
