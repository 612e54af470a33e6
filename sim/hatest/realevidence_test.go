package hatest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/controller/election"
	kongsim "konductor.dev/sim/kong"
)

// evidenceKills is how many times the leader is killed.
const evidenceKills = 5

// kubeletDelay is how long after a kill the test, acting as the kubelet,
// reports the container terminated (a PLEG relist and a status write).
const kubeletDelay = 500 * time.Millisecond

// TestRealAPIServerPodEvidenceTakeover kills the leader (its API server and
// Kong traffic cut, its process stopped) five times on a real API server,
// with a change made at each kill, while the test plays the kubelet: it
// reports the killed container terminated kubeletDelay later, in the Pod
// the leader published beside the lock. Each time another replica must
// take the lock, and the change reach every kongsim, within a second of
// the report, where the lease (4s) would take 3s or more; the killed replica comes back as a new
// container in the same Pod. The Kong audits show one writer at a time.
func TestRealAPIServerPodEvidenceTakeover(t *testing.T) {
	g := NewWithT(t)
	rc := startRealCluster(t)
	ctx := context.Background()
	pods := rc.admin.CoreV1().Pods(electionNamespace)

	// A Node object, so that the pod garbage collector leaves Pods bound
	// to it alone; nothing runs there: the test reports the containers.
	_, err := rc.admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "evidence-node"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = rc.admin.CoreV1().ServiceAccounts(electionNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "konductor"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	podName := func(i int) string { return fmt.Sprintf("konductor-%d", i) }
	for i := range replicaCount {
		no := false
		_, err := pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName(i)},
			Spec: corev1.PodSpec{
				NodeName: "evidence-node", ServiceAccountName: "konductor", AutomountServiceAccountToken: &no,
				Containers: []corev1.Container{{Name: "ingress-controller", Image: "konductor:dev"}},
			},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred(), "creating pod %s", podName(i))
	}
	incarnation := map[int]int{}
	containerID := func(i int) string { return fmt.Sprintf("containerd://%064x", i*1000+incarnation[i]) }
	// report writes Pod i's status as the kubelet would: the current
	// container running since at, the previous one terminated.
	report := func(i int, running bool, at time.Time) {
		t.Helper()
		pod, err := pods.Get(ctx, podName(i), metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		st := corev1.ContainerStatus{Name: "ingress-controller", Image: "konductor:dev", ImageID: "konductor@sha256:0", ContainerID: containerID(i), RestartCount: int32(incarnation[i])}
		if old := pod.Status.ContainerStatuses; len(old) == 1 {
			st.LastTerminationState = old[0].LastTerminationState
			if running && old[0].State.Terminated != nil {
				st.LastTerminationState = old[0].State
			}
		}
		if running {
			st.Ready = true
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at)}
		} else {
			st.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", ContainerID: containerID(i), FinishedAt: metav1.NewTime(at)}
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{st}
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred(), "reporting pod %s", podName(i))
	}
	rc.self = func(i int) *election.Self {
		s := &election.Self{Namespace: electionNamespace, Pod: podName(i), Container: "ingress-controller", Started: time.Now()}
		report(i, true, time.Now())
		return s
	}
	published := func(identity string) func() error {
		return func() error {
			cm, err := rc.admin.CoreV1().ConfigMaps(electionNamespace).Get(ctx, lockName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			var p election.HolderProcess
			v := cm.Annotations[election.ProcessAnnotationKey]
			if err := json.Unmarshal([]byte(v), &p); err != nil || p.HolderIdentity != identity {
				return fmt.Errorf("lock process annotation %q does not name %s", v, identity)
			}
			return nil
		}
	}

	rc.startAll()
	g.Eventually(rc.servesEverywhere("web")).WithTimeout(realBound).WithPolling(50*time.Millisecond).Should(Succeed(), "all three kongsims converge")
	var takeovers, applied, afterReport []time.Duration
	for k := range evidenceKills {
		holder := rc.lockHolder()
		leader := rc.indexOf(holder)
		g.Expect(leader).NotTo(BeNumerically("<", 0), "the lock holder %q is a replica", holder)
		g.Eventually(published(holder)).WithTimeout(realBound).WithPolling(20*time.Millisecond).Should(Succeed(), "%s publishes its container", holder)
		// Kill between two renewals, away from the lease's edge.
		time.Sleep(realRetry / 2)
		var r *realReplica
		for _, x := range rc.replicas {
			if x.identity == holder {
				r = x
			}
		}
		killed := time.Now()
		r.apiCut.Store(true)
		r.kongCut.Store(true)
		r.cancel()
		<-r.done
		r.stopped = true
		app := fmt.Sprintf("at-kill-%d", k)
		rc.addApp(t, app)
		time.Sleep(time.Until(killed.Add(kubeletDelay)))
		reported := time.Now()
		report(leader, false, reported)
		var took time.Duration
		g.Eventually(func() string {
			h := rc.lockHolder()
			if h != holder && h != "" && took == 0 {
				took = time.Since(killed)
			}
			return h
		}).WithTimeout(realBound).WithPolling(5*time.Millisecond).ShouldNot(Equal(holder), "another replica takes the lock")
		g.Eventually(rc.servesEverywhere(app)).WithTimeout(realBound).WithPolling(5 * time.Millisecond).Should(Succeed())
		served := time.Since(killed)
		t.Logf("kill %d of %s: kubelet report +%v, new holder +%v, change at the kill served by every kongsim +%v", k, holder, reported.Sub(killed), took, served)
		// Without the evidence the takeover waits for the lease: 3s or
		// more after this kill. With it, a retry period past the report
		// is ample.
		g.Expect(took).To(BeNumerically("<", kubeletDelay+2*realRetry), "kill → new holder")
		g.Expect(served).To(BeNumerically("<", kubeletDelay+2*realRetry), "kill → change made at the kill served everywhere")
		takeovers, applied, afterReport = append(takeovers, took), append(applied, served), append(afterReport, took-reported.Sub(killed))
		// The replica comes back as a new container in the same Pod.
		incarnation[leader]++
		rc.start(leader)
	}
	t.Log(summary("pod-evidence takeover (kill → new holder)", takeovers))
	t.Log(summary("pod-evidence takeover (kubelet report → new holder)", afterReport))
	t.Log(summary("change made at the kill → served by every kongsim", applied))

	audits := make([][]kongsim.AuditEntry, len(rc.kong))
	for i, n := range rc.kong {
		audits[i] = n.Audit()
	}
	terms, violations := singleWriterViolations(audits)
	g.Expect(violations).To(BeEmpty())
	g.Expect(len(terms)).To(BeNumerically(">=", evidenceKills+1))
}
