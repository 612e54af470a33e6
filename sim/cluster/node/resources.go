package node

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// resourceFieldValue renders a downward-API resourceFieldRef the way the
// kubelet does (https://kubernetes.io/docs/concepts/workloads/pods/downward-api/
// "Information available via resourceFieldRef"):
//
//   - the value is the quantity divided by the divisor (default 1) and
//     rounded up to an integer: cpu counts cores ("250m" with divisor 1 is
//     "1", with divisor "1m" it is "250"); memory, ephemeral-storage and
//     hugepages count bytes ("512Mi" is "536870912");
//   - a limit the container does not set is the node's allocatable amount
//     ("the kubelet defaults to exposing the maximum allocatable value");
//   - containerName, when set, selects another container of the pod (init
//     containers included); empty means the container being started.
//
// Requests are reported as written (the API server already defaulted an
// unset request to the limit), 0 when absent.
func resourceFieldValue(pod *corev1.Pod, c *corev1.Container, fs *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	target := c
	if fs.ContainerName != "" && fs.ContainerName != c.Name {
		target = findContainer(pod, fs.ContainerName)
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef: container %q not found in pod %s/%s", fs.ContainerName, pod.Namespace, pod.Name)
		}
	}
	kind, name, ok := strings.Cut(fs.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", fs.Resource)
	}
	res := corev1.ResourceName(name)
	switch {
	case res == corev1.ResourceCPU, res == corev1.ResourceMemory, res == corev1.ResourceEphemeralStorage,
		strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
	default:
		return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", fs.Resource)
	}
	divisor := fs.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}

	var q resource.Quantity
	if kind == "limits" {
		if v, set := target.Resources.Limits[res]; set {
			q = v
		} else if v, known := allocatable[res]; known && !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
			// The kubelet merges allocatable into unset cpu, memory and
			// ephemeral-storage limits only.
			q = v
		}
	} else if v, set := target.Resources.Requests[res]; set {
		q = v
	}
	return divideUp(q, divisor, res == corev1.ResourceCPU), nil
}

// divideUp is ceil(q / divisor) as a decimal string; cpu divides
// milli-units so that fractions of a core survive, the rest whole units.
func divideUp(q, divisor resource.Quantity, cpu bool) string {
	num, den := q.Value(), divisor.Value()
	if cpu {
		num, den = q.MilliValue(), divisor.MilliValue()
	}
	if den <= 0 {
		return "0"
	}
	out := num / den
	if num%den > 0 {
		out++
	}
	return strconv.FormatInt(out, 10)
}

// findContainer returns the pod's container or init container named name.
func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}
