package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/clustertest"
	"konductor.dev/sim/cluster/podnet"
	"konductor.dev/sim/cluster/proc"
)

// TestUpDownIdempotentAndCrashRecovery drives the built command: up twice
// (one cluster), a crash of its owner, up again (the leftovers are swept
// and a fresh cluster starts), down twice, and nothing is left.
func TestUpDownIdempotentAndCrashRecovery(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	binDir := clustertest.Binaries(t)
	self := filepath.Join(t.TempDir(), "localcluster")
	build := exec.Command("go", "build", "-o", self, ".")
	build.Stderr = os.Stderr
	g.Expect(build.Run()).To(Succeed())

	state := t.TempDir()
	name := "lctest"
	var lastStderr string
	run := func(args ...string) (string, error) {
		cmd := exec.Command(self, append(args, "--name", name, "--state", state, "--nodes", "1")...)
		cmd.Env = append(os.Environ(), cluster.BinDirEnv+"="+binDir)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		lastStderr = errOut.String()
		if err != nil {
			t.Logf("localcluster %v: %v\n%s", args, err, errOut.String())
		}
		return strings.TrimSpace(out.String()), err
	}
	dir := filepath.Join(state, name)
	t.Cleanup(func() {
		_, _ = run("down")
		_ = cluster.Remove(ctx, dir)
	})

	kubeconfig, err := run("up")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kubeconfig).To(Equal(filepath.Join(dir, "kubeconfig")))
	g.Expect(kubeconfig).To(BeAnExistingFile())
	owner, running := cluster.Running(dir)
	g.Expect(running).To(BeTrue())

	again, err := run("up")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(kubeconfig))
	sameOwner, _ := cluster.Running(dir)
	g.Expect(sameOwner).To(Equal(owner), "the second up reuses the running cluster")

	status, err := run("status")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(status).To(ContainSubstring("kube-apiserver"))

	// Crash: the owner dies without cleaning up. Its children die with it
	// (parent-death signal), but the bridge, namespaces and files remain.
	index := networkIndex(t, dir)
	g.Expect(syscall.Kill(owner, syscall.SIGKILL)).To(Succeed())
	g.Eventually(func() bool { _, ok := cluster.Running(dir); return ok }).WithTimeout(10 * time.Second).Should(BeFalse())
	g.Expect(podnet.BridgeExists(ctx, index)).To(BeTrue(), "a crash leaves the bridge")
	g.Expect(dir).To(BeADirectory(), "a crash leaves the state")

	_, err = run("up")
	g.Expect(err).NotTo(HaveOccurred())
	newOwner, running := cluster.Running(dir)
	g.Expect(running).To(BeTrue())
	g.Expect(newOwner).NotTo(Equal(owner))
	g.Expect(lastStderr).To(ContainSubstring("removed stale cluster " + name))
	newIndex := networkIndex(t, dir)

	_, err = run("down")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = run("down")
	g.Expect(err).NotTo(HaveOccurred(), "down is idempotent")

	g.Expect(dir).NotTo(BeADirectory())
	g.Expect(proc.Marked(name)).To(BeEmpty())
	g.Expect(podnet.BridgeExists(ctx, newIndex)).To(BeFalse())
}

// networkIndex reads the pod network index of the cluster at dir (-1 if it
// has none).
func networkIndex(t *testing.T, dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, "network"))
	if err != nil {
		return -1
	}
	var idx int
	var bridged bool
	if _, err := fmt.Sscan(string(data), &idx, &bridged); err != nil {
		t.Fatal(err)
	}
	return idx
}
