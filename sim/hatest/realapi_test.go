package hatest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"konductor.dev/controller/election"
	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/manager"
	"konductor.dev/controller/options"
	localcluster "konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/clustertest"
	kongsim "konductor.dev/sim/kong"
)

// Real-time election timings against the real API server. The lease must
// be whole seconds (options validation).
const (
	realLease = 4 * time.Second
	realRenew = 3 * time.Second
	realRetry = 500 * time.Millisecond
	realDrift = time.Second
	// realBound bounds every convergence that is not itself measured.
	realBound = 20 * time.Second
)

// TestRealAPIServerSingleWriterAndHandover runs the HA specification
// against a real etcd + kube-apiserver (sim/cluster) instead of the
// simulated API server: the lock, its optimistic concurrency and the
// watches are Kubernetes' own. Three replicas, three DB-less kongsims on
// the in-memory network; exactly one replica writes; a graceful stop hands
// over within a second; a crash without release hands over within
// lease + retry + 1s; the Kong audits show one writer at a time.
//
// Without the control-plane binaries (hack/build-k8s.sh or
// $KONDUCTOR_K8S_BIN) it skips, except with CI=true where it fails.
func TestRealAPIServerSingleWriterAndHandover(t *testing.T) {
	g := NewWithT(t)
	rc := startRealCluster(t)

	rc.startAll()
	g.Eventually(rc.servesEverywhere("web")).WithTimeout(realBound).WithPolling(50*time.Millisecond).
		Should(Succeed(), "all three kongsims converge")
	g.Consistently(func() []string { return rc.writers() }).WithTimeout(2*realDrift+realRetry).
		Should(HaveLen(1), "exactly one replica writes")
	leader := rc.indexOf(rc.writers()[0])
	g.Expect(leader).NotTo(BeNumerically("<", 0))

	t.Log("graceful stop of the leader")
	old := rc.replicas[leader]
	stopped := time.Now()
	old.cancel()
	g.Expect(<-old.done).To(Succeed(), "Run of the stopped leader %s", old.identity)
	old.stopped = true
	g.Expect(rc.lockHolder()).NotTo(Equal(old.identity), "the stopped leader released the lock")
	rc.addApp(t, "after-stop")
	g.Eventually(rc.servesEverywhere("after-stop")).WithTimeout(realBound).WithPolling(10 * time.Millisecond).Should(Succeed())
	served := time.Now()
	first, ok := firstWriteAfterIn(rc.audit(), stopped, old.identity)
	g.Expect(ok).To(BeTrue(), "another replica wrote after the graceful stop")
	took := first.Time.Sub(stopped)
	t.Logf("graceful handover: stop → first write by %s %v; stop → change served by all kongsims %v", first.Writer, took, served.Sub(stopped))
	// The measured time is logged (target: well under a second). What is
	// asserted is the property: a released lock is taken before a lease
	// could have expired, which an unreleased one never is.
	g.Expect(took).To(BeNumerically("<", realLease), "stop → first write by the new leader")
	g.Expect(served.Sub(stopped)).To(BeNumerically("<", realLease), "stop → change made after the stop served everywhere")

	next := rc.indexOf(first.Writer)
	g.Expect(next).NotTo(BeNumerically("<", 0))
	// Let the new leader settle into renewing before it is killed.
	g.Consistently(func() string { return lastWriterIn(rc.audit()) }).WithTimeout(realRetry * 2).Should(Equal(first.Writer))

	t.Log("crash of the new leader without releasing the lock")
	crashed := rc.replicas[next]
	cut := time.Now()
	crashed.apiCut.Store(true)
	crashed.kongCut.Store(true)
	crashed.cancel()
	<-crashed.done // whatever it says, nobody hears it
	crashed.stopped = true
	g.Expect(rc.lockHolder()).To(Equal(crashed.identity), "the crashed leader could not release the lock")
	rc.addApp(t, "after-crash")
	// A liveness bound, not the timing goal (lease + retry + 0.5 s, logged):
	// the next leader must take over within two leases of the crash.
	bound := 2*realLease + realRetry
	g.Eventually(rc.servesEverywhere("after-crash")).WithTimeout(realBound).WithPolling(20 * time.Millisecond).Should(Succeed())
	served = time.Now()
	third, ok := firstWriteAfterIn(rc.audit(), cut, crashed.identity)
	g.Expect(ok).To(BeTrue())
	g.Expect(third.Writer).NotTo(Equal(old.identity), "the gracefully stopped replica wrote again")
	took = third.Time.Sub(cut)
	t.Logf("crash failover: kill → first write by %s %v; kill → change served by all kongsims %v (bound 2×lease+retry = %v)", third.Writer, took, served.Sub(cut), bound)
	g.Expect(took).To(BeNumerically("<=", bound), "kill → first write by the next leader")
	g.Expect(served.Sub(cut)).To(BeNumerically("<=", bound), "kill → change made after the crash served everywhere")

	audits := make([][]kongsim.AuditEntry, len(rc.kong))
	for i, n := range rc.kong {
		audits[i] = n.Audit()
	}
	terms, violations := singleWriterViolations(audits)
	g.Expect(violations).To(BeEmpty())
	g.Expect(len(terms)).To(BeNumerically(">=", 3), "three terms: first leader, after the stop, after the crash")
	for _, tm := range terms {
		t.Logf("term: epoch %d by %s, %d writes", tm.epoch, tm.writer, tm.writes)
	}
}

// realCluster is three replicas on a real API server and three kongsims.
type realCluster struct {
	t        *testing.T
	admin    kubernetes.Interface
	restCfg  *rest.Config
	kong     []*kongsim.Node
	urls     []string
	replicas []*realReplica
	// self, if set, names replica i's process in its Pod (pod evidence).
	self func(i int) *election.Self
	// started counts the incarnations of each replica index.
	started map[int]int
	// apiSent, if set, sees every API request a replica sends, before it
	// is sent; kongSent sees every Kong request and may hold it (it runs
	// on the request's goroutine) or fail it.
	apiSent  func(identity string, req *http.Request)
	kongSent func(identity string, kong int, req *http.Request) error
}

// realReplica is one in-process controller replica; its API server and
// Kong traffic can each be cut off, as a crashed process's would be.
type realReplica struct {
	index    int
	identity string
	apiCut   atomic.Bool
	kongCut  atomic.Bool
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
}

// startRealCluster starts the control plane and the kongsims, seeds the
// objects the replicas need and registers the cleanup of everything.
func startRealCluster(t *testing.T) *realCluster {
	t.Helper()
	ctx := context.Background()
	binDir := clustertest.Binaries(t)
	kc, err := localcluster.Start(ctx, localcluster.Options{
		BinDir:    binDir,
		StateRoot: filepath.Join(os.TempDir(), "konductor-hatest-realapi"),
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatalf("starting the local cluster: %v", err)
	}
	t.Logf("cluster %s up in %v", kc.Name, kc.StartupTime)
	rc := &realCluster{t: t, restCfg: kc.RESTConfig()}
	nodesCtx, stopNodes := context.WithCancel(context.Background())
	var nodesWG sync.WaitGroup
	// Cleanups run last-registered first: replicas, then kongsims, then
	// the control plane.
	t.Cleanup(func() {
		if err := kc.Stop(context.Background()); err != nil {
			t.Errorf("stopping the local cluster: %v", err)
		}
	})
	t.Cleanup(func() {
		stopNodes()
		nodesWG.Wait()
	})
	t.Cleanup(rc.stopAll)

	rc.admin, err = kc.Client()
	if err != nil {
		t.Fatal(err)
	}
	for i := range replicaCount {
		n, err := kongsim.NewNode(kongsim.Options{Hostname: "kong-" + strconv.Itoa(i), ProxyTransport: echoUpstream{}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		rc.kong = append(rc.kong, n)
		rc.urls = append(rc.urls, "http://"+kongHost(i))
		nodesWG.Go(func() { _ = n.Run(nodesCtx) })
	}

	if _, err := rc.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: electionNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", electionNamespace, err)
	}
	class := &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "kong"},
		Spec:       networkingv1.IngressClassSpec{Controller: ingressclass.ControllerName},
	}
	if _, err := rc.admin.NetworkingV1().IngressClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating IngressClass kong: %v", err)
	}
	rc.addApp(t, "web")
	return rc
}

// addApp creates app(name) — Service, EndpointSlice, Ingress — through the
// real API server, leaving the server-assigned fields to the server.
func (rc *realCluster) addApp(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range app(name, 8080) {
		var err error
		switch o := obj.(type) {
		case *corev1.Service:
			o.UID, o.Spec.ClusterIP = "", "" // allocated from the cluster's range
			_, err = rc.admin.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *discoveryv1.EndpointSlice:
			// The real API server refuses loopback endpoints; the kongsims'
			// echo upstream answers for any address.
			o.Endpoints[0].Addresses = []string{"192.0.2.10"}
			_, err = rc.admin.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			o.UID, o.Generation = "", 0
			_, err = rc.admin.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("unexpected object %T", obj)
		}
		if err != nil {
			t.Fatalf("creating app %s: %v", name, err)
		}
	}
}

func (rc *realCluster) startAll() {
	for i := range replicaCount {
		rc.start(i)
	}
}

// start runs replica i with its own clientset, whose requests fail once
// its apiCut is set, and its own Kong client, dropped once kongCut is set.
func (rc *realCluster) start(i int) {
	if rc.started == nil {
		rc.started = map[int]int{}
	}
	r := &realReplica{index: i, identity: fmt.Sprintf("konductor-real-%d", i)}
	if n := rc.started[i]; n > 0 {
		// Identities are unique per process.
		r.identity += "-" + strconv.Itoa(n)
	}
	rc.started[i]++
	cfg := rest.CopyConfig(rc.restCfg)
	cfg.UserAgent = r.identity
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return transportFunc(func(req *http.Request) (*http.Response, error) {
			if r.apiCut.Load() {
				return nil, errUnreachable
			}
			if rc.apiSent != nil {
				rc.apiSent(r.identity, req)
			}
			return rt.RoundTrip(req)
		})
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		rc.t.Fatalf("replica %d: %v", i, err)
	}
	o := options.Default()
	o.KongAdminURLs = rc.urls
	o.LeaderElect = options.LeaderElectTrue
	o.ElectionNamespace = electionNamespace
	o.PublishStatusAddress = []string{"203.0.113.7"}
	o.MetricsBindAddress, o.HealthProbeBindAddress = "", ""
	o.KongDriftCheckInterval = realDrift
	o.ElectionLeaseDuration, o.ElectionRenewDeadline, o.ElectionRetryPeriod = realLease, realRenew, realRetry
	kongClient := &http.Client{Transport: transportFunc(func(req *http.Request) (*http.Response, error) {
		if r.kongCut.Load() {
			return nil, errUnreachable
		}
		for k, n := range rc.kong {
			if req.URL.Host == kongHost(k) {
				if rc.kongSent != nil {
					if err := rc.kongSent(r.identity, k, req); err != nil {
						return nil, err
					}
				}
				return kongsim.NewInMemoryTransport(n.Admin()).RoundTrip(req)
			}
		}
		return nil, fmt.Errorf("dial tcp: lookup %s: no such host", req.URL.Host)
	})}
	var self *election.Self
	if rc.self != nil {
		self = rc.self(i)
	}
	m, err := manager.New(manager.Config{
		Options: o, Client: client, HTTPClient: kongClient,
		Identity: r.identity, PodName: fmt.Sprintf("konductor-%d", i), ElectionNamespace: electionNamespace,
		Logger: testLogger(r.identity), Self: self,
	})
	if err != nil {
		rc.t.Fatalf("replica %d: %v", i, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- m.Run(ctx) }()
	rc.replicas = append(rc.replicas, r)
}

func (rc *realCluster) stopAll() {
	for _, r := range rc.replicas {
		if !r.stopped {
			r.cancel()
			<-r.done
			r.stopped = true
		}
	}
}

// lockHolder reads the election lock's holder from the API server.
func (rc *realCluster) lockHolder() string {
	rc.t.Helper()
	cm, err := rc.admin.CoreV1().ConfigMaps(electionNamespace).Get(context.Background(), lockName, metav1.GetOptions{})
	if err != nil {
		rc.t.Fatalf("reading the lock %s/%s: %v", electionNamespace, lockName, err)
	}
	rec := cm.Annotations["control-plane.alpha.kubernetes.io/leader"]
	holder := ""
	if _, rest, ok := strings.Cut(rec, `"holderIdentity":"`); ok {
		holder, _, _ = strings.Cut(rest, `"`)
	}
	return holder
}

func (rc *realCluster) indexOf(identity string) int {
	for _, r := range rc.replicas {
		if r.identity == identity {
			return r.index
		}
	}
	return -1
}

// servesEverywhere checks that every kongsim proxies <name>.example.com.
func (rc *realCluster) servesEverywhere(names ...string) func() error {
	return func() error {
		for i, n := range rc.kong {
			for _, name := range names {
				if code, body := proxied(n, name+".example.com", "/"); code != http.StatusOK {
					return fmt.Errorf("kong-%d: %s.example.com answers %d %q", i, name, code, body)
				}
			}
		}
		return nil
	}
}

func (rc *realCluster) audit() []kongsim.AuditEntry {
	var all []kongsim.AuditEntry
	for _, n := range rc.kong {
		all = append(all, n.Audit()...)
	}
	sortByTime(all)
	return all
}

// writers returns the controller identities in the audits, in the order
// of their first write.
func (rc *realCluster) writers() []string {
	var ws []string
	seen := map[string]bool{}
	for _, e := range rc.audit() {
		if e.Writer != "" && !seen[e.Writer] {
			seen[e.Writer] = true
			ws = append(ws, e.Writer)
		}
	}
	return ws
}

func sortByTime(a []kongsim.AuditEntry) {
	sort.SliceStable(a, func(i, j int) bool { return a[i].Time.Before(a[j].Time) })
}

// firstWriteAfterIn is the first controller write at or after from by a
// writer other than not.
func firstWriteAfterIn(audit []kongsim.AuditEntry, from time.Time, not string) (kongsim.AuditEntry, bool) {
	for _, e := range audit {
		if e.Writer != "" && e.Writer != not && !e.Time.Before(from) {
			return e, true
		}
	}
	return kongsim.AuditEntry{}, false
}

func lastWriterIn(audit []kongsim.AuditEntry) string {
	for i := len(audit) - 1; i >= 0; i-- {
		if audit[i].Writer != "" {
			return audit[i].Writer
		}
	}
	return ""
}

// testWriter sends the build script's progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
