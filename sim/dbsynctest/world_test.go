package dbsynctest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kong/go-kong/kong"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate"
	kongsim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

const (
	identity      = "konductor-0-abcde"
	epoch         = int64(7)
	driftInterval = 10 * time.Second
	// updateFrequency is how often kongsim nodes poll the database.
	updateFrequency = time.Second
)

// app describes one Ingress with its own Service and EndpointSlice.
type app struct {
	name      string
	endpoints []string // ready pod IPs
	tls       bool
	stripPath bool
}

// snapshot builds the Kubernetes objects for apps; a TLS app gets a
// self-signed certificate for its host.
func snapshot(t testing.TB, apps []app) translate.Snapshot {
	var s translate.Objects
	prefix := networkingv1.PathTypePrefix
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, a := range apps {
		host := a.name + ".example.com"
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: "default", UID: types.UID("ing-" + a.name),
				CreationTimestamp: metav1.NewTime(created.Add(time.Duration(i) * time.Second))},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/api", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: a.name, Port: networkingv1.ServiceBackendPort{Number: 80}}},
					}},
				}},
			}}},
		}
		if a.stripPath {
			ing.Annotations = map[string]string{translate.AnnotationStripPath: "true"}
		}
		if a.tls {
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: a.name + "-tls"}}
			certPEM, keyPEM := selfSigned(t, host)
			s.Secrets = append(s.Secrets, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: a.name + "-tls", Namespace: "default"},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
			})
		}
		s.Ingresses = append(s.Ingresses, ing)
		s.Services = append(s.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: "default", UID: types.UID("svc-" + a.name)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		portName, port, ready := "http", int32(8080), true
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: a.name + "-x", Namespace: "default",
				Labels: map[string]string{discoveryv1.LabelServiceName: a.name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		for _, ip := range a.endpoints {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			})
		}
		s.EndpointSlices = append(s.EndpointSlices, slice)
	}
	return s.Snapshot()
}

// certCache keeps test certificates stable across translations of one test,
// so an unchanged app does not look like a changed certificate.
var certCache sync.Map

func selfSigned(t testing.TB, host string) (certPEM, keyPEM []byte) {
	if v, ok := certCache.Load(host); ok {
		p := v.([2][]byte)
		return p[0], p[1]
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certCache.Store(host, [2][]byte{certPEM, keyPEM})
	return certPEM, keyPEM
}

// desired translates apps into version v.
func desired(t testing.TB, apps []app, v uint64) dbsync.Desired {
	res := translate.Translate(snapshot(t, apps), translate.Options{})
	if len(res.Errors) > 0 {
		t.Fatalf("translation errors: %v", res.Errors)
	}
	return dbsync.Desired{Config: res.Config, Hash: res.Hash, Version: v}
}

// gate is a WriteGate the test opens and closes.
type gate struct {
	mu   sync.Mutex
	term fence.Term
	open bool
}

func (g *gate) Permit() (fence.Term, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.term, g.open
}

func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
}

// router sends each request to the kongsim node named by its URL host, and
// fails like a refused connection for nodes marked down.
type router struct {
	mu    sync.Mutex
	nodes map[string]http.RoundTripper
	down  map[string]bool
	// failList makes GET of this collection answer 500.
	failList string
	// latency delays every request (a database-backed Kong answers in
	// milliseconds, not in zero virtual time).
	latency time.Duration
}

func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	rt, ok := r.nodes[req.URL.Host]
	down := r.down[req.URL.Host]
	failList := r.failList
	latency := r.latency
	r.mu.Unlock()
	if latency > 0 {
		// A request its sender gives up on ends at once, as on a real
		// connection.
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
	if req.URL.Path == "/targets" || strings.HasPrefix(req.URL.Path, "/targets/") {
		// Real Kong disables the top-level targets endpoints (targets live
		// below their upstream); kongsim serves them, so refuse them here
		// to keep the Syncer honest.
		return jsonResponse(req, http.StatusNotFound, `{"message":"Not found"}`), nil
	}
	if req.Method == http.MethodGet && failList != "" && req.URL.Path == "/"+failList {
		return jsonResponse(req, http.StatusInternalServerError, `{"message":"An unexpected error occurred"}`), nil
	}
	if !ok || down {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return rt.RoundTrip(req)
}

func jsonResponse(req *http.Request, code int, body string) *http.Response {
	return &http.Response{
		StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}

func (r *router) setDown(host string, down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down[host] = down
}

// world is kongsim in DB mode (nodes sharing one in-memory database) and a
// Syncer writing to it, all inside a synctest bubble.
type world struct {
	t      *testing.T
	ctx    context.Context
	db     *store.Memory
	nodes  map[string]*kongsim.Node // by host
	router *router
	gate   *gate
	reg    *prometheus.Registry
	syncer *dbsync.Syncer

	mu         sync.Mutex
	rejections []kongsync.Rejection
	logs       strings.Builder // the Syncer's log lines, under mu
}

// lockedWriter appends to the world's log buffer under its lock.
type lockedWriter struct{ w *world }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.w.logs.Write(p)
}

// syncerLogs returns everything the Syncer logged so far.
func (w *world) syncerLogs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

type worldOptions struct {
	nodes      int // default 1
	allowEmpty bool
}

// newWorld starts the nodes and the Syncer; they stop when the test (the
// synctest bubble's function) returns.
func newWorld(t *testing.T, wo worldOptions) *world {
	if wo.nodes == 0 {
		wo.nodes = 1
	}
	ctx, cancel := context.WithCancel(t.Context())
	w := &world{
		t: t, ctx: ctx, db: store.NewMemory(), nodes: map[string]*kongsim.Node{},
		router: &router{nodes: map[string]http.RoundTripper{}, down: map[string]bool{}},
		gate:   &gate{term: fence.Term{Identity: identity, Epoch: epoch}, open: true},
		reg:    prometheus.NewRegistry(),
	}
	var wg sync.WaitGroup
	var targets []kongsync.Target
	for i := range wo.nodes {
		host := fmt.Sprintf("kong-%d:8001", i)
		n, err := kongsim.NewNode(kongsim.Options{
			Database: kongsim.DatabasePostgres, Backend: w.db, UpdateFrequency: updateFrequency,
			Hostname: host, ProxyTransport: echoUpstream{}, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		w.nodes[host] = n
		w.router.nodes[host] = kongsim.NewInMemoryTransport(n.Admin())
		targets = append(targets, kongsync.Target{Name: host, URL: "http://" + host})
		wg.Go(func() { _ = n.Run(ctx) })
	}
	w.syncer = dbsync.New(dbsync.Options{
		Client: &http.Client{Transport: w.router}, Gate: w.gate, Identity: identity,
		Concurrency: 4, Timeout: 5 * time.Second, BackoffMin: 500 * time.Millisecond, BackoffMax: 8 * time.Second,
		DriftInterval: driftInterval, AllowEmpty: wo.allowEmpty, Registerer: w.reg,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{w}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnRejected: func(_ dbsync.Desired, rs []kongsync.Rejection) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.rejections = append(w.rejections, rs...)
		},
	})
	w.syncer.SetTargets(targets)
	wg.Go(func() { _ = w.syncer.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return w
}

// waitApplied advances virtual time until the database holds version v.
func (w *world) waitApplied(v uint64) {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !w.syncer.AllApplied(v) {
		if time.Now().After(deadline) {
			w.t.Fatalf("version %d not applied within a minute of virtual time; status %+v", v, w.syncer.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	synctest.Wait()
}

// advance lets d of virtual time pass with every goroutine running.
func (w *world) advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// anyNode returns the first node.
func (w *world) node(i int) *kongsim.Node { return w.nodes[fmt.Sprintf("kong-%d:8001", i)] }

// ourWrites returns the audited writes made by the Syncer on every node.
func (w *world) ourWrites() []kongsim.AuditEntry {
	var out []kongsim.AuditEntry
	for _, n := range w.nodes {
		for _, e := range n.Audit() {
			if e.Writer != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// admin returns a go-kong client for node i without any term: a human with
// kubectl port-forward and curl.
func (w *world) admin(i int) *kong.Client {
	host := fmt.Sprintf("kong-%d:8001", i)
	c, err := kong.NewClient(kong.String("http://"+host), &http.Client{Transport: w.router})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// stored returns the database's records by type and id.
func (w *world) stored() map[string]map[string]json.RawMessage {
	w.t.Helper()
	recs, _, err := w.db.Load(context.Background())
	if err != nil {
		w.t.Fatalf("loading the database: %v", err)
	}
	out := map[string]map[string]json.RawMessage{}
	for _, r := range recs {
		if out[r.Type] == nil {
			out[r.Type] = map[string]json.RawMessage{}
		}
		out[r.Type][r.ID] = r.Body
	}
	return out
}

// counts returns how many records of each type carry the managed-by tag.
func (w *world) managedCounts() map[string]int {
	w.t.Helper()
	out := map[string]int{}
	for typ, byID := range w.stored() {
		for _, body := range byID {
			var e struct {
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				w.t.Fatal(err)
			}
			for _, tag := range e.Tags {
				if tag == translate.ManagedByTag {
					out[typ]++
				}
			}
		}
	}
	return out
}

// metric returns a counter's value (0 when absent).
func (w *world) metric(name string, labels map[string]string) float64 {
	w.t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// expectCounts checks the database holds exactly the entities of d.
func (w *world) expectCounts(d dbsync.Desired) {
	w.t.Helper()
	want := map[string]int{}
	for k, n := range d.Config.Counts() {
		if n > 0 {
			want[k] = n
		}
	}
	got := map[string]int{}
	for typ, n := range w.managedCounts() {
		switch typ {
		case "keyauth_credentials", "basicauth_credentials", "jwt_secrets", "acls", "hmacauth_credentials":
			// Counts reports every credential kind as one.
			typ = "credentials"
		}
		got[typ] += n
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		w.t.Fatalf("managed entities in the database: %v, want %v", got, want)
	}
}

func apps(n int) []app {
	out := make([]app, n)
	for i := range out {
		out[i] = app{name: fmt.Sprintf("app-%d", i), endpoints: []string{fmt.Sprintf("10.1.%d.1", i), fmt.Sprintf("10.1.%d.2", i)}}
	}
	out[0].tls = true
	return out
}

func inBubble(t *testing.T, f func(t *testing.T)) { synctest.Test(t, f) }
