package footprint

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/pager"
	"k8s.io/client-go/util/retry"

	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/translate"
	localcluster "konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/clustertest"
	"konductor.dev/sim/internal/hashkong"
)

const (
	apps         = 10000
	namespace    = "footprint"
	ingressClass = "kong"
	// publishAddress is what --publish-status-address writes into every
	// Ingress status (TEST-NET-1: never routed).
	publishAddress = "192.0.2.10"
	createWorkers  = 16
	kongReplicas   = 3
)

// TestFootprint10k measures the konductor binary's memory after it synced
// 10k Ingresses, 10k Services and 10k EndpointSlices from a real API
// server to three Kong stand-ins and wrote every Ingress status, and again
// after one more change. The figures are logged, not asserted.
//
// Environment:
//   - KONDUCTOR_FOOTPRINT=1 runs it (minutes; root; control-plane binaries);
//   - KONDUCTOR_FOOTPRINT_BIN uses a prebuilt konductor instead of building
//     cmd/konductor (to compare two builds on the same workload);
//   - KONDUCTOR_FOOTPRINT_ARGS adds flags to the controller's command line;
//   - KONDUCTOR_FOOTPRINT_STATUS_TIMEOUT bounds the wait for the statuses
//     (a Go duration, default 45m: the binary's client-go rate limit);
//   - KONDUCTOR_FOOTPRINT_PPROF=<dir> starts the binary with --profiling
//     and saves a heap profile (after a collection) into dir at every
//     reading.
func TestFootprint10k(t *testing.T) {
	if os.Getenv("KONDUCTOR_FOOTPRINT") != "1" {
		t.Skip("set KONDUCTOR_FOOTPRINT=1 to measure the konductor binary's memory with 10k Ingresses on a real API server (minutes; needs root and the control-plane binaries)")
	}
	statusTimeout := 45 * time.Minute
	if v := os.Getenv("KONDUCTOR_FOOTPRINT_STATUS_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("KONDUCTOR_FOOTPRINT_STATUS_TIMEOUT: %v", err)
		}
		statusTimeout = d
	}
	ctx := t.Context()
	profileDir := os.Getenv(profileDirEnv)
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			t.Fatalf("%s: %v", profileDirEnv, err)
		}
	}
	bin := konductorBinary(t)

	kc := startCluster(t, "konductor-footprint")
	rc, admin := adminClient(t, kc)

	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	consumers, err := consumerCount()
	if err != nil {
		t.Fatal(err)
	}
	if consumers > 0 {
		if err := installConsumerCRD(ctx, admin, dyn); err != nil {
			t.Fatal(err)
		}
	}

	began := time.Now()
	if err := createWorkload(ctx, admin); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d Services, %d EndpointSlices and %d Ingresses with %d workers in %v",
		apps, apps, apps, createWorkers, time.Since(began).Round(time.Millisecond))
	if consumers > 0 {
		began = time.Now()
		if err := createConsumers(ctx, admin, dyn, consumers); err != nil {
			t.Fatal(err)
		}
		t.Logf("created %d KongConsumers, each with a key-auth Secret, in %v", consumers, time.Since(began).Round(time.Millisecond))
	}
	want, size := expectedHash(t, admin, dyn, consumers)

	var kongs []*hashKong
	args := []string{
		"--kubeconfig=" + kc.Kubeconfig,
		"--ingress-class=" + ingressClass,
		"--publish-status-address=" + publishAddress,
		"--metrics-bind-address=127.0.0.1:0",
		"--health-probe-bind-address=127.0.0.1:0",
		"--log-format=json",
	}
	pushed := hashkong.NewSignal() // fired by a push to any of them
	for range kongReplicas {
		k := startHashKong(t, pushed)
		kongs = append(kongs, k)
		args = append(args, "--kong-admin-url="+k.URL())
	}
	args = append(args, strings.Fields(os.Getenv("KONDUCTOR_FOOTPRINT_ARGS"))...)
	if profileDir != "" {
		args = append(args, "--profiling")
	}
	started := time.Now()
	ctrl := startController(t, bin, args)
	t.Logf("konductor pid %d: %s %s", ctrl.cmd.Process.Pid, bin, strings.Join(args, " "))

	measure := func(when string) {
		t.Helper()
		r, err := readMemory(ctx, ctrl.cmd.Process.Pid, "http://"+ctrl.metricsAddr+"/metrics")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		t.Logf("%s: %s", when, r)
		if profileDir != "" {
			path, err := saveHeapProfile(ctx, ctrl.metricsAddr, profileDir, strings.ReplaceAll(when, " ", "-"))
			if err != nil {
				t.Fatalf("%s: heap profile: %v", when, err)
			}
			t.Logf("%s: heap profile (after a collection) in %s", when, path)
		}
	}

	if err := waitForKongs(ctx, kongs, want, 10*time.Minute, ctrl); err != nil {
		t.Fatalf("%d Ingresses not synced to %d Kongs: %v\ncontroller log tail:\n%s", apps, kongReplicas, err, ctrl.log)
	}
	t.Logf("every Kong has all %d Ingresses %v after the controller started", apps, time.Since(started).Round(time.Millisecond))
	measure("after syncing to Kong")
	waitForCompaction(t, ctx, "http://"+ctrl.metricsAddr+"/metrics", size)
	settle(t, ctx, ctrl.cmd.Process.Pid, "http://"+ctrl.metricsAddr+"/metrics", "5s after the configuration was compressed", 5*time.Second)

	if err := waitForStatuses(ctx, t, admin, statusTimeout, ctrl); err != nil {
		t.Fatalf("Ingress statuses: %v\ncontroller log tail:\n%s", err, ctrl.log)
	}
	t.Logf("every Ingress status written %v after the controller started", time.Since(started).Round(time.Millisecond))
	measure("after every Ingress status")
	settle(t, ctx, ctrl.cmd.Process.Pid, "http://"+ctrl.metricsAddr+"/metrics", "one quiet minute after the statuses", time.Minute)

	changed := time.Now()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ing, err := admin.NetworkingV1().Ingresses(namespace).Get(ctx, app{index: 0}.name(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		ing.Spec.Rules[0].HTTP.Paths[0].Path = "/v2"
		_, err = admin.NetworkingV1().Ingresses(namespace).Update(ctx, ing, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("changing Ingress %s/%s: %v", namespace, app{index: 0}.name(), err)
	}
	want, size = expectedHash(t, admin, dyn, consumers)
	if err := waitForKongs(ctx, kongs, want, 2*time.Minute, ctrl); err != nil {
		t.Fatalf("the change did not reach every Kong: %v\ncontroller log tail:\n%s", err, ctrl.log)
	}
	t.Logf("one changed Ingress applied by every Kong in %v", time.Since(changed).Round(time.Millisecond))
	measure("after one more change")
	waitForCompaction(t, ctx, "http://"+ctrl.metricsAddr+"/metrics", size)
	settle(t, ctx, ctrl.cmd.Process.Pid, "http://"+ctrl.metricsAddr+"/metrics", "5s after the changed configuration was compressed", 5*time.Second)
}

// waitForCompaction waits until the controller keeps the configuration
// compressed (konductor_kong_config_retained_bytes below a quarter of the
// raw size): the configuration went idle and the burst is over. The binary
// then hands the garbage back to the operating system (a collection and a
// scavenge, after the gauge changed), so the caller reads over a window.
func waitForCompaction(t *testing.T, ctx context.Context, metricsURL string, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		v, err := metricGauges(ctx, metricsURL, "konductor_kong_config_retained_bytes")
		if err != nil {
			t.Fatal(err)
		}
		retained := v[0]
		if retained > 0 && retained < float64(size)/4 {
			t.Logf("configuration compressed to %.1f MiB %v later", retained/(1<<20), time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the %.1f MiB configuration was not compressed within a minute: %.0f bytes retained", mib(uint64(size)), retained)
		}
	}
}

// konductorBinary is $KONDUCTOR_FOOTPRINT_BIN or a fresh build of
// cmd/konductor.
func konductorBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("KONDUCTOR_FOOTPRINT_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("KONDUCTOR_FOOTPRINT_BIN: %v", err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "konductor")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "konductor.dev/cmd/konductor").CombinedOutput()
	if err != nil {
		t.Fatalf("go build konductor.dev/cmd/konductor: %v\n%s", err, out)
	}
	return bin
}

// startCluster starts the local process cluster with its state in
// os.TempDir()/stateDir, and stops it when the test ends.
func startCluster(t *testing.T, stateDir string) *localcluster.Cluster {
	t.Helper()
	kc, err := localcluster.Start(t.Context(), localcluster.Options{
		BinDir:    clustertest.Binaries(t),
		StateRoot: filepath.Join(os.TempDir(), stateDir),
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatalf("starting the local cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := kc.Stop(context.Background()); err != nil {
			t.Errorf("stopping the local cluster: %v", err)
		}
	})
	t.Logf("cluster %s up in %v", kc.Name, kc.StartupTime.Round(time.Millisecond))
	return kc
}

// adminClient is an unthrottled client of kc: the workload is created as
// fast as the API server takes it.
func adminClient(t *testing.T, kc *localcluster.Cluster) (*rest.Config, kubernetes.Interface) {
	t.Helper()
	rc := kc.RESTConfig()
	rc.QPS = -1
	admin, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return rc, admin
}

// createWorkload creates the IngressClass, the namespace and every app's
// Service, EndpointSlice and Ingress, createWorkers apps at a time.
func createWorkload(ctx context.Context, c kubernetes.Interface) error {
	class := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: ingressClass}}
	class.Spec.Controller = ingressclass.ControllerName
	if _, err := c.NetworkingV1().IngressClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating IngressClass %s: %w", ingressClass, err)
	}
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// kubectl apply's field manager, so managedFields look as users' do.
	applied := metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}
	indexes := make(chan int)
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Go(func() {
			for i := range indexes {
				a := app{namespace: namespace, index: i}
				svc, err := c.CoreV1().Services(namespace).Create(ctx, a.service(), applied)
				if err != nil {
					cancel(fmt.Errorf("creating Service %s/%s: %w", namespace, a.name(), err))
					return
				}
				if _, err := c.DiscoveryV1().EndpointSlices(namespace).Create(ctx, a.endpointSlice(svc.UID), metav1.CreateOptions{FieldManager: "footprint-endpointslice-writer"}); err != nil {
					cancel(fmt.Errorf("creating EndpointSlice for %s/%s: %w", namespace, a.name(), err))
					return
				}
				if _, err := c.NetworkingV1().Ingresses(namespace).Create(ctx, a.ingress(ingressClass), applied); err != nil {
					cancel(fmt.Errorf("creating Ingress %s/%s: %w", namespace, a.name(), err))
					return
				}
			}
		})
	}
	for i := range apps {
		select {
		case indexes <- i:
		case <-ctx.Done():
		}
	}
	close(indexes)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// expectedHash translates what the API server holds, as the controller
// should, and returns the sha256 of the body every Kong must receive. The
// controller's cache keeps only what translation reads: a transform that
// dropped too much shows as a hash that never comes.
func expectedHash(t *testing.T, c kubernetes.Interface, dyn dynamic.Interface, consumers int) (hash string, size int) {
	t.Helper()
	ctx := t.Context()
	var s translate.Objects
	lists := []struct {
		what string
		list func(context.Context, metav1.ListOptions) (runtime.Object, error)
		add  func(any)
	}{
		{"Ingresses", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.NetworkingV1().Ingresses("").List(ctx, o)
		}, func(o any) {
			if ing := o.(*networkingv1.Ingress); ingressclass.Matches(ing, ingressClass, false) {
				s.Ingresses = append(s.Ingresses, ing)
			}
		}},
		{"Services", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Services("").List(ctx, o)
		}, func(o any) { s.Services = append(s.Services, o.(*corev1.Service)) }},
		{"EndpointSlices", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.DiscoveryV1().EndpointSlices("").List(ctx, o)
		}, func(o any) { s.EndpointSlices = append(s.EndpointSlices, o.(*discoveryv1.EndpointSlice)) }},
		{"TLS Secrets", func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = "type=" + string(corev1.SecretTypeTLS)
			return c.CoreV1().Secrets("").List(ctx, o)
		}, func(o any) { s.Secrets = append(s.Secrets, o.(*corev1.Secret)) }},
	}
	for _, l := range lists {
		p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return l.list(ctx, o)
		})
		if err := p.EachListItem(ctx, metav1.ListOptions{}, func(o runtime.Object) error {
			l.add(o)
			return nil
		}); err != nil {
			t.Fatalf("listing %s: %v", l.what, err)
		}
	}
	if consumers > 0 {
		if err := listConsumers(ctx, c, dyn, &s); err != nil {
			t.Fatal(err)
		}
	}
	res := translate.Translate(s.Snapshot(), translate.Options{})
	if len(res.Config.Consumers) != consumers {
		t.Fatalf("the workload translates into %d consumers, want %d; errors: %v", len(res.Config.Consumers), consumers, res.Errors[:min(3, len(res.Errors))])
	}
	if len(res.Translated) != apps {
		t.Fatalf("the workload translates into %d routed Ingresses, want %d; errors: %v", len(res.Translated), apps, res.Errors)
	}
	t.Logf("expected configuration: %d Ingresses, %.1f MiB of JSON", len(res.Translated), mib(uint64(len(res.Body))))
	return sha256Hex(res.Body), len(res.Body)
}

// waitForKongs waits until every Kong accepted the body hashed want.
func waitForKongs(ctx context.Context, kongs []*hashKong, want string, within time.Duration, ctrl *controllerProcess) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		// The Kongs share one Signal: any Kong's next push is worth a look.
		changed := kongs[0].Changed()
		var hashes []string
		for _, k := range kongs {
			hashes = append(hashes, k.Hash())
		}
		if slices.Equal(hashes, slices.Repeat([]string{want}, len(kongs))) {
			return nil
		}
		select {
		case <-changed:
		case <-ctrl.exited:
			return fmt.Errorf("the controller exited: %v", ctrl.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%w within %v: Kongs have %v, want %s", ctx.Err(), within, hashes, want)
		}
	}
}

// waitForStatuses polls until every Ingress in the namespace carries the
// published address, logging progress.
func waitForStatuses(ctx context.Context, t *testing.T, c kubernetes.Interface, within time.Duration, ctrl *controllerProcess) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	poll := time.NewTicker(5 * time.Second)
	defer poll.Stop()
	lastLog := time.Now()
	for {
		written := 0
		p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return c.NetworkingV1().Ingresses(namespace).List(ctx, o)
		})
		err := p.EachListItem(ctx, metav1.ListOptions{}, func(o runtime.Object) error {
			lb := o.(*networkingv1.Ingress).Status.LoadBalancer.Ingress
			if len(lb) == 1 && lb[0].IP == publishAddress {
				written++
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("listing Ingresses: %w", err)
		}
		if written == apps {
			return nil
		}
		if time.Since(lastLog) >= 30*time.Second {
			t.Logf("%d of %d Ingress statuses written", written, apps)
			lastLog = time.Now()
		}
		select {
		case <-poll.C:
		case <-ctrl.exited:
			return fmt.Errorf("the controller exited: %v", ctrl.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d written within %v", written, apps, within)
		}
	}
}

// controllerProcess is the konductor binary running as its own process.
type controllerProcess struct {
	cmd         *exec.Cmd
	metricsAddr string
	exited      chan struct{}
	log         *logTail
}

// startController starts bin and returns once it serves /metrics. At test
// cleanup it gets SIGTERM, as from the kubelet, and must exit 0.
func startController(t *testing.T, bin string, args []string) *controllerProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAME=konductor-footprint")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &controllerProcess{cmd: cmd, exited: make(chan struct{}), log: &logTail{}}
	metrics := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.log.add(sc.Text())
			var line struct {
				Msg, Flag, Address string
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" && line.Flag == "metrics-bind-address" {
				metrics <- line.Address
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		<-readDone // Wait closes the pipe: read it all first
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			t.Errorf("konductor exited before the end: %v\n%s", cmd.ProcessState, p.log)
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("konductor exited %d after SIGTERM:\n%s", code, p.log)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
			t.Errorf("konductor ignored SIGTERM for 30s:\n%s", p.log)
		}
	})
	select {
	case p.metricsAddr = <-metrics:
	case <-p.exited:
		t.Fatalf("konductor exited before serving /metrics: %v\n%s", cmd.ProcessState, p.log)
	case <-time.After(time.Minute):
		t.Fatalf("konductor did not serve /metrics within a minute:\n%s", p.log)
	}
	return p
}

// logTail keeps the last lines the controller logged, for failures.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

func (l *logTail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 40 {
		l.lines = l.lines[1:]
	}
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// settle watches an idle controller for a window and logs where its memory
// ends up: Go's scavenger hands freed pages back to the OS gradually, so
// the reading right after a burst of work overstates the steady state.
// The window is a fixed measurement period, not a wait for a condition.
func settle(t *testing.T, ctx context.Context, pid int, metricsURL, when string, window time.Duration) {
	t.Helper()
	tick := time.NewTicker(min(5*time.Second, window/10))
	defer tick.Stop()
	deadline := time.After(window)
	lowest := ^uint64(0)
	for {
		select {
		case <-tick.C:
			r, err := readMemory(ctx, pid, metricsURL)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			lowest = min(lowest, r.rss)
		case <-deadline:
			r, err := readMemory(ctx, pid, metricsURL)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			t.Logf("%s: %s (lowest VmRSS in the window %.1f MiB)", when, r, float64(min(lowest, r.rss))/(1<<20))
			return
		}
	}
}
