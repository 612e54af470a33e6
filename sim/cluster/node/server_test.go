package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// testCA issues certificates for the kubelet API tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf: a server certificate for ips, or a client
// certificate for user cn in groups.
func (ca *testCA) issue(t *testing.T, cn string, groups []string, ips []net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageClientAuth
	if len(ips) > 0 {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeAuth plays the API server's TokenReview and SubjectAccessReview: a
// token "token-<user>" is that user's, and rights are granted per user
// (or group) and subresource.
type fakeAuth struct {
	mu     sync.Mutex
	grants map[string][]string // user or group -> subresources
	asked  []string            // "user verb nodes/sub name" of every review
}

func (f *fakeAuth) install(w *agentWorld) {
	w.client.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if user, ok := strings.CutPrefix(review.Spec.Token, "token-"); ok {
			review.Status.Authenticated = true
			review.Status.User = authenticationv1.UserInfo{Username: user, Groups: []string{"system:authenticated"}}
		}
		return true, review, nil
	})
	w.client.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		attrs := review.Spec.ResourceAttributes
		f.mu.Lock()
		defer f.mu.Unlock()
		f.asked = append(f.asked, review.Spec.User+" "+attrs.Verb+" "+attrs.Resource+"/"+attrs.Subresource+" "+attrs.Name)
		for _, who := range append([]string{review.Spec.User}, review.Spec.Groups...) {
			if slices.Contains(f.grants[who], attrs.Subresource) && attrs.Resource == "nodes" && attrs.Name == "node-a" {
				review.Status.Allowed = true
			}
		}
		return true, review, nil
	})
}

func (f *fakeAuth) reviews() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

func TestKubeletAPI(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	var hostIP net.IP
	w := newAgentWorld(t, func(c *Config) {
		hostIP = c.Network.Gateway()
		serving := ca.issue(t, "node-a", nil, []net.IP{hostIP})
		c.ServingCert = &serving
		c.CACert = ca.pem
	})
	auth := &fakeAuth{grants: map[string][]string{
		"system:masters": {"proxy", "metrics", "log"},
		"logreader":      {"proxy"},
		"prober":         {"healthz"},
	}}
	auth.install(w)

	node, err := w.client.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	w.g.Expect(port).NotTo(BeZero(), "the Node publishes its kubelet port")
	w.g.Expect(node.Status.Addresses).To(ContainElement(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: hostIP.String()}))
	base := "https://" + net.JoinHostPort(hostIP.String(), strconv.Itoa(int(port)))

	// stdout and stderr are separate pipes, so their relative order is set
	// by the test: the stdout lines wait for a file the test creates once
	// the stderr line is in.
	gate := t.TempDir()
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "talker"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "konductor.dev/echo",
			Command: []string{"sh", "-c", `echo err-1 >&2; until [ -e ` + gate + `/go ]; do sleep 0.05; done; echo out-1; echo out-2; exec sleep 600`},
		}}},
	})

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs},
		}}
	}
	get := func(hc *http.Client, path, token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	apiserver := client(ca.issue(t, "kube-apiserver-kubelet-client", []string{"system:masters"}, nil))
	logs := "/containerLogs/default/talker/main"

	logged := func() (string, error) {
		_, body, err := get(apiserver, logs, "")
		return body, err
	}
	w.g.Eventually(logged).WithTimeout(20 * time.Second).Should(Equal("err-1\n"))
	w.g.Expect(os.WriteFile(filepath.Join(gate, "go"), nil, 0o644)).To(Succeed())
	w.g.Eventually(logged).WithTimeout(20 * time.Second).Should(Equal("err-1\nout-1\nout-2\n"))

	for _, tc := range []struct {
		name       string
		hc         *http.Client
		path       string
		token      string
		wantStatus int
		wantBody   string
		wantReview string
	}{
		{"no credentials", client(), logs, "", http.StatusUnauthorized, "Unauthorized\n", ""},
		{"a token the API server rejects", client(), logs, "forged", http.StatusUnauthorized, "Unauthorized\n", ""},
		{"a user without nodes/proxy", client(), logs, "token-alice", http.StatusForbidden, "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])\n", "alice get nodes/proxy node-a"},
		{"a user with nodes/proxy", client(), logs + "?tailLines=1", "token-logreader", http.StatusOK, "out-2\n", "logreader get nodes/proxy node-a"},
		{"the API server's client certificate", apiserver, logs + "?tailLines=2", "", http.StatusOK, "out-1\nout-2\n", "kube-apiserver-kubelet-client get nodes/proxy node-a"},
		{"healthz by its fine-grained subresource", client(), "/healthz", "token-prober", http.StatusOK, "ok", "prober get nodes/healthz node-a"},
		{"healthz falls back to nodes/proxy", client(), "/healthz", "token-logreader", http.StatusOK, "ok", "logreader get nodes/proxy node-a"},
		{"a pod on no node of ours", apiserver, "/containerLogs/default/elsewhere/main", "", http.StatusNotFound, "pod \"elsewhere\" does not exist\n", ""},
		{"a container the pod lacks", apiserver, "/containerLogs/default/talker/sidecar", "", http.StatusNotFound, "container \"sidecar\" not found in pod \"talker\"\n", ""},
		{"no previous run", apiserver, logs + "?previous=true", "", http.StatusBadRequest, "previous terminated container \"main\" in pod \"talker\" not found\n", ""},
		{"a malformed parameter", apiserver, logs + "?tailLines=-3", "", http.StatusBadRequest, "query parameter tailLines: must be at least 0\n", ""},
		{"stderr only", apiserver, logs + "?stream=Stderr", "", http.StatusOK, "err-1\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			before := len(auth.reviews())
			status, body, err := get(tc.hc, tc.path, tc.token)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(status).To(Equal(tc.wantStatus), body)
			g.Expect(body).To(Equal(tc.wantBody))
			if tc.wantReview != "" {
				g.Expect(auth.reviews()[before:]).To(ContainElement(tc.wantReview))
			}
		})
	}

	t.Run("a client certificate from another CA fails the handshake", func(t *testing.T) {
		foreign := newTestCA(t, "other-ca").issue(t, "mallory", []string{"system:masters"}, nil)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: roots,
			// Sent even though the server asks for certificates of its
			// own CA (Go's client would otherwise send none and get 401).
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil },
		}}}
		_, _, err := get(hc, logs, "")
		NewWithT(t).Expect(err).To(MatchError(ContainSubstring("certificate")))
	})

	t.Run("since and timestamps", func(t *testing.T) {
		g := NewWithT(t)
		_, body, err := get(apiserver, logs+"?timestamps=true", "")
		g.Expect(err).NotTo(HaveOccurred())
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		g.Expect(lines).To(HaveLen(3))
		stamp, text, _ := strings.Cut(lines[2], " ")
		g.Expect(text).To(Equal("out-2"))
		at, err := time.Parse(time.RFC3339Nano, stamp)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(at).To(BeTemporally("~", time.Now(), time.Minute))
		_, body, err = get(apiserver, logs+"?sinceTime="+url.QueryEscape(at.Add(time.Second).Format(time.RFC3339)), "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(body).To(BeEmpty())
	})
}

func TestKubeletAPIFollowEndsWithTheContainer(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	var hostIP net.IP
	w := newAgentWorld(t, func(c *Config) {
		hostIP = c.Network.Gateway()
		serving := ca.issue(t, "node-a", nil, []net.IP{hostIP})
		c.ServingCert = &serving
		c.CACert = ca.pem
	})
	(&fakeAuth{grants: map[string][]string{"system:masters": {"proxy"}}}).install(w)
	node, err := w.client.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	base := "https://" + net.JoinHostPort(hostIP.String(), strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)))
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{ca.issue(t, "apiserver", []string{"system:masters"}, nil)},
	}}}

	// The container prints a line each time a file appears, so the test
	// decides when lines are written.
	dir := t.TempDir()
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ticker"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "konductor.dev/echo",
			Command: []string{"sh", "-c", `echo started; until [ -e ` + dir + `/go ]; do sleep 0.05; done; echo going; exec sleep 600`},
		}}},
	})
	var resp *http.Response
	w.g.Eventually(func() (int, error) {
		var err error
		resp, err = hc.Get(base + "/containerLogs/default/ticker/main?follow=true")
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
		}
		return resp.StatusCode, nil
	}).WithTimeout(20 * time.Second).Should(Equal(http.StatusOK))
	defer resp.Body.Close()

	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := resp.Body.Read(buf)
			acc += string(buf[:n])
			for {
				line, rest, ok := strings.Cut(acc, "\n")
				if !ok {
					break
				}
				lines <- line
				acc = rest
			}
			if err != nil {
				return
			}
		}
	}()
	w.g.Eventually(lines).WithTimeout(20 * time.Second).Should(Receive(Equal("started")))
	w.g.Expect(os.WriteFile(filepath.Join(dir, "go"), nil, 0o644)).To(Succeed())
	w.g.Eventually(lines).WithTimeout(20 * time.Second).Should(Receive(Equal("going")))

	// Deleting the pod stops the container: the stream ends.
	w.markDeleted("ticker", 0)
	w.g.Eventually(lines).WithTimeout(20 * time.Second).Should(BeClosed())
}

func TestKubeletAPIResourceMetrics(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	var hostIP net.IP
	w := newAgentWorld(t, func(c *Config) {
		hostIP = c.Network.Gateway()
		serving := ca.issue(t, "node-a", nil, []net.IP{hostIP})
		c.ServingCert = &serving
		c.CACert = ca.pem
	})
	auth := &fakeAuth{grants: map[string][]string{"metrics-server": {"metrics"}}}
	auth.install(w)
	node, err := w.client.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
	w.g.Expect(err).NotTo(HaveOccurred())
	url := "https://" + net.JoinHostPort(hostIP.String(), strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))) + "/metrics/resource"
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	// A bounded busy loop, then idle: the container has used CPU time.
	w.create(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "busy"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "konductor.dev/echo",
			Command: []string{"sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done; exec sleep 600`},
		}}},
	})
	w.g.Eventually(func() (string, error) {
		path, _, err := w.agent.logs.find("node-a", "default", "busy", "main", false)
		if err != nil {
			return "", err
		}
		raw, err := os.ReadFile(path)
		return string(raw), err
	}).WithTimeout(60 * time.Second).Should(ContainSubstring(" stdout F done\n"))

	scrape := func(token string) (int, map[string]*dto.MetricFamily) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		w.g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, nil
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		w.g.Expect(err).NotTo(HaveOccurred())
		return resp.StatusCode, families
	}
	status, _ := scrape("token-nobody")
	w.g.Expect(status).To(Equal(http.StatusForbidden))
	w.g.Expect(auth.reviews()).To(ContainElement("nobody get nodes/metrics node-a"))

	before := time.Now()
	status, families := scrape("token-metrics-server")
	w.g.Expect(status).To(Equal(http.StatusOK))
	sample := func(name string, labels map[string]string) *dto.Metric {
		f := families[name]
		w.g.Expect(f).NotTo(BeNil(), "metric %s", name)
		for _, m := range f.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				w.g.Expect(m.GetTimestampMs()).To(BeNumerically("~", before.UnixMilli(), 60_000), "%s carries the scrape time", name)
				return m
			}
		}
		t.Fatalf("no %s%v in %v", name, labels, f)
		return nil
	}
	value := func(m *dto.Metric) float64 {
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	ctr := map[string]string{"container": "main", "pod": "busy", "namespace": "default"}
	pod := map[string]string{"pod": "busy", "namespace": "default"}
	cpu := value(sample("container_cpu_usage_seconds_total", ctr))
	w.g.Expect(cpu).To(BeNumerically(">", 0), "the busy loop's CPU time")
	w.g.Expect(value(sample("container_memory_working_set_bytes", ctr))).To(BeNumerically(">", 100*1024))
	w.g.Expect(value(sample("container_start_time_seconds", ctr))).To(BeNumerically("~", float64(before.Unix()), 120))
	w.g.Expect(value(sample("pod_cpu_usage_seconds_total", pod))).To(Equal(cpu))
	w.g.Expect(value(sample("node_cpu_usage_seconds_total", map[string]string{}))).To(BeNumerically(">=", cpu))
	w.g.Expect(value(sample("node_memory_working_set_bytes", map[string]string{}))).To(BeNumerically(">", 0))
	w.g.Expect(value(sample("resource_scrape_error", map[string]string{}))).To(BeZero())
}

func TestParseLogQuery(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		query            string
		want             logOptions
		follow, previous bool
		err              string
	}{
		{query: "", want: logOptions{TailLines: -1}},
		{query: "follow=true&previous=1&timestamps=true", want: logOptions{TailLines: -1, Timestamps: true}, follow: true, previous: true},
		{query: "tailLines=0&limitBytes=10", want: logOptions{TailLines: 0, LimitBytes: 10}},
		{query: "sinceSeconds=90", want: logOptions{TailLines: -1, Since: now.Add(-90 * time.Second)}},
		{query: "sinceTime=2026-03-01T11:00:00Z", want: logOptions{TailLines: -1, Since: now.Add(-time.Hour)}},
		{query: "stream=Stderr", want: logOptions{TailLines: -1, Stream: streamStderr}},
		{query: "stream=All&tailLines=3", want: logOptions{TailLines: 3}},
		{query: "follow=yes", err: `query parameter follow: "yes" is not a boolean`},
		{query: "tailLines=-1", err: "query parameter tailLines: must be at least 0"},
		{query: "limitBytes=0", err: "query parameter limitBytes: must be at least 1"},
		{query: "sinceSeconds=x", err: `query parameter sinceSeconds: "x" is not an integer`},
		{query: "sinceSeconds=5&sinceTime=2026-03-01T11:00:00Z", err: "at most one of sinceTime or sinceSeconds may be specified"},
		{query: "sinceTime=yesterday", err: `query parameter sinceTime: "yesterday" is not an RFC 3339 time`},
		{query: "stream=Both", err: `query parameter stream: "Both" is not one of All, Stdout, Stderr`},
		{query: "stream=Stdout&tailLines=1", err: "tailLines may not be combined with a single stream"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			opts, follow, previous, err := parseLogQuery(q, now)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !opts.Since.Equal(tt.want.Since) {
				t.Errorf("since %v, want %v", opts.Since, tt.want.Since)
			}
			opts.Since, tt.want.Since = time.Time{}, time.Time{}
			if opts != tt.want || follow != tt.follow || previous != tt.previous {
				t.Errorf("got %+v follow=%v previous=%v, want %+v follow=%v previous=%v", opts, follow, previous, tt.want, tt.follow, tt.previous)
			}
		})
	}
}

func TestRequestSubresources(t *testing.T) {
	for path, want := range map[string][]string{
		"/containerLogs/ns/pod/c": {"proxy"},
		"/metrics/resource":       {"metrics"},
		"/metrics":                {"metrics"},
		"/metricsfoo":             {"proxy"},
		"/stats/summary":          {"stats"},
		"/logs/syslog":            {"log"},
		"/spec/":                  {"spec"},
		"/checkpoint/ns/pod/c":    {"checkpoint"},
		"/healthz":                {"healthz", "proxy"},
		"/pods":                   {"pods", "proxy"},
		"/runningpods/":           {"pods", "proxy"},
		"/configz":                {"configz", "proxy"},
		"/exec/ns/pod/c":          {"proxy"},
	} {
		if got := requestSubresources(path); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}
