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
	"konductor.dev/sim/scenarios"
)

func main() {
	seeds := flag.Int("seeds", 500, "nemesis seeds the simulator runs per mutant (make test's TestNemesisSeeds runs 500)")
	scenarios := flag.String("scenarios", strings.Join(scenarioNames(), ","), "named scenarios run per mutant, comma-separated (default: every named scenario, as make test runs them)")
	parallel := flag.Int("parallel", 1, "mutants run at once (each builds a simulator binary and runs it; 2 suits a 2-core machine)")
	only := flag.String("run", "", "run only the mutants whose name matches this regexp")
	noSpecs := flag.Bool("sim-only", false, "run the simulator only, not the specs")
	// 500 nemesis seeds take 4 minutes on two idle cores and over 15 at a
	// load average of 30; a frozen or churning world is caught much
	// sooner by -stall and -run-timeout, so this is only the backstop.
	simTimeout := flag.Duration("sim-timeout", 45*time.Minute, "a simulator invocation (a scenario, or the nemesis seeds) longer than this counts as a hang")
	stall := flag.Duration("stall", 45*time.Second, "the simulator's progress watchdog: virtual time standing still this long fails the run")
	runLimit := flag.Duration("run-timeout", 2*time.Minute, "the simulator fails one world that takes longer than this (wall clock)")
	specTimeout := flag.Duration("spec-timeout", 10*time.Minute, "bound on one mutant's specs")
	overlayDir := flag.String("overlay", "", "write the go -overlay file of the one mutant -run selects into this directory, print its path and exit (to build or test that mutant by hand)")
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
	if *overlayDir != "" {
		if len(todo) != 1 {
			fail(2, fmt.Errorf("-overlay: -run selects %d mutants, want exactly one", len(todo)))
		}
		if err := os.MkdirAll(*overlayDir, 0o755); err != nil {
			fail(2, err)
		}
		path, err := mutants.Overlay(root, *overlayDir, todo[0])
		if err != nil {
			fail(2, err)
		}
		fmt.Println(path)
		return
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
	// Mutants run -parallel at a time; their lines print in catalogue order.
	type outcome struct {
		v   mutants.Verdict
		err error
	}
	results := make([]chan outcome, len(todo))
	next := make(chan int, len(todo))
	for i := range todo {
		results[i] = make(chan outcome, 1)
		next <- i
	}
	close(next)
	for range max(*parallel, 1) {
		go func() {
			for i := range next {
				v, err := mutants.Run(ctx, o, todo[i])
				results[i] <- outcome{v, err}
			}
		}()
	}
	for i, m := range todo {
		r := <-results[i]
		v, err := r.v, r.err
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

// scenarioNames lists every named scenario of the simulator.
func scenarioNames() []string {
	var out []string
	for _, sc := range scenarios.Named {
		out = append(out, sc.Name)
	}
	return out
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
