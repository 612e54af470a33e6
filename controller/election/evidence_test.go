package election

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"konductor.dev/controller/testsupport/bubble"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// putPod stores pod as the kubelet would write it, notifying watchers.
func (s *apiServer) putPod(pod *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(podsGVR, pod.Namespace, pod.Name)
	_, existed := s.objects[k]
	s.rv++
	obj := pod.DeepCopy()
	obj.ResourceVersion = strconv.FormatInt(s.rv, 10)
	s.objects[k] = obj
	if existed {
		s.notify("pods", pod.Namespace, pod.Name, watch.Modified, obj)
	} else {
		s.notify("pods", pod.Namespace, pod.Name, watch.Added, obj)
	}
}

// deletePod removes a Pod at once, as a force delete does.
func (s *apiServer) deletePod(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(podsGVR, ns, name)
	cur, ok := s.objects[k]
	if !ok {
		return
	}
	delete(s.objects, k)
	s.rv++
	s.notify("pods", ns, name, watch.Deleted, cur)
}

func (s *apiServer) pod(ns, name string) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objects[key(podsGVR, ns, name)].(*corev1.Pod).DeepCopy()
}

// lockProcess returns the process annotation of the lock object.
func (s *apiServer) lockProcess(lockType string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := "configmaps"
	if lockType == LockTypeLeases {
		res = "leases"
	}
	for k, o := range s.objects {
		if strings.HasPrefix(k, res+"/") {
			m, _ := o.(metav1.Object)
			return m.GetAnnotations()[ProcessAnnotationKey]
		}
	}
	return ""
}

// runningPod is Pod name with one container "konductor" running as
// containerID, started at started (second resolution, as the API has it).
func runningPod(name, containerID string, started time.Time) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: name, UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "konductor"}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "konductor", ContainerID: containerID, Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(started.Truncate(time.Second))}},
			}},
		},
	}
}

func terminated(pod *corev1.Pod, reason string) *corev1.Pod {
	pod = pod.DeepCopy()
	st := &pod.Status.ContainerStatuses[0]
	st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: reason, ContainerID: st.ContainerID}}
	st.Ready = false
	pod.Status.Conditions[0].Status = corev1.ConditionFalse
	return pod
}

func containerIDOf(id string) string { return "containerd://" + id }

// inPod runs the node as a process in Pod podName with pod evidence on,
// after the kubelet reported its container running.
func inPod(c *cluster) func(*node, *Config) {
	return func(n *node, cfg *Config) {
		name := "pod-" + n.id
		c.srv.putPod(runningPod(name, containerIDOf(n.id), time.Now()))
		cfg.PodEvidence = true
		cfg.Self = &Self{Namespace: "kong", Pod: name, Container: "konductor", Started: time.Now()}
	}
}

// published waits until the lock carries a process annotation for id.
func published(t *testing.T, c *cluster, id string) *HolderProcess {
	t.Helper()
	deadline := time.Now().Add(2 * testLease)
	for time.Now().Before(deadline) {
		if p, err := parseHolderProcess(c.srv.lockProcess(c.lockType)); err == nil && p != nil && p.HolderIdentity == id {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never published its process beside the lock", id)
	return nil
}

// The leader's process is killed and the kubelet reports its container
// terminated 800ms later: a standby takes over at once, not after the
// lease, with the next epoch, and publishes its own process.
func TestKilledLeaderIsReplacedOnTheKubeletsReport(t *testing.T) {
	for _, lt := range lockTypes {
		for _, how := range []string{"terminated", "restarted", "graceful-delete"} {
			t.Run(lt+"/"+how, func(t *testing.T) {
				bubble.Test(t, func(t *testing.T) {
					c := newCluster(t, lt)
					for i := range 3 {
						c.start(nodeName(i), inPod(c))
					}
					first := c.awaitTerm(testRetry)
					p := published(t, c, first.id)
					if p.ContainerID != containerIDOf(first.id) || p.LeaderTransitions != int(first.term.Epoch) {
						t.Fatalf("published %+v for %s epoch %d", p, first.id, first.term.Epoch)
					}
					c.expectNoTerm(5*time.Second + 300*time.Millisecond)
					killed := time.Now()
					c.crash(c.node(first.id))
					time.Sleep(800 * time.Millisecond)
					pod := c.srv.pod("kong", p.Pod)
					switch how {
					case "terminated":
						c.srv.putPod(terminated(pod, "OOMKilled"))
					case "restarted":
						// The report of the restart: the holder's instance
						// is the last state, a new one runs.
						pod.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", ContainerID: p.ContainerID}}
						pod.Status.ContainerStatuses[0].ContainerID = containerIDOf("next")
						pod.Status.ContainerStatuses[0].RestartCount = 1
						c.srv.putPod(pod)
					case "graceful-delete":
						// The kubelet's final status, then the deletion.
						c.srv.putPod(terminated(pod, "Completed"))
						c.srv.deletePod("kong", p.Pod)
					}
					next := c.awaitTerm(time.Second)
					if d := next.at.Sub(killed); d > 2*time.Second {
						t.Errorf("took over %v after the kill, want under 2s", d)
					}
					if next.term.Epoch != first.term.Epoch+1 {
						t.Errorf("epoch %d after %d", next.term.Epoch, first.term.Epoch)
					}
					if got := testutil.ToFloat64(c.node(next.id).e.metrics.early); got != 1 {
						t.Errorf("konductor_election_early_takeovers_total = %v, want 1", got)
					}
					if q := published(t, c, next.id); q.ContainerID != containerIDOf(next.id) {
						t.Errorf("new leader published %+v", q)
					}
				})
			})
		}
	}
}

// What is not evidence: the holder must keep the lock until its lease runs
// out, measured from its last write, whatever its Pod shows meanwhile.
func TestNoTakeoverWithoutEvidenceOfTheHoldersDeath(t *testing.T) {
	for _, tc := range []struct {
		name string
		// alive: the holder keeps running, only cut off from the API
		// server (a network partition); else it is killed.
		alive bool
		// publish: the holder publishes its process (PodEvidence on).
		publish bool
		// setup runs once the holder leads, before the standbys start.
		setup  func(s *apiServer)
		change func(s *apiServer, pod *corev1.Pod, p *HolderProcess)
		logs   string // a fallback reason the standbys must log once
	}{
		{name: "partitioned, Pod Unknown", alive: true, publish: true, change: func(s *apiServer, pod *corev1.Pod, _ *HolderProcess) {
			pod.Status.Conditions[0].Status = corev1.ConditionUnknown
			s.putPod(pod)
		}},
		{name: "Pod NotReady, phase Failed", publish: true, change: func(s *apiServer, pod *corev1.Pod, _ *HolderProcess) {
			pod.Status.Phase = corev1.PodFailed
			pod.Status.Conditions[0].Status = corev1.ConditionFalse
			s.putPod(pod)
		}},
		{name: "force delete", publish: true, change: func(s *apiServer, pod *corev1.Pod, _ *HolderProcess) {
			s.deletePod(pod.Namespace, pod.Name)
		}, logs: "was deleted while its container was still reported running"},
		{name: "recreated under the same name", publish: true, change: func(s *apiServer, pod *corev1.Pod, p *HolderProcess) {
			s.deletePod(pod.Namespace, pod.Name)
			fresh := terminated(runningPod(pod.Name, p.ContainerID, time.Now()), "Error")
			fresh.UID = "uid-replacement"
			s.putPod(fresh)
		}},
		{name: "restart of an earlier instance reported late", publish: true, change: func(s *apiServer, pod *corev1.Pod, _ *HolderProcess) {
			st := &pod.Status.ContainerStatuses[0]
			st.RestartCount++
			st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", ContainerID: containerIDOf("earlier")}}
			s.putPod(pod)
		}},
		{name: "ContainerStatusUnknown", publish: true, change: func(s *apiServer, pod *corev1.Pod, _ *HolderProcess) {
			s.putPod(terminated(pod, containerStatusUnknown))
		}},
		{name: "pods forbidden", publish: true, setup: func(s *apiServer) {
			s.mu.Lock()
			s.podsForbidden = true
			s.mu.Unlock()
		}, change: func(s *apiServer, pod *corev1.Pod, _ *HolderProcess) {
			s.putPod(terminated(pod, "Error"))
		}, logs: "is forbidden (grant get and watch on pods"},
		{name: "holder publishes no process", publish: false, change: func(s *apiServer, pod *corev1.Pod, _ *HolderProcess) {
			s.putPod(terminated(pod, "Error"))
		}, logs: "publishes no process"},
	} {
		for _, lt := range lockTypes {
			t.Run(lt+"/"+tc.name, func(t *testing.T) {
				bubble.Test(t, func(t *testing.T) {
					var logs lockedBuffer
					c := newCluster(t, lt)
					holder := c.start(nodeName(0), inPod(c), func(n *node, cfg *Config) {
						cfg.PodEvidence = tc.publish
					})
					first := c.awaitTerm(testRetry)
					if first.id != holder.id {
						t.Fatalf("%s leads, want %s", first.id, holder.id)
					}
					p := &HolderProcess{Namespace: "kong", Pod: "pod-" + holder.id, PodUID: types.UID("uid-pod-" + holder.id), Container: "konductor", ContainerID: containerIDOf(holder.id)}
					if tc.publish {
						p = published(t, c, holder.id)
					}
					pod := c.srv.pod("kong", p.Pod)
					if tc.setup != nil {
						tc.setup(c.srv)
					}
					for i := 1; i < 3; i++ {
						c.start(nodeName(i), inPod(c), func(n *node, cfg *Config) {
							cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
						})
					}
					c.expectNoTerm(3*time.Second + 300*time.Millisecond)
					if tc.alive {
						c.srv.setDown(holder.id, true)
					} else {
						c.crash(holder)
					}
					_, lastWrite := c.srv.writesBy(holder.id)
					time.Sleep(500 * time.Millisecond)
					tc.change(c.srv, pod, p)
					next := c.awaitTerm(testLease + 2*testRetry)
					if early := lastWrite.Add(testLease).Sub(next.at); early > 0 {
						t.Fatalf("%s took over %v before the holder's lease ran out", next.id, early)
					}
					if tc.logs != "" {
						if n := strings.Count(logs.String(), tc.logs); n < 1 || n > 2 {
							t.Errorf("%d log lines with %q from 2 standbys, want one each:\n%s", n, tc.logs, logs.String())
						}
					}
				})
			})
		}
	}
}

// lockedBuffer is a log sink shared by several electors.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A leader whose Pod status still shows the previous instance of its
// container (the status lags the restart) publishes nothing until the
// status shows this process.
func TestLeaderPublishesOnlyItsOwnContainer(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newCluster(t, LockTypeConfigMaps)
		earlier := runningPod("pod-a", containerIDOf("earlier"), time.Now())
		time.Sleep(30 * time.Second)
		c.srv.putPod(earlier)
		c.start("a", func(n *node, cfg *Config) {
			cfg.PodEvidence = true
			cfg.Self = &Self{Namespace: "kong", Pod: "pod-a", Container: "konductor", Started: time.Now()}
		})
		c.awaitTerm(testRetry)
		time.Sleep(3 * testRetry)
		if v := c.srv.lockProcess(LockTypeConfigMaps); v != "" {
			t.Fatalf("published %s while the status shows the previous instance", v)
		}
		c.srv.putPod(runningPod("pod-a", containerIDOf("current"), time.Now()))
		if p := published(t, c, "a"); p.ContainerID != containerIDOf("current") {
			t.Fatalf("published %+v", p)
		}
	})
}

func TestProcessEnded(t *testing.T) {
	p := &HolderProcess{HolderIdentity: "a", LeaderTransitions: 3, Namespace: "kong", Pod: "pod-a", PodUID: "uid-pod-a", Container: "konductor", ContainerID: containerIDOf("a")}
	running := runningPod("pod-a", p.ContainerID, time.Unix(1000, 0))
	withLast := func(id, reason string) *corev1.Pod {
		pod := running.DeepCopy()
		pod.Status.ContainerStatuses[0].ContainerID = containerIDOf("b")
		pod.Status.ContainerStatuses[0].RestartCount = 1
		pod.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: id, Reason: reason, ExitCode: 137}
		return pod
	}
	otherUID := terminated(running, "Error")
	otherUID.UID = "uid-other"
	sidecarOnly := terminated(running, "Error")
	sidecarOnly.Status.ContainerStatuses[0].Name = "kong"
	noID := terminated(running, "Error")
	noID.Status.ContainerStatuses[0].State.Terminated.ContainerID = ""
	noIDOther := terminated(running, "Error")
	noIDOther.Status.ContainerStatuses[0].State.Terminated.ContainerID = ""
	noIDOther.Status.ContainerStatuses[0].ContainerID = containerIDOf("b")
	unknownPhase := running.DeepCopy()
	unknownPhase.Status.Phase = corev1.PodUnknown
	unknownPhase.Status.Conditions[0].Status = corev1.ConditionUnknown
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want bool
	}{
		{"running", running, false},
		{"terminated", terminated(running, "Error"), true},
		{"terminated, id only on the status", noID, true},
		{"terminated, another instance's status", noIDOther, false},
		{"OOMKilled", terminated(running, "OOMKilled"), true},
		{"kubelet lost track", terminated(running, containerStatusUnknown), false},
		{"restarted: last state is ours", withLast(p.ContainerID, "Error"), true},
		{"restarted: last state is an earlier instance", withLast(containerIDOf("earlier"), "Error"), false},
		{"restarted: last state without id", withLast("", "Error"), false},
		{"restarted: last state unknown", withLast(p.ContainerID, containerStatusUnknown), false},
		{"another pod of the same name", otherUID, false},
		{"another container terminated", sidecarOnly, false},
		{"pod unknown", unknownPhase, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := processEnded(tc.pod, p)
			if got != tc.want || why == "" {
				t.Errorf("processEnded = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

func TestIdentifySelf(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	self := Self{Namespace: "kong", Pod: "pod-a", Container: "konductor", Started: start}
	pod := func(id string, started time.Time) *corev1.Pod { return runningPod("pod-a", id, started) }
	twoContainers := pod(containerIDOf("x"), start)
	twoContainers.Spec.Containers = append(twoContainers.Spec.Containers, corev1.Container{Name: "kong"})
	contradictory := pod(containerIDOf("x"), start)
	contradictory.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: containerIDOf("x")}
	waiting := pod(containerIDOf("x"), start)
	waiting.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	hexA, hexB := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		self func(Self) Self
		want string // container ID, "" for not yet, "error" for a lasting error
	}{
		{"started in the same second", pod(containerIDOf("x"), start), nil, containerIDOf("x")},
		{"reported a little after us", pod(containerIDOf("x"), start.Add(300*time.Millisecond)), nil, containerIDOf("x")},
		{"started a second before us", pod(containerIDOf("x"), start.Add(-time.Second)), nil, ""},
		{"an earlier instance", pod(containerIDOf("x"), start.Add(-20*time.Second)), nil, ""},
		{"not running yet", waiting, nil, ""},
		{"contradictory status", contradictory, nil, ""},
		{"our pid", pod("process://42", start.Add(-time.Hour)), func(s Self) Self { s.PID = 42; return s }, "process://42"},
		{"another pid", pod("process://41", start), func(s Self) Self { s.PID = 42; return s }, ""},
		{"our cgroup id", pod("containerd://"+hexA, start.Add(-time.Hour)), func(s Self) Self { s.CgroupIDs = []string{hexA}; return s }, "containerd://" + hexA},
		{"another cgroup id, started with us", pod("containerd://"+hexB, start), func(s Self) Self { s.CgroupIDs = []string{hexA}; return s }, ""},
		{"no cgroup id, started with us", pod("containerd://"+hexB, start), func(s Self) Self { s.CgroupIDs = nil; return s }, "containerd://" + hexB},
		{"only container, no name given", pod(containerIDOf("x"), start), func(s Self) Self { s.Container = ""; return s }, containerIDOf("x")},
		{"two containers, no name given", twoContainers, func(s Self) Self { s.Container = ""; return s }, "error"},
		{"no status for the container", pod(containerIDOf("x"), start), func(s Self) Self { s.Container = "other"; return s }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := self
			if tc.self != nil {
				s = tc.self(s)
			}
			p, err := identifySelf(tc.pod, s)
			switch {
			case tc.want == "error":
				if err == nil || errorsIsNotYet(err) {
					t.Errorf("identifySelf = %+v, %v; want a lasting error", p, err)
				}
			case tc.want == "":
				if !errorsIsNotYet(err) {
					t.Errorf("identifySelf = %+v, %v; want not yet", p, err)
				}
			default:
				if err != nil || p.ContainerID != tc.want || p.PodUID != "uid-pod-a" || p.Container != "konductor" {
					t.Errorf("identifySelf = %+v, %v; want %s", p, err, tc.want)
				}
			}
		})
	}
}

func errorsIsNotYet(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), errNotYet.Error())
}

func TestParseProcStart(t *testing.T) {
	sys := "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"
	// Field 22 (starttime) is 12345 ticks; the name holds a space and a ')'.
	stat := "4242 (kon) ductor) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 12345 1000 10 18446744073709551615"
	got, ok := parseProcStart(stat, sys, 100)
	if want := time.Unix(1700000000, 0).Add(123450 * time.Millisecond); !ok || !got.Equal(want) {
		t.Errorf("parseProcStart = %v, %v; want %v", got, ok, want)
	}
	for _, bad := range []string{"4242 (x) S 1", "no parenthesis", stat[:40]} {
		if _, ok := parseProcStart(bad, sys, 100); ok {
			t.Errorf("parseProcStart(%q) ok", bad)
		}
	}
	if _, ok := parseProcStart(stat, "cpu 1 2 3\n", 100); ok {
		t.Error("parseProcStart without btime ok")
	}
	if s := ThisProcess("kong", "p", "c"); s.PID == 0 || s.Started.IsZero() || s.Started.After(time.Now()) {
		t.Errorf("ThisProcess = %+v", s)
	}
}

func TestCgroupIDs(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct{ cgroup, want string }{
		{"0::/\n", ""},
		{"0::/kubepods.slice/kubepods-pod1234.slice/cri-containerd-" + id + ".scope\n", id},
		{"12:memory:/kubepods/burstable/pod5678/" + id + "\n", id},
	} {
		got := strings.Join(cgroupIDs(tc.cgroup), ",")
		if got != tc.want {
			t.Errorf("cgroupIDs(%q) = %q, want %q", tc.cgroup, got, tc.want)
		}
	}
}

func TestParseHolderProcess(t *testing.T) {
	if p, err := parseHolderProcess(""); p != nil || err != nil {
		t.Errorf("empty: %v %v", p, err)
	}
	if _, err := parseHolderProcess("{"); err == nil {
		t.Error("invalid JSON accepted")
	}
	if _, err := parseHolderProcess(`{"holderIdentity":"a","namespace":"kong","pod":"p"}`); err == nil {
		t.Error("annotation without container ID accepted")
	}
	full := fmt.Sprintf(`{"holderIdentity":"a","leaderTransitions":2,"namespace":"kong","pod":"p","podUID":"u","container":"c","containerID":%q,"startedAt":null}`, containerIDOf("a"))
	p, err := parseHolderProcess(full)
	if err != nil || p.ContainerID != containerIDOf("a") || p.LeaderTransitions != 2 {
		t.Errorf("parse = %+v, %v", p, err)
	}
}
