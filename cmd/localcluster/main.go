// Command localcluster runs the local process cluster (konductor.dev/sim/cluster)
// in the background and writes a kubeconfig for it.
//
//	localcluster up      start the cluster unless it runs; print the kubeconfig path
//	localcluster down    stop it and remove everything it left (also after a crash)
//	localcluster status  say whether it runs, with its processes' memory
//	localcluster serve   run the cluster in the foreground (what up starts)
//
// up and down are idempotent. The control-plane binaries come from
// hack/build-k8s.sh (or $KONDUCTOR_K8S_BIN); pod images map to the binaries in
// --bin (make build's output): kong → kongsim, konductor, konductor.dev/echo →
// echoserver, postgres → the host's PostgreSQL; metrics-server, prometheus,
// keda and keda-metrics-apiserver → the binaries of hack/build-metrics.sh
// (or $KONDUCTOR_METRICS_BIN) when built.
package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/node"
	"konductor.dev/sim/cluster/proc"
)

type options struct {
	name, state, bin, network string
	images                    []string
	zones                     int
	timeout                   time.Duration
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var o options
	fs := pflag.NewFlagSet("localcluster", pflag.ContinueOnError)
	fs.StringVar(&o.name, "name", "default", "cluster name")
	fs.StringVar(&o.state, "state", cluster.DefaultStateRoot(), "directory of cluster state")
	fs.StringVar(&o.bin, "bin", defaultBin(), "directory of the project's binaries (kongsim, konductor, echoserver)")
	fs.StringVar(&o.network, "network", "", `pod network: "netns", "loopback" or "" (netns where permitted)`)
	fs.StringSliceVar(&o.images, "image", nil, "extra image=binary mappings")
	fs.IntVar(&o.zones, "nodes", 3, "nodes to register, one zone each")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "how long up may take (includes a first build)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: localcluster up|down|status|serve [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one command")
	}
	dir := filepath.Join(o.state, o.name)
	switch fs.Arg(0) {
	case "up":
		return up(o, dir)
	case "down":
		return down(o, dir)
	case "status":
		return status(dir)
	case "serve":
		return serve(o)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", fs.Arg(0))
}

func defaultBin() string {
	if root, err := cluster.RepoRoot(); err == nil {
		return filepath.Join(root, "bin")
	}
	return "bin"
}

// up starts "localcluster serve" detached and waits until it reports ready.
func up(o options, dir string) error {
	if pid, ok := cluster.Running(dir); ok {
		fmt.Fprintf(os.Stderr, "cluster %s already runs (pid %d)\n", o.name, pid)
		fmt.Println(filepath.Join(dir, "kubeconfig"))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// Build (or find) the binaries here, so the first build's progress is
	// visible and serve starts quickly.
	binDir, err := cluster.Binaries(ctx, os.Stderr)
	if err != nil {
		return err
	}
	if _, err := cluster.Sweep(ctx, o.state, logStderr); err != nil {
		return err
	}
	if err := os.MkdirAll(o.state, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(o.state, o.name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"serve", "--name", o.name, "--state", o.state, "--bin", o.bin, "--network", o.network,
		"--nodes", strconv.Itoa(o.zones)}
	for _, img := range o.images {
		args = append(args, "--image", img)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), cluster.BinDirEnv+"="+binDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive this shell
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join(dir, cluster.ReadyFile)); err == nil {
			if kubectl := filepath.Join(binDir, "kubectl"); fileExists(kubectl) {
				fmt.Fprintf(os.Stderr, "kubectl: %s --kubeconfig=%s\n", kubectl, filepath.Join(dir, "kubeconfig"))
			}
			fmt.Println(filepath.Join(dir, "kubeconfig"))
			return nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("serve exited (%v):\n%s", err, log)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("cluster %s not ready within %s; see %s", o.name, o.timeout, logPath)
		case <-tick.C:
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// serve runs the cluster until SIGTERM or SIGINT.
func serve(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	binDir, err := cluster.Binaries(ctx, os.Stderr)
	if err != nil {
		return err
	}
	images := cluster.DefaultImages(o.bin)
	// The metrics pipeline (hack/build-metrics.sh), where built.
	metrics, err := cluster.MetricsImages(cluster.DefaultMetricsBinDir(), o.bin)
	if err != nil {
		return err
	}
	maps.Copy(images, metrics)
	for _, kv := range o.images {
		img, bin, ok := strings.Cut(kv, "=")
		if !ok || img == "" || bin == "" {
			return fmt.Errorf("--image %q: want image=binary", kv)
		}
		images[img] = bin
	}
	var nodes []node.Spec
	for i := range o.zones {
		z := string(rune('a' + i%26))
		nodes = append(nodes, node.Spec{Name: "node-" + z + strconv.Itoa(i/26), Zone: "zone-" + z})
	}
	c, err := cluster.Start(ctx, cluster.Options{
		Name: o.name, BinDir: binDir, StateRoot: o.state, Nodes: nodes, Images: images,
		Network: cluster.NetworkMode(o.network), Logf: logStderr,
	})
	if err != nil {
		return err
	}
	if err := c.MarkReady(); err != nil {
		_ = c.Stop(context.Background())
		return err
	}
	<-ctx.Done()
	logStderr("stopping cluster %s", o.name)
	return c.Stop(context.Background())
}

// down asks the owner to stop, then removes whatever is left.
func down(o options, dir string) error {
	ctx := context.Background()
	if pid, ok := cluster.Running(dir); ok {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, still := cluster.Running(dir); !still {
				break
			}
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(100 * time.Millisecond) // the owner is not our child: poll
		}
	}
	if _, err := os.Stat(dir); err == nil {
		if err := cluster.Remove(ctx, dir); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(o.state, o.name+".log"))
	swept, err := cluster.Sweep(ctx, o.state, logStderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "cluster %s is down (also removed: %v)\n", o.name, swept)
	return nil
}

func status(dir string) error {
	pid, ok := cluster.Running(dir)
	if !ok {
		fmt.Printf("cluster %s: not running\n", filepath.Base(dir))
		return nil
	}
	fmt.Printf("cluster %s: running (owner pid %d)\nkubeconfig: %s\n", filepath.Base(dir), pid, filepath.Join(dir, "kubeconfig"))
	pids, err := proc.Marked(filepath.Base(dir))
	if err != nil {
		return err
	}
	sort.Ints(pids)
	var total int64
	for _, p := range pids {
		rss, _ := proc.RSS(p)
		total += rss
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		fmt.Printf("  %7d %6.1f MiB  %s\n", p, float64(rss)/(1<<20), filepath.Base(args[0]))
	}
	ownerRSS, _ := proc.RSS(pid)
	fmt.Printf("  %7d %6.1f MiB  (owner: node agent)\n  total %.1f MiB\n", pid, float64(ownerRSS)/(1<<20), float64(total+ownerRSS)/(1<<20))
	return nil
}

func logStderr(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
}
