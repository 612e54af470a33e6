// Package mutants measures what konductor's tests guard: a catalogue of
// small, named faults planted in the controller's production code, and a
// runner that builds each one into a scratch overlay (go build -overlay:
// the source tree and production builds are never touched), runs the
// simulator and the specs that should catch it, and reports which oracle
// caught it at which seed, or that it survived.
//
// Entries are anchored by a code snippet that must occur exactly once in
// the file, not by line numbers: edits elsewhere leave them valid, and an
// entry whose snippet disappeared fails loudly until it is re-anchored.
package mutants

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Mutant is one planted fault.
type Mutant struct {
	// Name is unique: area/what.
	Name string
	// Area groups entries: election, fencing, kongsync, dbsync, status,
	// snapshot, manager, translation.
	Area string
	// About says in a sentence what the fault does.
	About string
	// File is the production file, relative to the repository root.
	File string
	// Find must occur exactly once in File; it is replaced by Repl.
	Find, Repl string
	// Specs are the go test package patterns that should catch it.
	Specs []string
}

// Package is the Go package directory of the mutated file ("./controller/x").
func (m Mutant) Package() string { return "./" + filepath.Dir(m.File) }

// Apply returns the mutated content of m.File under root. It fails when the
// file is missing or the anchor does not occur exactly once.
func (m Mutant) Apply(root string) ([]byte, error) {
	src, err := os.ReadFile(filepath.Join(root, m.File))
	if err != nil {
		return nil, fmt.Errorf("mutant %s: %w", m.Name, err)
	}
	if m.Find == "" || m.Find == m.Repl {
		return nil, fmt.Errorf("mutant %s: empty anchor or a replacement that changes nothing", m.Name)
	}
	switch n := bytes.Count(src, []byte(m.Find)); n {
	case 1:
	case 0:
		return nil, fmt.Errorf("mutant %s: anchor not found in %s (the code moved: re-anchor Find):\n%s", m.Name, m.File, m.Find)
	default:
		return nil, fmt.Errorf("mutant %s: anchor occurs %d times in %s (make Find unique)", m.Name, n, m.File)
	}
	return bytes.Replace(src, []byte(m.Find), []byte(m.Repl), 1), nil
}

// Check validates the catalogue's shape: unique names, known areas, specs.
func Check(cat []Mutant) error {
	seen := map[string]bool{}
	var errs []error
	for _, m := range cat {
		if seen[m.Name] {
			errs = append(errs, fmt.Errorf("mutant %s: duplicate name", m.Name))
		}
		seen[m.Name] = true
		if !strings.HasPrefix(m.File, "controller/") || !strings.HasSuffix(m.File, ".go") || strings.HasSuffix(m.File, "_test.go") {
			errs = append(errs, fmt.Errorf("mutant %s: %s is not a production file of controller/", m.Name, m.File))
		}
		if len(m.Specs) == 0 {
			errs = append(errs, fmt.Errorf("mutant %s: no specs named", m.Name))
		}
	}
	return errors.Join(errs...)
}

// Overlay writes the mutated files of ms into dir and returns the path of
// a go -overlay JSON file replacing them. Two mutants of the same file
// cannot share an overlay.
func Overlay(root, dir string, ms ...Mutant) (string, error) {
	repl := map[string]string{}
	for i, m := range ms {
		src, err := m.Apply(root)
		if err != nil {
			return "", err
		}
		abs := filepath.Join(root, m.File)
		if _, dup := repl[abs]; dup {
			return "", fmt.Errorf("mutant %s: %s already replaced in this overlay", m.Name, m.File)
		}
		out := filepath.Join(dir, fmt.Sprintf("m%d_%s", i, filepath.Base(m.File)))
		if err := os.WriteFile(out, src, 0o644); err != nil {
			return "", err
		}
		repl[abs] = out
	}
	js, err := json.Marshal(map[string]any{"Replace": repl})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "overlay.json")
	return path, os.WriteFile(path, js, 0o644)
}

// Batches groups ms so that no batch mutates one file twice: each batch
// can be compiled with one overlay.
func Batches(ms []Mutant) [][]Mutant {
	var out [][]Mutant
	var files []map[string]bool
	for _, m := range ms {
		placed := false
		for i := range out {
			if !files[i][m.File] {
				out[i], files[i][m.File], placed = append(out[i], m), true, true
				break
			}
		}
		if !placed {
			out = append(out, []Mutant{m})
			files = append(files, map[string]bool{m.File: true})
		}
	}
	return out
}

// Compile builds the packages of ms with their overlay (go build, no link
// of dependents needed: a mutant that compiles in its package compiles).
func Compile(ctx context.Context, root string, ms ...Mutant) error {
	dir, err := os.MkdirTemp("", "konductor-mutant-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ov, err := Overlay(root, dir, ms...)
	if err != nil {
		return err
	}
	pkgs := map[string]bool{}
	args := []string{"build", "-overlay", ov}
	for _, m := range ms {
		if !pkgs[m.Package()] {
			pkgs[m.Package()] = true
			args = append(args, m.Package())
		}
	}
	out, err := goCmd(ctx, root, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func goCmd(ctx context.Context, root string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Root finds the repository root (the directory holding go.work) at or
// above dir.
func Root(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("mutants: no go.work above the working directory; run from the repository")
		}
		dir = parent
	}
}

// Verdict is what running one mutant found.
type Verdict struct {
	Mutant Mutant
	// Sim is the simulator's catch, "" if it survived: "oracle seed N"
	// (or "hang seed-range" when the run did not finish in time).
	Sim string
	// Replay is the command that replays the simulator's catch.
	Replay string
	// Specs is the specs' catch ("package: TestName"), "" if they passed.
	Specs string
	// Hang is set when a run had to be killed at its time limit.
	Hang bool
	Took time.Duration
}

// Caught reports whether anything caught the mutant.
func (v Verdict) Caught() bool { return v.Sim != "" || v.Specs != "" }

// Options of a mutant run.
type Options struct {
	Root string
	// Seeds is the number of nemesis seeds the simulator runs (1..Seeds);
	// Scenarios names the hand-written scenarios it runs too.
	Seeds     int
	Scenarios []string
	// SimTimeout bounds one simulator invocation; a run that exceeds it
	// counts as a hang.
	SimTimeout time.Duration
	// Stall is the simulator's progress watchdog (-stall): a run whose
	// virtual time stands still this long fails as "progress".
	Stall time.Duration
	// RunTimeout bounds one world's wall time (-run-timeout): a run that
	// churns on without ending fails with its seed.
	RunTimeout time.Duration
	// NoSpecs skips the specs (simulator only).
	NoSpecs bool
	// SpecTimeout bounds the specs of one mutant.
	SpecTimeout time.Duration
}

var (
	failLine      = regexp.MustCompile(`(?m)^FAIL seed (\d+)`)
	violationLine = regexp.MustCompile(`(?m)^\s+\[([a-z-]+)\] at `)
	replayLine    = regexp.MustCompile(`(?m)replay: (.*)$`)
	failedTest    = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	failedPkg     = regexp.MustCompile(`(?m)^FAIL\s+(\S+)\s`)
)

// Run builds m into a simulator binary, runs the simulator's seeds and
// scenarios (stopping at the first failure), then m's specs.
func Run(ctx context.Context, o Options, m Mutant) (Verdict, error) {
	start := time.Now()
	v := Verdict{Mutant: m}
	dir, err := os.MkdirTemp("", "konductor-mutant-")
	if err != nil {
		return v, err
	}
	defer os.RemoveAll(dir)
	ov, err := Overlay(o.Root, dir, m)
	if err != nil {
		return v, err
	}
	bin := filepath.Join(dir, "konductor-sim")
	if out, err := goCmd(ctx, o.Root, "build", "-overlay", ov, "-o", bin, "./cmd/konductor-sim").CombinedOutput(); err != nil {
		return v, fmt.Errorf("mutant %s does not compile: %w\n%s", m.Name, err, out)
	}
	stall, limit := "-stall="+o.Stall.String(), "-run-timeout="+o.RunTimeout.String()
	// The named scenarios first: each is one short run aimed at one kind
	// of fault, where the nemesis seeds take minutes when nothing fails.
	var runs [][]string
	for _, sc := range o.Scenarios {
		runs = append(runs, []string{"-scenario", sc, stall, limit})
	}
	runs = append(runs, []string{"-seeds", fmt.Sprint(o.Seeds), "-failfast", stall, limit})
	for _, args := range runs {
		rctx, cancel := context.WithTimeout(ctx, o.SimTimeout)
		cmd := exec.CommandContext(rctx, bin, args...)
		cmd.Dir = o.Root
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		timedOut := rctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return v, ctx.Err()
		}
		if timedOut {
			v.Hang = true
			v.Sim = "hang (" + strings.Join(args, " ") + ")"
			break
		}
		if err == nil {
			continue
		}
		v.Sim = describeSimFailure(string(out), args)
		if r := replayLine.FindStringSubmatch(string(out)); r != nil {
			v.Replay = r[1]
		}
		break
	}
	if !o.NoSpecs {
		sctx, cancel := context.WithTimeout(ctx, o.SpecTimeout)
		args := append([]string{"test", "-overlay", ov, "-count=1", "-failfast", "-timeout", o.SpecTimeout.String()}, m.Specs...)
		out, err := goCmd(sctx, o.Root, args...).CombinedOutput()
		timedOut := sctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return v, ctx.Err()
		}
		switch {
		case timedOut:
			v.Hang = true
			v.Specs = "hang (go test " + strings.Join(m.Specs, " ") + ")"
		case err != nil:
			v.Specs = describeSpecFailure(string(out))
		}
	}
	v.Took = time.Since(start)
	return v, nil
}

func describeSimFailure(out string, args []string) string {
	oracle := "exit status"
	if vm := violationLine.FindStringSubmatch(out); vm != nil {
		oracle = vm[1]
	}
	if fm := failLine.FindStringSubmatch(out); fm != nil {
		if len(args) > 0 && args[0] == "-scenario" {
			return fmt.Sprintf("%s (scenario %s)", oracle, args[1])
		}
		return fmt.Sprintf("%s (seed %s)", oracle, fm[1])
	}
	return fmt.Sprintf("%s (%s)", oracle, strings.Join(args, " "))
}

func describeSpecFailure(out string) string {
	test := ""
	if t := failedTest.FindStringSubmatch(out); t != nil {
		test = t[1]
	}
	pkg := ""
	if p := failedPkg.FindStringSubmatch(out); p != nil {
		pkg = p[1]
	}
	switch {
	case test != "" && pkg != "":
		return pkg + ": " + test
	case pkg != "":
		return pkg + " (build or panic)"
	}
	return "go test failed"
}
