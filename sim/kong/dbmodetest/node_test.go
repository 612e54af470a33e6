package dbmodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// binPrefix names the directories kongsim is built into; the building
// process's pid follows, so directories of finished runs can be removed.
const binPrefix = "kongsim-dbmodetest-"

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// kongsimBinary builds cmd/kongsim once per test process. Without a
// TestMain nothing runs when the process ends, so each build first removes
// the directories of earlier runs whose process is gone.
func kongsimBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { binary, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("building cmd/kongsim: %v", buildErr)
	}
	return binary
}

func build() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	removeStaleBuilds()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kongsim")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kongsim")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./cmd/kongsim: %v\n%s", err, out)
	}
	return bin, nil
}

func removeStaleBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*"))
	for _, dir := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), binPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s", dir)
		}
	}
}

// syncBuffer collects a process's output for failure reports.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runOnce runs a kongsim subcommand to completion.
func runOnce(t *testing.T, env []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kongsimBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kongsim %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// node is one running kongsim process.
type node struct {
	name                 string
	admin, proxy, status string // host:port
	cmd                  *exec.Cmd
	output               *syncBuffer
	exited               chan struct{}
}

// startNode runs a kongsim node with env plus its own listeners, waits
// until its Admin API answers, and stops it with SIGTERM when t ends.
func startNode(t *testing.T, name string, env []string) *node {
	t.Helper()
	n := &node{name: name, output: &syncBuffer{}, exited: make(chan struct{})}
	n.cmd = exec.Command(kongsimBinary(t))
	n.cmd.Env = append(os.Environ(), env...)
	// Port 0 everywhere: the node binds its own ports and logs them, so no
	// port chosen here can be taken by another test before the node binds.
	n.cmd.Env = append(n.cmd.Env,
		"KONG_ADMIN_LISTEN=127.0.0.1:0", "KONG_PROXY_LISTEN=127.0.0.1:0", "KONG_STATUS_LISTEN=127.0.0.1:0")
	n.cmd.Stdout, n.cmd.Stderr = n.output, n.output
	n.cmd.SysProcAttr = dieWithParent()
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start kongsim %s: %v", name, err)
	}
	go func() { _ = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.stop(t)
		if t.Failed() {
			t.Logf("output of kongsim %s:\n%s", name, n.output.String())
		}
	})

	NewWithT(t).Eventually(func() error {
		select {
		case <-n.exited:
			return StopTrying(fmt.Sprintf("kongsim %s exited before serving:\n%s", name, n.output.String()))
		default:
		}
		if n.admin == "" {
			if !n.readBoundAddresses() {
				return errors.New("no \"kongsim started\" line yet")
			}
		}
		resp, err := http.Get("http://" + n.admin + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET / answered %d", resp.StatusCode)
		}
		return nil
	}).WithTimeout(30*time.Second).WithPolling(20*time.Millisecond).Should(Succeed(), "kongsim %s Admin API", name)
	return n
}

// readBoundAddresses sets the node's addresses from kongsim's "kongsim
// started" log line, if it was written yet.
func (n *node) readBoundAddresses() bool {
	for _, line := range strings.Split(n.output.String(), "\n") {
		var started struct {
			Msg, Admin, Proxy, Status string
		}
		if json.Unmarshal([]byte(line), &started) == nil && started.Msg == "kongsim started" {
			n.admin, n.proxy, n.status = started.Admin, started.Proxy, started.Status
			return true
		}
	}
	return false
}

// stop sends SIGTERM and waits for a clean exit, killing the process if it
// does not exit within a bound.
func (n *node) stop(t *testing.T) {
	select {
	case <-n.exited:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		if code := n.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("kongsim %s exited with %d after SIGTERM", n.name, code)
		}
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
		t.Errorf("kongsim %s ignored SIGTERM for 30s and was killed", n.name)
	}
}
