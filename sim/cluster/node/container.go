package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
			reason := "RunContainerError"
			if errors.As(err, new(configError)) {
				reason = "CreateContainerConfigError"
			}
			c.setWaiting(reason, err.Error())
			c.r.event(corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		} else {
			if lc := c.spec.Lifecycle; lc != nil && lc.PostStart != nil {
				// As the kubelet: the hook runs right after the start; if it
				// fails, the container is killed and restarted by policy.
				if err := c.runHandler(ctx, lc.PostStart); err != nil && ctx.Err() == nil {
					c.r.event(corev1.EventTypeWarning, "FailedPostStartHook", fmt.Sprintf("PostStartHook failed: %v", err))
					c.kill(p, "postStart hook failed")
				}
			}
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
	argv, env, vars, err := c.commandLine()
	if err != nil {
		return nil, configError{err}
	}
	cmd, err := c.wrap(argv, vars)
	if err != nil {
		return nil, err
	}
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
	if err := ownStdio(c.r.pod, c.spec, out.stdout, out.stderr); err != nil {
		out.closeChildEnds()
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

// commandLine resolves the image to a binary and builds argv and env (also
// as a map, for subPathExpr).
func (c *containerRun) commandLine() ([]string, []string, map[string]string, error) {
	bin, err := c.r.a.cfg.Images.Resolve(c.spec.Image)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("container %s: %w", c.spec.Name, err)
	}
	podIP := ""
	if sb := c.r.sandboxOrNil(); sb != nil {
		podIP = sb.IP.String()
	}
	base := c.r.podEnv()
	// A container running as another user cannot enter the agent's pod
	// directory; its HOME is "/", as a runtime gives a user without a home
	// in the image. (Tools probing ~/.kube/config then find nothing, rather
	// than failing on a permission error.)
	if id, err := containerIdentity(c.r.pod, c.spec); err == nil && id.uid != 0 && os.Geteuid() == 0 {
		base["HOME"] = "/"
	}
	// The image's directory comes first on PATH, as an image's own bin
	// directory would (exec probes and hooks find its tools by name).
	base["PATH"] = filepath.Dir(bin) + string(os.PathListSeparator) + base["PATH"]
	vars, order, err := containerEnv(c.r.ctx, c.r.a.cfg.Client, c.r.pod, c.spec, base, podIP, c.r.a.hostIP, c.r.a.allocatable)
	if err != nil {
		return nil, nil, nil, err
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	argv := command(bin, c.spec.Command, c.spec.Args)
	for i := range argv {
		argv[i] = expand(argv[i], vars)
	}
	return argv, env, vars, nil
}

// mountScript (bash) runs in the container's fresh mount namespace: it
// performs the operations given as arguments up to "--", then executes the
// rest.
//
//	dir SRC DST    bind-mount directory SRC at DST (created if missing)
//	file SRC DST   bind-mount file SRC at DST (created if missing)
//	ro DST         make the mount at DST read-only
//	host NAME      set the hostname (the UTS namespace is private too)
//
// Every source is opened before the first mount and mounted through its
// descriptor: a volume mounted at /tmp (or any directory above the
// cluster's state) would otherwise hide the sources of the mounts after it.
const mountScript = `set -e
ops=() fds=()
while [ "$1" != "--" ]; do
	case "$1" in
	dir | file) exec {fd}<"$2"; fds+=("$fd"); ops+=("$1" "/proc/self/fd/$fd" "$3"); shift 3 ;;
	ro) ops+=(ro "$2" -); shift 2 ;;
	host) hostname "$2"; shift 2 ;;
	*) echo "mount script: unknown operation $1" >&2; exit 127 ;;
	esac
done
shift
for ((i = 0; i < ${#ops[@]}; i += 3)); do
	src=${ops[i+1]} dst=${ops[i+2]}
	case "${ops[i]}" in
	dir) [ -d "$dst" ] || mkdir -p "$dst"; mount --no-canonicalize --bind "$src" "$dst" ;;
	file) [ -e "$dst" ] || { mkdir -p "$(dirname "$dst")"; : >"$dst"; }; mount --no-canonicalize --bind "$src" "$dst" ;;
	ro) mount -o remount,bind,ro "$src" ;;
	esac
done
for fd in "${fds[@]}"; do exec {fd}<&-; done
exec "$@"`

// ownStdio gives the write ends of the container's output pipes to the
// container's user, as runc does: a process that reopens /dev/stdout (a
// logging setting such as KONG_PROXY_ACCESS_LOG=/dev/stdout) opens the pipe
// itself, which a pipe of root's would refuse.
func ownStdio(pod *corev1.Pod, c *corev1.Container, files ...*os.File) error {
	if os.Geteuid() != 0 {
		return nil
	}
	id, err := containerIdentity(pod, c)
	if err != nil {
		return nil // wrap reports it
	}
	for _, f := range files {
		if err := f.Chown(int(id.uid), int(id.gid)); err != nil {
			return err
		}
	}
	return nil
}

// configError is a problem with a container's configuration (security
// context, volumes): the kubelet's CreateContainerConfigError.
type configError struct{ error }

// wrap builds the command that runs argv as container c: in the pod's
// network namespace and, as root, in a private mount and UTS namespace with
// the container's volumes, the pod's /etc/hosts and hostname, and the
// container's user, groups and capabilities (see security.go, volumes.go).
// Without root there are no namespaces to set up: the process runs as the
// agent's user, which refuses what it cannot honour.
func (c *containerRun) wrap(argv []string, vars map[string]string) (*exec.Cmd, error) {
	r := c.r
	id, err := containerIdentity(r.pod, c.spec)
	if err != nil {
		return nil, configError{err}
	}
	mounts, err := r.containerMounts(c.spec, vars)
	if err != nil {
		return nil, configError{err}
	}
	full := argv
	if os.Geteuid() == 0 {
		if filepath.IsAbs(argv[0]) {
			if err := checkRunnable(argv[0], id.uid, append([]int64{id.gid}, id.groups...)); err != nil {
				return nil, configError{err}
			}
		}
		ops := []string{}
		if !mountsServiceAccount(r.pod) && automount(r.pod) {
			ops = append(ops, "dir", filepath.Join(r.dir, "serviceaccount"), ServiceAccountDir)
		}
		ops = append(ops, "file", filepath.Join(r.dir, "hosts"), "/etc/hosts")
		for _, m := range mounts {
			kind := "file"
			if m.dir {
				kind = "dir"
			}
			ops = append(ops, kind, m.source, m.target)
			if m.readOnly {
				ops = append(ops, "ro", m.target)
			}
		}
		for _, dir := range hiddenImageDirs(c.r.a.cfg.Images, c.spec.Image, mounts) {
			ops = append(ops, "dir", dir, dir)
		}
		if id.readOnlyRoot {
			ops = append(ops, "ro", "/")
		}
		ops = append(ops, "host", r.pod.Name, "--")
		full = append([]string{"unshare", "--mount", "--uts", "--propagation", "private", "--",
			"/bin/bash", "-c", mountScript, "mount-script"}, append(ops, id.setprivArgs(argv)...)...)
	} else {
		for _, m := range mounts {
			if m.target != ServiceAccountDir {
				return nil, configError{fmt.Errorf("container %s: volume mounts need the node agent to run as root (mount namespaces)", c.spec.Name)}
			}
		}
		if id.uid != 0 || id.gid != 0 || len(id.groups) > 0 || id.readOnlyRoot {
			return nil, configError{fmt.Errorf("container %s: runAsUser, runAsGroup, fsGroup, supplementalGroups and readOnlyRootFilesystem need the node agent to run as root", c.spec.Name)}
		}
	}
	if sb := r.sandboxOrNil(); sb != nil && sb.NSPath != "" {
		full = append([]string{"nsenter", "--net=" + sb.NSPath, "--"}, full...)
	}
	return exec.Command(full[0], full[1:]...), nil
}

// hiddenImageDirs lists the directories of the container's image (the
// mapped binary's directory, which is first on PATH, and the directory of
// the file it links to) that one of the container's volumes would hide: an
// emptyDir at /tmp hides a binary built under /tmp. In a real container the
// image is the root filesystem and a volume never hides it, so the mount
// script binds these directories back at their own paths, on top of the
// volume (the mount point is created inside the volume).
func hiddenImageDirs(images ImageMap, image string, mounts []mountSpec) []string {
	bin, err := images.Resolve(image)
	if err != nil {
		return nil
	}
	dirs := []string{filepath.Dir(bin)}
	if real, err := filepath.EvalSymlinks(bin); err == nil && filepath.Dir(real) != dirs[0] {
		dirs = append(dirs, filepath.Dir(real))
	}
	var hidden []string
	for _, dir := range dirs {
		for _, m := range mounts {
			if m.dir && (dir == m.target || strings.HasPrefix(dir, strings.TrimSuffix(m.target, "/")+"/")) {
				hidden = append(hidden, dir)
				break
			}
		}
	}
	return hidden
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

// stop ends the running process as the kubelet does on pod deletion: the
// preStop hook first, then SIGTERM, then SIGKILL at the end of grace.
func (c *containerRun) stop(grace time.Duration) {
	c.mu.Lock()
	c.stopping = true
	p := c.p
	c.mu.Unlock()
	if p == nil {
		return
	}
	c.terminate(p, grace)
	term := c.exited(p)
	c.mu.Lock()
	c.finished = term
	c.mu.Unlock()
}

// kill ends p (if it is still the current process) for a failed liveness
// or startup probe, with the pod's grace period and preStop hook as the
// kubelet does; supervise then restarts it by policy.
func (c *containerRun) kill(p *proc.Process, why string) {
	c.r.logf("container %s: %s; killing it", c.spec.Name, why)
	c.r.event(corev1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s %s, will be restarted", c.spec.Name, why))
	grace := time.Duration(corev1.DefaultTerminationGracePeriodSeconds) * time.Second
	if g := c.r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	c.terminate(p, grace)
}

// minGraceAfterHook is what the kubelet leaves a process between SIGTERM
// and SIGKILL when the preStop hook used up the grace period.
const minGraceAfterHook = 2 * time.Second

// terminate runs the preStop hook within grace, then sends SIGTERM and,
// once the rest of grace has passed, SIGKILL. Zero grace (a forced delete,
// or the agent shutting down) skips the hook.
func (c *containerRun) terminate(p *proc.Process, grace time.Duration) {
	deadline := time.Now().Add(grace)
	if lc := c.spec.Lifecycle; lc != nil && lc.PreStop != nil && grace > 0 {
		select {
		case <-p.Done():
		default:
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			started := time.Now()
			err := c.runHandler(ctx, lc.PreStop)
			cancel()
			if err != nil {
				c.r.logf("container %s: preStop hook: %v", c.spec.Name, err)
				c.r.event(corev1.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: %v", err))
			} else {
				c.r.logf("container %s: preStop hook done in %s", c.spec.Name, time.Since(started).Round(time.Millisecond))
			}
		}
	}
	p.Stop(max(time.Until(deadline), minGraceAfterHook))
}

// runHandler runs a lifecycle hook until it ends or ctx does.
func (c *containerRun) runHandler(ctx context.Context, h *corev1.LifecycleHandler) error {
	switch {
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("sleep %ds: %w", h.Sleep.Seconds, ctx.Err())
		}
	case h.Exec != nil:
		return c.execProbe(ctx, h.Exec.Command)
	case h.HTTPGet != nil:
		g := h.HTTPGet
		port, err := resolvePort(g.Port, c.spec)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			sb := c.r.sandboxOrNil()
			if sb == nil {
				return errors.New("httpGet hook: the pod has no IP")
			}
			host = sb.IP.String()
		}
		return httpProbe(ctx, probeURL(g.Scheme, host, port, g.Path), g.HTTPHeaders)
	case h.TCPSocket != nil:
		return errors.New("tcpSocket lifecycle hooks are deprecated and not supported by the process kubelet")
	}
	return errors.New("lifecycle hook has no handler")
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
