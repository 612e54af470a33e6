package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// defaultPrefix is Kong's prefix when KONG_PREFIX is unset.
const defaultPrefix = "/usr/local/kong"

// pidFile is where Kong's nginx master writes its pid, relative to the
// prefix; kongsim writes its own there so `kong quit` finds it.
func pidFile(prefix string) string { return filepath.Join(prefix, "pids", "nginx.pid") }

// writePidFile records the node's pid under prefix; the returned function
// removes it. Without a prefix (KONG_PREFIX unset, the node runs outside a
// container) nothing is written.
func writePidFile(prefix string) (func(), error) {
	if prefix == "" {
		return func() {}, nil
	}
	path := pidFile(prefix)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("KONG_PREFIX: %w", err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("KONG_PREFIX: %w", err)
	}
	return func() { _ = os.Remove(path) }, nil
}

// quit is `kong quit`: after --wait seconds it sends SIGQUIT to the node
// whose pid is in the prefix (a graceful stop: the node turns not-ready and
// finishes in-flight requests), and SIGTERM if it still runs after
// --timeout seconds. Kong's recommended preStop hook is
// `kong quit --wait=15`: the wait lets endpoints and load balancers drop the
// pod while it still serves.
func quit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("quit", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error is printed below, once
	prefix := fs.StringP("prefix", "p", "", "prefix of the running node (default $KONG_PREFIX, else "+defaultPrefix+")")
	wait := fs.IntP("wait", "w", 0, "seconds to wait before initiating the shutdown")
	timeout := fs.IntP("timeout", "t", 10, "seconds before the node is stopped forcefully (SIGTERM)")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 2
	}
	if *prefix == "" {
		*prefix = getenv("KONG_PREFIX")
	}
	if *prefix == "" {
		*prefix = defaultPrefix
	}
	if *wait < 0 || *timeout < 0 {
		fmt.Fprintln(stderr, "Error: --wait and --timeout must not be negative")
		return 2
	}
	if err := sleepCtx(ctx, time.Duration(*wait)*time.Second); err != nil {
		return 1
	}
	b, err := os.ReadFile(pidFile(*prefix))
	if err != nil {
		fmt.Fprintf(stderr, "Error: Kong is not running in %s\n", *prefix)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "Error: %s does not hold a pid\n", pidFile(*prefix))
		return 1
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		fmt.Fprintf(stderr, "Error: Kong is not running in %s (pid %d: %v)\n", *prefix, pid, err)
		return 1
	}
	deadline := time.Now().Add(time.Duration(*timeout) * time.Second)
	// The node is not our child: its end shows only as kill(pid, 0)
	// failing, so poll.
	for running(pid) {
		if time.Now().After(deadline) {
			fmt.Fprintln(stderr, "Timeout, forcing Kong to stop")
			_ = syscall.Kill(pid, syscall.SIGTERM)
			return 0
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return 1
		}
	}
	fmt.Fprintln(stdout, "Kong stopped (gracefully)")
	return 0
}

func running(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
