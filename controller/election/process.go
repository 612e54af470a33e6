package election

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ProcessAnnotationKey is the lock object's annotation in which the holder
// publishes the process that holds the lock (a HolderProcess as JSON). It
// sits beside the LeaderElectionRecord, which stays client-go's format.
const ProcessAnnotationKey = "konductor.dev/leader-process"

// HolderProcess names the one container instance whose process holds the
// lock, as the kubelet reports it in the holder's Pod status. It is valid
// only for the record it names (HolderIdentity and LeaderTransitions): the
// holder writes both in the same request.
type HolderProcess struct {
	HolderIdentity    string      `json:"holderIdentity"`
	LeaderTransitions int         `json:"leaderTransitions"`
	Namespace         string      `json:"namespace"`
	Pod               string      `json:"pod"`
	PodUID            types.UID   `json:"podUID"`
	Container         string      `json:"container"`
	ContainerID       string      `json:"containerID"`
	StartedAt         metav1.Time `json:"startedAt"`
}

// forRecord reports whether p was published by rec's holder in rec's term.
func (p *HolderProcess) forRecord(rec *rl.LeaderElectionRecord) bool {
	return p != nil && rec != nil && rec.HolderIdentity != "" &&
		p.HolderIdentity == rec.HolderIdentity && p.LeaderTransitions == rec.LeaderTransitions
}

// parseHolderProcess decodes the annotation's value; "" is no process.
func parseHolderProcess(raw string) (*HolderProcess, error) {
	if raw == "" {
		return nil, nil
	}
	var p HolderProcess
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", ProcessAnnotationKey, err)
	}
	if p.Namespace == "" || p.Pod == "" || p.PodUID == "" || p.Container == "" || p.ContainerID == "" {
		return nil, fmt.Errorf("annotation %s: namespace, pod, podUID, container and containerID are all required", ProcessAnnotationKey)
	}
	return &p, nil
}

// containerStatusUnknown is the reason the kubelet gives a terminated state
// it made up because the runtime no longer knows the container: it says
// nothing about whether the process ended.
const containerStatusUnknown = "ContainerStatusUnknown"

// processEnded reports whether pod's status proves that p's process has
// ended: the kubelet reports the very container instance p names (same Pod
// UID, container name and container ID) as terminated, now or as the last
// state before a restart. A terminated state is final for a container ID
// (a runtime never restarts an instance; a restart is a new ID), so this
// can only ever change from false to true. Everything else (NotReady,
// Unknown, a terminal phase, a rising restartCount, a new Pod of the same
// name) is not evidence; why is the second result.
func processEnded(pod *corev1.Pod, p *HolderProcess) (bool, string) {
	if pod.UID != p.PodUID {
		return false, fmt.Sprintf("pod %s/%s is another pod (uid %s, the holder's was %s)", pod.Namespace, pod.Name, pod.UID, p.PodUID)
	}
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.ContainerStatuses...), pod.Status.InitContainerStatuses...)
	for _, st := range statuses {
		if st.Name != p.Container {
			continue
		}
		if t := st.State.Terminated; t != nil && t.Reason != containerStatusUnknown && (t.ContainerID == p.ContainerID || (t.ContainerID == "" && st.ContainerID == p.ContainerID)) {
			return true, fmt.Sprintf("the kubelet reports container %s (%s) terminated: %s, exit code %d", p.Container, p.ContainerID, t.Reason, t.ExitCode)
		}
		// The last state carries its own container ID; without one it
		// cannot be tied to the holder's instance.
		if t := st.LastTerminationState.Terminated; t != nil && t.Reason != containerStatusUnknown && t.ContainerID == p.ContainerID {
			return true, fmt.Sprintf("the kubelet reports container %s (%s) terminated and restarted: %s, exit code %d", p.Container, p.ContainerID, t.Reason, t.ExitCode)
		}
		return false, fmt.Sprintf("container %s of pod %s/%s is not reported terminated as %s", p.Container, pod.Namespace, pod.Name, p.ContainerID)
	}
	return false, fmt.Sprintf("pod %s/%s has no status for container %s", pod.Namespace, pod.Name, p.Container)
}

// Self tells the elector which process it is, so that as leader it can
// publish its container beside the lock (see ThisProcess).
type Self struct {
	// Namespace and Pod name this process's Pod ($POD_NAMESPACE, $POD_NAME).
	Namespace, Pod string
	// Container is this process's container in the Pod ($CONTAINER_NAME);
	// empty: the Pod's only container.
	Container string
	// Started is when this process started. A container status whose
	// running instance started earlier than a second before it is an
	// earlier instance (the status lags a restart), not this process.
	Started time.Time
	// PID is this process's ID. Runtimes that name containers
	// process://<pid> (the local process cluster) are matched exactly.
	PID int
	// CgroupIDs are the container IDs found in this process's cgroup
	// paths; a container ID among them is matched exactly.
	CgroupIDs []string
}

// ThisProcess describes the running process in its Pod: the start time
// from /proc (else the time this package was initialised), the PID and the
// container IDs in its cgroup paths.
func ThisProcess(namespace, pod, container string) Self {
	s := Self{Namespace: namespace, Pod: pod, Container: container, Started: processStarted(), PID: os.Getpid()}
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		s.CgroupIDs = cgroupIDs(string(b))
	}
	return s
}

var initialised = time.Now()

// processStarted reads this process's start time from /proc/self/stat
// (field 22, clock ticks since boot) and /proc/stat (btime); elsewhere it
// is the package's initialisation, a little after the start.
func processStarted() time.Time {
	stat, err1 := os.ReadFile("/proc/self/stat")
	sys, err2 := os.ReadFile("/proc/stat")
	if err1 != nil || err2 != nil {
		return initialised
	}
	t, ok := parseProcStart(string(stat), string(sys), 100)
	if !ok || t.After(initialised) {
		return initialised
	}
	return t
}

// parseProcStart computes a process's start from its stat line and the
// system's /proc/stat, with hz clock ticks per second (USER_HZ, 100 on
// Linux).
func parseProcStart(stat, sys string, hz int64) (time.Time, bool) {
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return time.Time{}, false
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(sys, "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(boot, 0).Add(time.Duration(ticks) * time.Second / time.Duration(hz)), true
		}
	}
	return time.Time{}, false
}

var hexID = regexp.MustCompile(`[0-9a-f]{64}`)

// cgroupIDs returns the 64-hex-digit container IDs in /proc/self/cgroup
// (cgroup v1, and v2 without a private cgroup namespace).
func cgroupIDs(cgroup string) []string {
	return hexID.FindAllString(cgroup, -1)
}

// errNotYet is identifySelf's answer while the Pod status does not show
// this process yet: read again later.
var errNotYet = errors.New("not yet")

// identifySelf finds this process's container instance in its own Pod. It
// accepts a running instance only when it is certainly this process: its
// ID is process://<our PID> or one of our cgroup IDs, or (when neither
// check applies) it started no earlier than a second before this process.
// A status that lags a restart still shows the previous instance running,
// and publishing that instance's ID would let a standby take the lock when
// the kubelet reports it terminated, while we run; so anything uncertain
// is errNotYet (wrapped with why) or, for what cannot change, an error.
func identifySelf(pod *corev1.Pod, s Self) (*HolderProcess, error) {
	name := s.Container
	if name == "" {
		if len(pod.Spec.Containers) != 1 {
			return nil, fmt.Errorf("pod %s/%s has %d containers: set CONTAINER_NAME to this one's name", pod.Namespace, pod.Name, len(pod.Spec.Containers))
		}
		name = pod.Spec.Containers[0].Name
	}
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name != name {
			continue
		}
		run := st.State.Running
		if run == nil || st.ContainerID == "" {
			return nil, fmt.Errorf("%w: container %s is not reported running", errNotYet, name)
		}
		if t := st.LastTerminationState.Terminated; t != nil && t.ContainerID == st.ContainerID {
			return nil, fmt.Errorf("%w: container %s: status is contradictory", errNotYet, name)
		}
		exact, mismatch := matchesProcess(st.ContainerID, s)
		if mismatch {
			return nil, fmt.Errorf("%w: container %s is reported as %s, which is not this process", errNotYet, name, st.ContainerID)
		}
		// startedAt has one-second resolution and is recorded after the
		// process was created: an instance started more than a second
		// before us is an earlier one.
		if !exact && !run.StartedAt.Add(time.Second).After(s.Started) {
			return nil, fmt.Errorf("%w: container %s is reported as %s started at %s, before this process (%s)", errNotYet, name, st.ContainerID, run.StartedAt.UTC().Format(time.RFC3339), s.Started.UTC().Format(time.RFC3339Nano))
		}
		return &HolderProcess{
			Namespace: pod.Namespace, Pod: pod.Name, PodUID: pod.UID,
			Container: name, ContainerID: st.ContainerID, StartedAt: run.StartedAt,
		}, nil
	}
	return nil, fmt.Errorf("%w: pod %s/%s has no status for container %s", errNotYet, pod.Namespace, pod.Name, name)
}

// matchesProcess compares a container ID with what the process knows of
// itself: exact when the ID is process://<our PID> or among our cgroup
// IDs; mismatch when it is process://<another PID>, or a 64-digit ID while
// our cgroup path names other such IDs (the runtimes name a container's
// cgroup after its ID: cri-containerd-<id>.scope, crio-<id>.scope, ...).
func matchesProcess(containerID string, s Self) (exact, mismatch bool) {
	scheme, id, _ := strings.Cut(containerID, "://")
	if scheme == "process" && s.PID != 0 {
		pid, err := strconv.Atoi(id)
		return err == nil && pid == s.PID, err != nil || pid != s.PID
	}
	if slices.Contains(s.CgroupIDs, id) {
		return true, false
	}
	return false, len(s.CgroupIDs) > 0 && hexID.MatchString(id) && len(id) == 64
}
