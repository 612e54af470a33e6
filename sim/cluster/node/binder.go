package node

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// bind assigns an unscheduled pod to one of the agent's nodes. It is the
// stand-in for kube-scheduler when the cluster runs without one: it honours
// spec.nodeName and spec.nodeSelector and spreads pods with the same labels
// over zones, then nodes (the default topology spread of kube-scheduler,
// without its other plugins).
func (a *Agent) bind(pod *corev1.Pod, all []*corev1.Pod) string {
	if pod.Spec.SchedulerName != "" && pod.Spec.SchedulerName != corev1.DefaultSchedulerName {
		return ""
	}
	target := pickNode(a.cfg.Nodes, pod, all)
	if target == "" {
		a.cfg.Logf("node agent: no node matches pod %s/%s (nodeSelector %v)", pod.Namespace, pod.Name, pod.Spec.NodeSelector)
		return ""
	}
	err := a.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(a.ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: target},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && a.ctx.Err() == nil {
		a.cfg.Logf("node agent: bind %s/%s to %s: %v", pod.Namespace, pod.Name, target, err)
	}
	return target
}

// pickNode chooses the node for pod: among nodes whose labels match the
// pod's nodeSelector, the one in the zone with the fewest pods carrying the
// same labels, then the node with the fewest such pods, then by name.
func pickNode(nodes []Spec, pod *corev1.Pod, all []*corev1.Pod) string {
	same := labels.SelectorFromSet(pod.Labels)
	perNode := map[string]int{}
	perZone := map[string]int{}
	zoneOf := map[string]string{}
	for _, n := range nodes {
		zoneOf[n.Name] = n.Zone
	}
	for _, p := range all {
		if p.Spec.NodeName == "" || p.Namespace != pod.Namespace || p.UID == pod.UID || p.DeletionTimestamp != nil || len(pod.Labels) == 0 {
			continue
		}
		if same.Matches(labels.Set(p.Labels)) {
			perNode[p.Spec.NodeName]++
			perZone[zoneOf[p.Spec.NodeName]]++
		}
	}
	var candidates []Spec
	for _, n := range nodes {
		if matchesSelector(n, pod.Spec.NodeSelector) {
			candidates = append(candidates, n)
		}
	}
	if len(candidates) == 0 {
		return ""
	}
	best := slices.MinFunc(candidates, func(x, y Spec) int {
		if d := perZone[x.Zone] - perZone[y.Zone]; d != 0 {
			return d
		}
		if d := perNode[x.Name] - perNode[y.Name]; d != 0 {
			return d
		}
		switch {
		case x.Name < y.Name:
			return -1
		case x.Name > y.Name:
			return 1
		}
		return 0
	})
	return best.Name
}

func matchesSelector(n Spec, selector map[string]string) bool {
	for k, v := range selector {
		got, ok := n.Labels[k]
		switch k {
		case corev1.LabelHostname:
			got, ok = n.Name, true
		case corev1.LabelTopologyZone:
			got, ok = n.Zone, n.Zone != ""
		case corev1.LabelOSStable:
			got, ok = "linux", true
		case corev1.LabelArchStable:
			got, ok = "amd64", true
		}
		if !ok || got != v {
			return false
		}
	}
	return true
}

// bindPending binds every unscheduled pod the informer knows.
func (a *Agent) bindPending(ctx context.Context, lister func() []*corev1.Pod) {
	pods := lister()
	for i, p := range pods {
		if ctx.Err() != nil {
			return
		}
		if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
			if target := a.bind(p, pods); target != "" {
				// Count the new binding for the next pods at once.
				bound := p.DeepCopy()
				bound.Spec.NodeName = target
				pods[i] = bound
			}
		}
	}
}
