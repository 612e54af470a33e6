// Package proc starts the processes of the local process cluster so that none
// can outlive it unnoticed: each runs in its own process group, carries a
// marker naming its cluster in its environment, and is stopped with SIGTERM,
// a grace period, then SIGKILL. The marker lets a later run find and kill what
// a crashed run left, without pid files that go stale.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// MarkerVar is the environment variable naming a process's cluster.
const MarkerVar = "KONDUCTOR_LOCALCLUSTER"

// Marker is the environment entry of cluster name's processes.
func Marker(cluster string) string { return MarkerVar + "=" + cluster }

// Process is a started command.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs cmd in a new process group with cluster's marker added to its
// environment, its output appended to logPath ("" discards it).
func Start(cluster, name string, cmd *exec.Cmd, logPath string) (*Process, error) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, Marker(cluster))
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// If the owner dies, the child gets SIGKILL instead of living on. This
	// fires when the starting OS thread exits, so it is only a backstop for
	// the sweep, not the main cleanup.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id (and process group id).
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error; valid after Done.
func (p *Process) Err() error { return p.err }

// ExitCode is the exit status, or -1 if killed by a signal; valid after Done.
func (p *Process) ExitCode() int { return p.Cmd.ProcessState.ExitCode() }

// Signal sends sig to the whole process group.
func (p *Process) Signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.Pid(), sig)
}

// Stop sends SIGTERM to the group, waits up to grace for the process to
// exit, then sends SIGKILL and waits for it. It reports whether the process
// needed SIGKILL.
func (p *Process) Stop(grace time.Duration) (killed bool) {
	select {
	case <-p.done:
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL) // stray children of the group
		return false
	default:
	}
	p.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		return false
	case <-timer.C:
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
	return true
}

// Marked lists the pids of live processes carrying cluster's marker.
func Marked(cluster string) ([]int, error) {
	want := []byte(Marker(cluster))
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // exited meanwhile, or a kernel thread
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) && !zombie(pid) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}

func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name, which may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z'
}

// KillMarked sends SIGKILL to every process carrying cluster's marker and
// waits (bounded) until none is left.
func KillMarked(cluster string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := Marked(cluster)
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of cluster %s survive SIGKILL: %v", cluster, pids)
		}
		// Bounded poll: the kernel reaps asynchronously and there is no
		// event to wait on for processes that are not our children.
		time.Sleep(20 * time.Millisecond)
	}
}

// Alive reports whether pid runs and started at startTime (from StartTime),
// so a reused pid is not mistaken for the original owner.
func Alive(pid int, startTime string) bool {
	got, err := StartTime(pid)
	return err == nil && got == startTime && !zombie(pid)
}

// StartTime is the process's start time in clock ticks since boot (field 22
// of /proc/<pid>/stat), which with the pid identifies a process uniquely.
func StartTime(pid int) (string, error) {
	fields, err := statFields(pid)
	if err != nil {
		return "", err
	}
	return string(fields[19]), nil
}

// CPU is the CPU time pid has used, user and system (fields 14 and 15 of
// /proc/<pid>/stat, in clock ticks of 10ms).
func CPU(pid int) (time.Duration, error) {
	fields, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	utime, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// statFields returns the fields of /proc/<pid>/stat from field 3 (the
// state) on: the command name before it is parenthesised and may hold
// spaces.
func statFields(pid int) ([][]byte, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, errors.New("malformed /proc stat")
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 20 {
		return nil, errors.New("short /proc stat")
	}
	return fields, nil
}

// RSS is the resident memory of pid in bytes.
func RSS(pid int) (int64, error) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}
