package node

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPickNodeSpreadsOverZonesThenNodes(t *testing.T) {
	nodes := []Spec{
		{Name: "a1", Zone: "a"}, {Name: "a2", Zone: "a"},
		{Name: "b1", Zone: "b", Labels: map[string]string{"disk": "ssd"}},
	}
	pod := func(name, node string, app string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), Labels: map[string]string{"app": app}},
			Spec:       corev1.PodSpec{NodeName: node},
		}
	}
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		existing []*corev1.Pod
		want     string
	}{
		{"empty cluster: first by name", pod("p", "", "web"), nil, "a1"},
		{"zone a has one: zone b", pod("p", "", "web"), []*corev1.Pod{pod("x", "a1", "web")}, "b1"},
		{"each zone has one: emptier node", pod("p", "", "web"),
			[]*corev1.Pod{pod("x", "a1", "web"), pod("y", "b1", "web")}, "a2"},
		{"other apps do not count", pod("p", "", "web"), []*corev1.Pod{pod("x", "a1", "db")}, "a1"},
		{"node selector", func() *corev1.Pod {
			p := pod("p", "", "web")
			p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
			return p
		}(), []*corev1.Pod{pod("x", "b1", "web")}, "b1"},
		{"zone selector", func() *corev1.Pod {
			p := pod("p", "", "web")
			p.Spec.NodeSelector = map[string]string{corev1.LabelTopologyZone: "a"}
			return p
		}(), []*corev1.Pod{pod("x", "a1", "web")}, "a2"},
		{"nothing matches", func() *corev1.Pod {
			p := pod("p", "", "web")
			p.Spec.NodeSelector = map[string]string{"gpu": "yes"}
			return p
		}(), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickNode(nodes, tc.pod, tc.existing); got != tc.want {
				t.Errorf("pickNode = %q, want %q", got, tc.want)
			}
		})
	}
}
