package cluster_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"konductor.dev/sim/cluster"
)

// gatedPod runs script with $D set to a fresh directory, in which the test
// creates files the script waits for: the test, not timing, decides when
// the container writes and exits.
func gatedPod(ctx context.Context, client kubernetes.Interface, name string, policy corev1.RestartPolicy, script string) string {
	dir := GinkgoT().TempDir()
	_, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                 policy,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name: "main", Image: echoImage,
				Command: []string{"sh", "-c", "D=" + dir + "\n" + script},
			}},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		_ = client.CoreV1().Pods(ns).Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
	})
	return dir
}

func podLogs(ctx context.Context, client kubernetes.Interface, name string, opts corev1.PodLogOptions) (string, error) {
	raw, err := client.CoreV1().Pods(ns).GetLogs(name, &opts).DoRaw(ctx)
	return string(raw), err
}

// lineChannel delivers r's lines and closes when r ends.
func lineChannel(r io.Reader) chan string {
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

func touch(dir, name string) {
	Expect(os.WriteFile(filepath.Join(dir, name), nil, 0o644)).To(Succeed())
}

// checkLogs reads a restarting container's logs through the API server's
// pods/log, which proxies to the node agent's kubelet API.
func checkLogs(ctx context.Context, client kubernetes.Interface) {
	// Each run counts itself, prints two lines, waits for stop<n>, says
	// bye and fails, so the kubelet restarts it.
	dir := gatedPod(ctx, client, "logger", corev1.RestartPolicyAlways, `
n=$(cat $D/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $D/count
echo "run $n line 1"; echo "run $n line 2"
until [ -e $D/stop$n ]; do sleep 0.05; done
echo "run $n bye"; exit 1`)

	get := func(opts corev1.PodLogOptions) func() (string, error) {
		return func() (string, error) { return podLogs(ctx, client, "logger", opts) }
	}
	Eventually(get(corev1.PodLogOptions{})).WithTimeout(60 * time.Second).Should(Equal("run 1 line 1\nrun 1 line 2\n"))

	By("following until the container exits")
	stream, err := client.CoreV1().Pods(ns).GetLogs("logger", &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	Expect(err).NotTo(HaveOccurred())
	defer stream.Close()
	lines := lineChannel(stream)
	Eventually(lines).WithTimeout(10 * time.Second).Should(Receive(Equal("run 1 line 1")))
	Eventually(lines).WithTimeout(10 * time.Second).Should(Receive(Equal("run 1 line 2")))
	touch(dir, "stop1")
	Eventually(lines).WithTimeout(10 * time.Second).Should(Receive(Equal("run 1 bye")))
	Eventually(lines).WithTimeout(30*time.Second).Should(BeClosed(), "the stream ends with the container")

	By("reading the restarted container and, with previous, the run before")
	Eventually(get(corev1.PodLogOptions{})).WithTimeout(60 * time.Second).Should(Equal("run 2 line 1\nrun 2 line 2\n"))
	Expect(get(corev1.PodLogOptions{Previous: true})()).To(Equal("run 1 line 1\nrun 1 line 2\nrun 1 bye\n"))

	By("tail, limit, timestamps and since")
	Expect(get(corev1.PodLogOptions{TailLines: ptr.To[int64](1)})()).To(Equal("run 2 line 2\n"))
	Expect(get(corev1.PodLogOptions{LimitBytes: ptr.To[int64](5)})()).To(Equal("run 2"))
	stamped, err := get(corev1.PodLogOptions{Timestamps: true})()
	Expect(err).NotTo(HaveOccurred())
	var last time.Time
	for i, line := range strings.Split(strings.TrimSuffix(stamped, "\n"), "\n") {
		stamp, text, _ := strings.Cut(line, " ")
		Expect(text).To(Equal("run 2 line " + strconv.Itoa(i+1)))
		last, err = time.Parse(time.RFC3339Nano, stamp)
		Expect(err).NotTo(HaveOccurred(), "line %q", line)
		Expect(last).To(BeTemporally("~", time.Now(), 5*time.Minute))
	}
	Expect(get(corev1.PodLogOptions{SinceSeconds: ptr.To[int64](3600)})()).To(Equal("run 2 line 1\nrun 2 line 2\n"))
	after := metav1.NewTime(last.Add(2 * time.Second))
	Expect(get(corev1.PodLogOptions{SinceTime: &after})()).To(BeEmpty())
}

// checkKubeletAPI talks to a node's kubelet API directly and through the
// API server's nodes/proxy; identities are checked by the real TokenReview
// and SubjectAccessReview.
func checkKubeletAPI(ctx context.Context, c *cluster.Cluster, client kubernetes.Interface) {
	// A running pod, so its node has a container to report.
	gatedPod(ctx, client, "metered", corev1.RestartPolicyNever, `echo up; exec sleep 600`)
	var pod *corev1.Pod
	Eventually(func() (corev1.PodPhase, error) {
		var err error
		pod, err = client.CoreV1().Pods(ns).Get(ctx, "metered", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return pod.Status.Phase, nil
	}).WithTimeout(60 * time.Second).Should(Equal(corev1.PodRunning))
	node, err := client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	var addr string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			addr = a.Address
		}
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	Expect(addr).NotTo(BeEmpty())
	Expect(port).NotTo(BeZero())

	cfg := c.RESTConfig()
	roots := x509.NewCertPool()
	Expect(roots.AppendCertsFromPEM(cfg.CAData)).To(BeTrue())
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	healthz := func(token string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(addr, strconv.Itoa(int(port)))+"/healthz", nil)
		Expect(err).NotTo(HaveOccurred())
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		Expect(err).NotTo(HaveOccurred(), "the serving certificate is the cluster CA's, for the InternalIP")
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, body := healthz("")
	Expect(status).To(Equal(http.StatusUnauthorized), body)
	status, body = healthz(cfg.BearerToken)
	Expect(status).To(Equal(http.StatusOK), body)
	tok, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	status, body = healthz(tok.Status.Token)
	Expect(status).To(Equal(http.StatusForbidden), body)
	Expect(body).To(ContainSubstring("user=system:serviceaccount:default:default"))

	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node.Name, "proxy", "healthz").DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(string(raw)).To(Equal("ok"))

	// What metrics-server will scrape, through the API server's proxy.
	raw, err = client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node.Name, "proxy", "metrics", "resource").DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(string(raw)).To(ContainSubstring("\nnode_cpu_usage_seconds_total "))
	Expect(string(raw)).To(ContainSubstring("\nnode_memory_working_set_bytes "))
	Expect(string(raw)).To(MatchRegexp(`\ncontainer_cpu_usage_seconds_total\{container="main",namespace="default",pod="metered"\} \S+ \d+\n`))
}

// checkKubectlLogs runs the real kubectl against the cluster.
func checkKubectlLogs(ctx context.Context, client kubernetes.Interface, binDir, kubeconfig string) {
	kubectl := filepath.Join(binDir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		msg := "no kubectl in " + binDir + "; build it with: K8S_COMPONENTS=kubectl hack/build-k8s.sh"
		if os.Getenv("CI") == "true" {
			Fail(msg)
		}
		Skip(msg)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
	dir := gatedPod(ctx, client, "kubectl-logs", corev1.RestartPolicyNever, `
echo one; echo two
until [ -e $D/go ]; do sleep 0.05; done
echo three`)
	Eventually(run).WithArguments("logs", "kubectl-logs").WithTimeout(60 * time.Second).Should(Equal("one\ntwo\n"))
	Expect(run("logs", "kubectl-logs", "-c", "main", "--tail=1")).To(Equal("two\n"))
	out, err := run("logs", "kubectl-logs", "--timestamps")
	Expect(err).NotTo(HaveOccurred(), out)
	Expect(out).To(MatchRegexp(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z one\n\S+ two\n$`))
	Expect(run("logs", "kubectl-logs", "--since=1h")).To(Equal("one\ntwo\n"))

	By("kubectl logs -f returns once the container exits")
	follow := exec.CommandContext(ctx, kubectl, "--kubeconfig="+kubeconfig, "logs", "-f", "kubectl-logs")
	stdout, err := follow.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	follow.Stderr = GinkgoWriter
	Expect(follow.Start()).To(Succeed())
	lines := lineChannel(stdout)
	Eventually(lines).WithTimeout(10 * time.Second).Should(Receive(Equal("one")))
	Eventually(lines).WithTimeout(10 * time.Second).Should(Receive(Equal("two")))
	touch(dir, "go")
	Eventually(lines).WithTimeout(10 * time.Second).Should(Receive(Equal("three")))
	Eventually(lines).WithTimeout(30 * time.Second).Should(BeClosed())
	Expect(follow.Wait()).To(Succeed())
}
