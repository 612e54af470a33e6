package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/sim/cluster/podnet"
)

// podRunner owns one pod: its sandbox, its containers and its status.
type podRunner struct {
	a   *Agent
	pod *corev1.Pod // as first seen; the spec of a pod does not change
	dir string

	// ctx ends when the pod must stop; stopping carries the grace period.
	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
	grace    time.Duration
	hard     atomic.Bool // shutdown of the agent: no API calls, no grace

	mu         sync.Mutex
	sandbox    *podnet.Sandbox
	startTime  metav1.Time
	initDone   bool
	containers []*containerRun
	setupError string // reason of a failed sandbox or config setup
	setupMsg   string
	volumes    map[string]*podVolume
	lastEvent  string // message of the last Warning event, not repeated
	dirty      chan struct{}
	stopped    chan struct{} // closed once every container has stopped
	// written is the pod object as the last status write returned it
	// (only statusLoop touches it): the next write starts from it rather
	// than from a fresh GET, so a dead container is reported in one round
	// trip; a conflict (someone else changed the pod) falls back to a GET.
	written *corev1.Pod
}

func newPodRunner(a *Agent, pod *corev1.Pod) *podRunner {
	r := &podRunner{
		a:       a,
		pod:     pod.DeepCopy(),
		dir:     filepath.Join(a.cfg.PodDir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID)),
		dirty:   make(chan struct{}, 1),
		stopped: make(chan struct{}),
		volumes: map[string]*podVolume{},
	}
	r.ctx, r.cancel = context.WithCancel(a.ctx)
	for i := range r.pod.Spec.Containers {
		r.containers = append(r.containers, newContainerRun(r, &r.pod.Spec.Containers[i]))
	}
	return r
}

func (r *podRunner) logf(format string, args ...any) {
	r.a.cfg.Logf("pod %s/%s: "+format, append([]any{r.pod.Namespace, r.pod.Name}, args...)...)
}

// terminate asks the pod to stop with grace; the first call wins.
func (r *podRunner) terminate(grace time.Duration) {
	r.stopOnce.Do(func() {
		r.grace = grace
		r.cancel()
	})
}

// shutdown stops the pod at once and leaves its object alone.
func (r *podRunner) shutdown() {
	r.stopOnce.Do(func() {
		r.hard.Store(true)
		r.cancel()
	})
}

func (r *podRunner) markDirty() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// run is the pod's life: set up, run containers until told to stop, tear
// down, and finish the API object's deletion.
func (r *podRunner) run() {
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		r.statusLoop()
	}()
	r.mu.Lock()
	r.startTime = metav1.Now()
	r.mu.Unlock()
	r.markDirty()

	var wg sync.WaitGroup
	if r.setup() && r.runInitContainers() {
		for _, c := range r.containers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.supervise()
			}()
		}
	}
	<-r.ctx.Done()
	r.stopContainers()
	wg.Wait()
	close(r.stopped)
	// statusLoop writes the final status and returns.
	<-statusDone
	r.teardown()
	if !r.hard.Load() {
		r.a.finishDeletion(r.pod)
	}
}

// setup creates the sandbox and the service-account files, retrying with
// back-off until it works or the pod is deleted.
func (r *podRunner) setup() bool {
	backoff := r.a.cfg.RestartBackoff
	for {
		err := r.trySetup()
		if err == nil {
			r.mu.Lock()
			r.setupError, r.setupMsg = "", ""
			r.mu.Unlock()
			r.markDirty()
			return true
		}
		r.logf("setup: %v", err)
		r.mu.Lock()
		r.setupError, r.setupMsg = "CreateContainerConfigError", err.Error()
		r.mu.Unlock()
		r.markDirty()
		r.event(corev1.EventTypeWarning, "FailedMount", err.Error())
		select {
		case <-r.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.a.cfg.MaxRestartBackoff)
	}
}

func (r *podRunner) trySetup() error {
	if err := os.MkdirAll(filepath.Join(r.dir, "serviceaccount"), 0o755); err != nil {
		return err
	}
	if r.sandboxOrNil() == nil {
		sb, err := r.a.cfg.Network.Add(r.ctx, r.pod.Namespace+"/"+r.pod.Name)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.sandbox = sb
		r.mu.Unlock()
	}
	if err := r.writeHosts(); err != nil {
		return err
	}
	if automount(r.pod) && !mountsServiceAccount(r.pod) {
		if err := r.writeServiceAccount(); err != nil {
			return err
		}
	}
	return r.setupVolumes(r.ctx)
}

// event records a Kubernetes Event about the pod, once per distinct
// Warning message in a row (a retry loop does not flood).
func (r *podRunner) event(typ, reason, message string) {
	if r.hard.Load() || r.ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	if typ == corev1.EventTypeWarning && r.lastEvent == reason+message {
		r.mu.Unlock()
		return
	}
	r.lastEvent = reason + message
	r.mu.Unlock()
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: r.pod.Name + ".", Namespace: r.pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: r.pod.Namespace,
			Name: r.pod.Name, UID: r.pod.UID},
		Type: typ, Reason: reason, Message: message,
		Source:         corev1.EventSource{Component: "kubelet", Host: r.pod.Spec.NodeName},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "konductor.dev/process-kubelet", ReportingInstance: r.pod.Spec.NodeName,
	}
	if _, err := r.a.cfg.Client.CoreV1().Events(r.pod.Namespace).Create(context.WithoutCancel(r.ctx), ev, metav1.CreateOptions{}); err != nil {
		r.logf("event %s: %v", reason, err)
	}
}

// writeHosts writes the pod's /etc/hosts in place: the file is bind-mounted
// into the pod, so it must keep its inode.
func (r *podRunner) writeHosts() error {
	sb := r.sandboxOrNil()
	if sb == nil {
		return nil
	}
	var content []byte
	if r.a.cfg.Hosts != nil {
		content = r.a.cfg.Hosts(r.pod.Namespace, r.pod.Name, sb.IP.String())
	} else {
		content = fmt.Appendf(nil, "127.0.0.1\tlocalhost\n%s\t%s\n", sb.IP, r.pod.Name)
	}
	return os.WriteFile(filepath.Join(r.dir, "hosts"), content, 0o644)
}

func (r *podRunner) sandboxOrNil() *podnet.Sandbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sandbox
}

func automount(pod *corev1.Pod) bool {
	return pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken
}

// writeServiceAccount asks the API server for a token bound to this pod (it
// dies with the pod, as the kubelet's projected token does) and writes the
// three files a container finds in ServiceAccountDir.
func (r *podRunner) writeServiceAccount() error {
	sa := r.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	expiry := int64(3600)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &expiry,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: r.pod.Name, UID: r.pod.UID},
	}}
	tok, err := r.a.cfg.Client.CoreV1().ServiceAccounts(r.pod.Namespace).CreateToken(r.ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("service account %s token: %w", sa, err)
	}
	dir := filepath.Join(r.dir, "serviceaccount")
	files := map[string][]byte{
		"token":     []byte(tok.Status.Token),
		"namespace": []byte(r.pod.Namespace),
		"ca.crt":    r.a.cfg.CACert,
	}
	for name, data := range files {
		// Write then rename, so a process re-reading its token never sees
		// a half-written file.
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// refreshToken renews the token file before it expires (client-go rereads
// it), as the kubelet does at 80% of its life.
func (r *podRunner) refreshToken() {
	if !automount(r.pod) || mountsServiceAccount(r.pod) {
		return
	}
	t := time.NewTicker(48 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			if err := r.writeServiceAccount(); err != nil {
				r.logf("refresh token: %v", err)
			}
		}
	}
}

// runInitContainers runs the init containers one after another to success.
func (r *podRunner) runInitContainers() bool {
	go r.refreshToken()
	go r.refreshVolumes()
	for i := range r.pod.Spec.InitContainers {
		c := newContainerRun(r, &r.pod.Spec.InitContainers[i])
		c.init = true
		if !c.runToSuccess() {
			return false
		}
	}
	r.mu.Lock()
	r.initDone = true
	r.mu.Unlock()
	r.markDirty()
	return true
}

// stopContainers sends SIGTERM to every running container and SIGKILL to
// those still running after the grace period.
func (r *podRunner) stopContainers() {
	grace := r.grace
	if r.hard.Load() {
		grace = 0
	}
	var wg sync.WaitGroup
	for _, c := range r.containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop(grace)
		}()
	}
	wg.Wait()
}

func (r *podRunner) teardown() {
	if sb := r.sandboxOrNil(); sb != nil {
		if err := r.a.cfg.Network.Remove(context.WithoutCancel(r.ctx), sb); err != nil {
			r.logf("remove sandbox: %v", err)
		}
	}
	_ = os.RemoveAll(r.dir)
}

// statusLoop writes the pod's status whenever it changes, and once more
// after the pod stopped.
func (r *podRunner) statusLoop() {
	for {
		select {
		case <-r.dirty:
			r.writeStatus()
		case <-r.stopped:
			r.writeStatus()
			return
		}
	}
}

// writeStatus replaces the pod's status with the runner's view, retrying on
// conflicts with a fresh copy.
func (r *podRunner) writeStatus() {
	pods := r.a.cfg.Client.CoreV1().Pods(r.pod.Namespace)
	ctx := context.WithoutCancel(r.ctx)
	if r.hard.Load() {
		return
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur := r.written
		r.written = nil
		if cur == nil {
			got, err := pods.Get(ctx, r.pod.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && got.UID != r.pod.UID) {
				return
			}
			if err != nil {
				r.logf("get for status: %v", err)
				return
			}
			cur = got
		}
		cur = cur.DeepCopy()
		cur.Status = r.status(cur.Status)
		got, err := pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		switch {
		case err == nil:
			r.written = got
			return
		case apierrors.IsNotFound(err):
			return
		case !apierrors.IsConflict(err):
			r.logf("update status: %v", err)
			return
		}
	}
}

// podEnv is the environment every container of the pod starts with.
func (r *podRunner) podEnv() map[string]string {
	return map[string]string{
		"KUBERNETES_SERVICE_HOST": r.a.cfg.APIServerHost,
		"KUBERNETES_SERVICE_PORT": strconv.Itoa(r.a.cfg.APIServerPort),
		"KUBERNETES_PORT":         "tcp://" + r.a.cfg.APIServerHost + ":" + strconv.Itoa(r.a.cfg.APIServerPort),
		"HOSTNAME":                r.pod.Name,
		"PATH":                    os.Getenv("PATH"),
		// As a runtime sets it when the image has no passwd entry for the
		// user: never the agent's directories, which the container's user
		// may not enter, nor the host's home directories.
		"HOME":                          "/",
		"KUBERNETES_SERVICE_PORT_HTTPS": strconv.Itoa(r.a.cfg.APIServerPort),
	}
}
