package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/clustertest"
	"konductor.dev/sim/cluster/node"
	"konductor.dev/sim/cluster/podnet"
	"konductor.dev/sim/cluster/proc"
)

func TestCluster(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "local process cluster")
}

const (
	ns        = "default"
	echoImage = "konductor.dev/echo:test"
)

// netIndex is the running cluster's pod network index.
var netIndex int

var _ = Describe("the local process cluster", Ordered, func() {
	var (
		name, dir string
		binDir    string
		c         *cluster.Cluster
		client    kubernetes.Interface
		ctx       = context.Background()
	)

	BeforeAll(func() {
		binDir = clustertest.Binaries(GinkgoT())
		bin := GinkgoT().TempDir()
		echo, kongsim := filepath.Join(bin, "echoserver"), filepath.Join(bin, "kongsim")
		for out, pkg := range map[string]string{echo: "./echoserver", kongsim: "konductor.dev/cmd/kongsim"} {
			build := exec.Command("go", "build", "-o", out, pkg)
			build.Stdout, build.Stderr = GinkgoWriter, GinkgoWriter
			Expect(build.Run()).To(Succeed(), "go build %s", pkg)
		}

		var err error
		c, err = cluster.Start(ctx, cluster.Options{
			BinDir:    binDir,
			StateRoot: filepath.Join(os.TempDir(), "konductor-localcluster-test"),
			Images:    node.ImageMap{"konductor.dev/echo": echo, "kong": kongsim},
			Logf:      func(f string, a ...any) { fmt.Fprintf(GinkgoWriter, f+"\n", a...) },
		})
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("cluster start", c.StartupTime.String())
		name, dir, netIndex = c.Name, c.Dir, c.Network().Index()
		DeferCleanup(func() {
			Expect(c.Stop(ctx)).To(Succeed())
			By("finding nothing left: processes, namespaces, bridge, files")
			Expect(proc.Marked(name)).To(BeEmpty())
			Expect(podNamespaces()).To(BeEmpty())
			Expect(podnet.BridgeExists(ctx, netIndex)).To(BeFalse())
			Expect(dir).NotTo(BeADirectory())
		})
		client, err = c.Client()
		Expect(err).NotTo(HaveOccurred())
	})

	It("registers nodes in three zones", func() {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		zones := map[string]bool{}
		for _, n := range nodes.Items {
			zones[n.Labels[corev1.LabelTopologyZone]] = true
		}
		Expect(zones).To(HaveLen(3))
	})

	It("runs a Deployment's pods as processes, each with its own address", func() {
		Expect(createEcho(ctx, client, 3)).To(Succeed())
		pods := eventuallyReady(ctx, client, 3)
		seen := map[string]bool{}
		for _, p := range pods {
			Expect(seen).NotTo(HaveKey(p.Status.PodIP), "pod IPs must differ")
			seen[p.Status.PodIP] = true
			// Every pod serves on the same port: only separate network
			// namespaces make that possible.
			Expect(whoami(p.Status.PodIP)).To(HaveKeyWithValue("pod", p.Name))
			Expect(whoami(p.Status.PodIP)).To(HaveKeyWithValue("podIP", p.Status.PodIP))
			Expect(pid(p)).To(BeNumerically(">", 0))
		}
	})

	It("publishes only ready pods in EndpointSlices", func() {
		pods := eventuallyReady(ctx, client, 3)
		Eventually(readyEndpoints).WithArguments(ctx, client).WithTimeout(30 * time.Second).
			Should(ConsistOf(podIPs(pods)))

		unready := pods[0]
		post(fmt.Sprintf("http://%s:8080/ready?state=false", unready.Status.PodIP))
		Eventually(readyEndpoints).WithArguments(ctx, client).WithTimeout(30 * time.Second).
			Should(ConsistOf(podIPs(pods[1:])))

		post(fmt.Sprintf("http://%s:8080/ready?state=true", unready.Status.PodIP))
		Eventually(readyEndpoints).WithArguments(ctx, client).WithTimeout(30 * time.Second).
			Should(ConsistOf(podIPs(pods)))
	})

	It("reaches ready pods through the Service's ClusterIP and DNS name", func() {
		pods := eventuallyReady(ctx, client, 3)
		svc, err := client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(whoami).WithArguments(svc.Spec.ClusterIP + ":80").WithTimeout(30 * time.Second).
			Should(HaveKeyWithValue("pod", BeElementOf(names(pods))))

		// From inside a pod, by name, as Kong reaches its backends.
		Eventually(func() (string, error) {
			resp, err := httpClient.Get("http://" + pods[0].Status.PodIP + ":8080/fetch?url=http://echo.default.svc.cluster.local/")
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp.Header.Get("X-Fetch-Status") + " " + string(body), err
		}).WithTimeout(30 * time.Second).Should(HavePrefix(`200 {"namespace":"default"`))
	})

	It("runs kongsim pods that turn ready once configured, and proxy to a Service by name", func() {
		Expect(createKong(ctx, client)).To(Succeed())
		var kongs []corev1.Pod
		Eventually(func(g Gomega) {
			list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=kong"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(HaveLen(3))
			for _, p := range list.Items {
				g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
				g.Expect(isReady(p)).To(BeFalse(), "an unconfigured Kong is not ready")
			}
			kongs = list.Items
		}).WithTimeout(60 * time.Second).Should(Succeed())

		// Configure two of the three: only they become endpoints.
		config := `{"_format_version":"3.0","services":[{"name":"echo","url":"http://echo.default.svc.cluster.local:80",` +
			`"routes":[{"name":"all","paths":["/"]}]}]}`
		for _, p := range kongs[:2] {
			// Running is not listening: the Admin API may take a moment.
			Eventually(func() (int, error) {
				resp, err := httpClient.Post("http://"+p.Status.PodIP+":8001/config", "application/json", strings.NewReader(config))
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				return resp.StatusCode, nil
			}).WithTimeout(30 * time.Second).Should(Equal(http.StatusCreated))
		}
		Eventually(readyEndpointsOf).WithArguments(ctx, client, "kong-proxy").WithTimeout(30 * time.Second).
			Should(ConsistOf(podIPs(kongs[:2])))

		// Traffic through a configured Kong reaches an echo pod by the
		// echo Service's DNS name.
		Eventually(whoami).WithArguments(kongs[0].Status.PodIP + ":8000").WithTimeout(30 * time.Second).
			Should(HaveKeyWithValue("namespace", "default"))
		Expect(client.AppsV1().Deployments(ns).Delete(ctx, "kong", metav1.DeleteOptions{})).To(Succeed())
	})

	It("replaces a deleted pod with a new process, stopping the old one", func() {
		pods := eventuallyReady(ctx, client, 3)
		victim := pods[0]
		oldPid := pid(victim)
		Expect(client.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{})).To(Succeed())

		Eventually(func() error { return syscall.Kill(oldPid, 0) }).WithTimeout(30 * time.Second).
			Should(MatchError(syscall.ESRCH))
		Eventually(func() error {
			_, err := client.CoreV1().Pods(ns).Get(ctx, victim.Name, metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(Satisfy(apierrors.IsNotFound))
		now := eventuallyReady(ctx, client, 3)
		Expect(names(now)).NotTo(ContainElement(victim.Name))
	})

	It("scales to 5 and to 0", func() {
		scale(ctx, client, 5)
		pods := eventuallyReady(ctx, client, 5)
		Eventually(readyEndpoints).WithArguments(ctx, client).WithTimeout(30 * time.Second).
			Should(ConsistOf(podIPs(pods)))

		scale(ctx, client, 0)
		Eventually(func() ([]corev1.Pod, error) { return listEcho(ctx, client) }).
			WithTimeout(60 * time.Second).Should(BeEmpty())
		for _, p := range pods {
			Expect(syscall.Kill(pid(p), 0)).To(MatchError(syscall.ESRCH), "process of %s", p.Name)
		}
		Eventually(readyEndpoints).WithArguments(ctx, client).WithTimeout(30 * time.Second).Should(BeEmpty())
		// With no pod left (the kong Deployment is gone too), no pod
		// network namespace is left.
		Eventually(podNamespaces).WithTimeout(30 * time.Second).Should(BeEmpty())
	})

	It("gives a pod's process its own service-account token, limited by RBAC", func() {
		Expect(createPodReader(ctx, client)).To(Succeed())
		scale(ctx, client, 1)
		p := eventuallyReady(ctx, client, 1)[0]

		status, body := kubeFromPod(p, "/api/v1/namespaces/default/pods")
		Expect(status).To(Equal(http.StatusOK), body)
		Expect(body).To(ContainSubstring(p.Name))

		status, body = kubeFromPod(p, "/api/v1/namespaces/default/secrets")
		Expect(status).To(Equal(http.StatusForbidden), body)
		Expect(body).To(ContainSubstring(`User \"system:serviceaccount:default:echo\" cannot list resource \"secrets\"`))
	})

	It("restarts a crashing container with back-off and counts restarts", func() {
		crash := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: ns},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyAlways,
				Containers: []corev1.Container{{
					Name: "main", Image: echoImage,
					Command: []string{"sh", "-c", "exit 3"},
				}},
			},
		}
		_, err := client.CoreV1().Pods(ns).Create(ctx, crash, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			_ = client.CoreV1().Pods(ns).Delete(ctx, "crash", metav1.DeleteOptions{})
		})
		Eventually(func() (corev1.ContainerStatus, error) {
			p, err := client.CoreV1().Pods(ns).Get(ctx, "crash", metav1.GetOptions{})
			if err != nil || len(p.Status.ContainerStatuses) == 0 {
				return corev1.ContainerStatus{}, err
			}
			return p.Status.ContainerStatuses[0], nil
		}).WithTimeout(30 * time.Second).Should(SatisfyAll(
			HaveField("RestartCount", BeNumerically(">=", 2)),
			HaveField("LastTerminationState.Terminated.ExitCode", BeEquivalentTo(3)),
		))
	})

	It("serves container logs through the API server: tail, since, timestamps, limit, follow, previous", func() {
		checkLogs(ctx, client)
	})

	It("serves the kubelet API with the kubelet's authentication and authorization", func() {
		checkKubeletAPI(ctx, c, client)
	})

	It("answers kubectl logs", func() {
		checkKubectlLogs(ctx, client, binDir, c.Kubeconfig)
	})

	It("kills a container that ignores SIGTERM once the grace period ends", func() {
		stubborn := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "stubborn", Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To[int64](1),
				Containers: []corev1.Container{{
					Name: "main", Image: echoImage,
					Command: []string{"sh", "-c", `trap "" TERM; echo trapped; while :; do sleep 0.1; done`},
				}},
			},
		}
		_, err := client.CoreV1().Pods(ns).Create(ctx, stubborn, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var running *corev1.Pod
		Eventually(func() (corev1.PodPhase, error) {
			running, err = client.CoreV1().Pods(ns).Get(ctx, "stubborn", metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			return running.Status.Phase, nil
		}).WithTimeout(30 * time.Second).Should(Equal(corev1.PodRunning))
		// Running is not yet trapping: a SIGTERM before the trap would end
		// the shell at once.
		Eventually(podLogs).WithArguments(ctx, client, "stubborn", corev1.PodLogOptions{}).
			WithTimeout(30 * time.Second).Should(Equal("trapped\n"))

		began := time.Now()
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "stubborn", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() error {
			_, err := client.CoreV1().Pods(ns).Get(ctx, "stubborn", metav1.GetOptions{})
			return err
		}).WithTimeout(30 * time.Second).Should(Satisfy(apierrors.IsNotFound))
		Expect(time.Since(began)).To(BeNumerically(">=", time.Second), "the grace period is honoured")
		Expect(syscall.Kill(pid(*running), 0)).To(MatchError(syscall.ESRCH))
	})

	It("provisions a volume for a StatefulSet's claim, mounts it, and deletes it with the claim", func() {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				Fail("volumes are mounted only with mount namespaces: run the tests as root")
			}
			Skip("volumes are mounted only with mount namespaces (root)")
		}
		mnt := filepath.Join(os.TempDir(), "konductor-cluster-test-data")
		labels := map[string]string{"app": "stateful"}
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "stateful", Namespace: ns},
			Spec: appsv1.StatefulSetSpec{
				Replicas: ptr.To[int32](1), ServiceName: "stateful",
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						TerminationGracePeriodSeconds: ptr.To[int64](1),
						Containers: []corev1.Container{{
							Name: "main", Image: echoImage,
							Command:      []string{"sh", "-c", `echo "$HOSTNAME" >` + mnt + `/hello && exec sleep 3600`},
							VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: mnt}},
						}},
					},
				},
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
					ObjectMeta: metav1.ObjectMeta{Name: "data"},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
					},
				}},
			},
		}
		_, err := client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		var pv *corev1.PersistentVolume
		Eventually(func(g Gomega) {
			pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-stateful-0", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
			g.Expect(*pvc.Spec.StorageClassName).To(Equal("standard"), "the default class is assigned")
			pv, err = client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pv.Spec.HostPath).NotTo(BeNil())
			g.Expect(os.ReadFile(filepath.Join(pv.Spec.HostPath.Path, "hello"))).To(Equal([]byte("stateful-0\n")))
		}).WithTimeout(60 * time.Second).Should(Succeed())
		Expect(pv.Spec.HostPath.Path).To(HavePrefix(filepath.Join(dir, "volumes") + "/"))

		By("deleting the StatefulSet and its claim: the volume and its directory go")
		Expect(client.AppsV1().StatefulSets(ns).Delete(ctx, "stateful", metav1.DeleteOptions{})).To(Succeed())
		Expect(client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data-stateful-0", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() error {
			_, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
			return err
		}).WithTimeout(60 * time.Second).Should(Satisfy(apierrors.IsNotFound))
		Expect(pv.Spec.HostPath.Path).NotTo(BeADirectory())
	})
})

func createEcho(ctx context.Context, client kubernetes.Interface, replicas int32) error {
	labels := map[string]string{"app": "echo"}
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	_, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            "echo",
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers: []corev1.Container{{
						Name:  "echo",
						Image: echoImage,
						Args:  []string{"--port=8080", "--status-port=8100"},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "status", ContainerPort: 8100}},
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: field("metadata.name")},
							{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
							{Name: "POD_IP", ValueFrom: field("status.podIP")},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/status/ready", Port: intstr.FromString("status"),
							}},
							PeriodSeconds: 1, FailureThreshold: 1,
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 2, InitialDelaySeconds: 2,
						},
					}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	return err
}

// createKong deploys three kongsim pods (image kong) with Kong's readiness
// probe, and the proxy Service.
func createKong(ctx context.Context, client kubernetes.Interface) error {
	labels := map[string]string{"app": "kong"}
	replicas := int32(3)
	_, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "kong"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers: []corev1.Container{{
						Name:  "proxy",
						Image: "kong:3.9",
						Env: []corev1.EnvVar{
							{Name: "KONG_DATABASE", Value: "off"},
							{Name: "KONG_PROXY_LISTEN", Value: "0.0.0.0:8000"},
							{Name: "KONG_ADMIN_LISTEN", Value: "0.0.0.0:8001"},
							{Name: "KONG_STATUS_LISTEN", Value: "0.0.0.0:8100"},
						},
						Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 8000}, {Name: "status", ContainerPort: 8100}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/status/ready", Port: intstr.FromString("status"),
							}},
							PeriodSeconds: 1, FailureThreshold: 1,
						},
					}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kong-proxy"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "proxy", Port: 80, TargetPort: intstr.FromString("proxy")}},
		},
	}, metav1.CreateOptions{})
	return err
}

// createPodReader lets the echo service account read pods, nothing else.
func createPodReader(ctx context.Context, client kubernetes.Interface) error {
	if _, err := client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-pod-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "echo", Namespace: ns}},
	}, metav1.CreateOptions{})
	return err
}

func scale(ctx context.Context, client kubernetes.Interface, replicas int32) {
	GinkgoHelper()
	// The Deployment controller writes the object too: retry conflicts.
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := client.AppsV1().Deployments(ns).GetScale(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = replicas
		_, err = client.AppsV1().Deployments(ns).UpdateScale(ctx, "echo", s, metav1.UpdateOptions{})
		return err
	})).To(Succeed())
}

func listEcho(ctx context.Context, client kubernetes.Interface) ([]corev1.Pod, error) {
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// eventuallyReady waits until exactly n echo pods exist, none terminating,
// all Ready, and returns them.
func eventuallyReady(ctx context.Context, client kubernetes.Interface, n int) []corev1.Pod {
	GinkgoHelper()
	var pods []corev1.Pod
	Eventually(func(g Gomega) {
		var err error
		pods, err = listEcho(ctx, client)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pods).To(HaveLen(n))
		for _, p := range pods {
			g.Expect(p.DeletionTimestamp).To(BeNil(), p.Name)
			g.Expect(isReady(p)).To(BeTrue(), "pod %s ready", p.Name)
		}
	}).WithTimeout(60 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	return pods
}

func isReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyEndpoints lists the addresses the echo Service's EndpointSlices
// mark ready.
func readyEndpoints(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	return readyEndpointsOf(ctx, client, "echo")
}

func readyEndpointsOf(ctx context.Context, client kubernetes.Interface, service string) ([]string, error) {
	slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + service,
	})
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ips = append(ips, e.Addresses...)
			}
		}
	}
	return ips, nil
}

func podIPs(pods []corev1.Pod) []string {
	var ips []string
	for _, p := range pods {
		ips = append(ips, p.Status.PodIP)
	}
	return ips
}

func names(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// pid is the process id behind the pod's first container.
func pid(p corev1.Pod) int {
	GinkgoHelper()
	Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
	id, ok := strings.CutPrefix(p.Status.ContainerStatuses[0].ContainerID, "process://")
	Expect(ok).To(BeTrue(), p.Status.ContainerStatuses[0].ContainerID)
	n, err := strconv.Atoi(id)
	Expect(err).NotTo(HaveOccurred())
	return n
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// whoami asks the echo server at hostport ("ip" means ip:8080) who it is.
func whoami(hostport string) (map[string]string, error) {
	if !strings.Contains(hostport, ":") {
		hostport += ":8080"
	}
	resp, err := httpClient.Get("http://" + hostport + "/")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]string
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func post(url string) {
	GinkgoHelper()
	resp, err := httpClient.Post(url, "text/plain", nil)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
}

// kubeFromPod has the pod's process GET path from the API server with its
// own token; it returns the API server's status and body.
func kubeFromPod(p corev1.Pod, path string) (int, string) {
	GinkgoHelper()
	resp, err := httpClient.Get("http://" + p.Status.PodIP + ":8080/kube?path=" + path)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.StatusCode).To(Equal(http.StatusOK), string(body))
	status, err := strconv.Atoi(resp.Header.Get("X-Kube-Status"))
	Expect(err).NotTo(HaveOccurred())
	return status, string(body)
}

func podNamespaces() ([]string, error) {
	all, err := podnet.Namespaces(context.Background())
	var ours []string
	for _, n := range all {
		if strings.HasPrefix(n, podnet.NamespacePrefix(netIndex)) {
			ours = append(ours, n)
		}
	}
	return ours, err
}
