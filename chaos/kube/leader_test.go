package kube

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/chaos/drill"
)

func lockObject(t *testing.T, holder string, renewed time.Time) *corev1.ConfigMap {
	raw, err := json.Marshal(resourcelock.LeaderElectionRecord{HolderIdentity: holder, LeaseDurationSeconds: 15,
		AcquireTime: metav1.NewTime(renewed), RenewTime: metav1.NewTime(renewed)})
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: "ingress-controller-leader-kong",
		Annotations: map[string]string{resourcelock.LeaderElectionRecordAnnotationKey: string(raw)}}}
}

func pod(name string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: name},
		Status: corev1.PodStatus{PodIP: "10.1.0.2", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}}
}

func TestSingleLeader(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		lock *corev1.ConfigMap
		pod  *corev1.Pod
		want string // "" for holds
	}{
		{"live holder", lockObject(t, "konductor-a_x1", now), pod("konductor-a", true), ""},
		{"released", lockObject(t, "", now), pod("konductor-a", true), "no holder"},
		{"expired", lockObject(t, "konductor-a_x1", now.Add(-time.Minute)), pod("konductor-a", true), "let its lease expire"},
		{"holder not ready", lockObject(t, "konductor-a_x1", now), pod("konductor-a", false), "is not ready"},
		{"holder gone", lockObject(t, "konductor-b_x1", now), pod("konductor-a", true), "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := &Target{cs: fake.NewClientset(tc.lock, tc.pod), ns: "kong", lock: "ingress-controller-leader-kong",
				d: &drill.Drill{Target: drill.Target{Overlay: "dbless-gateway-discovery"}}}
			err := tg.singleLeader(context.Background())
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one about %q", err, tc.want)
			}
		})
	}
	tg := &Target{ns: "kong", d: &drill.Drill{Target: drill.Target{Overlay: "dbless-sidecar"}}}
	if err := tg.singleLeader(context.Background()); err == nil || !strings.Contains(err.Error(), "no leader election") {
		t.Errorf("sidecar: %v", err)
	}
}

func TestContainerOf(t *testing.T) {
	p := pod("kong-1", true)
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "proxy", ContainerID: "process://4242", RestartCount: 2}}
	got, err := containerOf(p, "proxy")
	if err != nil || got.pid != 4242 || got.restarts != 2 {
		t.Errorf("containerOf = %+v, %v", got, err)
	}
	p.Status.ContainerStatuses[0].ContainerID = "containerd://abc"
	if _, err := containerOf(p, "proxy"); err == nil || !strings.Contains(err.Error(), "needs provider local") {
		t.Errorf("containerd ID: %v", err)
	}
}
