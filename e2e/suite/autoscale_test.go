//go:build e2e

package suite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"konductor.dev/e2e/harness"
	"konductor.dev/e2e/manifests"
)

// Bounds of the autoscaling load: a few request loops through the proxy,
// each at most one request per chain's loadInterval, for at most
// loadDuration.
const (
	loadLoops    = 6
	loadDuration = 4 * time.Minute
	// scaleOutTarget is how long the load step may take to turn into new
	// Kong replicas that serve.
	scaleOutTarget = 60 * time.Second
	// minRequests is how many requests each autoscaling run sends through
	// the proxy at least, load and watcher together.
	minRequests = 10000
)

// drillScaleDown replaces the shipped scale-down behaviour (5 minutes of
// stabilization, one pod a minute: right for production, where a removed
// Kong drains for its preStop period) in the test's own HPA and
// ScaledObject: the test's load stops at once, so there is no dip to
// smooth, and Kong may go straight back to its minimum. Each removed Kong
// still drains with kong quit under the watcher's traffic.
const drillScaleDown = `{stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 100, periodSeconds: 15}]}`

// autoscaleChain is one way a measure of Kong's load reaches the HPA that
// scales Kong: what the rig deploys for it, how it follows each link of
// the chain, and the checks that break a link on purpose. The rig
// (testAutoscale) is the same for every chain: the chain made whole, a
// load step through the proxy, the scale-out followed link by link, new
// Kongs Ready and configured, the scale-in, and no failed request.
type autoscaleChain struct {
	// feature names the feature; metric names what Kong scales on in the
	// step's title (no slash: it would nest the subtests).
	feature, metric string
	// components are deploy/components beside pdb (and kongsim); addons
	// are deploy/addons the chain runs on.
	components, addons []string
	// patches make the shipped autoscaler reachable by the test's bounded
	// load, and its scale-in short.
	patches []manifests.Patch
	// tune, if set, adjusts the rendered objects (addons included) for
	// the test, in ways that leave what the features prove unchanged.
	tune func(t *testing.T, objs []runtime.Object)
	// loadInterval paces each of the loadLoops request loops.
	loadInterval time.Duration
	// needs fails (CI) or skips the test when the local cluster lacks a
	// binary the chain runs on.
	needs func(ctx context.Context, t *testing.T)
	// whole returns what every link shows once the chain carries the
	// metric, else the first broken link.
	whole func(ctx context.Context, cs kubernetes.Interface) (string, error)
	// follow returns, for one run, a poll of the chain during the load
	// step: it logs when each link first carries the load step and
	// returns the replica count the HPA decided once it wants more than
	// two, else why not yet.
	follow func(t *testing.T, loadStart time.Time) func(ctx context.Context, cs kubernetes.Interface) (int32, error)
	// before and after are the broken-link checks, run before and after
	// the scaling step.
	before, after []namedStep
}

// namedStep is one Assess step of a feature.
type namedStep struct {
	name string
	fn   features.Func
}

// testAutoscale runs the autoscaling feature of chain c.
func testAutoscale(t *testing.T, c autoscaleChain) {
	skipUnlessRunnable(t)
	c.needs(context.Background(), t)
	var objs []runtime.Object
	f := features.New("autoscaling on "+c.feature).
		WithLabel("overlay", "dbless-gateway-discovery").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			b := manifests.Build{DeployDir: world.DeployDir, Overlay: "dbless-gateway-discovery",
				Components: append(c.components[:len(c.components):len(c.components)], "pdb"),
				Patches:    append([]manifests.Patch{manifests.NodePortPatch("kong-proxy", harness.ProxyNodePort)}, c.patches...)}
			if world.Kongsim {
				b.Components = append(b.Components, "kongsim")
			}
			var err error
			if objs, err = manifests.Render(b); err != nil {
				t.Fatal(err)
			}
			for _, addon := range c.addons {
				a, err := manifests.RenderDir(filepath.Join(world.DeployDir, "addons", addon))
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, a...)
			}
			if c.tune != nil {
				c.tune(t, objs)
			}
			objs = append(objs, echoObjects()...)
			t.Cleanup(func() { cleanUp(t, cfg, objs) })
			// Runs first: KEDA removes its finalizer from a ScaledObject
			// only while it still runs.
			t.Cleanup(func() { deleteScaledObjects(t, cfg, objs) })
			start := time.Now()
			if err := apply(ctx, cfg, objs); err != nil {
				t.Fatal(err)
			}
			if err := waitAvailable(ctx, cfg, objs); err != nil {
				t.Fatal(err)
			}
			t.Logf("overlay, %v, pdb and %v available in %s", c.components, c.addons, time.Since(start).Round(time.Millisecond))
			return ctx
		})
	for _, s := range c.before {
		f = f.Assess(s.name, s.fn)
	}
	f = f.Assess("Kong scales out on "+c.metric+" and back in without a failed request", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
		scaleOutAndIn(ctx, t, cfg, c)
		return ctx
	})
	for _, s := range c.after {
		f = f.Assess(s.name, s.fn)
	}
	testenv.Test(t, f.Feature())
}

// scaleOutAndIn is the rig's scaling step: the chain whole, then a load
// step that makes the HPA scale Kong out, every new Kong serving the
// configuration the moment it is Ready, then back in to 2 once the load
// stops, each removed Kong draining with kong quit; no request fails at
// any point.
func scaleOutAndIn(ctx context.Context, t *testing.T, cfg *envconf.Config, c autoscaleChain) {
	rc := rest.CopyConfig(cfg.Client().RESTConfig())
	rc.QPS, rc.Burst = 50, 100 // the scale-out poll reads every Kong pod
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadProxy(ctx, cfg, cs)
	if err != nil {
		t.Fatal(err)
	}
	if err := expectStatus(ctx, p, "/", http.StatusOK, routeTimeout); err != nil {
		t.Fatal(err)
	}
	// The watcher: light traffic that must never fail, through scale-out
	// and scale-in; it also gives Prometheus series.
	watch := harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: "/", MaxDuration: 2 * loadDuration})
	defer watch.Stop()

	// Every link of the chain, in order, before any load.
	began := time.Now()
	var whole string
	if err := poll(ctx, 3*time.Minute, time.Second, func(ctx context.Context) error {
		var err error
		whole, err = c.whole(ctx, cs)
		return err
	}); err != nil {
		t.Fatalf("the %s metric never reached the HPA: %v", c.metric, err)
	}
	t.Logf("chain whole %s after Kong was available: %s", time.Since(began).Round(time.Second), whole)

	loads := make([]*harness.Traffic, loadLoops)
	loadStart := time.Now()
	for i := range loads {
		loads[i] = harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: "/", Interval: c.loadInterval, MaxDuration: loadDuration})
	}
	stopLoad := func() (sum harness.TrafficResult) {
		for _, l := range loads {
			r := l.Stop()
			sum.Sent, sum.OK, sum.Failed = sum.Sent+r.Sent, sum.OK+r.OK, sum.Failed+r.Failed
			sum.Failures = append(sum.Failures, r.Failures...)
		}
		return sum
	}

	// Scale-out, link by link, to the HPA's decision; then every new Kong
	// Ready and serving the configuration the moment it is Ready.
	follow := c.follow(t, loadStart)
	err = poll(ctx, 3*time.Minute, 500*time.Millisecond, func(ctx context.Context) error {
		desired, err := follow(ctx, cs)
		if err != nil {
			return err
		}
		return allKongReadyAndConfigured(ctx, t, cs, desired)
	})
	if err != nil {
		res := stopLoad()
		t.Fatalf("no scale-out: %v (load: %s)", err, res)
	}
	served := time.Since(loadStart)
	t.Logf("scale-out: new Kong replicas Ready and configured %s after the load step (target %s)", served.Round(time.Millisecond), scaleOutTarget)
	// The load goes on until the run has its requests (or its time is
	// up), whatever the scale-out took.
	_ = poll(ctx, loadDuration-served, time.Second, func(context.Context) error {
		ok := watch.Snapshot().OK
		for _, l := range loads {
			ok += l.Snapshot().OK
		}
		if ok < minRequests {
			return fmt.Errorf("%d requests so far", ok)
		}
		return nil
	})
	load := stopLoad()
	loadStopped := time.Now()
	t.Logf("load: %s in %s (%.0f/s)", load, loadStopped.Sub(loadStart).Round(time.Second), float64(load.Sent)/loadStopped.Sub(loadStart).Seconds())

	// Scale-in: back to 2 once the load is gone, each removed Kong
	// draining with kong quit (terminating pods count until they are
	// gone).
	err = poll(ctx, 4*time.Minute, time.Second, func(ctx context.Context) error {
		pods, err := kongPods(ctx, cfg)
		if err != nil {
			return err
		}
		if len(pods) != 2 {
			return fmt.Errorf("%d Kong pods", len(pods))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no scale-in to 2: %v", err)
	}
	t.Logf("scale-in to 2 done %s after the load stopped", time.Since(loadStopped).Round(time.Second))
	watched := watch.Stop()
	t.Logf("watcher: %s", watched)
	if load.Failed > 0 || watched.Failed > 0 {
		t.Errorf("failed requests: load %s; watcher %s", load, watched)
	}
	if total := load.OK + watched.OK; total < minRequests {
		t.Errorf("only %d requests went through; want %d or more", total, minRequests)
	}
	if served > scaleOutTarget {
		t.Errorf("scale-out took %s, over the %s target", served.Round(time.Millisecond), scaleOutTarget)
	}
}

// TestAutoscaleCPU: with metrics-server registered through the aggregation
// layer, load through the proxy makes the HPA scale Kong out on CPU; every
// new Kong serves the configuration before it turns Ready; once the load
// stops Kong scales back in to 2, draining with kong quit; no request fails
// at any point.
func TestAutoscaleCPU(t *testing.T) {
	testAutoscale(t, cpuChain)
}

// cpuChain: metrics-server serves Kong's CPU through the resource metrics
// API to the shipped HPA (components/hpa).
var cpuChain = autoscaleChain{
	feature: "CPU", metric: "CPU",
	components: []string{"hpa"},
	addons:     []string{"metrics-server"},
	// The shipped HPA made reachable by the test's load: CPU target 20% of
	// the 100m request.
	patches: []manifests.Patch{{
		Target: &manifests.Target{Kind: "HorizontalPodAutoscaler", Name: "kong"},
		Patch: `- op: replace
  path: /spec/metrics/0/resource/target/averageUtilization
  value: 20
- op: replace
  path: /spec/behavior/scaleDown
  value: ` + drillScaleDown,
	}},
	// As fast as the proxy answers: CPU is what the HPA reads.
	loadInterval: time.Millisecond,
	needs: func(_ context.Context, t *testing.T) {
		if world.Images == nil {
			return // kind pulls the image
		}
		if _, ok := world.Images["metrics-server"]; !ok {
			msg := "the local cluster has no metrics-server binary: run hack/build-metrics.sh (METRICS_COMPONENTS=metrics-server for it alone)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip("SKIPPED (not passed): " + msg)
		}
	},
	// The one link: the resource metrics API answers for Kong's pods and
	// the HPA holds a current CPU value.
	whole: func(ctx context.Context, cs kubernetes.Interface) (string, error) {
		hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(kongNamespace).Get(ctx, "kong", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if !hpaHoldsCPU(hpa) {
			return "", errors.New(describeHPA(hpa))
		}
		return "HPA kong (" + describeHPA(hpa) + ")", nil
	},
	follow: func(t *testing.T, loadStart time.Time) func(context.Context, kubernetes.Interface) (int32, error) {
		var decided time.Duration
		return func(ctx context.Context, cs kubernetes.Interface) (int32, error) {
			hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(kongNamespace).Get(ctx, "kong", metav1.GetOptions{})
			if err != nil {
				return 0, err
			}
			if decided == 0 && hpa.Status.DesiredReplicas > 2 {
				decided = time.Since(loadStart)
				t.Logf("HPA decided %d replicas %s after the load step (%s)", hpa.Status.DesiredReplicas, decided.Round(time.Millisecond), describeHPA(hpa))
			}
			if decided == 0 {
				return 0, fmt.Errorf("HPA still wants %d (%s)", hpa.Status.DesiredReplicas, describeHPA(hpa))
			}
			return hpa.Status.DesiredReplicas, nil
		}
	},
	after: []namedStep{{"an HPA on a metric nobody serves names the missing link", brokenMetricHPA}},
}

// brokenMetricHPA: an HPA on a per-pod metric no metrics API serves says
// so in its condition, not by a timeout.
func brokenMetricHPA(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	hpa := brokenHPA()
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(echoNamespace).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cs.AutoscalingV2().HorizontalPodAutoscalers(echoNamespace).Delete(context.WithoutCancel(ctx), hpa.Name, metav1.DeleteOptions{})
	}()
	// The HPA controller's condition, not a timeout, says why: no custom
	// metrics API is registered for this metric.
	err = poll(ctx, time.Minute, time.Second, func(ctx context.Context) error {
		got, err := cs.AutoscalingV2().HorizontalPodAutoscalers(echoNamespace).Get(ctx, hpa.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive && c.Status == corev1.ConditionFalse && c.Reason == "FailedGetPodsMetric" {
				t.Logf("HPA %s: %s: %s", hpa.Name, c.Reason, c.Message)
				return nil
			}
		}
		return fmt.Errorf("no FailedGetPodsMetric condition yet (%s)", describeHPA(got))
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// brokenHPA scales the echo backend on a per-pod metric that no metrics
// API serves.
func brokenHPA() *autoscalingv2.HorizontalPodAutoscaler {
	minReplicas := int32(2)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: echoNamespace, Name: "echo-on-a-missing-metric"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "echo"},
			MinReplicas:    &minReplicas,
			MaxReplicas:    4,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.PodsMetricSourceType,
				Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "kong_requests_per_second_that_nobody_serves"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptrQuantity("100")},
				},
			}},
		},
	}
}

func ptrQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// loadProxy is the proxy the load goes through: the kind NodePort, or on
// the local cluster the kong-proxy Service's ClusterIP, which the host
// reaches through the cluster's services proxy (as kube-proxy spreads
// connections over ready endpoints).
func loadProxy(ctx context.Context, cfg *envconf.Config, cs kubernetes.Interface) (harness.Proxy, error) {
	if world.ProxyURL != "" {
		return proxy(cfg)
	}
	svc, err := cs.CoreV1().Services(kongNamespace).Get(ctx, "kong-proxy", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	port := int32(80)
	for _, sp := range svc.Spec.Ports {
		if sp.Name == "proxy" {
			port = sp.Port
		}
	}
	transport := &http.Transport{MaxIdleConnsPerHost: loadLoops + 1, IdleConnTimeout: 2 * time.Second}
	return harness.URLProxy{Base: fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, port),
		Client: &http.Client{Timeout: 5 * time.Second, Transport: transport}}, nil
}

// hpaHoldsCPU says whether the HPA holds a current CPU value.
func hpaHoldsCPU(hpa *autoscalingv2.HorizontalPodAutoscaler) bool {
	for _, m := range hpa.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
			return true
		}
	}
	return false
}

// describeHPA is the HPA's state in one line, with the conditions that
// say which link of the metrics chain is broken.
func describeHPA(hpa *autoscalingv2.HorizontalPodAutoscaler) string {
	s := fmt.Sprintf("replicas %d→%d", hpa.Status.CurrentReplicas, hpa.Status.DesiredReplicas)
	for _, m := range hpa.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
			s += fmt.Sprintf(", cpu %d%%", *m.Resource.Current.AverageUtilization)
		}
	}
	for _, c := range hpa.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			s += fmt.Sprintf("; %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	return s
}

// allKongReadyAndConfigured returns nil once want Kong pods are Ready; a
// Ready pod that does not route "/" is an error of the test (Ready must mean
// configured).
func allKongReadyAndConfigured(ctx context.Context, t *testing.T, cs kubernetes.Interface, want int32) error {
	pods, err := cs.CoreV1().Pods(kongNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kong"})
	if err != nil {
		return err
	}
	ready := int32(0)
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil || !podReady(pod) {
			continue
		}
		ready++
		if body, err := cs.CoreV1().Pods(kongNamespace).ProxyGet("http", pod.Name, "8000", "/", nil).DoRaw(ctx); err != nil {
			t.Errorf("Kong pod %s is Ready but does not route / yet: %v: %.200s", pod.Name, err, body)
		}
	}
	if ready < want {
		return fmt.Errorf("%d of %d Kong pods Ready", ready, want)
	}
	return nil
}
