// Package cli is the konductor-chaos command: it checks drill files, runs
// them against a cluster reachable by kubeconfig and writes the journal and
// the reports; it also regenerates reports from a journal.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/engine"
	"konductor.dev/chaos/journal"
	"konductor.dev/chaos/kube"
	"konductor.dev/chaos/report"
)

const usage = `usage:
  konductor-chaos run    [flags] DRILL...   run drills (files or directories of *.yaml)
  konductor-chaos check  DRILL...           parse drills strictly; nothing runs
  konductor-chaos list   DRILL...           list drills with the provider they need
  konductor-chaos report [-out DIR] JOURNAL regenerate report.md and report.html from a journal
  konductor-chaos pool   [-out FILE] JOURNAL...
                                            one table over several runs' journals: per drill,
                                            runs passed and failover/recovery percentiles pooled

Exit status: 0 every drill passed, 1 a drill failed or was aborted, 2 usage or
setup error, 130 interrupted (rollbacks and teardown have run).
`

// Main runs the command and returns its exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	code := 0
	switch args[0] {
	case "run":
		code, err = run(args[1:], stdout, stderr)
	case "check":
		_, err = load(args[1:])
		if err == nil {
			fmt.Fprintln(stdout, "ok")
		}
	case "list":
		var drills []*drill.Drill
		if drills, err = load(args[1:]); err == nil {
			for _, d := range drills {
				need := string(d.NeedsProvider())
				if need == "" {
					need = "any"
				}
				fmt.Fprintf(stdout, "%-40s %-26s provider %-6s %s\n", filepath.Base(d.File), d.Target.Overlay, need, d.Title)
			}
		}
	case "report":
		err = regenerate(args[1:], stdout)
	case "pool":
		err = pool(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "konductor-chaos:", err)
		if code == 0 {
			code = 2
		}
	}
	return code
}

// load parses drill files and directories, all of them strictly.
func load(paths []string) ([]*drill.Drill, error) {
	if len(paths) == 0 {
		return nil, errors.New("no drill files given")
	}
	var drills []*drill.Drill
	var errs []error
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.IsDir() {
			ds, err := drill.ParseDir(p)
			errs = append(errs, err)
			drills = append(drills, ds...)
			continue
		}
		d, err := drill.ParseFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		drills = append(drills, d)
	}
	return drills, errors.Join(errs...)
}

func regenerate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("out", "", "directory for report.md and report.html (default: beside the journal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("report wants one journal file")
	}
	files, _, err := report.Generate(fs.Arg(0), *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s\n        %s\n", files.Markdown, files.HTML)
	return nil
}

// pool writes the pooled report of several runs' journals to stdout, or to
// -out.
func pool(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pool", flag.ContinueOnError)
	out := fs.String("out", "", "file for the pooled report (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("pool wants the journal files of the runs to pool")
	}
	var runs [][]*report.Summary
	for _, path := range fs.Args() {
		recs, err := journal.ReadFile(path)
		if err != nil {
			return err
		}
		runs = append(runs, report.Summarize(recs))
	}
	var b strings.Builder
	if err := report.PooledMarkdown(&b, report.Pool(runs), len(runs)); err != nil {
		return err
	}
	if *out == "" {
		_, err := io.WriteString(stdout, b.String())
		return err
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pooled report: %s\n", *out)
	return nil
}

// RunOptions are the settings of a run, shared by the CLI and the suite.
type RunOptions struct {
	Kubeconfig string
	Provider   drill.Provider
	DeployDir  string
	ProxyURL   string
	Out        string
	Log        io.Writer
}

// RunResult is what a run produced.
type RunResult struct {
	Results []engine.Result
	Drills  []*drill.Drill
	Journal string
	Report  report.Files
}

// Interrupted says whether a run was interrupted.
func (r RunResult) Interrupted() bool {
	for _, res := range r.Results {
		if res.Outcome == journal.OutcomeInterrupted {
			return true
		}
	}
	return false
}

// Passed says whether every drill passed.
func (r RunResult) Passed() bool {
	for _, res := range r.Results {
		if res.Outcome != journal.OutcomePassed {
			return false
		}
	}
	return len(r.Results) > 0
}

// Run runs drills one after another into one journal and writes the
// reports. An interrupt (ctx) stops the current drill, which still cleans
// up; the drills after it do not start.
func Run(ctx context.Context, o RunOptions, drills []*drill.Drill) (RunResult, error) {
	res := RunResult{Drills: drills}
	if o.Log == nil {
		o.Log = io.Discard
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return res, fmt.Errorf("kubeconfig %s: %w", o.Kubeconfig, err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return res, err
	}
	res.Journal = filepath.Join(o.Out, "journal.jsonl")
	j, err := journal.Create(res.Journal)
	if err != nil {
		return res, err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	for _, d := range drills {
		if ctx.Err() != nil {
			break
		}
		t, err := kube.New(kube.Options{Config: cfg, Provider: o.Provider, DeployDir: o.DeployDir, ProxyURL: o.ProxyURL, Log: logf})
		if err != nil {
			_ = j.Close()
			return res, err
		}
		e := &engine.Engine{Target: t, Log: logf}
		res.Results = append(res.Results, e.Run(ctx, d, j))
	}
	if err := j.Close(); err != nil {
		return res, err
	}
	res.Report, _, err = report.Generate(res.Journal, "")
	return res, err
}

func run(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster (default $KUBECONFIG)")
	provider := fs.String("provider", "any", "the kind of cluster: local (the local process cluster; process faults), kind, any")
	deployDir := fs.String("deploy-dir", "", "the repository's deploy/ directory (default: found from the working directory)")
	proxyURL := fs.String("proxy-url", "", "reach the Kong proxy at this URL (e.g. a kind NodePort) instead of through its endpoints")
	out := fs.String("out", "", "directory for the journal and reports (default chaos/out/<time>)")
	timeout := fs.Duration("timeout", 0, "interrupt the run after this long (0: no limit beyond each drill's max-duration)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	switch drill.Provider(*provider) {
	case drill.ProviderLocal, drill.ProviderKind, drill.ProviderAny:
	default:
		return 2, fmt.Errorf("-provider %q: want local, kind or any", *provider)
	}
	drills, err := load(fs.Args())
	if err != nil {
		return 2, err
	}
	if *kubeconfig == "" {
		return 2, errors.New("no kubeconfig: pass -kubeconfig or set KUBECONFIG (the local cluster: bin/localcluster up prints it)")
	}
	root := repoRoot()
	if *deployDir == "" {
		*deployDir = filepath.Join(root, "deploy")
	}
	if *out == "" {
		*out = filepath.Join(root, "chaos", "out", time.Now().UTC().Format("20060102-150405"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, *timeout, fmt.Errorf("-timeout %s passed", *timeout))
		defer cancel()
	}
	res, err := Run(ctx, RunOptions{Kubeconfig: *kubeconfig, Provider: drill.Provider(*provider), DeployDir: *deployDir,
		ProxyURL: *proxyURL, Out: *out, Log: stderr}, drills)
	summarize(stdout, res)
	switch {
	case err != nil:
		return 2, err
	case res.Interrupted():
		return 130, nil
	case !res.Passed():
		return 1, nil
	}
	return 0, nil
}

func summarize(w io.Writer, res RunResult) {
	fmt.Fprintln(w)
	for i, r := range res.Results {
		fmt.Fprintf(w, "%-12s %s\n", strings.ToUpper(r.Outcome), res.Drills[i].Title)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "             %s\n", f)
		}
	}
	if res.Report.Markdown != "" {
		fmt.Fprintf(w, "\njournal: %s\nreport:  %s\n         %s\n", res.Journal, res.Report.Markdown, res.Report.HTML)
	}
}

// repoRoot finds the repository around the working directory by its
// go.work; "." when there is none.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
