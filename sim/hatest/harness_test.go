package hatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/manager"
	"konductor.dev/controller/options"
	"konductor.dev/sim/apiserver"
	kongsim "konductor.dev/sim/kong"
)

const (
	electionNamespace = "kong"
	lockName          = "ingress-controller-leader-kong"
	replicaCount      = 3
)

// errUnreachable is what a replica cut off from Kong sees.
var errUnreachable = errors.New("dial tcp: connect: connection refused")

// kongHost is Kong node i's Admin API host on the in-memory network.
func kongHost(i int) string { return "kong-" + strconv.Itoa(i) + ":8001" }

// kongPodAddr is Kong node i's Admin API as gateway discovery finds it.
func kongPodAddr(i int) string { return "10.0.0." + strconv.Itoa(i+1) + ":8001" }

// cluster is three controller replicas, one API server and some Kongs.
type cluster struct {
	t    testing.TB
	api  *apiserver.Server
	kong []*kongsim.Node
	// options builds one replica's flags; the harness sets identity-free
	// defaults, tests may change them before start.
	options  func() *options.Options
	dbPusher func(kongsync.Options) (manager.Pusher, error)

	// upstreamPort is the port of the apps' endpoints (127.0.0.1).
	upstreamPort int32
	// kongLatency delays every Admin API request (a database-backed Kong
	// answers in milliseconds, not in zero virtual time); 0: none.
	kongLatency time.Duration
	// logs, when set, records the replicas' log lines (see logRecord).
	logs *logRecord

	mu       sync.Mutex
	replicas []*replica
}

// replica is one controller replica; a restart is a new incarnation with
// a new identity, as a new pod process would have.
type replica struct {
	index     int
	gen       int
	identity  string
	cancel    context.CancelFunc
	done      chan error
	kongCut   atomic.Bool // its Kong traffic is dropped (a crashed process sends nothing)
	stopped   bool
	client    *http.Client
	stoppedAt time.Time
}

// newCluster starts the Kong nodes (their Run goroutines end with the test)
// and seeds the API server with one routed app.
func newCluster(t testing.TB, nodes []*kongsim.Node, urls []string, upstreamPort int32) *cluster {
	t.Helper()
	c := &cluster{t: t, api: apiserver.New(1), kong: nodes, upstreamPort: upstreamPort}
	c.options = func() *options.Options {
		o := options.Default()
		o.KongAdminURLs = urls
		o.LeaderElect = options.LeaderElectTrue
		o.ElectionNamespace = electionNamespace
		o.PublishStatusAddress = []string{"203.0.113.7"}
		o.MetricsBindAddress, o.HealthProbeBindAddress = "", ""
		o.KongDriftCheckInterval = 2 * time.Second
		return o
	}
	if err := c.api.Seed(app("web", c.upstreamPort)...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { _ = n.Run(ctx) })
	}
	t.Cleanup(func() {
		c.stopAll()
		cancel()
		wg.Wait()
	})
	return c
}

// newDBLessCluster is a cluster with n DB-less Kong nodes at
// http://kong-<i>:8001.
func newDBLessCluster(t testing.TB, n int) *cluster {
	t.Helper()
	nodes := make([]*kongsim.Node, n)
	urls := make([]string, n)
	for i := range n {
		node, err := kongsim.NewNode(kongsim.Options{Hostname: "kong-" + strconv.Itoa(i), ProxyTransport: echoUpstream{}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i], urls[i] = node, "http://"+kongHost(i)
	}
	return newCluster(t, nodes, urls, 8080)
}

// newDiscoveryCluster is newDBLessCluster with gateway discovery: the
// replicas find the Kongs through the EndpointSlice of Service
// kong/kong-admin, and --leader-elect keeps its default (auto), which must
// gate Kong writes by the election on its own.
func newDiscoveryCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := newDBLessCluster(t, n)
	base := c.options
	c.options = func() *options.Options {
		o := base()
		o.KongAdminURLs = nil
		o.KongAdminSvc = electionNamespace + "/kong-admin"
		o.LeaderElect = options.LeaderElectAuto
		return o
	}
	port, portName := int32(8001), "admin"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: electionNamespace, Name: "kong-admin-x", Labels: map[string]string{discoveryv1.LabelServiceName: "kong-admin"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	ready := true
	for i := range n {
		addr, _, _ := strings.Cut(kongPodAddr(i), ":")
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: electionNamespace, Name: "kong-" + strconv.Itoa(i)}})
	}
	if err := c.api.Seed(es); err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTrip routes a replica's Admin API request by host.
func (c *cluster) roundTrip(r *replica, req *http.Request) (*http.Response, error) {
	if r.kongCut.Load() {
		return nil, errUnreachable
	}
	if c.kongLatency > 0 {
		t := time.NewTimer(c.kongLatency)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
	for i, n := range c.kong {
		if req.URL.Host == kongHost(i) || req.URL.Host == kongPodAddr(i) {
			return kongsim.NewInMemoryTransport(n.Admin()).RoundTrip(req)
		}
	}
	return nil, fmt.Errorf("dial tcp: lookup %s: no such host", req.URL.Host)
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// startAll starts replicas 0..replicaCount-1.
func (c *cluster) startAll() {
	for range replicaCount {
		c.start()
	}
}

// start starts a new replica and returns its index.
func (c *cluster) start() int {
	c.mu.Lock()
	r := &replica{index: len(c.replicas)}
	c.replicas = append(c.replicas, r)
	c.mu.Unlock()
	c.run(r)
	return r.index
}

// restart starts replica i again as a new incarnation.
func (c *cluster) restart(i int) {
	c.mu.Lock()
	r := c.replicas[i]
	c.mu.Unlock()
	if !r.stopped {
		c.t.Fatalf("restart of replica %d which is still running", i)
	}
	c.api.SetFaults(r.identity, apiserver.Faults{})
	r.gen++
	r.stopped = false
	r.kongCut.Store(false)
	c.run(r)
}

func (c *cluster) run(r *replica) {
	r.identity = fmt.Sprintf("konductor-%d-%d", r.index, r.gen)
	r.client = &http.Client{Transport: transportFunc(func(req *http.Request) (*http.Response, error) { return c.roundTrip(r, req) })}
	m, err := manager.New(manager.Config{
		Options: c.options(), Client: c.api.Client(r.identity), HTTPClient: r.client,
		Identity: r.identity, PodName: fmt.Sprintf("konductor-%d", r.index), ElectionNamespace: electionNamespace,
		Logger: c.logger(r.identity), NewDBPusher: c.dbPusher,
	})
	if err != nil {
		c.t.Fatalf("replica %d: %v", r.index, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- m.Run(ctx) }()
}

// stop shuts replica i down gracefully (SIGTERM): it stops writing and
// releases the lock. It returns when Run has returned.
func (c *cluster) stop(i int) {
	r := c.replica(i)
	r.stoppedAt = time.Now()
	r.cancel()
	if err := <-r.done; err != nil {
		c.t.Errorf("replica %s: Run = %v", r.identity, err)
	}
	r.stopped = true
}

// crash kills replica i without any goodbye: from now on nothing it sends
// reaches the API server or Kong, so it cannot release the lock; then its
// process ends.
func (c *cluster) crash(i int) {
	r := c.replica(i)
	c.api.SetFaults(r.identity, apiserver.Faults{Partitioned: true})
	r.kongCut.Store(true)
	r.stoppedAt = time.Now()
	r.cancel()
	<-r.done // whatever it says, nobody hears it
	r.stopped = true
}

// partition gives replica i's API server requests these faults (it still
// reaches Kong); the zero Faults heal it.
func (c *cluster) partition(i int, f apiserver.Faults) {
	c.api.SetFaults(c.replica(i).identity, f)
}

func (c *cluster) replica(i int) *replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replicas[i]
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	rs := slices.Clone(c.replicas)
	c.mu.Unlock()
	for _, r := range rs {
		if !r.stopped {
			r.cancel()
			<-r.done
			r.stopped = true
		}
	}
}

// indexOf returns the replica whose current incarnation is identity.
func (c *cluster) indexOf(identity string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.replicas {
		if r.identity == identity {
			return r.index
		}
	}
	return -1
}

// audit merges every node's audit. Entries without a writer (changes made
// by hand through the Admin API) are kept: callers filter.
func (c *cluster) audit() []kongsim.AuditEntry {
	var all []kongsim.AuditEntry
	for _, n := range c.kong {
		all = append(all, n.Audit()...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all
}

// writers returns the controller identities found in the audit, in the
// order of their first write.
func (c *cluster) writers() []string {
	var ws []string
	for _, e := range c.audit() {
		if e.Writer != "" && !slices.Contains(ws, e.Writer) {
			ws = append(ws, e.Writer)
		}
	}
	return ws
}

// lastWriter is the identity of the latest controller write.
func (c *cluster) lastWriter() string {
	a := c.audit()
	for i := len(a) - 1; i >= 0; i-- {
		if a[i].Writer != "" {
			return a[i].Writer
		}
	}
	return ""
}

// firstWriteAfter returns the first write at or after from by a controller
// other than not.
func (c *cluster) firstWriteAfter(from time.Time, not string) (kongsim.AuditEntry, bool) {
	for _, e := range c.audit() {
		if e.Writer != "" && e.Writer != not && !e.Time.Before(from) {
			return e, true
		}
	}
	return kongsim.AuditEntry{}, false
}

// term is one writer's run of writes under one epoch.
type term struct {
	writer      string
	epoch       int64
	first, last time.Time
	writes      int
}

// checkSingleWriter applies singleWriterViolations to the cluster's
// audits, failing the test on each violation.
func (c *cluster) checkSingleWriter() []term {
	c.t.Helper()
	audits := make([][]kongsim.AuditEntry, len(c.kong))
	for i, n := range c.kong {
		audits[i] = n.Audit()
	}
	terms, violations := singleWriterViolations(audits)
	for _, v := range violations {
		c.t.Error(v)
	}
	return terms
}

// singleWriterViolations is the oracle on the Kong audits (one per node):
// each epoch belongs to one writer; terms follow each other in epoch order
// without overlapping in time (the next term's first write strictly after
// the previous term's last), and on each node epochs never go backwards.
// Entries without a writer (changes by hand) are ignored.
func singleWriterViolations(audits [][]kongsim.AuditEntry) ([]term, []string) {
	var violations []string
	var all []kongsim.AuditEntry
	for i, audit := range audits {
		var prev int64
		for _, e := range audit {
			if e.Writer == "" {
				continue
			}
			all = append(all, e)
			if e.Epoch < prev {
				violations = append(violations, fmt.Sprintf("kong-%d: epoch went backwards: %s wrote epoch %d at %s after epoch %d",
					i, e.Writer, e.Epoch, e.Time.Format(time.StampMilli), prev))
			}
			prev = max(prev, e.Epoch)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	byEpoch := map[int64]*term{}
	for _, e := range all {
		tm := byEpoch[e.Epoch]
		if tm == nil {
			tm = &term{writer: e.Writer, epoch: e.Epoch, first: e.Time}
			byEpoch[e.Epoch] = tm
		}
		if tm.writer != e.Writer {
			violations = append(violations, fmt.Sprintf("epoch %d written by two identities: %s and %s", e.Epoch, tm.writer, e.Writer))
		}
		tm.last = e.Time
		tm.writes++
	}
	terms := make([]term, 0, len(byEpoch))
	for _, tm := range byEpoch {
		terms = append(terms, *tm)
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i].epoch < terms[j].epoch })
	for i := 1; i < len(terms); i++ {
		p, n := terms[i-1], terms[i]
		if !n.first.After(p.last) {
			violations = append(violations, fmt.Sprintf("writes interleave: %s (epoch %d) wrote until %s, %s (epoch %d) from %s",
				p.writer, p.epoch, p.last.Format(time.StampMilli), n.writer, n.epoch, n.first.Format(time.StampMilli)))
		}
	}
	return terms, violations
}

// lockChanges returns when the lock object was written, by whom, with its
// holder afterwards.
func (c *cluster) lockChanges() []lockChange {
	var out []lockChange
	for _, ch := range c.api.Changes() {
		if ch.Resource.Resource != "configmaps" || ch.Namespace != electionNamespace || ch.Name != lockName {
			continue
		}
		cm, ok := ch.Object.(*corev1.ConfigMap)
		if !ok {
			continue
		}
		rec := cm.Annotations["control-plane.alpha.kubernetes.io/leader"]
		holder := ""
		if _, rest, ok := strings.Cut(rec, `"holderIdentity":"`); ok {
			holder, _, _ = strings.Cut(rest, `"`)
		}
		out = append(out, lockChange{at: ch.Time, client: ch.Client, holder: holder})
	}
	return out
}

type lockChange struct {
	at             time.Time
	client, holder string
}

// lastRenewal is when identity last wrote the lock while holding it.
func (c *cluster) lastRenewal(identity string) time.Time {
	var at time.Time
	for _, lc := range c.lockChanges() {
		if lc.client == identity && lc.holder == identity {
			at = lc.at
		}
	}
	return at
}

// addIngress creates one more routed app as a user would.
func (c *cluster) addIngress(name string) {
	c.t.Helper()
	if err := c.api.Apply(app(name, c.upstreamPort)...); err != nil {
		c.t.Fatal(err)
	}
}

// serves tells whether Kong node i proxies <name>.example.com to the app.
func (c *cluster) serves(i int, name string) bool {
	code, body := proxied(c.kong[i], name+".example.com", "/")
	return code == http.StatusOK && strings.HasPrefix(body, "upstream ")
}

// proxied sends GET path with host through n's proxy.
func proxied(n *kongsim.Node, host, path string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	rec := httptest.NewRecorder()
	n.Proxy().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// echoUpstream answers every proxied request itself (no sockets inside the
// synctest bubble), naming the upstream it was sent to.
type echoUpstream struct{}

func (echoUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	body := "upstream " + req.URL.Host + " saw " + req.URL.Path
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}, nil
}

// app is a Service, its EndpointSlice and an Ingress routing
// <name>.example.com to it, in namespace default; its one endpoint is
// 127.0.0.1:port.
func app(name string, port int32) []runtime.Object {
	class, prefix, portName, ready := "kong", networkingv1.PathTypePrefix, "http", true
	return []runtime.Object{
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("svc-" + name)},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP},
			}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		},
		&networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("ing-" + name), Generation: 1},
			Spec: networkingv1.IngressSpec{
				IngressClassName: &class,
				Rules: []networkingv1.IngressRule{{
					Host: name + ".example.com",
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}},
					}}}},
				}},
			},
		},
	}
}

// testLogger shows the replicas' logs with KONDUCTOR_TEST_LOG=1.
func testLogger(identity string) *slog.Logger {
	if os.Getenv("KONDUCTOR_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", identity)
}

// dbPusher is the manager's DB-mode pusher: dbsync behind the DB-less
// syncer's interface.
func dbPusher(o kongsync.Options) (manager.Pusher, error) { return dbsync.NewBodyPusher(o), nil }
