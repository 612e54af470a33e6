package node

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestResourceFieldValue follows the downward API documentation
// (https://kubernetes.io/docs/concepts/workloads/pods/downward-api/): values
// are divided by the divisor (default 1) and rounded up; cpu is in cores,
// memory and ephemeral-storage in bytes; an unset limit shows the node's
// allocatable amount.
func TestResourceFieldValue(t *testing.T) {
	q := resource.MustParse
	app := corev1.Container{Name: "app", Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: q("250m"), corev1.ResourceMemory: q("512Mi"), corev1.ResourceEphemeralStorage: q("1G"), "hugepages-2Mi": q("4Mi")},
		Requests: corev1.ResourceList{corev1.ResourceCPU: q("125m"), corev1.ResourceMemory: q("64Mi")},
	}}
	bare := corev1.Container{Name: "bare"}
	initC := corev1.Container{Name: "setup", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: q("1Gi")}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{app, bare}, InitContainers: []corev1.Container{initC}}}
	allocatable := corev1.ResourceList{corev1.ResourceCPU: q("16"), corev1.ResourceMemory: q("64Gi"), corev1.ResourceEphemeralStorage: q("100Gi")}

	for _, tc := range []struct {
		name      string
		container corev1.Container
		fs        corev1.ResourceFieldSelector
		want      string
		wantErr   string
	}{
		{name: "memory limit in bytes", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.memory"}, want: "536870912"},
		{name: "memory limit in Mi", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: q("1Mi")}, want: "512"},
		{name: "memory limit in Gi rounds up", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: q("1Gi")}, want: "1"},
		{name: "memory request", container: app, fs: corev1.ResourceFieldSelector{Resource: "requests.memory"}, want: "67108864"},
		{name: "cpu limit rounds up to a core", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.cpu"}, want: "1"},
		{name: "cpu limit in millicores", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: q("1m")}, want: "250"},
		{name: "cpu request in millicores", container: app, fs: corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: q("1m")}, want: "125"},
		{name: "cpu request in cores", container: app, fs: corev1.ResourceFieldSelector{Resource: "requests.cpu"}, want: "1"},
		{name: "ephemeral storage in bytes", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.ephemeral-storage"}, want: "1000000000"},
		{name: "hugepages limit", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.hugepages-2Mi"}, want: "4194304"},
		{name: "unset cpu limit is node allocatable", container: bare, fs: corev1.ResourceFieldSelector{Resource: "limits.cpu"}, want: "16"},
		{name: "unset memory limit is node allocatable", container: bare, fs: corev1.ResourceFieldSelector{Resource: "limits.memory"}, want: "68719476736"},
		{name: "unset storage limit is node allocatable", container: bare, fs: corev1.ResourceFieldSelector{Resource: "limits.ephemeral-storage", Divisor: q("1Gi")}, want: "100"},
		{name: "unset request is 0", container: bare, fs: corev1.ResourceFieldSelector{Resource: "requests.memory"}, want: "0"},
		{name: "containerName selects a sibling", container: bare, fs: corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: q("1Mi")}, want: "512"},
		{name: "containerName selects an init container", container: bare, fs: corev1.ResourceFieldSelector{ContainerName: "setup", Resource: "limits.memory"}, want: "1073741824"},
		{name: "containerName naming itself", container: app, fs: corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu", Divisor: q("1m")}, want: "250"},
		{name: "unknown containerName", container: app, fs: corev1.ResourceFieldSelector{ContainerName: "nope", Resource: "limits.cpu"}, wantErr: `resourceFieldRef: container "nope" not found in pod shop/web-1`},
		{name: "unknown resource", container: app, fs: corev1.ResourceFieldSelector{Resource: "limits.gpu"}, wantErr: `resourceFieldRef: unsupported resource "limits.gpu"`},
		{name: "no limits/requests prefix", container: app, fs: corev1.ResourceFieldSelector{Resource: "memory"}, wantErr: `resourceFieldRef: unsupported resource "memory"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resourceFieldValue(pod, &tc.container, &tc.fs, allocatable)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
