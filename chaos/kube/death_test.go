package kube

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestLastSeenAlive: a SIGKILLed process is seen dead once it has exited
// (a zombie until its parent reaps it, as the node agent does), and the
// time returned is no later than its exit; one still running is reported
// as such.
func TestLastSeenAlive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !running(pid) {
		t.Fatal("a running process was taken for dead")
	}
	if _, _, ok := lastSeenAlive(pid, time.Now(), time.Now, 20*time.Millisecond); ok {
		t.Fatal("a running process was taken for dead")
	}
	at := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	alive, dead, ok := lastSeenAlive(pid, at, time.Now, 5*time.Second)
	after := time.Now()
	if !ok {
		t.Fatal("the killed process was not seen to exit within 5s")
	}
	if alive.Before(at) || !alive.Before(dead) || dead.After(after) {
		t.Errorf("seen running until %s and exited at %s; want the kill %s ≤ running < exited ≤ %s", alive, dead, at, after)
	}
	if st := processState(pid); st != "Z" {
		t.Errorf("state %q, want a zombie (not yet reaped)", st)
	}
}
