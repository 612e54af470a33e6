package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"

	"konductor.dev/controller/options"
	"konductor.dev/controller/testsupport/versioned"
)

const kongURL = "http://kong-0.test:8001"

func service(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("svc-" + name)},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
		}},
	}
}

func endpointSlice(svc string) *discoveryv1.EndpointSlice {
	port, name, ready := int32(8080), "http", true
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
}

func ingress(name, backend string) *networkingv1.Ingress {
	class, prefix := "kong", networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("ing-" + name), Generation: 1},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: name + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: backend, Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}}}},
			}},
		},
	}
}

// world is one controller replica against a fake API server and one Kong
// (or the Kongs of its spec).
type world struct {
	t      *testing.T
	client *fake.Clientset
	kong   *fakeKong
	spec   worldSpec
	o      *options.Options
	// admin serves the Admin API: kong, or the spec's Kongs.
	admin   http.Handler
	manager *Manager
	cancel  context.CancelFunc
	done    chan error
}

// worldSpec is what sets a world apart from the usual one (newWorld).
type worldSpec struct {
	// args are the controller's flags: defaultArgs when nil, or
	// discoveryArgs when kongs is set.
	args []string
	// kongs, when set, are the Kongs by Admin API address ("ip:port"),
	// found by gateway discovery instead of the world's one fakeKong at
	// kongURL.
	kongs hosts
	// adjust makes last changes to each replica's Config.
	adjust func(*Config)
}

var defaultArgs = []string{
	"--kong-admin-url=" + kongURL,
	"--publish-status-address=203.0.113.7",
	"--election-namespace=kong",
	"--sync-debounce=100ms",
	"--proxy-sync-seconds=0.3",
}

// discoveryArgs are the flags of gateway discovery: the Kongs are the
// endpoints of Service kong/kong-admin (adminSlice).
var discoveryArgs = []string{"--kong-admin-svc=kong/kong-admin", "--election-namespace=kong", "--publish-status-address=203.0.113.7"}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	return newWorldWith(t, worldSpec{}, objs...)
}

// newWorldWith builds a world as spec says, with replica-0 not yet
// started. The fake API server keeps the resourceVersion contract
// (versioned.NewClientset).
func newWorldWith(t *testing.T, spec worldSpec, objs ...runtime.Object) *world {
	t.Helper()
	args := spec.args
	switch {
	case args != nil:
	case spec.kongs != nil:
		args = discoveryArgs
	default:
		args = defaultArgs
	}
	o, err := options.Parse(args, options.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, client: versioned.NewClientset(objs...), kong: &fakeKong{}, spec: spec, o: o, done: make(chan error, 1)}
	w.admin = w.kong
	if spec.kongs != nil {
		w.admin = spec.kongs
	}
	w.manager = w.newManager("replica-0", w.client)
	return w
}

// newManager builds a replica of the world's controller (its flags, its
// Kongs) that reaches the API server through client.
func (w *world) newManager(identity string, client kubernetes.Interface) *Manager {
	w.t.Helper()
	cfg := Config{
		Options:    w.o,
		Client:     client,
		HTTPClient: &http.Client{Transport: memoryTransport{w.admin}},
		Identity:   identity,
		Logger:     testLogger(w.t),
	}
	if w.spec.adjust != nil {
		w.spec.adjust(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// replica adds another replica of the controller, not yet started, that
// shares the world's API server (reached through client, which may be the
// world's own) and its Kongs.
func (w *world) replica(identity string, client kubernetes.Interface) *world {
	r := &world{t: w.t, client: w.client, kong: w.kong, spec: w.spec, o: w.o, admin: w.admin, done: make(chan error, 1)}
	r.manager = r.newManager(identity, client)
	return r
}

// adminSlice is the EndpointSlice of Service kong/kong-admin with one
// endpoint at each address, the Pods kong-a, kong-b, … serving the Admin
// API on port 8444.
func adminSlice(addrs ...string) *discoveryv1.EndpointSlice {
	port, portName := int32(8444), "admin-tls"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "kong", Name: "kong-admin-x", Labels: map[string]string{discoveryv1.LabelServiceName: "kong-admin"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	for i, addr := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "kong", Name: "kong-" + string(rune('a'+i))}})
	}
	return es
}

// overloaded makes the fake API server refuse verb on resource, as an
// overloaded one does, while the returned flag is set (it starts unset).
// Call it before start: the fake's reactor chain must not change while
// the manager runs.
func (w *world) overloaded(verb, resource string) *atomic.Bool {
	var refuse atomic.Bool
	w.client.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if refuse.Load() {
			return true, nil, errors.New("API server overloaded")
		}
		return false, nil, nil
	})
	return &refuse
}

// updateAdminSlice replaces kong/kong-admin's EndpointSlice: Kongs come,
// go or change readiness.
func (w *world) updateAdminSlice(es *discoveryv1.EndpointSlice) {
	w.t.Helper()
	if _, err := w.client.DiscoveryV1().EndpointSlices("kong").Update(context.Background(), es, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// testLogger shows the manager's log with KONDUCTOR_TEST_LOG=1.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("KONDUCTOR_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestMain(m *testing.M) {
	// apimachinery's default error handlers include a rate limiter whose
	// last-error time is the real time at process start; inside a synctest
	// bubble (clock at year 2000) it would put every reflector that reports
	// an error to sleep for decades of virtual time. Keep only logging.
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
		func(ctx context.Context, err error, msg string, kv ...any) {
			klog.FromContext(ctx).Error(err, msg, kv...)
		},
	}
	// client-go reports the injected API errors through klog; keep the
	// test output for the test's own story.
	if os.Getenv("KONDUCTOR_TEST_LOG") == "" {
		klog.SetLogger(logr.Discard())
	}
	os.Exit(m.Run())
}

// syncedEchoWorld starts the usual one-application world (Service,
// EndpointSlice and Ingress "web" of Service "echo") and lets it sync; the
// caller stops it.
func syncedEchoWorld(t *testing.T) *world {
	w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
	w.start()
	settle(5 * time.Second)
	return w
}

// settle lets virtual time run for d, then waits until every goroutine of
// the bubble is blocked.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func (w *world) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- w.manager.Run(ctx) }()
}

// stop shuts the replica down and checks it exits cleanly.
func (w *world) stop() {
	w.t.Helper()
	w.cancel()
	if err := <-w.done; err != nil {
		w.t.Errorf("Run returned %v after a graceful shutdown", err)
	}
}

func (w *world) ready() error {
	for _, c := range w.manager.ReadyChecks() {
		if err := c.Func(); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	return nil
}

// countActions counts API calls with verb on resource (and subresource).
func (w *world) countActions(verb, resource, subresource string) int {
	n := 0
	for _, a := range w.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == subresource {
			n++
		}
	}
	return n
}

func (w *world) events(object, reason string) []corev1.Event {
	list, err := w.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == object && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func (w *world) create(obj runtime.Object) {
	w.t.Helper()
	var err error
	ctx := context.Background()
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		_, err = w.client.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = w.client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("unsupported %T", obj)
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

func TestNoPushBeforeCachesSynced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		listBlocked := w.overloaded("list", "ingresses")
		listBlocked.Store(true)
		w.start()
		defer w.stop()

		time.Sleep(5 * time.Second) // virtual: informers retry, the elector wins
		synctest.Wait()
		if n := w.kong.pushCount(); n != 0 {
			t.Fatalf("%d pushes before the Ingress cache synced; an empty cache must never be pushed", n)
		}
		if err := w.ready(); err == nil || !strings.Contains(err.Error(), "informers") {
			t.Errorf("ready = %v, want not ready on informers", err)
		}

		listBlocked.Store(false)
		time.Sleep(time.Minute) // covers the reflector's list backoff
		synctest.Wait()
		if n := w.kong.pushCount(); n != 1 {
			t.Fatalf("%d pushes after sync, want 1", n)
		}
		if got := w.kong.lastRoutes(); len(got) != 1 || !strings.HasPrefix(got[0], "default.web.") {
			t.Errorf("pushed routes %v, want the route of default/web", got)
		}
		if err := w.ready(); err != nil {
			t.Errorf("not ready after the first push: %v", err)
		}
	})
}

func TestBurstIsPushedOnceAfterDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := syncedEchoWorld(t)
		defer w.stop()
		if n := w.kong.pushCount(); n != 1 {
			t.Fatalf("initial pushes %d, want 1", n)
		}

		// Five Ingresses, 20ms apart: well inside one debounce period each.
		for i := range 5 {
			w.create(ingress(fmt.Sprintf("burst-%d", i), "echo"))
			time.Sleep(20 * time.Millisecond)
		}
		synctest.Wait()
		if n := w.kong.pushCount(); n != 1 {
			t.Fatalf("pushed during the burst (%d pushes): the debounce did not hold", n)
		}
		settle(time.Second)
		if n := w.kong.pushCount(); n != 2 {
			t.Fatalf("pushes after the burst %d, want exactly 2 (one for the whole burst)", n)
		}
		if got := w.kong.lastRoutes(); len(got) != 6 {
			t.Errorf("routes %v, want 6", got)
		}

		// Nothing changed: a later translation trigger pushes nothing.
		w.create(service("unused"))
		settle(2 * time.Second)
		if n := w.kong.pushCount(); n != 2 {
			t.Errorf("an irrelevant change caused a push (%d pushes)", n)
		}
	})
}

func TestBrokenIngressIsReportedAndTheRestPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"), ingress("broken", "missing"))
		w.start()
		defer w.stop()
		settle(5 * time.Second)

		routes := w.kong.lastRoutes()
		if !slices.ContainsFunc(routes, func(r string) bool { return strings.HasPrefix(r, "default.web.") }) {
			t.Errorf("routes %v lack default/web", routes)
		}
		if slices.ContainsFunc(routes, func(r string) bool { return strings.HasPrefix(r, "default.broken.") }) {
			t.Errorf("routes %v contain the broken Ingress", routes)
		}
		events := w.events("broken", "ServiceNotFound")
		if len(events) != 1 {
			t.Fatalf("%d ServiceNotFound events on default/broken, want 1", len(events))
		}
		if e := events[0]; e.Type != corev1.EventTypeWarning || e.InvolvedObject.Kind != "Ingress" || !strings.Contains(e.Message, "spec.rules[0]") {
			t.Errorf("event %s %s %s: %q", e.Type, e.InvolvedObject.Kind, e.Reason, e.Message)
		}

		// Later translations do not report the same error again.
		w.create(ingress("other", "echo"))
		settle(2 * time.Second)
		if n := w.countActions("create", "events", "") + w.countActions("patch", "events", ""); n != 1 {
			list, _ := w.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
			t.Errorf("%d event writes after a second translation, want still 1: %+v", n, list.Items)
		}
	})
}

func TestStatusWrittenAfterApplyAndNotRewritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		w.kong.setFailing(true)
		w.start()
		defer w.stop()

		settle(5 * time.Second)
		if w.kong.refusedCount() == 0 {
			t.Fatal("Kong was never asked")
		}
		if n := w.countActions("patch", "ingresses", "status"); n != 0 {
			t.Fatalf("status written %d times before Kong applied the configuration", n)
		}

		w.kong.setFailing(false)
		time.Sleep(time.Minute) // covers the syncer's backoff
		synctest.Wait()
		got, err := w.client.NetworkingV1().Ingresses("default").Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if lb := got.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != "203.0.113.7" {
			t.Fatalf("status %+v, want 203.0.113.7", lb)
		}
		if n := w.countActions("patch", "ingresses", "status"); n != 1 {
			t.Fatalf("%d status writes, want 1", n)
		}

		// More translations and pushes: the status is already right.
		w.create(ingress("second", "echo"))
		settle(5 * time.Second)
		if n := w.kong.pushCount(); n != 2 {
			t.Fatalf("pushes %d, want 2", n)
		}
		if n := w.countActions("patch", "ingresses", "status"); n != 2 {
			t.Errorf("%d status writes, want 2 (one per Ingress, none rewritten)", n)
		}
	})
}
