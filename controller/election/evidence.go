package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/controller/retry"
)

// evidenceState is the elector's part of the pod-evidence takeover; the
// fields are guarded by Elector.mu except where noted.
type evidenceState struct {
	// self is our own container instance, once resolveSelf identified it.
	self *HolderProcess
	// target is the process the observed record's holder published for
	// its term, which the pod watch follows; nil when there is none.
	target *HolderProcess
	// targetChanged wakes the pod watch (capacity 1; not guarded).
	targetChanged chan struct{}
	// ended is the holder process the kubelet reported terminated, at
	// time at, and why.
	ended *HolderProcess
	at    time.Time
	why   string
	// logged is the last "falls back to lease expiry" reason logged, so
	// that each is logged once.
	logged string
}

// samePublished reports whether a and b name the same holder term and the
// same container instance.
func samePublished(a, b *HolderProcess) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.HolderIdentity == b.HolderIdentity && a.LeaderTransitions == b.LeaderTransitions &&
		a.Namespace == b.Namespace && a.Pod == b.Pod && a.PodUID == b.PodUID &&
		a.Container == b.Container && a.ContainerID == b.ContainerID
}

// holderEndedLocked reports whether the kubelet reported the process of the
// observed record's holder, in the observed term, terminated.
func (e *Elector) holderEndedLocked() bool {
	ev := &e.evidence
	return e.cfg.PodEvidence && e.present && ev.ended != nil && ev.ended.forRecord(&e.observed) &&
		samePublished(ev.ended, ev.target)
}

// noteProcessLocked takes the process annotation read with rec: for a
// record held by another replica, the process its pod watch must follow.
// A record without a usable annotation falls back to lease expiry, and
// says why once.
func (e *Elector) noteProcessLocked(rec *rl.LeaderElectionRecord, value string) {
	if !e.cfg.PodEvidence {
		return
	}
	if rec == nil || rec.HolderIdentity == "" || rec.HolderIdentity == e.cfg.Identity {
		e.setTargetLocked(nil)
		return
	}
	p, err := parseHolderProcess(value)
	why := ""
	switch {
	case err != nil:
		why = err.Error()
	case p == nil:
		why = "the holder publishes no process (annotation " + ProcessAnnotationKey + "), e.g. another controller or an older konductor"
	case !p.forRecord(rec):
		why = fmt.Sprintf("the process annotation belongs to %q in epoch %d, not to the holder's term", p.HolderIdentity, p.LeaderTransitions)
	case p.Namespace != e.cfg.Namespace:
		why = fmt.Sprintf("the holder's pod is in namespace %q; only pods in the lock's namespace %q are watched", p.Namespace, e.cfg.Namespace)
	}
	if why != "" {
		e.fallbackLocked(rec.HolderIdentity, why)
		e.setTargetLocked(nil)
		return
	}
	e.setTargetLocked(p)
}

// fallbackLocked logs, once per holder and reason, that a takeover from
// holder waits for its lease.
func (e *Elector) fallbackLocked(holder, why string) {
	key := holder + "\x00" + why
	if e.evidence.logged == key {
		return
	}
	e.evidence.logged = key
	e.log.Info("a takeover from this holder waits for its lease to expire", "holder", holder, "reason", why)
}

func (e *Elector) fallback(holder, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fallbackLocked(holder, why)
}

func (e *Elector) setTargetLocked(p *HolderProcess) {
	if samePublished(p, e.evidence.target) {
		return
	}
	e.evidence.target = p
	select {
	case e.evidence.targetChanged <- struct{}{}:
	default:
	}
}

func (e *Elector) currentTarget() *HolderProcess {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.evidence.target
}

// publish sets the process annotation the next write of rec carries: our
// container instance for rec's term once known, else none. With
// PodEvidence off the lock's annotations are left alone.
func (e *Elector) publish(rec rl.LeaderElectionRecord) {
	if !e.cfg.PodEvidence {
		return
	}
	e.mu.Lock()
	self := e.evidence.self
	e.mu.Unlock()
	if self == nil || rec.HolderIdentity == "" {
		e.lock.setProcess("")
		return
	}
	p := *self
	p.HolderIdentity, p.LeaderTransitions = rec.HolderIdentity, rec.LeaderTransitions
	raw, err := json.Marshal(p)
	if err != nil {
		e.lock.setProcess("")
		return
	}
	e.lock.setProcess(string(raw))
}

// watchHolderPods follows the Pod of the process the current holder
// published, and records when the kubelet reports that very process
// terminated. It never takes the lock itself; it wakes the election loop,
// which decides on a fresh read of the lock.
func (e *Elector) watchHolderPods(ctx context.Context) {
	for ctx.Err() == nil {
		target := e.currentTarget()
		if target == nil {
			select {
			case <-ctx.Done():
				return
			case <-e.evidence.targetChanged:
			}
			continue
		}
		if e.followHolderPod(ctx, target) {
			e.awaitTargetChange(ctx, target)
		}
	}
}

// awaitTargetChange returns when the target is no longer target.
func (e *Elector) awaitTargetChange(ctx context.Context, target *HolderProcess) {
	for samePublished(e.currentTarget(), target) {
		select {
		case <-ctx.Done():
			return
		case <-e.evidence.targetChanged:
		}
	}
}

// followHolderPod reads and then watches target's Pod until the kubelet
// reports target's process ended, the Pod shows it never will, or the
// target changes. It reports whether it is done with target (evidence
// found, or none can come: then the takeover waits for the lease).
func (e *Elector) followHolderPod(ctx context.Context, target *HolderProcess) (done bool) {
	pods := e.cfg.Client.CoreV1().Pods(target.Namespace)
	backoff := e.cfg.RetryPeriod
	retry := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, e.cfg.LeaseDuration)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-e.evidence.targetChanged:
		}
		return false
	}
	for ctx.Err() == nil && samePublished(e.currentTarget(), target) {
		pod, err := pods.Get(ctx, target.Pod, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// Gone before we saw the kubelet's final report: a force
			// delete leaves the process running, so this proves nothing.
			e.fallback(target.HolderIdentity, fmt.Sprintf("its pod %s/%s is not found; a deleted pod is evidence only with the kubelet's report of its container's termination", target.Namespace, target.Pod))
			return true
		case apierrors.IsForbidden(err):
			e.fallback(target.HolderIdentity, fmt.Sprintf("reading its pod %s/%s is forbidden (grant get and watch on pods in this namespace, or turn off --election-pod-evidence): %v", target.Namespace, target.Pod, err))
			return true
		case err != nil:
			if ctx.Err() == nil {
				e.log.Debug("reading the holder's pod failed", "pod", target.Namespace+"/"+target.Pod, "err", err)
			}
			retry()
			continue
		}
		if verdict := e.judge(target, pod, false); verdict != podWatching {
			return true
		}
		// Without a resourceVersion the watch starts with the Pod's current
		// state: an object's own resourceVersion may already be compacted
		// away (410 Gone) when the Pod has not changed for a while.
		w, err := pods.Watch(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("metadata.name", target.Pod).String(),
		})
		if apierrors.IsForbidden(err) {
			e.fallback(target.HolderIdentity, fmt.Sprintf("watching its pod %s/%s is forbidden (grant get and watch on pods in this namespace, or turn off --election-pod-evidence): %v", target.Namespace, target.Pod, err))
			return true
		}
		if err != nil {
			retry()
			continue
		}
		verdict, delivered := e.followPodWatch(ctx, w, target)
		if verdict != podWatching {
			return true
		}
		if delivered {
			backoff = e.cfg.RetryPeriod
		} else {
			retry()
		}
	}
	return false
}

type podVerdict int

const (
	podWatching podVerdict = iota // nothing proven yet
	podEnded                      // the holder's process ended: evidence
	podGone                       // no evidence can come from this Pod
)

// followPodWatch consumes one watch of target's Pod.
func (e *Elector) followPodWatch(ctx context.Context, w watch.Interface, target *HolderProcess) (podVerdict, bool) {
	defer w.Stop()
	delivered := false
	for {
		select {
		case <-ctx.Done():
			return podWatching, delivered
		case <-e.evidence.targetChanged:
			// watchHolderPods reads the new target itself.
			if !samePublished(e.currentTarget(), target) {
				return podWatching, delivered
			}
		case ev, ok := <-w.ResultChan():
			if !ok {
				return podWatching, delivered
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if ev.Type == watch.Error || !isPod {
				return podWatching, delivered
			}
			if pod.Name != target.Pod {
				continue
			}
			delivered = true
			if v := e.judge(target, pod, ev.Type == watch.Deleted); v != podWatching {
				return v, delivered
			}
		}
	}
}

// judge looks at one state of target's Pod. A deleted Pod's last state
// still counts: a graceful deletion completes only after the kubelet
// reported the containers terminated.
func (e *Elector) judge(target *HolderProcess, pod *corev1.Pod, deleted bool) podVerdict {
	ended, why := processEnded(pod, target)
	if ended {
		e.mu.Lock()
		if samePublished(e.evidence.target, target) {
			e.evidence.ended, e.evidence.at, e.evidence.why = target, time.Now(), why
		}
		e.mu.Unlock()
		e.log.Info("the holder's process ended", "holder", target.HolderIdentity, "epoch", target.LeaderTransitions, "evidence", why)
		e.poke()
		return podEnded
	}
	if pod.UID != target.PodUID {
		e.fallback(target.HolderIdentity, why+"; the holder's pod is gone without a report of its container's termination")
		return podGone
	}
	if deleted {
		e.fallback(target.HolderIdentity, fmt.Sprintf("its pod %s/%s was deleted while its container was still reported running (a force delete?); its process may still run", pod.Namespace, pod.Name))
		return podGone
	}
	return podWatching
}

// resolveSelf identifies our own container instance in our Pod's status,
// so that terms we win publish it. It reads the Pod until the status shows
// this process running (a status lagging a restart shows the previous
// instance), and gives up, saying why once, when it never can.
func (e *Elector) resolveSelf(ctx context.Context) {
	s := *e.cfg.Self
	if s.Namespace == "" || s.Pod == "" {
		e.log.Info("not publishing this process beside the lock: POD_NAMESPACE and POD_NAME are not set; standbys will wait for the lease when this replica dies")
		return
	}
	pods := e.cfg.Client.CoreV1().Pods(s.Namespace)
	backoff := min(time.Second, e.cfg.RetryPeriod)
	var lastWhy string
	for ctx.Err() == nil {
		pod, err := pods.Get(ctx, s.Pod, metav1.GetOptions{})
		var why string
		if err == nil {
			p, ierr := identifySelf(pod, s)
			if ierr == nil {
				e.mu.Lock()
				e.evidence.self = p
				e.mu.Unlock()
				e.log.Info("publishing this process beside the lock when leading", "pod", p.Namespace+"/"+p.Pod, "container", p.Container, "containerID", p.ContainerID)
				return
			}
			if !errors.Is(ierr, errNotYet) {
				e.log.Warn("not publishing this process beside the lock; standbys will wait for the lease when this replica dies", "err", ierr)
				return
			}
			why = ierr.Error()
		} else if ctx.Err() == nil {
			why = fmt.Sprintf("reading pod %s/%s: %v", s.Namespace, s.Pod, err)
		}
		if why != lastWhy && ctx.Err() == nil {
			e.log.Info("waiting to identify this process in its pod's status", "reason", why)
			lastWhy = why
		}
		if !retry.Sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, e.cfg.LeaseDuration)
	}
}
