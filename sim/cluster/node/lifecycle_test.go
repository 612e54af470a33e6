package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	. "github.com/onsi/gomega"
)

// needRoot skips t without root (mount namespaces, setpriv), and fails it
// under CI, where the suite must run as root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (mount namespaces, setpriv): run go test as root, e.g. sudo -E go test ./sim/cluster/node/")
	}
	t.Skip("needs root (mount namespaces, setpriv)")
}

// phase waits for the pod to reach want and returns it; on a timeout the
// container's log is in the failure message.
func (w *agentWorld) waitPhase(name string, want corev1.PodPhase) *corev1.Pod {
	w.t.Helper()
	var pod *corev1.Pod
	w.g.Eventually(func() (corev1.PodPhase, error) {
		var err error
		pod, err = w.get(name)
		if err != nil {
			return "", err
		}
		return pod.Status.Phase, nil
	}).WithTimeout(20*time.Second).Should(Equal(want), func() string { return w.logs(name) })
	return pod
}

func (w *agentWorld) logs(name string) string {
	files, _ := filepath.Glob(filepath.Join(w.agent.cfg.PodDir, "logs", "default_"+name+"_*.log"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		b.WriteString(filepath.Base(f) + ":\n" + string(data))
	}
	return b.String()
}

// TestAgentVolumesAndSecurityContext runs a container as the deploy/
// overlays do (non-root user, fsGroup, read-only root) with emptyDir,
// configMap (items, modes, subPath), secret and downwardAPI volumes, and
// checks from inside what it sees.
func TestAgentVolumesAndSecurityContext(t *testing.T) {
	needRoot(t)
	w := newAgentWorld(t)
	ctx := context.Background()
	_, err := w.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"},
		Data:       map[string]string{"mode": "db", "level": "info"},
	}, metav1.CreateOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	_, err = w.client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pw", Namespace: "default"},
		Data:       map[string][]byte{"password": []byte("s3cret")},
	}, metav1.CreateOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())

	// Mount points live under a temporary directory, not in the host's /.
	root := t.TempDir()
	// The user reaches its mounts through the directories above them.
	for d := root; d != os.TempDir(); d = filepath.Dir(d) {
		w.g.Expect(os.Chmod(d, 0o755)).To(Succeed())
	}
	at := func(p string) string { return filepath.Join(root, p) }
	checks := []string{
		`test "$(id -u)" = 1000`, `test "$(id -g)" = 1000`, `id -G | grep -qw 2000`,
		// emptyDir: writable, group fsGroup, setgid.
		`touch ` + at("scratch/x"), `test "$(stat -c %g ` + at("scratch") + `)" = 2000`, `test -g ` + at("scratch"),
		// configMap items at their paths with their modes, read-only.
		`test "$(cat ` + at("cfg/conf/mode.txt") + `)" = db`, `test ! -e ` + at("cfg/level"),
		`test "$(stat -L -c %a ` + at("cfg/conf/mode.txt") + `)" = 440`, `! touch ` + at("cfg/new") + ` 2>/dev/null`,
		// subPath of a configMap key: a single file.
		`test "$(cat ` + at("etc/level") + `)" = info`,
		// secret with defaultMode, and a missing optional secret.
		`test "$(cat ` + at("secret/password") + `)" = s3cret`, `test "$(stat -L -c %a ` + at("secret/password") + `)" = 440`,
		`test -d ` + at("maybe"),
		// downwardAPI labels.
		`grep -qx 'app="vol"' ` + at("podinfo/labels"),
		// readOnlyRootFilesystem: the root mount refuses writes.
		`! touch ` + at("outside") + ` 2>/dev/null`,
	}
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "vol", Labels: map[string]string{"app": "vol"}},
		Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000), RunAsNonRoot: ptr.To(true)},
			Containers: []corev1.Container{{
				Name: "main", Image: "konductor.dev/echo",
				Command: []string{"sh", "-ec", strings.Join(checks, "\n")},
				SecurityContext: &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](1000),
					ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "scratch", MountPath: at("scratch")},
					{Name: "cfg", MountPath: at("cfg")},
					{Name: "cfg-all", MountPath: at("etc/level"), SubPath: "level"},
					{Name: "pw", MountPath: at("secret")},
					{Name: "maybe", MountPath: at("maybe")},
					{Name: "podinfo", MountPath: at("podinfo")},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
					Items:                []corev1.KeyToPath{{Key: "mode", Path: "conf/mode.txt", Mode: ptr.To[int32](0o400)}},
				}}},
				{Name: "cfg-all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				{Name: "pw", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "pw", DefaultMode: ptr.To[int32](0o400)}}},
				{Name: "maybe", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "absent", Optional: ptr.To(true)}}},
				{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
					Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
			},
		},
	})
	w.waitPhase("vol", corev1.PodSucceeded)

	// The emptyDir goes with the pod.
	w.markDeleted("vol", 1)
	w.g.Eventually(func() error { _, err := w.get("vol"); return err }).WithTimeout(10 * time.Second).Should(Satisfy(apierrors.IsNotFound))
	dirs, _ := filepath.Glob(filepath.Join(w.agent.cfg.PodDir, "default_vol_*"))
	w.g.Expect(dirs).To(BeEmpty())
}

// testVolumeRefresh is the volume refresh period of the tests that wait
// for one: what they prove does not depend on its length.
const testVolumeRefresh = time.Second

func quickVolumeRefresh(c *Config) { c.VolumeRefresh = testVolumeRefresh }

// TestAgentConfigMapVolumeFollowsChanges: a changed ConfigMap reaches the
// mounted files (through the ..data swap) while the container runs.
func TestAgentConfigMapVolumeFollowsChanges(t *testing.T) {
	needRoot(t)
	w := newAgentWorld(t, quickVolumeRefresh)
	ctx := context.Background()
	cms := w.client.CoreV1().ConfigMaps("default")
	_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}, Data: map[string]string{"v": "one"}}, metav1.CreateOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	mnt := filepath.Join(t.TempDir(), "cfg")
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "watcher"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "main", Image: "konductor.dev/echo",
				// Exits 0 once the new value shows; the deadline fails it.
				Command:      []string{"sh", "-c", `grep -qx one ` + mnt + `/v || exit 3; i=0; while [ $i -lt 600 ]; do grep -qx two ` + mnt + `/v && exit 0; sleep 0.1; i=$((i+1)); done; exit 4`},
				VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: mnt}},
			}},
			Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}},
		},
	})
	w.g.Eventually(func() (bool, error) {
		p, err := w.get("watcher")
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false, err
		}
		return p.Status.ContainerStatuses[0].State.Running != nil, nil
	}).WithTimeout(20 * time.Second).Should(BeTrue())
	_, err = cms.Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}, Data: map[string]string{"v": "two"}}, metav1.UpdateOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Eventually(func() (corev1.PodPhase, error) {
		p, err := w.get("watcher")
		if err != nil {
			return "", err
		}
		return p.Status.Phase, nil
	}).WithTimeout(testVolumeRefresh+20*time.Second).Should(Equal(corev1.PodSucceeded), func() string { return w.logs("watcher") })
}

// TestAgentOptionalSecretVolumeFillsIn: a Secret created after the pod
// started reaches an optional secret volume while the container runs, as
// KEDA's operator needs (it mounts the certificate Secret it creates
// itself); the non-root user reads the group-readable key through fsGroup.
func TestAgentOptionalSecretVolumeFillsIn(t *testing.T) {
	needRoot(t)
	w := newAgentWorld(t, quickVolumeRefresh)
	root := t.TempDir()
	for d := root; d != os.TempDir(); d = filepath.Dir(d) {
		w.g.Expect(os.Chmod(d, 0o755)).To(Succeed())
	}
	mnt := filepath.Join(root, "certs")
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "late"},
		Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), FSGroup: ptr.To[int64](65532)},
			Containers: []corev1.Container{{
				Name: "main", Image: "konductor.dev/echo",
				// Starts with an empty directory, exits 0 once the key
				// shows; the deadline fails it.
				Command:      []string{"sh", "-c", `test -d ` + mnt + ` || exit 2; test -e ` + mnt + `/tls.key && exit 3; i=0; while [ $i -lt 900 ]; do grep -qx key ` + mnt + `/tls.key 2>/dev/null && exit 0; sleep 0.1; i=$((i+1)); done; exit 4`},
				VolumeMounts: []corev1.VolumeMount{{Name: "certs", MountPath: mnt, ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "late-certs", Optional: ptr.To(true), DefaultMode: ptr.To[int32](0o440)}}}},
		},
	})
	w.g.Eventually(func() (bool, error) {
		p, err := w.get("late")
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false, err
		}
		return p.Status.ContainerStatuses[0].State.Running != nil, nil
	}).WithTimeout(20*time.Second).Should(BeTrue(), func() string { return w.logs("late") })
	_, err := w.client.CoreV1().Secrets("default").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "late-certs", Namespace: "default"},
		Data:       map[string][]byte{"tls.key": []byte("key\n")},
	}, metav1.CreateOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	w.g.Eventually(func() (corev1.PodPhase, error) {
		p, err := w.get("late")
		if err != nil {
			return "", err
		}
		return p.Status.Phase, nil
	}).WithTimeout(testVolumeRefresh+20*time.Second).Should(Equal(corev1.PodSucceeded), func() string { return w.logs("late") })
}

// TestAgentRefusesRootUnderRunAsNonRoot: the kubelet's
// CreateContainerConfigError, and the container never starts.
func TestAgentRefusesRootUnderRunAsNonRoot(t *testing.T) {
	w := newAgentWorld(t)
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nr", UID: "uid-nr"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			Containers:      []corev1.Container{{Name: "main", Image: "konductor.dev/echo", Command: []string{"sh", "-c", "exit 0"}}},
		},
	})
	w.g.Eventually(func() (*corev1.ContainerStateWaiting, error) {
		p, err := w.get("nr")
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return nil, err
		}
		return p.Status.ContainerStatuses[0].State.Waiting, nil
	}).WithTimeout(20 * time.Second).Should(Equal(&corev1.ContainerStateWaiting{
		Reason:  "CreateContainerConfigError",
		Message: `container has runAsNonRoot and image will run as root (pod: "nr_default(uid-nr)", container: main)`,
	}))
	w.g.Eventually(func() ([]corev1.Event, error) {
		events, err := w.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return events.Items, nil
	}).WithTimeout(10 * time.Second).Should(ContainElement(And(HaveField("Reason", "Failed"), HaveField("Type", corev1.EventTypeWarning))))
}

// TestAgentPreStopHooks: on deletion the preStop hook runs before SIGTERM,
// and a hook longer than the grace period is cut at its end.
func TestAgentPreStopHooks(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	// The main process records SIGTERM after whatever the hook wrote.
	// It touches armed once the trap is set: a SIGTERM that came before
	// would end the shell without a trace.
	armed := filepath.Join(dir, "armed")
	mainCmd := []string{"sh", "-c", `trap 'echo term >>` + trace + `; exit 0' TERM; touch ` + armed + `; while :; do sleep 0.05; done`}
	// An httpGet hook's target, on the host (the hook names its host).
	hookServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.OpenFile(trace, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString("prestop " + r.URL.Path + "\n")
			_ = f.Close()
		}
	}))
	defer hookServer.Close()
	hookPort, _ := strconv.Atoi(hookServer.URL[strings.LastIndexByte(hookServer.URL, ':')+1:])
	for _, tc := range []struct {
		name    string
		hook    corev1.LifecycleHandler
		grace   int64
		want    string
		atLeast time.Duration // from the delete to the pod being gone
		atMost  time.Duration
	}{
		{name: "exec runs first", grace: 10, want: "prestop\nterm\n", atMost: 8 * time.Second,
			hook: corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop >>" + trace}}}},
		{name: "httpGet runs first", grace: 10, want: "prestop /drain\nterm\n", atMost: 8 * time.Second,
			hook: corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Host: "127.0.0.1", Port: intstr.FromInt(hookPort), Path: "/drain"}}},
		{name: "sleep delays SIGTERM", grace: 10, want: "term\n", atLeast: 2 * time.Second, atMost: 8 * time.Second,
			hook: corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 2}}},
		{name: "a hook longer than the grace period is cut", grace: 1, want: "term\n", atLeast: time.Second, atMost: 8 * time.Second,
			hook: corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 60}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(trace)
			_ = os.Remove(armed)
			w := newAgentWorld(t)
			w.create(&corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "hooked"},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(tc.grace),
					Containers: []corev1.Container{{Name: "main", Image: "konductor.dev/echo", Command: mainCmd,
						Lifecycle: &corev1.Lifecycle{PreStop: &tc.hook}}},
				},
			})
			w.g.Eventually(func() (bool, error) {
				p, err := w.get("hooked")
				if err != nil || len(p.Status.ContainerStatuses) == 0 {
					return false, err
				}
				return p.Status.ContainerStatuses[0].State.Running != nil, nil
			}).WithTimeout(20 * time.Second).Should(BeTrue())
			w.g.Eventually(func() error { _, err := os.Stat(armed); return err }).
				WithTimeout(20 * time.Second).Should(Succeed())
			deleted := time.Now()
			w.markDeleted("hooked", tc.grace)
			w.g.Eventually(func() error { _, err := w.get("hooked"); return err }).
				WithTimeout(tc.atMost).Should(Satisfy(apierrors.IsNotFound))
			took := time.Since(deleted)
			w.g.Expect(took).To(BeNumerically(">=", tc.atLeast))
			got, err := os.ReadFile(trace)
			w.g.Expect(err).NotTo(HaveOccurred())
			w.g.Expect(string(got)).To(Equal(tc.want))
		})
	}
}
