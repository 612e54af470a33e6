package node

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// status computes the pod's status from the runner's state. Conditions keep
// their transition time while their status does not change.
func (r *podRunner) status(old corev1.PodStatus) corev1.PodStatus {
	r.mu.Lock()
	sb, initDone, startTime := r.sandbox, r.initDone, r.startTime
	setupReason, setupMsg := r.setupError, r.setupMsg
	r.mu.Unlock()

	st := corev1.PodStatus{
		HostIP:    r.a.hostIP,
		HostIPs:   []corev1.HostIP{{IP: r.a.hostIP}},
		StartTime: &startTime,
		QOSClass:  old.QOSClass,
	}
	if sb != nil {
		st.PodIP = sb.IP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	} else if old.PodIP != "" {
		st.PodIP, st.PodIPs = old.PodIP, old.PodIPs
	}

	allReady, running, waiting, terminated, failed := true, 0, 0, 0, 0
	for _, c := range r.containers {
		cs := c.status()
		if setupReason != "" && cs.State.Waiting != nil {
			cs.State.Waiting.Reason, cs.State.Waiting.Message = setupReason, setupMsg
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		allReady = allReady && cs.Ready
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			terminated++
			if cs.State.Terminated.ExitCode != 0 {
				failed++
			}
		default:
			waiting++
			if cs.LastTerminationState.Terminated != nil {
				running++ // restarting counts as running for the phase
				waiting--
			}
		}
	}
	switch {
	case !initDone || waiting > 0:
		st.Phase = corev1.PodPending
	case terminated == len(r.containers) && failed > 0:
		st.Phase = corev1.PodFailed
	case terminated == len(r.containers):
		st.Phase = corev1.PodSucceeded
	default:
		st.Phase = corev1.PodRunning
	}
	if r.ctx.Err() != nil && st.Phase == corev1.PodRunning {
		// All containers stopped on deletion; the pod object is about to go.
		st.Phase = old.Phase
	}

	cond := func(t corev1.PodConditionType, ok bool, reason string) {
		status := corev1.ConditionFalse
		if ok {
			status, reason = corev1.ConditionTrue, ""
		}
		c := corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: metav1.Now()}
		for _, o := range old.Conditions {
			if o.Type == t && o.Status == status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	for _, o := range old.Conditions {
		if o.Type == corev1.PodScheduled {
			st.Conditions = append(st.Conditions, o)
		}
	}
	cond(corev1.PodReadyToStartContainers, sb != nil, "")
	cond(corev1.PodInitialized, initDone, "ContainersNotInitialized")
	cond(corev1.ContainersReady, allReady && initDone, "ContainersNotReady")
	cond(corev1.PodReady, allReady && initDone, "ContainersNotReady")
	return st
}
