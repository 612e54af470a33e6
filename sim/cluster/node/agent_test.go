package node

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"konductor.dev/sim/cluster/podnet"
	"konductor.dev/sim/cluster/proc"
	"konductor.dev/sim/internal/precond"
)

// agentWorld is an Agent against a fake clientset: the pod lifecycle without
// an API server. The API server's part (graceful deletion marks the pod,
// the agent finishes it) is played by the test.
type agentWorld struct {
	t      *testing.T
	g      *WithT
	client *fake.Clientset
	agent  *Agent
	echo   string
	name   string
}

// echo is the test workload binary, built once by TestMain.
var echo string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agenttest")
	if err != nil {
		panic(err)
	}
	echo = filepath.Join(dir, "echoserver")
	if out, err := exec.Command("go", "build", "-o", echo, "../echoserver").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build echoserver: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// newAgentWorld starts an agent with one node; tune adjusts its Config.
func newAgentWorld(t *testing.T, tune ...func(*Config)) *agentWorld {
	t.Helper()
	client := fake.NewClientset()
	client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{Token: "token-of-" + a.GetNamespace()}}, nil
	})
	// As the API server does, a status update changes the status alone:
	// the agent writes from the object its last write returned, and must
	// not undo what others changed since (a deletion mark).
	client.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ua, ok := a.(k8stesting.UpdateAction)
		if !ok || ua.GetSubresource() != "status" {
			return false, nil, nil
		}
		upd := ua.GetObject().(*corev1.Pod)
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		obj, err := client.Tracker().Get(gvr, ua.GetNamespace(), upd.Name)
		if err != nil {
			return true, nil, err
		}
		cur := obj.(*corev1.Pod).DeepCopy()
		cur.Status = upd.Status
		return true, cur, client.Tracker().Update(gvr, cur, ua.GetNamespace())
	})
	ctx := context.Background()
	var network podnet.Network
	if podnet.Supported() == nil {
		b, err := podnet.NewBridged(ctx)
		if err != nil {
			t.Fatal(err)
		}
		network = b
	} else {
		network = podnet.NewLoopback(90)
	}
	name := "agenttest" + strings.ReplaceAll(t.Name(), "/", "-")
	cfg := Config{
		Cluster: name, Client: client, Network: network,
		Nodes:  []Spec{{Name: "node-a", Zone: "zone-a"}},
		Images: ImageMap{"konductor.dev/echo": echo},
		PodDir: t.TempDir(), APIServerHost: "127.0.0.1", APIServerPort: 6443,
		CACert: []byte("ca"), RestartBackoff: 50 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond,
		Logf: t.Logf,
	}
	for _, f := range tune {
		f(&cfg)
	}
	a, err := Start(ctx, cfg)
	if err != nil {
		_ = network.Destroy(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(ctx); err != nil {
			t.Error(err)
		}
		if err := network.Destroy(ctx); err != nil {
			t.Error(err)
		}
		// Children the pod's wrapper shell forked (mount, hostname) die
		// with the process group but are reaped by init, asynchronously.
		NewWithT(t).Eventually(func() ([]int, error) { return proc.Marked(name) }).
			WithTimeout(5*time.Second).Should(BeEmpty(), "processes left")
	})
	return &agentWorld{t: t, g: NewWithT(t), client: client, agent: a, echo: echo, name: name}
}

func (w *agentWorld) create(pod *corev1.Pod) {
	w.t.Helper()
	pod.Namespace = "default"
	pod.Spec.NodeName = "node-a"
	if pod.UID == "" {
		pod.UID = types.UID("uid-" + pod.Name)
	}
	if _, err := w.client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *agentWorld) get(name string) (*corev1.Pod, error) {
	return w.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
}

// markDeleted does what the API server does on a graceful delete.
func (w *agentWorld) markDeleted(name string, grace int64) {
	w.t.Helper()
	p, err := w.get(name)
	if err != nil {
		w.t.Fatal(err)
	}
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	if _, err := w.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func condition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func echoPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "echo"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "echo", Image: "konductor.dev/echo:1",
			Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/status/ready", Port: intstr.FromInt32(8100)}},
				PeriodSeconds: 1, FailureThreshold: 1,
			},
		}}},
	}
}

func TestAgentRegistersNodes(t *testing.T) {
	w := newAgentWorld(t)
	n, err := w.client.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Expect(n.Labels).To(HaveKeyWithValue(corev1.LabelTopologyZone, "zone-a"))
	w.g.Expect(n.Status.Conditions).To(ContainElement(HaveField("Type", corev1.NodeReady)))
}

func TestAgentRunsPodUntilGracefulDeletion(t *testing.T) {
	w := newAgentWorld(t)
	w.create(echoPod("web"))

	var pod *corev1.Pod
	w.g.Eventually(func() (corev1.ConditionStatus, error) {
		var err error
		pod, err = w.get("web")
		if err != nil {
			return "", err
		}
		return condition(pod, corev1.PodReady), nil
	}).WithTimeout(20 * time.Second).Should(Equal(corev1.ConditionTrue))
	w.g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
	w.g.Expect(pod.Status.PodIP).NotTo(BeEmpty())
	cs := pod.Status.ContainerStatuses[0]
	w.g.Expect(cs.State.Running).NotTo(BeNil())
	w.g.Expect(cs.Ready).To(BeTrue())

	// The probe reached the process at the pod's own address.
	resp, err := http.Get("http://" + pod.Status.PodIP + ":8100/status/ready")
	w.g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()

	// Flip readiness off: the pod's Ready condition follows the probe.
	resp, err = http.Post("http://"+pod.Status.PodIP+":8080/ready?state=false", "", nil)
	w.g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	w.g.Eventually(func() (corev1.ConditionStatus, error) {
		p, err := w.get("web")
		if err != nil {
			return "", err
		}
		return condition(p, corev1.PodReady), nil
	}).WithTimeout(10 * time.Second).Should(Equal(corev1.ConditionFalse))

	pid := pidOf(t, cs.ContainerID)
	w.markDeleted("web", 5)
	w.g.Eventually(func() error { _, err := w.get("web"); return err }).
		WithTimeout(10 * time.Second).Should(Satisfy(apierrors.IsNotFound))
	w.g.Expect(syscall.Kill(pid, 0)).To(MatchError(syscall.ESRCH))
}

func TestAgentRestartsByPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy       corev1.RestartPolicy
		script       string
		wantRestarts bool
		wantPhase    corev1.PodPhase
	}{
		{corev1.RestartPolicyAlways, "exit 0", true, corev1.PodRunning},
		{corev1.RestartPolicyOnFailure, "exit 4", true, corev1.PodRunning},
		{corev1.RestartPolicyOnFailure, "exit 0", false, corev1.PodSucceeded},
		{corev1.RestartPolicyNever, "exit 4", false, corev1.PodFailed},
	} {
		t.Run(string(tc.policy)+" "+tc.script, func(t *testing.T) {
			w := newAgentWorld(t)
			w.create(&corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "job"},
				Spec: corev1.PodSpec{RestartPolicy: tc.policy, Containers: []corev1.Container{{
					Name: "main", Image: "konductor.dev/echo", Command: []string{"sh", "-c", tc.script},
				}}},
			})
			if tc.wantRestarts {
				w.g.Eventually(func() (int32, error) {
					p, err := w.get("job")
					if err != nil || len(p.Status.ContainerStatuses) == 0 {
						return 0, err
					}
					return p.Status.ContainerStatuses[0].RestartCount, nil
				}).WithTimeout(20 * time.Second).Should(BeNumerically(">=", 2))
				return
			}
			w.g.Eventually(func() (corev1.PodPhase, error) {
				p, err := w.get("job")
				if err != nil {
					return "", err
				}
				return p.Status.Phase, nil
			}).WithTimeout(20 * time.Second).Should(Equal(tc.wantPhase))
			p, _ := w.get("job")
			w.g.Expect(p.Status.ContainerStatuses[0].RestartCount).To(BeZero())
		})
	}
}

func TestAgentLivenessProbeRestartsContainer(t *testing.T) {
	w := newAgentWorld(t)
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sick"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name: "main", Image: "konductor.dev/echo",
				LivenessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "exit 1"}}},
					PeriodSeconds: 1, FailureThreshold: 1,
				},
			}},
		},
	})
	w.g.Eventually(func() (int32, error) {
		p, err := w.get("sick")
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return 0, err
		}
		return p.Status.ContainerStatuses[0].RestartCount, nil
	}).WithTimeout(20 * time.Second).Should(BeNumerically(">=", 1))
}

func TestAgentWritesServiceAccountFiles(t *testing.T) {
	precond.Root(t, "the token is mounted at its container path only with mount namespaces")
	w := newAgentWorld(t)
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "main", Image: "konductor.dev/echo",
			Command: []string{"sh", "-c", `test "$(cat ` + ServiceAccountDir + `/token)" = token-of-default && test "$(cat ` +
				ServiceAccountDir + `/namespace)" = default && test "$(hostname)" = reader`},
		}}},
	})
	w.g.Eventually(func() (corev1.PodPhase, error) {
		p, err := w.get("reader")
		if err != nil {
			return "", err
		}
		return p.Status.Phase, nil
	}).WithTimeout(20 * time.Second).Should(Equal(corev1.PodSucceeded))
}

func pidOf(t *testing.T, containerID string) int {
	t.Helper()
	var pid int
	if _, err := fmt.Sscanf(containerID, "process://%d", &pid); err != nil {
		t.Fatalf("container ID %q: %v", containerID, err)
	}
	return pid
}

// TestAgentReportsKilledContainerAtOnce: the agent is the container's
// parent and learns of its death when the process exits, so a SIGKILLed
// container's pod turns NotReady at once — not at the next readiness probe
// (a minute away here) nor at a periodic relist — and Endpoints follow.
func TestAgentReportsKilledContainerAtOnce(t *testing.T) {
	w := newAgentWorld(t, func(c *Config) {
		// The container stays down for the test: no restart to race with.
		c.RestartBackoff, c.MaxRestartBackoff = time.Hour, time.Hour
	})
	pod := echoPod("victim")
	pod.Spec.Containers[0].ReadinessProbe.PeriodSeconds = 60
	w.create(pod)
	var cs corev1.ContainerStatus
	w.g.Eventually(func() (corev1.ConditionStatus, error) {
		p, err := w.get("victim")
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return "", err
		}
		cs = p.Status.ContainerStatuses[0]
		return condition(p, corev1.PodReady), nil
	}).WithTimeout(20 * time.Second).Should(Equal(corev1.ConditionTrue))

	w.g.Expect(syscall.Kill(-pidOf(t, cs.ContainerID), syscall.SIGKILL)).To(Succeed())
	// Well within the probe period: the exit, not a probe, made it so.
	w.g.Eventually(func() (corev1.ConditionStatus, error) {
		p, err := w.get("victim")
		if err != nil {
			return "", err
		}
		return condition(p, corev1.PodReady), nil
	}).WithTimeout(5 * time.Second).Should(Equal(corev1.ConditionFalse))
	p, err := w.get("victim")
	w.g.Expect(err).NotTo(HaveOccurred())
	st := p.Status.ContainerStatuses[0]
	w.g.Expect(st.Ready).To(BeFalse())
	w.g.Expect(st.LastTerminationState.Terminated).NotTo(BeNil())
	w.g.Expect(st.LastTerminationState.Terminated.ExitCode).To(Equal(int32(128 + 9)))
	w.g.Expect(st.LastTerminationState.Terminated.ContainerID).To(Equal(cs.ContainerID))
}
