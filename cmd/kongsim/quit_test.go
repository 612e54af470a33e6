package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets a test run this binary as kongsim itself: with
// KONGSIM_TEST_RUN_MAIN=1 the test binary is the node, in its own process,
// which `quit` can signal.
func TestMain(m *testing.M) {
	if os.Getenv("KONGSIM_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestQuitStopsTheNodeInThePrefixGracefully(t *testing.T) {
	prefix := t.TempDir()
	node := exec.Command(os.Args[0])
	node.Env = append(os.Environ(), "KONGSIM_TEST_RUN_MAIN=1", "KONG_PREFIX="+prefix,
		"KONG_ADMIN_LISTEN=127.0.0.1:0", "KONG_PROXY_LISTEN=127.0.0.1:0", "KONG_STATUS_LISTEN=127.0.0.1:0",
		"KONG_LOG_LEVEL=warn")
	var nodeErr bytes.Buffer
	node.Stderr = &nodeErr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- node.Wait() }()
	t.Cleanup(func() {
		_ = node.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(pidFile(prefix)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 20 s; node: %s", pidFile(prefix), nodeErr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a file another process writes
	}

	var out, errOut bytes.Buffer
	began := time.Now()
	if code := run(context.Background(), []string{"quit", "--wait=1", "--timeout=10"},
		envOf(map[string]string{"KONG_PREFIX": prefix}), &out, &errOut, nil); code != 0 {
		t.Fatalf("kong quit = %d: %s", code, errOut.String())
	}
	if waited := time.Since(began); waited < time.Second {
		t.Errorf("quit returned after %s, before its --wait of 1 s", waited)
	}
	if !strings.Contains(out.String(), "Kong stopped (gracefully)") {
		t.Errorf("quit printed %q", out.String())
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("node exit after SIGQUIT: %v (want 0); node: %s", err, nodeErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node still runs after quit returned")
	}
	if _, err := os.Stat(pidFile(prefix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left after a graceful stop: %v", err)
	}
}

func TestQuitErrors(t *testing.T) {
	noNode := t.TempDir()
	garbage := t.TempDir()
	if err := os.MkdirAll(filepath.Join(garbage, "pids"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile(garbage), []byte("nginx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"nothing runs in the prefix", []string{"-p", noNode}, 1, "Kong is not running in " + noNode},
		{"pid file without a pid", []string{"--prefix", garbage}, 1, "does not hold a pid"},
		{"negative wait", []string{"--wait=-1", "-p", noNode}, 2, "must not be negative"},
		{"unknown flag", []string{"--now"}, 2, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"quit"}, tc.args...), envOf(nil), &out, &errOut, nil)
			if code != tc.code || !strings.Contains(errOut.String(), tc.says) {
				t.Errorf("quit %v = %d, %q; want %d, %q", tc.args, code, errOut.String(), tc.code, tc.says)
			}
		})
	}
}
