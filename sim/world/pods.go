package world

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"konductor.dev/controller/election"
	"konductor.dev/sim/apiserver"
)

// The controller replicas run in Pods that a modelled kubelet reports on,
// as a real one does: some time after a container starts or ends (PLEG
// relist and the status write), with the state it sees then. The electors
// read these Pods: the leader to publish its container, standbys to take
// over as soon as the kubelet reports the leader's container terminated.

// controllerContainer is the container name in every controller Pod.
const controllerContainer = "konductor"

var podsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// kubeletDelay bounds how long the kubelet takes to report a container
// change: a PLEG relist (every second) plus the status write.
const (
	kubeletMinDelay = 100 * time.Millisecond
	kubeletJitter   = time.Second
)

// nodeGrace is how long after a node stops reporting the node controller
// marks its Pods' Ready condition Unknown (40s in Kubernetes; shorter here
// so that it happens within a fault's window).
const nodeGrace = 8 * time.Second

// podState is the truth about one controller Pod: what its kubelet would
// report if asked now.
type podState struct {
	uid         types.UID
	containerID string
	running     bool
	startedAt   time.Time
	ended       *corev1.ContainerStateTerminated
	last        *corev1.ContainerStateTerminated
	restarts    int32

	// Kubelet model.
	rand     *rand.Rand
	late     time.Duration // reports are this much later (kubelet-late)
	nodeLost bool          // the node stopped reporting (node-partition)
	unknown  bool          // the node controller marked Ready Unknown
	pending  []time.Time   // reports due, in order
	wake     chan struct{}
}

// deaths records when each replica incarnation's process ended; the
// evidence oracle compares takeovers with it. Guarded by w.mu.
type deathLog map[string]time.Time

// podName is replica i's Pod.
func podName(i int) string { return fmt.Sprintf("konductor-%d", i) }

// startPods creates the controller Pods (Pending) and their kubelets.
func (w *World) startPods(ctx context.Context) error {
	w.pods = make([]*podState, w.cfg.Controllers)
	w.deaths = deathLog{}
	for i := range w.cfg.Controllers {
		p := &podState{
			rand: rand.New(rand.NewPCG(w.cfg.Seed, 0x6b75626500+uint64(i))),
			wake: make(chan struct{}, 1),
		}
		w.pods[i] = p
		if err := w.api.Seed(w.podObject(i, p)); err != nil {
			return err
		}
		p.uid = w.podUID(i)
		w.wg.Go(func() { w.kubelet(ctx, i) })
	}
	return nil
}

func (w *World) podUID(i int) types.UID {
	obj, ok := w.api.Get(podsResource, kongNamespace, podName(i))
	if !ok {
		return ""
	}
	return obj.(*corev1.Pod).UID
}

// podObject renders Pod i as its kubelet would report it now; w.mu held or
// not needed (only called with the state's owner serialised).
func (w *World) podObject(i int, p *podState) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: podName(i), Labels: map[string]string{"app": "konductor"}},
		Spec: corev1.PodSpec{
			NodeName:   fmt.Sprintf("node-%d", i),
			Containers: []corev1.Container{{Name: controllerContainer, Image: "konductor:dev"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	if p.containerID == "" {
		return pod
	}
	st := corev1.ContainerStatus{
		Name: controllerContainer, Image: "konductor:dev", ContainerID: p.containerID,
		RestartCount: p.restarts, Ready: p.running,
	}
	if p.running {
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(p.startedAt.Truncate(time.Second))}
	} else if p.ended != nil {
		st.State.Terminated = p.ended.DeepCopy()
	}
	if p.last != nil {
		st.LastTerminationState.Terminated = p.last.DeepCopy()
	}
	ready := corev1.ConditionFalse
	if p.running {
		ready = corev1.ConditionTrue
	}
	if p.unknown {
		ready = corev1.ConditionUnknown
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{st}
	return pod
}

// containerStarted: replica i's container runs identity's process.
func (w *World) containerStarted(i int, identity string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pods[i]
	if p.containerID != "" {
		if p.ended != nil {
			p.last = p.ended
		}
		p.restarts++
	}
	p.containerID, p.running, p.startedAt, p.ended = "sim://"+identity, true, at, nil
	w.scheduleReportLocked(p)
}

// containerEnded: replica i's process ended (exit code 137 for a kill).
func (w *World) containerEnded(i int, identity string, graceful bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.deaths[identity] = now
	p := w.pods[i]
	if !p.running || p.containerID != "sim://"+identity {
		return
	}
	t := &corev1.ContainerStateTerminated{
		ExitCode: 137, Reason: "Error", ContainerID: p.containerID,
		StartedAt: metav1.NewTime(p.startedAt.Truncate(time.Second)), FinishedAt: metav1.NewTime(now.Truncate(time.Second)),
	}
	if graceful {
		t.ExitCode, t.Reason = 0, "Completed"
	}
	p.running, p.ended = false, t
	w.scheduleReportLocked(p)
}

// scheduleReportLocked queues a kubelet report for p, after the kubelet's
// delay (and any extra lateness), never before an earlier report.
func (w *World) scheduleReportLocked(p *podState) {
	due := time.Now().Add(kubeletMinDelay + time.Duration(p.rand.Int64N(int64(kubeletJitter))) + p.late)
	if n := len(p.pending); n > 0 && due.Before(p.pending[n-1]) {
		due = p.pending[n-1]
	}
	p.pending = append(p.pending, due)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// kubelet writes Pod i's status when reports fall due, while its node
// reports.
func (w *World) kubelet(ctx context.Context, i int) {
	w.mu.Lock()
	p := w.pods[i]
	w.mu.Unlock()
	for {
		w.mu.Lock()
		waiting := len(p.pending) == 0 || p.nodeLost
		var due time.Time
		if !waiting {
			due = p.pending[0]
		}
		w.mu.Unlock()
		if waiting {
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			}
			continue
		}
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-p.wake:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		w.podWrites.Lock()
		w.mu.Lock()
		if p.nodeLost || len(p.pending) == 0 || time.Now().Before(p.pending[0]) {
			w.mu.Unlock()
			w.podWrites.Unlock()
			continue
		}
		// One status write covers every report due by now.
		for len(p.pending) > 0 && !time.Now().Before(p.pending[0]) {
			p.pending = p.pending[1:]
		}
		pod := w.podObject(i, p)
		w.mu.Unlock()
		if err := w.api.Apply(pod); err != nil {
			w.violate("world", "kubelet of %s: %v", podName(i), err)
		}
		w.podWrites.Unlock()
	}
}

// loseNode cuts replica i's node off: its process from the API server, its
// kubelet from reporting; nodeGrace later the node controller marks the
// Pod's Ready condition Unknown. The process keeps running.
func (w *World) loseNode(i int, id string) (heal func()) {
	w.mu.Lock()
	p := w.pods[i]
	p.nodeLost = true
	w.replicas[i].nodeLost = true
	w.mu.Unlock()
	w.api.SetFaults(id, apiserver.Faults{Partitioned: true})
	marked := make(chan struct{})
	healed := make(chan struct{})
	w.wg.Go(func() {
		defer close(marked)
		select {
		case <-healed:
			return
		case <-w.podCtx.Done():
			return
		case <-time.After(nodeGrace):
		}
		w.podWrites.Lock()
		defer w.podWrites.Unlock()
		w.mu.Lock()
		if !p.nodeLost {
			w.mu.Unlock()
			return
		}
		p.unknown = true
		pod := w.podObject(i, p)
		w.mu.Unlock()
		if err := w.api.Apply(pod); err != nil {
			w.violate("world", "node controller marking %s Unknown: %v", podName(i), err)
		}
	})
	return func() {
		close(healed)
		<-marked
		w.mu.Lock()
		p.nodeLost, p.unknown = false, false
		w.replicas[i].nodeLost = false
		w.scheduleReportLocked(p)
		w.mu.Unlock()
		w.resetAPIFaults()
	}
}

// forceDelete deletes replica i's Pod with grace 0 while its process runs.
// The Pod is recreated at once under the same name with a new UID (as a
// StatefulSet does), and stays Pending until the old process is gone: the
// kubelet kills it when the fault heals, reporting nothing (its Pod is
// gone), and the replica's next incarnation starts in the new Pod.
func (w *World) forceDelete(i int) (heal func()) {
	w.podWrites.Lock()
	if err := w.api.Delete(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: podName(i)}}); err != nil {
		w.violate("world", "force-deleting %s: %v", podName(i), err)
	}
	w.mu.Lock()
	p := w.pods[i]
	p.containerID, p.running, p.ended, p.last, p.restarts, p.pending, p.unknown = "", false, nil, nil, 0, nil, false
	pod := w.podObject(i, p)
	w.mu.Unlock()
	if err := w.api.Apply(pod); err != nil {
		w.violate("world", "recreating %s: %v", podName(i), err)
	}
	uid := w.podUID(i)
	w.mu.Lock()
	p.uid = uid
	w.mu.Unlock()
	w.podWrites.Unlock()
	return func() {
		w.mu.Lock()
		id := w.replicas[i].identity
		w.mu.Unlock()
		w.stopReplica(i, false)
		w.markFailover(id, FaultForceDelete)
		_ = w.startReplica(i)
	}
}

// self is replica i's process as its elector sees it.
func (w *World) self(i int, started time.Time) *election.Self {
	return &election.Self{Namespace: kongNamespace, Pod: podName(i), Container: controllerContainer, Started: started}
}
