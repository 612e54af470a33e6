package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/sim/cluster/proc"
)

// containerRun is one container of a pod: its current process, restarts,
// probe results and last termination.
type containerRun struct {
	r    *podRunner
	spec *corev1.Container
	init bool

	mu           sync.Mutex
	p            *proc.Process
	stopping     bool
	startedAt    time.Time
	restartCount int32
	started      bool // startup probe passed
	ready        bool
	last         *corev1.ContainerStateTerminated // previous termination
	finished     *corev1.ContainerStateTerminated // exited for good
	waitReason   string
	waitMessage  string
}

func newContainerRun(r *podRunner, spec *corev1.Container) *containerRun {
	return &containerRun{r: r, spec: spec, waitReason: "ContainerCreating"}
}

// containerStartRunning is for the rare case where the process exits before
// we record it; reported exit codes follow the runtime convention of
// 128+signal for signalled processes.
func exitCode(p *proc.Process) int32 {
	if ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(p.ExitCode())
}

// supervise runs the container and restarts it by the pod's restart policy
// with doubling back-off, until the pod stops.
func (c *containerRun) supervise() {
	ctx := c.r.ctx
	backoff := c.r.a.cfg.RestartBackoff
	for {
		p, err := c.start()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.r.logf("container %s: %v", c.spec.Name, err)
			c.setWaiting("RunContainerError", err.Error())
		} else {
			probeCtx, cancelProbes := context.WithCancel(ctx)
			go c.probe(probeCtx, p)
			select {
			case <-p.Done():
			case <-ctx.Done():
				cancelProbes()
				return // stop() ends the process and records it
			}
			cancelProbes()
			term := c.exited(p)
			restart := c.r.pod.Spec.RestartPolicy != corev1.RestartPolicyNever &&
				(c.r.pod.Spec.RestartPolicy != corev1.RestartPolicyOnFailure || term.ExitCode != 0)
			if !restart {
				c.mu.Lock()
				c.finished = term
				c.mu.Unlock()
				c.r.markDirty()
				return
			}
			if term.FinishedAt.Sub(term.StartedAt.Time) > 10*time.Minute {
				backoff = c.r.a.cfg.RestartBackoff
			}
			c.setWaiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container %s", backoff, c.spec.Name))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.r.a.cfg.MaxRestartBackoff)
		if err == nil {
			c.mu.Lock()
			c.restartCount++
			c.mu.Unlock()
		}
	}
}

// runToSuccess runs an init container until it exits 0, retrying failures
// unless the pod's policy is Never.
func (c *containerRun) runToSuccess() bool {
	backoff := c.r.a.cfg.RestartBackoff
	for {
		p, err := c.start()
		if err == nil {
			select {
			case <-p.Done():
			case <-c.r.ctx.Done():
				c.stop(0)
				return false
			}
			if c.exited(p).ExitCode == 0 {
				return true
			}
			if c.r.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return false
			}
		} else {
			c.r.logf("init container %s: %v", c.spec.Name, err)
		}
		select {
		case <-c.r.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.r.a.cfg.MaxRestartBackoff)
	}
}

func (c *containerRun) setWaiting(reason, message string) {
	c.mu.Lock()
	c.waitReason, c.waitMessage = reason, message
	c.mu.Unlock()
	c.r.markDirty()
}

// start resolves and launches the container's process.
func (c *containerRun) start() (*proc.Process, error) {
	argv, env, err := c.commandLine()
	if err != nil {
		return nil, err
	}
	cmd := c.r.wrap(argv, c.r.dir, true)
	cmd.Env = env
	if wd := c.spec.WorkingDir; wd != "" {
		if st, err := os.Stat(wd); err == nil && st.IsDir() {
			cmd.Dir = wd
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping || c.r.ctx.Err() != nil {
		return nil, errors.New("pod is stopping")
	}
	// Each run gets its own log; the previous run's stays for --previous.
	out, err := c.r.a.logs.start(c.r.pod, c.spec.Name)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	p, err := proc.Start(c.r.a.cfg.Cluster, c.r.pod.Name+"/"+c.spec.Name, cmd, "")
	out.closeChildEnds()
	if err != nil {
		return nil, err
	}
	c.p = p
	c.startedAt = time.Now()
	c.started = c.spec.StartupProbe == nil
	c.ready = false
	c.waitReason, c.waitMessage = "", ""
	c.r.markDirty()
	return p, nil
}

// commandLine resolves the image to a binary and builds argv and env.
func (c *containerRun) commandLine() ([]string, []string, error) {
	bin, err := c.r.a.cfg.Images.Resolve(c.spec.Image)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: %w", c.spec.Name, err)
	}
	podIP := ""
	if sb := c.r.sandboxOrNil(); sb != nil {
		podIP = sb.IP.String()
	}
	vars, order, err := containerEnv(c.r.ctx, c.r.a.cfg.Client, c.r.pod, c.spec, c.r.podEnv(), podIP, c.r.a.hostIP)
	if err != nil {
		return nil, nil, err
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	argv := command(bin, c.spec.Command, c.spec.Args)
	for i := range argv {
		argv[i] = expand(argv[i], vars)
	}
	return argv, env, nil
}

// wrap builds the command that runs argv inside the pod: in its network
// namespace, and, with a private mount namespace, with the pod's
// service-account files at ServiceAccountDir and the pod's hostname.
func (r *podRunner) wrap(argv []string, dir string, mountSA bool) *exec.Cmd {
	full := argv
	if mountSA && os.Geteuid() == 0 {
		const script = `mount --bind "$0" ` + ServiceAccountDir + ` && mount --bind "$2" /etc/hosts && hostname "$1" && shift 2 && exec "$@"`
		full = append([]string{"unshare", "--mount", "--uts", "--propagation", "private", "--",
			"/bin/sh", "-c", script, filepath.Join(dir, "serviceaccount"), r.pod.Name, filepath.Join(dir, "hosts")}, argv...)
	}
	if sb := r.sandboxOrNil(); sb != nil && sb.NSPath != "" {
		full = append([]string{"nsenter", "--net=" + sb.NSPath, "--"}, full...)
	}
	return exec.Command(full[0], full[1:]...)
}

// exited records the end of p and returns its termination state.
func (c *containerRun) exited(p *proc.Process) *corev1.ContainerStateTerminated {
	code := exitCode(p)
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	c.mu.Lock()
	term := &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason,
		StartedAt:   metav1.NewTime(c.startedAt),
		FinishedAt:  metav1.Now(),
		ContainerID: containerID(p),
	}
	if c.p == p {
		c.p = nil
	}
	c.last = term
	c.ready, c.started = false, false
	c.mu.Unlock()
	c.r.markDirty()
	return term
}

// stop ends the running process: SIGTERM, then SIGKILL after grace.
func (c *containerRun) stop(grace time.Duration) {
	c.mu.Lock()
	c.stopping = true
	p := c.p
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.Stop(grace)
	term := c.exited(p)
	c.mu.Lock()
	c.finished = term
	c.mu.Unlock()
}

// kill ends p (if it is still the current process) for a failed liveness
// or startup probe; supervise then restarts it by policy.
func (c *containerRun) kill(p *proc.Process, why string) {
	c.r.logf("container %s: %s; killing it", c.spec.Name, why)
	grace := time.Duration(corev1.DefaultTerminationGracePeriodSeconds) * time.Second
	if g := c.r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	p.Stop(grace)
}

func containerID(p *proc.Process) string {
	return fmt.Sprintf("process://%d", p.Pid())
}

// status is the container's ContainerStatus.
func (c *containerRun) status() corev1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	started := c.started
	st := corev1.ContainerStatus{
		Name:         c.spec.Name,
		Image:        c.spec.Image,
		ImageID:      "process://" + Repository(c.spec.Image),
		RestartCount: c.restartCount,
		Ready:        c.ready,
		Started:      &started,
	}
	if c.last != nil {
		st.LastTerminationState = corev1.ContainerState{Terminated: c.last.DeepCopy()}
	}
	switch {
	case c.p != nil:
		st.ContainerID = containerID(c.p)
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt)}
	case c.finished != nil:
		st.ContainerID = c.finished.ContainerID
		st.State.Terminated = c.finished.DeepCopy()
	default:
		reason := c.waitReason
		if reason == "" {
			reason = "ContainerCreating"
		}
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: c.waitMessage}
	}
	return st
}
