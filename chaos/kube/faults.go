package kube

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/engine"
	"konductor.dev/chaos/journal"
)

// Inject implements engine.Target: it plants the fault, verifies that it
// fired, and waits for recovery, measuring it from the fault.
func (t *Target) Inject(ctx context.Context, a drill.Action, j *journal.Writer) engine.Injection {
	start := time.Now()
	verifyBy := a.Verify.Or(30 * time.Second)
	recoverBy := a.Recover.Or(60 * time.Second)
	var in engine.Injection
	var recovered func(context.Context) error
	switch a.Fault {
	case drill.FaultLeaderCrash, drill.FaultLeaderDelete:
		in, recovered = t.leaderFault(ctx, a, verifyBy)
	case drill.FaultKongRestart:
		in, recovered = t.kongRestart(ctx, a, j, verifyBy, recoverBy)
	case drill.FaultKongKill:
		in, recovered = t.kongPodKill(ctx, a, j, verifyBy)
	case drill.FaultScaleKong:
		in, recovered = t.scale(ctx, t.kongDeploy, a.Replicas, verifyBy)
	case drill.FaultScaleControllers:
		in, recovered = t.scale(ctx, t.ctrlDeploy, a.Replicas, verifyBy)
	case drill.FaultControllerRollout:
		in, recovered = t.rollout(ctx, t.ctrlDeploy, verifyBy)
	case drill.FaultAPIServerPause:
		in, recovered = t.apiserverPause(ctx, a.Duration.D(), verifyBy)
	default:
		in.Detail = fmt.Sprintf("fault %s is not implemented by this target", a.Fault)
	}
	if !in.Verified || recovered == nil {
		return in
	}
	if !in.At.IsZero() {
		start = in.At
	}
	if err := poll(ctx, recoverBy, 50*time.Millisecond, recovered); err != nil {
		in.RecoverErr = fmt.Errorf("no recovery: %w", err)
		return in
	}
	in.Recovered = time.Since(start)
	return in
}

// needsLocal refuses a process fault on a cluster whose containers are not
// local processes.
func (t *Target) needsLocal(what string) error {
	if t.o.Provider != drill.ProviderLocal {
		return fmt.Errorf("%s needs provider local (container processes on this host); this cluster is %q", what, t.o.Provider)
	}
	return nil
}

// containerProcess is a container's host process on the local cluster.
type containerProcess struct {
	pid      int
	id       string
	restarts int32
}

func containerOf(pod *corev1.Pod, name string) (containerProcess, error) {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != name {
			continue
		}
		pidText, ok := strings.CutPrefix(cs.ContainerID, "process://")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 1 {
			return containerProcess{}, fmt.Errorf("pod %s container %s: containerID %q is not process://<pid> (needs provider local)", pod.Name, name, cs.ContainerID)
		}
		return containerProcess{pid: pid, id: cs.ContainerID, restarts: cs.RestartCount}, nil
	}
	return containerProcess{}, fmt.Errorf("pod %s has no running container %s", pod.Name, name)
}

// signalGroup signals a container's process group: the local cluster
// starts every container as a process group leader.
func signalGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("kill(-%d, %s): %w", pid, sig, err)
	}
	return nil
}

// restarted waits until the container of pod uid has restarted in place.
func (t *Target) restarted(ctx context.Context, pod *corev1.Pod, container string, before containerProcess, within time.Duration) (string, error) {
	var detail string
	err := poll(ctx, within, 50*time.Millisecond, func(ctx context.Context) error {
		cur, err := t.cs.CoreV1().Pods(t.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return fmt.Errorf("pod %s was replaced, not restarted in place", pod.Name)
		}
		for _, cs := range cur.Status.ContainerStatuses {
			if cs.Name != container {
				continue
			}
			term := cs.LastTerminationState.Terminated
			if cs.RestartCount > before.restarts || (term != nil && term.ContainerID == before.id) {
				detail = fmt.Sprintf("SIGKILL pid %d of %s/%s", before.pid, pod.Name, container)
				if term != nil && term.ContainerID == before.id {
					detail += fmt.Sprintf(": terminated with exit code %d", term.ExitCode)
				}
				detail += fmt.Sprintf(", restarts %d→%d", before.restarts, cs.RestartCount)
				if cur.Status.PodIP != pod.Status.PodIP && cur.Status.PodIP != "" {
					detail += fmt.Sprintf(", pod IP changed %s→%s", pod.Status.PodIP, cur.Status.PodIP)
				}
				return nil
			}
		}
		return fmt.Errorf("container %s of pod %s still has restartCount %d", container, pod.Name, before.restarts)
	})
	return detail, err
}

// gone waits until pod uid no longer exists.
func (t *Target) gone(ctx context.Context, name string, uid types.UID, within time.Duration) error {
	return poll(ctx, within, 50*time.Millisecond, func(ctx context.Context) error {
		cur, err := t.cs.CoreV1().Pods(t.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != uid) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("pod %s still exists", name)
	})
}

func (t *Target) leaderFault(ctx context.Context, a drill.Action, verifyBy time.Duration) (engine.Injection, func(context.Context) error) {
	var in engine.Injection
	if t.lock == "" {
		in.Detail = fmt.Sprintf("overlay %s has no leader election: no leader to fault", t.d.Target.Overlay)
		return in, nil
	}
	if a.Fault == drill.FaultLeaderCrash {
		if err := t.needsLocal("leader-crash (SIGKILL)"); err != nil {
			in.Detail = err.Error()
			return in, nil
		}
	}
	// The leader is the holder of an unexpired lease whose controller
	// runs. In a storm the last one may be dead and its successor not yet
	// elected: wait for a live leader.
	var old string
	var pod *corev1.Pod
	var proc containerProcess
	err := poll(ctx, verifyBy, 50*time.Millisecond, func(ctx context.Context) error {
		rec, err := t.leaderRecord(ctx)
		if err != nil {
			return err
		}
		if rec.HolderIdentity == "" || time.Now().After(rec.RenewTime.Add(time.Duration(rec.LeaseDurationSeconds)*time.Second)) {
			return fmt.Errorf("no live leader (holder %q, renewed %s)", rec.HolderIdentity, rec.RenewTime.Format(time.RFC3339))
		}
		p, err := t.cs.CoreV1().Pods(t.ns).Get(ctx, holderPod(rec.HolderIdentity), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("leader %s: %w", rec.HolderIdentity, err)
		}
		if a.Fault == drill.FaultLeaderCrash {
			if proc, err = containerOf(p, t.ctrlContainer); err != nil {
				return err
			}
		}
		old, pod = rec.HolderIdentity, p
		return nil
	})
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	in.Subjects = []string{old} // the identity: a restarted pod elects under a new one
	in.At = time.Now()
	if a.Fault == drill.FaultLeaderCrash {
		err := signalGroup(proc.pid, syscall.SIGKILL)
		if err == nil {
			in.Detail, err = t.restarted(ctx, pod, t.ctrlContainer, proc, verifyBy)
		}
		if err != nil {
			in.Detail = err.Error()
			return in, nil
		}
	} else {
		if err := t.cs.CoreV1().Pods(t.ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
			in.Detail = err.Error()
			return in, nil
		}
		err := poll(ctx, verifyBy, 50*time.Millisecond, func(ctx context.Context) error {
			cur, err := t.cs.CoreV1().Pods(t.ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && (cur.DeletionTimestamp != nil || cur.UID != pod.UID)) {
				return nil
			}
			return fmt.Errorf("pod %s is not terminating (%v)", pod.Name, err)
		})
		if err != nil {
			in.Detail = err.Error()
			return in, nil
		}
		in.Detail = "deleted pod " + pod.Name + " gracefully"
	}
	// A change made during the handover: recovered once a new leader
	// holds the lock and the change is on every Kong, which the old
	// leader, on its way out or dead, no longer pushes.
	name, host, err := t.applyProbeIngress(ctx)
	if err != nil {
		in.Detail = "the change made during the handover: " + err.Error()
		return in, nil
	}
	in.Verified = true
	in.Detail += "; leader was " + old + "; recovered once a new leader holds the lock and host " + host + ", created then, routes on every Kong"
	return in, func(ctx context.Context) error {
		rec, err := t.leaderRecord(ctx)
		if err != nil {
			return err
		}
		if rec.HolderIdentity == "" || rec.HolderIdentity == old {
			return fmt.Errorf("lock still held by %q", rec.HolderIdentity)
		}
		if err := t.serving(ctx, "/", host); err != nil {
			return fmt.Errorf("new leader %s: the change made during the handover: %w", rec.HolderIdentity, err)
		}
		return t.deleteProbeIngress(context.WithoutCancel(ctx), name)
	}
}

// chooseKongs picks the action's share of the ready Kong pods for a fault
// that signals their processes (what names it), or says why it cannot.
func (t *Target) chooseKongs(ctx context.Context, a drill.Action, what string) ([]corev1.Pod, error) {
	if err := t.needsLocal(what); err != nil {
		return nil, err
	}
	kongs, err := t.readyKongs(ctx)
	if err != nil || len(kongs) == 0 {
		return nil, fmt.Errorf("no ready Kong pod (%v)", err)
	}
	return pick(kongs, a.Selector), nil
}

// pick chooses the selector's share of pods at random.
func pick(pods []corev1.Pod, s drill.Selector) []corev1.Pod {
	pods = slices.Clone(pods)
	rand.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
	return pods[:s.Count(len(pods))]
}

func (t *Target) kongRestart(ctx context.Context, a drill.Action, j *journal.Writer, verifyBy, recoverBy time.Duration) (engine.Injection, func(context.Context) error) {
	var in engine.Injection
	chosen, err := t.chooseKongs(ctx, a, "kong-restart (SIGKILL of the Kong container)")
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	type victim struct {
		pod  corev1.Pod
		proc containerProcess
	}
	var victims []victim
	for _, p := range chosen {
		proc, err := containerOf(&p, t.kongContainer)
		if err != nil {
			in.Detail = err.Error()
			return in, nil
		}
		victims = append(victims, victim{p, proc})
	}
	// Each victim's restart is watched from the kill on: when its API
	// answers again, and when it is configured from then on.
	watchCtx, stopWatch := context.WithTimeout(ctx, verifyBy+recoverBy)
	var watchers sync.WaitGroup
	for _, v := range victims {
		at := j.Now()
		if err := signalGroup(v.proc.pid, syscall.SIGKILL); err != nil {
			stopWatch()
			in.Detail = err.Error()
			return in, nil
		}
		if in.At.IsZero() {
			in.At = at
		}
		in.Subjects = append(in.Subjects, v.pod.Name)
		in.Killed = append(in.Killed, hostPort(v.pod.Status.PodIP, t.ports.proxy))
		t.journalKill(j, a, v.pod.Name, v.pod.Status.PodIP, at, v.proc.pid)
		watchers.Go(func() { t.watchKongRestart(watchCtx, j, v.pod.Name, v.pod.Status.PodIP) })
	}
	defer func() {
		if !in.Verified {
			stopWatch()
		}
	}()
	var details []string
	for _, v := range victims {
		d, err := t.restarted(ctx, &v.pod, t.kongContainer, v.proc, verifyBy)
		if err != nil {
			in.Detail = err.Error()
			return in, nil
		}
		details = append(details, d)
	}
	in.Verified, in.Detail = true, strings.Join(details, "; ")
	return in, func(ctx context.Context) error {
		for _, v := range victims {
			cur, err := t.cs.CoreV1().Pods(t.ns).Get(ctx, v.pod.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !podReady(cur) {
				return fmt.Errorf("Kong %s is not ready again", v.pod.Name)
			}
		}
		if err := t.serving(ctx, "/", EchoHost); err != nil {
			return err
		}
		// A Ready Kong has long answered /status/ready, so the watchers
		// are done or about to be.
		watchers.Wait()
		stopWatch()
		return nil
	}
}

// journalKill journals that the Kong of pod, behind proxy endpoint ip,
// was SIGKILLed at at (just before the signal), and then, in the
// background, the last moment its process pid was seen alive: SIGKILL
// takes effect when the process is next scheduled, and until it has exited
// the kernel still accepts connections for it (reset as it exits), so a
// request sent until then was in flight at the kill, not sent to a Kong
// already dead.
func (t *Target) journalKill(j *journal.Writer, a drill.Action, pod, ip string, at time.Time, pid int) {
	ep := hostPort(ip, t.ports.proxy)
	j.Add(journal.Record{T: at, Kind: journal.KindEvent, Event: journal.EventKongKilled, Subject: ep,
		Value: pod, Fault: string(a.Fault), Action: a.Label()})
	if pid <= 0 {
		return
	}
	// One look at once, before anything else is scheduled, then the rest
	// in the background (a fault may kill more than one Kong).
	since := at
	if now := j.Now(); running(pid) {
		since = now
	}
	go func() {
		alive, dead, ok := lastSeenAlive(pid, since, j.Now, 5*time.Second)
		if ok {
			j.Add(journal.Record{T: alive, Kind: journal.KindEvent, Event: journal.EventKongDead, Subject: ep,
				Value: pod, Fault: string(a.Fault), Action: a.Label(), Seconds: dead.Sub(at).Seconds(),
				Detail: fmt.Sprintf("pid %d seen running until %s after the signal, exited by %s", pid, alive.Sub(at), dead.Sub(at))})
		}
	}()
}

// running says whether process pid exists and has not exited (a zombie
// has).
func running(pid int) bool {
	st := processState(pid)
	return st != "" && st != "Z" && st != "X"
}

// lastSeenAlive polls process pid every millisecond until it has exited
// (a zombie, or gone) and returns the last time it was seen running (since,
// when no later) and the first time it was seen exited; ok is false if it
// still ran after within. The moment of death lies between the two:
// taking the earlier never counts a request sent to a dead Kong as in
// flight.
func lastSeenAlive(pid int, since time.Time, now func() time.Time, within time.Duration) (alive, dead time.Time, ok bool) {
	alive = since
	deadline := since.Add(within)
	for {
		t := now()
		if !running(pid) {
			return alive, t, true
		}
		alive = t
		if t.After(deadline) {
			return alive, time.Time{}, false
		}
		time.Sleep(time.Millisecond)
	}
}

// watchKongRestart journals when the Kong at ip, just killed, answers on
// its Admin API again (its Status API when the Admin API listens only
// inside the pod) and, from then, how long until it reports ready: the
// time the controller takes to configure a Kong restarted in place. It
// first waits for the API to fail, so an answer of the killed process
// still exiting is not taken for the restarted one.
func (t *Target) watchKongRestart(ctx context.Context, j *journal.Writer, pod, ip string) {
	if t.ports.status == 0 {
		return
	}
	up := "http://" + hostPort(ip, t.ports.status) + "/status"
	if t.ports.admin != 0 {
		up = "http://" + hostPort(ip, t.ports.admin) + "/"
	}
	answers := func(url string) (int, bool) {
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		code, err := t.get(rctx, url, "")
		return code, err == nil
	}
	const every = 10 * time.Millisecond
	for {
		if _, ok := answers(up); !ok {
			break
		}
		if !engine.Sleep(ctx, every) {
			return
		}
	}
	for {
		if _, ok := answers(up); ok {
			break
		}
		if !engine.Sleep(ctx, every) {
			return
		}
	}
	upAt := j.Now()
	j.Add(journal.Record{T: upAt, Kind: journal.KindEvent, Event: journal.EventKongAPIUp, Subject: pod})
	ready := "http://" + hostPort(ip, t.ports.status) + "/status/ready"
	for {
		if code, ok := answers(ready); ok && code == http.StatusOK {
			break
		}
		if !engine.Sleep(ctx, every) {
			return
		}
	}
	now := j.Now()
	j.Add(journal.Record{T: now, Kind: journal.KindEvent, Event: journal.EventKongConfigured, Subject: pod, Seconds: now.Sub(upAt).Seconds()})
}

func (t *Target) kongPodKill(ctx context.Context, a drill.Action, j *journal.Writer, verifyBy time.Duration) (engine.Injection, func(context.Context) error) {
	var in engine.Injection
	chosen, err := t.chooseKongs(ctx, a, "kong-pod-kill (SIGKILL of the pod's processes)")
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	zero := int64(0)
	for _, p := range chosen {
		var pids []int
		kongPID := 0
		for _, cs := range p.Status.ContainerStatuses {
			proc, err := containerOf(&p, cs.Name)
			if err != nil {
				in.Detail = err.Error()
				return in, nil
			}
			pids = append(pids, proc.pid)
			if cs.Name == t.kongContainer {
				kongPID = proc.pid
			}
		}
		at := j.Now()
		for _, pid := range pids {
			if err := signalGroup(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				in.Detail = err.Error()
				return in, nil
			}
		}
		if in.At.IsZero() {
			in.At = at
		}
		t.journalKill(j, a, p.Name, p.Status.PodIP, at, kongPID)
		// As after a node crash: the pod object goes at once.
		if err := t.cs.CoreV1().Pods(t.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			in.Detail = err.Error()
			return in, nil
		}
		in.Subjects = append(in.Subjects, p.Name)
		in.Killed = append(in.Killed, hostPort(p.Status.PodIP, t.ports.proxy))
	}
	for _, p := range chosen {
		if err := t.gone(ctx, p.Name, p.UID, verifyBy); err != nil {
			in.Detail = err.Error()
			return in, nil
		}
	}
	in.Verified, in.Detail = true, fmt.Sprintf("SIGKILLed every process of %v and deleted the pods", in.Subjects)
	return in, func(ctx context.Context) error {
		if err := t.deploymentSettled(ctx, t.kongDeploy); err != nil {
			return err
		}
		return t.serving(ctx, "/", EchoHost)
	}
}

func (t *Target) scale(ctx context.Context, name string, replicas int, verifyBy time.Duration) (engine.Injection, func(context.Context) error) {
	var in engine.Injection
	sc, err := t.cs.AppsV1().Deployments(t.ns).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	from := sc.Spec.Replicas
	sc.Spec.Replicas = int32(replicas)
	if _, err := t.cs.AppsV1().Deployments(t.ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	t.mu.Lock()
	t.scaled = true
	t.mu.Unlock()
	in.Subjects = []string{"Deployment " + name}
	err = poll(ctx, verifyBy, 100*time.Millisecond, func(ctx context.Context) error {
		d, err := t.cs.AppsV1().Deployments(t.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ObservedGeneration < d.Generation || d.Status.Replicas != int32(replicas) {
			return fmt.Errorf("Deployment %s runs %d pods, want %d", name, d.Status.Replicas, replicas)
		}
		return nil
	})
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	in.Verified, in.Detail = true, fmt.Sprintf("Deployment %s scaled %d→%d", name, from, replicas)
	return in, func(ctx context.Context) error {
		if err := t.deploymentSettled(ctx, name); err != nil {
			return err
		}
		if name == t.kongDeploy {
			return t.serving(ctx, "/", EchoHost)
		}
		return nil
	}
}

func (t *Target) rollout(ctx context.Context, name string, verifyBy time.Duration) (engine.Injection, func(context.Context) error) {
	var in engine.Injection
	// The pods to be replaced, listed before the new ones can appear.
	pods, err := t.pods(ctx, t.ctrlSel)
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	var old []string
	for _, p := range pods {
		old = append(old, p.Name)
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"konductor.dev/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	d, err := t.cs.AppsV1().Deployments(t.ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	gen := d.Generation
	in.Subjects = []string{"Deployment " + name}
	// Fired once the Deployment controller acted on it and an old pod went.
	err = poll(ctx, verifyBy, 100*time.Millisecond, func(ctx context.Context) error {
		d, err := t.cs.AppsV1().Deployments(t.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ObservedGeneration < gen || d.Status.UpdatedReplicas == 0 {
			return fmt.Errorf("Deployment %s has not started rolling (generation %d observed %d)", name, gen, d.Status.ObservedGeneration)
		}
		return nil
	})
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	in.Verified, in.Detail = true, fmt.Sprintf("rolling restart of Deployment %s (generation %d; old pods %v)", name, gen, old)
	return in, func(ctx context.Context) error {
		if err := t.deploymentSettled(ctx, name); err != nil {
			return err
		}
		pods, err := t.pods(ctx, t.ctrlSel)
		if err != nil {
			return err
		}
		for _, p := range pods {
			if slices.Contains(old, p.Name) && p.DeletionTimestamp == nil {
				return fmt.Errorf("old pod %s is still there", p.Name)
			}
		}
		return t.controllersReady(ctx)
	}
}

// apiServerPID finds the kube-apiserver process serving the kubeconfig's
// port on this host (the local cluster runs it as a host process).
func (t *Target) apiServerPID() (int, error) {
	u, err := url.Parse(t.o.Config.Host)
	if err != nil {
		return 0, err
	}
	port := u.Port()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var found []int
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "kube-apiserver" || !slices.Contains(args, "--secure-port="+port) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		found = append(found, pid)
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("found %d kube-apiserver processes with --secure-port=%s on this host, want 1", len(found), port)
	}
	return found[0], nil
}

func (t *Target) apiserverPause(ctx context.Context, d time.Duration, verifyBy time.Duration) (engine.Injection, func(context.Context) error) {
	var in engine.Injection
	if err := t.needsLocal("apiserver-pause (SIGSTOP of kube-apiserver)"); err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	pid, err := t.apiServerPID()
	if err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		in.Detail = err.Error()
		return in, nil
	}
	t.mu.Lock()
	t.stoppedPIDs = append(t.stoppedPIDs, pid)
	t.mu.Unlock()
	paused := time.Now()
	in.Subjects = []string{"kube-apiserver pid " + strconv.Itoa(pid)}
	// SIGSTOP reaches a busy process's threads one by one; verified once
	// every thread is stopped and the API does not answer.
	_ = poll(ctx, min(verifyBy, d), 10*time.Millisecond, func(context.Context) error {
		if !allThreadsStopped(pid) {
			return errors.New("threads still running")
		}
		return nil
	})
	vctx, cancel := context.WithTimeout(ctx, min(verifyBy, d))
	_, err = t.cs.Discovery().RESTClient().Get().AbsPath("/version").Timeout(time.Second).DoRaw(vctx)
	cancel()
	state := processState(pid)
	if err == nil || state != "T" {
		in.Detail = fmt.Sprintf("kube-apiserver pid %d still answers (state %q)", pid, state)
	} else {
		in.Verified = true
		in.Detail = fmt.Sprintf("SIGSTOP kube-apiserver pid %d for %s (state %s; /version: %v)", pid, d, state, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(paused.Add(d))):
	}
	resumeErr := t.resume(pid)
	if resumeErr != nil {
		in.Verified, in.Detail = false, in.Detail+"; resuming: "+resumeErr.Error()
	}
	return in, func(ctx context.Context) error {
		_, err := t.cs.Discovery().ServerVersion()
		return err
	}
}

func (t *Target) resume(pid int) error {
	err := syscall.Kill(pid, syscall.SIGCONT)
	if errors.Is(err, syscall.ESRCH) {
		err = nil
	}
	if err == nil {
		t.mu.Lock()
		t.stoppedPIDs = slices.DeleteFunc(t.stoppedPIDs, func(p int) bool { return p == pid })
		t.mu.Unlock()
	}
	return err
}

// allThreadsStopped says whether every thread of pid is stopped.
func allThreadsStopped(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		raw, err := os.ReadFile(filepath.Join(task, "stat"))
		if err != nil {
			continue
		}
		s := string(raw)
		if i := strings.LastIndexByte(s, ')'); i < 0 || i+2 >= len(s) || (s[i+2] != 'T' && s[i+2] != 't') {
			return false
		}
	}
	return len(tasks) > 0
}

// processState is the state letter of /proc/<pid>/stat ("T" when stopped).
func processState(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(raw)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// Rollback implements engine.Target.
func (t *Target) Rollback(ctx context.Context, r drill.RollbackKind) error {
	switch r {
	case drill.RollbackResumeProcesses:
		t.mu.Lock()
		pids := slices.Clone(t.stoppedPIDs)
		t.mu.Unlock()
		var errs []error
		for _, pid := range pids {
			errs = append(errs, t.resume(pid))
		}
		return errors.Join(errs...)
	case drill.RollbackRemoveProbeObjects:
		t.mu.Lock()
		names := slices.Clone(t.probeIngresses)
		t.mu.Unlock()
		var errs []error
		for _, n := range names {
			errs = append(errs, t.deleteProbeIngress(ctx, n))
		}
		return errors.Join(errs...)
	case drill.RollbackRestoreReplicas:
		t.mu.Lock()
		scaled := t.scaled
		t.scaled = false
		t.mu.Unlock()
		if !scaled {
			return nil
		}
		for name, n := range t.origReplicas {
			sc, err := t.cs.AppsV1().Deployments(t.ns).GetScale(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if sc.Spec.Replicas != n {
				sc.Spec.Replicas = n
				if _, err := t.cs.AppsV1().Deployments(t.ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
					return err
				}
			}
			if err := poll(ctx, t.o.ReadyTimeout, 250*time.Millisecond, func(ctx context.Context) error {
				return t.deploymentSettled(ctx, name)
			}); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("rollback %s is not implemented by this target", r)
}
