package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"

	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/manager"
	"konductor.dev/controller/options"
	"konductor.dev/controller/translate"
	"konductor.dev/sim/kong"
)

// publishAddress is what the controller writes into Ingress status.
const publishAddress = "203.0.113.7"

func TestMain(m *testing.M) {
	// client-go logs watch restarts and event sink errors through klog;
	// keep the output for the tests' own story.
	if os.Getenv("KONDUCTOR_TEST_LOG") == "" {
		klog.SetLogger(logr.Discard())
	}
	code := m.Run()
	if kongsimBinary.path != "" {
		_ = os.RemoveAll(filepath.Dir(kongsimBinary.path))
	}
	os.Exit(code)
}

// testLogger shows the controller's log with KONDUCTOR_TEST_LOG=1 (in the
// test's output) or KONDUCTOR_TEST_LOG=stderr (unbuffered, for benchmarks).
func testLogger(t testing.TB) *slog.Logger {
	var out io.Writer
	switch os.Getenv("KONDUCTOR_TEST_LOG") {
	case "":
		return slog.New(slog.DiscardHandler)
	case "stderr":
		out = os.Stderr
	default:
		out = t.Output()
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// controller is one running manager.Manager.
type controller struct {
	m      *manager.Manager
	cancel context.CancelFunc
	done   chan error
}

// startController runs the real manager against client, configuring the
// Kong Admin APIs at urls through rt. flags come after the defaults
// (the manager's own debounce and drift timings unless overridden), so a
// test can override any of them. The manager stops at test cleanup and must
// exit cleanly.
func startController(t testing.TB, client *fake.Clientset, urls []string, rt http.RoundTripper, flags ...string) *controller {
	t.Helper()
	args := []string{
		"--publish-status-address=" + publishAddress,
		"--election-namespace=kong",
		"--metrics-bind-address=", "--health-probe-bind-address=",
	}
	for _, u := range urls {
		args = append(args, "--kong-admin-url="+u)
	}
	o, err := options.Parse(append(args, flags...), options.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manager.New(manager.Config{
		Options:    o,
		Client:     client,
		HTTPClient: &http.Client{Transport: rt},
		Identity:   "konductor-0",
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &controller{m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-c.done; err != nil {
			t.Errorf("manager.Run returned %v after a graceful shutdown", err)
		}
	})
	return c
}

// objects lists what the fake API server holds now.
type objects struct {
	ingresses []*networkingv1.Ingress
	services  []*corev1.Service
	slices    []*discoveryv1.EndpointSlice
	classes   []*networkingv1.IngressClass
}

func listObjects(t testing.TB, client *fake.Clientset) objects {
	t.Helper()
	ctx := context.Background()
	var o objects
	ings, err := client.NetworkingV1().Ingresses("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eps, err := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ics, err := client.NetworkingV1().IngressClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ics.Items {
		o.classes = append(o.classes, &ics.Items[i])
	}
	isDefault := ingressclass.AnyOurDefault(o.classes, IngressClass)
	for i := range ings.Items {
		if ingressclass.Matches(&ings.Items[i], IngressClass, isDefault) {
			o.ingresses = append(o.ingresses, &ings.Items[i])
		}
	}
	for i := range svcs.Items {
		o.services = append(o.services, &svcs.Items[i])
	}
	for i := range eps.Items {
		o.slices = append(o.slices, &eps.Items[i])
	}
	return o
}

// expected is what every Kong must serve for the API server's current
// content: the translator's document for it, as kongsim hashes it.
type expected struct {
	kongHash string
	result   translate.Result
}

func expectedConfig(t testing.TB, client *fake.Clientset) expected {
	t.Helper()
	res := expectedTranslation(t, client)
	st, err := kong.ParseDeclarative(res.Body, 0)
	if err != nil {
		t.Fatalf("kongsim refuses the translator's document: %v", err)
	}
	return expected{kongHash: st.Hash(), result: res}
}

// expectedTranslation translates what the API server holds.
func expectedTranslation(t testing.TB, client *fake.Clientset) translate.Result {
	t.Helper()
	o := listObjects(t, client)
	return translate.Translate(translate.Objects{Ingresses: o.ingresses, Services: o.services, EndpointSlices: o.slices}.Snapshot(), translate.Options{})
}

// create adds objects to the fake API server.
func create(t testing.TB, client *fake.Clientset, objs ...runtime.Object) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range objs {
		var err error
		switch o := obj.(type) {
		case *networkingv1.Ingress:
			_, err = client.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *discoveryv1.EndpointSlice:
			_, err = client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("create: unsupported %T", obj)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// updateIngress applies change to the stored Ingress and writes it back.
func updateIngress(t testing.TB, client *fake.Clientset, ns, name string, change func(*networkingv1.Ingress)) {
	t.Helper()
	ctx := context.Background()
	ing, err := client.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	change(ing)
	ing.Generation++
	if _, err := client.NetworkingV1().Ingresses(ns).Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// warnings returns the Warning Events about the named object with reason.
func warnings(t testing.TB, client *fake.Clientset, kind, name, reason string) []corev1.Event {
	t.Helper()
	list, err := client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name && e.Reason == reason && e.Type == corev1.EventTypeWarning {
			out = append(out, e)
		}
	}
	return out
}

// statusIPs returns the addresses in an Ingress's status.loadBalancer.
func statusIPs(t testing.TB, client *fake.Clientset, ns, name string) []string {
	t.Helper()
	ing, err := client.NetworkingV1().Ingresses(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, lb := range ing.Status.LoadBalancer.Ingress {
		ips = append(ips, lb.IP+lb.Hostname)
	}
	return ips
}

// eventually polls cond every 50ms (virtual time under synctest) until it
// returns nil, and fails the test with cond's last error after within.
func eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		<-tick.C
	}
}

// consistently polls cond every 50ms for the whole of d and fails the
// test the first time it returns an error.
func consistently(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := cond(); err != nil {
			t.Fatalf("%s: broken after %s: %v", what, d-time.Until(deadline), err)
		}
		if !time.Now().Before(deadline) {
			return
		}
		<-tick.C
	}
}

// serving checks that the listed nodes (all when none is listed) serve
// the configuration with hash want.
func serving(k *Kongs, want string, nodes ...int) error {
	hs := k.Hashes()
	if len(nodes) == 0 {
		for i := range hs {
			nodes = append(nodes, i)
		}
	}
	for _, i := range nodes {
		if hs[i] != want {
			return fmt.Errorf("kong-%d serves %s, want %s (all: %v)", i, hs[i], want, hs)
		}
	}
	return nil
}

// routedHosts lists the hosts of every route node i serves, through its
// Admin API as any client would read them.
func routedHosts(ctx context.Context, k *Kongs, i int) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, AdminURL(i)+"/routes?size=1000", nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.Transport().RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			Hosts []string `json:"hosts"`
		} `json:"data"`
	}
	if err := decodeJSON(resp, &page); err != nil {
		return nil, err
	}
	var hosts []string
	for _, r := range page.Data {
		hosts = append(hosts, r.Hosts...)
	}
	slices.Sort(hosts)
	return slices.Compact(hosts), nil
}

func decodeJSON(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
