package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// logStore keeps the logs of the containers of the agent's pods in the
// kubelet's layout, <dir>/<namespace>_<pod>_<uid>/<container>/<n>.log with n
// counting the container's runs, and like the kubelet keeps only the current
// run and the one before it (what --previous reads). A pod's logs go with
// the pod.
type logStore struct {
	dir string
	now func() time.Time

	mu   sync.Mutex
	pods map[types.NamespacedName]*podLogs
}

type podLogs struct {
	pod        *corev1.Pod
	dir        string
	containers map[string]*containerLogs
}

type containerLogs struct {
	runs     int // runs started so far
	current  *logInstance
	previous string // log of the run before current; "" if none
}

func newLogStore(dir string, now func() time.Time) *logStore {
	return &logStore{dir: dir, now: now, pods: map[types.NamespacedName]*podLogs{}}
}

func podKey(pod *corev1.Pod) types.NamespacedName {
	return types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
}

// addPod makes pod the one whose logs are served under its name (a pod of
// the same name that came before it is gone).
func (s *logStore) addPod(pod *corev1.Pod) *podLogs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addPodLocked(pod)
}

func (s *logStore) addPodLocked(pod *corev1.Pod) *podLogs {
	key := podKey(pod)
	if pl, ok := s.pods[key]; ok && pl.pod.UID == pod.UID {
		return pl
	}
	pl := &podLogs{
		pod:        pod,
		dir:        filepath.Join(s.dir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID)),
		containers: map[string]*containerLogs{},
	}
	s.pods[key] = pl
	return pl
}

// removePod forgets pod and deletes its logs, as the kubelet does once a
// pod is gone.
func (s *logStore) removePod(pod *corev1.Pod) {
	s.mu.Lock()
	pl, ok := s.pods[podKey(pod)]
	if ok && pl.pod.UID == pod.UID {
		delete(s.pods, podKey(pod))
	}
	s.mu.Unlock()
	// A failure leaves files nothing reads; the cluster's state directory
	// goes at Stop anyway.
	_ = os.RemoveAll(filepath.Join(s.dir, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID)))
}

// start opens the log of a new run of container; the run before it becomes
// the previous one and the one before that is deleted. The caller hands
// the instance's pipes to the process and then calls closeChildEnds.
func (s *logStore) start(pod *corev1.Pod, container string) (*logInstance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pl := s.addPodLocked(pod)
	cl := pl.containers[container]
	if cl == nil {
		cl = &containerLogs{}
		pl.containers[container] = cl
	}
	dir := filepath.Join(pl.dir, container)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	l, err := newLogInstance(filepath.Join(dir, strconv.Itoa(cl.runs)+".log"), s.now)
	if err != nil {
		return nil, err
	}
	if cl.runs >= 2 {
		_ = os.Remove(filepath.Join(dir, strconv.Itoa(cl.runs-2)+".log"))
	}
	if cl.current != nil {
		cl.previous = cl.current.path
	}
	cl.current = l
	cl.runs++
	return l, nil
}

// errNoPod, errNoContainer and errNotStarted say why a log is not there;
// the server maps them to the kubelet's status codes.
var (
	errNoPod       = errors.New("pod does not exist")
	errNoContainer = errors.New("container not found")
	errNotStarted  = errors.New("container has not started")
)

// find returns the log file of container in pod ns/name on node, the
// current run's or, with previous, the run's before it; live is the
// instance still writing the current run's file (nil for the previous).
func (s *logStore) find(node, ns, name, container string, previous bool) (path string, live *logInstance, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pl, ok := s.pods[types.NamespacedName{Namespace: ns, Name: name}]
	if !ok || pl.pod.Spec.NodeName != node {
		return "", nil, fmt.Errorf("%w: pod %q in namespace %q", errNoPod, name, ns)
	}
	if !hasContainer(pl.pod, container) {
		return "", nil, fmt.Errorf("%w: container %q in pod %q", errNoContainer, container, name)
	}
	cl := pl.containers[container]
	switch {
	case previous && (cl == nil || cl.previous == ""):
		return "", nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, name)
	case previous:
		return cl.previous, nil, nil
	case cl == nil:
		return "", nil, fmt.Errorf("%w: container %q in pod %q", errNotStarted, container, name)
	}
	return cl.current.path, cl.current, nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}
