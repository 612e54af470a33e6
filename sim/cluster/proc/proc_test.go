package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestStopSendsTermThenKill(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     string
		grace      time.Duration
		wantKilled bool
	}{
		// A grace period far longer than a shell needs to die of SIGTERM,
		// even on a loaded machine.
		{"exits on SIGTERM", "sleep 30", 10 * time.Second, false},
		{"ignores SIGTERM", `trap "" TERM; : > "$READY"; while :; do sleep 0.05; done`, 300 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := "proctest-" + t.Name()
			ready := filepath.Join(t.TempDir(), "ready")
			cmd := exec.Command("sh", "-c", tc.script)
			cmd.Env = append(os.Environ(), "READY="+ready)
			p, err := Start(cluster, "sh", cmd, "")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tc.script, "READY") {
				// Signal only once the trap is in place.
				NewWithT(t).Eventually(ready).WithTimeout(5 * time.Second).Should(BeAnExistingFile())
			}
			t.Cleanup(func() { _ = KillMarked(cluster, 5*time.Second) })
			if pids, _ := Marked(cluster); !slices.Contains(pids, p.Pid()) {
				t.Fatalf("Marked(%q) = %v, want it to contain %d", cluster, pids, p.Pid())
			}
			if killed := p.Stop(tc.grace); killed != tc.wantKilled {
				t.Errorf("Stop needed SIGKILL = %t, want %t", killed, tc.wantKilled)
			}
			// The shell's child dies with the group; init reaps it.
			waitNoneMarked(t, cluster)
		})
	}
}

func TestKillMarkedFindsOrphans(t *testing.T) {
	cluster := "proctest-orphans"
	// The shell starts a background child and exits: the child is an
	// orphan only the marker can find.
	cmd := exec.Command("sh", "-c", "sleep 30 & echo started")
	p, err := Start(cluster, "sh", cmd, "")
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	// The orphan may still be inside execve, when its environment cannot
	// be read for a moment: look again, within a bound.
	NewWithT(t).Eventually(func() ([]int, error) { return Marked(cluster) }).
		WithTimeout(5*time.Second).Should(HaveLen(1), "Marked should find the orphaned sleep")
	if err := KillMarked(cluster, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if pids, _ := Marked(cluster); len(pids) != 0 {
		t.Errorf("processes left after KillMarked: %v", pids)
	}
}

// waitNoneMarked waits (bounded) until no process of cluster is left.
func waitNoneMarked(t *testing.T, cluster string) {
	t.Helper()
	NewWithT(t).Eventually(func() ([]int, error) { return Marked(cluster) }).
		WithTimeout(5*time.Second).Should(BeEmpty(), "processes left")
}

// CPU reads this process's CPU time, which grows as it works, and fails
// for a process that does not exist.
func TestCPU(t *testing.T) {
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Work until the kernel has counted at least one more clock tick
	// (bounded: a tick is 10ms of CPU).
	deadline := time.Now().Add(10 * time.Second)
	sum := 0
	for {
		for i := range 1_000_000 {
			sum += i
		}
		after, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU stayed at %v after 10s of work (sum %d)", before, sum)
		}
	}
	if _, err := CPU(1 << 30); err == nil {
		t.Error("CPU of a pid that does not exist: no error")
	}
}
