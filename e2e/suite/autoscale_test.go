//go:build e2e

package suite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
// each at most one request per loadInterval, for at most loadDuration.
const (
	loadLoops    = 6
	loadInterval = time.Millisecond
	loadDuration = 4 * time.Minute
	// scaleOutTarget is how long the load step may take to turn into new
	// Kong replicas that serve.
	scaleOutTarget = 60 * time.Second
)

// autoscaleDrillPatches make the shipped HPA reachable by a test's load and
// its scale-in short: CPU target 20% of the 100m request, and scale-in
// after 30 s of low load instead of 5 minutes.
var autoscaleDrillPatches = []manifests.Patch{{
	Target: &manifests.Target{Kind: "HorizontalPodAutoscaler", Name: "kong"},
	Patch: `- op: replace
  path: /spec/metrics/0/resource/target/averageUtilization
  value: 20
- op: replace
  path: /spec/behavior/scaleDown
  value: {stabilizationWindowSeconds: 30, policies: [{type: Pods, value: 2, periodSeconds: 15}]}`,
}}

// TestAutoscaleCPU: with metrics-server registered through the aggregation
// layer, load through the proxy makes the HPA scale Kong out on CPU; every
// new Kong serves the configuration before it turns Ready; once the load
// stops Kong scales back in to 2, draining with kong quit; no request fails
// at any point.
func TestAutoscaleCPU(t *testing.T) {
	skipUnlessRunnable(t)
	if world.Images != nil {
		if _, ok := world.Images["metrics-server"]; !ok {
			msg := "the local cluster has no metrics-server binary: run hack/build-metrics.sh (METRICS_COMPONENTS=metrics-server for it alone)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip("SKIPPED (not passed): " + msg)
		}
	}
	var objs []runtime.Object
	f := features.New("autoscaling on CPU").
		WithLabel("overlay", "dbless-gateway-discovery").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			b := manifests.Build{DeployDir: world.DeployDir, Overlay: "dbless-gateway-discovery",
				Components: []string{"hpa", "pdb"},
				Patches:    append([]manifests.Patch{manifests.NodePortPatch("kong-proxy", harness.ProxyNodePort)}, autoscaleDrillPatches...)}
			if world.Kongsim {
				b.Components = append(b.Components, "kongsim")
			}
			var err error
			if objs, err = manifests.Render(b); err != nil {
				t.Fatal(err)
			}
			ms, err := manifests.RenderDir(filepath.Join(world.DeployDir, "addons", "metrics-server"))
			if err != nil {
				t.Fatal(err)
			}
			objs = append(append(objs, echoObjects()...), ms...)
			t.Cleanup(func() { cleanUp(t, cfg, objs) })
			start := time.Now()
			if err := apply(ctx, cfg, objs); err != nil {
				t.Fatal(err)
			}
			if err := waitAvailable(ctx, cfg, objs); err != nil {
				t.Fatal(err)
			}
			t.Logf("overlay, hpa, pdb and metrics-server available in %s", time.Since(start).Round(time.Millisecond))
			return ctx
		}).
		Assess("Kong scales out on CPU and back in without a failed request", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
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
			began := time.Now()
			// Link 1: the resource metrics API answers for Kong's pods.
			if err := poll(ctx, 2*time.Minute, time.Second, func(ctx context.Context) error {
				return hpaSeesMetric(ctx, cs)
			}); err != nil {
				t.Fatalf("the HPA never read Kong's CPU: %v", err)
			}
			t.Logf("metric visible to the HPA %s after Kong was available", time.Since(began).Round(time.Second))

			// The watcher: light traffic that must never fail, through
			// scale-out and scale-in.
			watch := harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: "/", MaxDuration: 2 * loadDuration})
			defer watch.Stop()
			loads := make([]*harness.Traffic, loadLoops)
			loadStart := time.Now()
			for i := range loads {
				loads[i] = harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: "/", Interval: loadInterval, MaxDuration: loadDuration})
			}
			stopLoad := func() (sum harness.TrafficResult) {
				for _, l := range loads {
					r := l.Stop()
					sum.Sent, sum.OK, sum.Failed = sum.Sent+r.Sent, sum.OK+r.OK, sum.Failed+r.Failed
					sum.Failures = append(sum.Failures, r.Failures...)
				}
				return sum
			}

			// Scale-out: the HPA's decision, then every new Kong Ready and
			// serving the configuration the moment it is Ready.
			var decided time.Duration
			err = poll(ctx, 3*time.Minute, 250*time.Millisecond, func(ctx context.Context) error {
				hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(kongNamespace).Get(ctx, "kong", metav1.GetOptions{})
				if err != nil {
					return err
				}
				if decided == 0 && hpa.Status.DesiredReplicas > 2 {
					decided = time.Since(loadStart)
					t.Logf("HPA decided %d replicas %s after the load step (%s)", hpa.Status.DesiredReplicas, decided.Round(time.Millisecond), describeHPA(hpa))
				}
				if decided == 0 {
					return fmt.Errorf("HPA still wants %d (%s)", hpa.Status.DesiredReplicas, describeHPA(hpa))
				}
				return allKongReadyAndConfigured(ctx, t, cs, hpa.Status.DesiredReplicas)
			})
			if err != nil {
				res := stopLoad()
				t.Fatalf("no scale-out: %v (load: %s)", err, res)
			}
			served := time.Since(loadStart)
			t.Logf("scale-out: new Kong replicas Ready and configured %s after the load step (target %s)", served.Round(time.Millisecond), scaleOutTarget)
			if served > scaleOutTarget {
				t.Errorf("scale-out took %s, over the %s target", served.Round(time.Millisecond), scaleOutTarget)
			}
			load := stopLoad()
			t.Logf("load: %s", load)

			// Scale-in: back to 2 once the load is gone, each leaving Kong
			// draining with kong quit.
			err = poll(ctx, 4*time.Minute, time.Second, func(ctx context.Context) error {
				var pods corev1.PodList
				if err := cfg.Client().Resources(kongNamespace).List(ctx, &pods); err != nil {
					return err
				}
				kong := slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool { return p.Labels["app.kubernetes.io/name"] != "kong" })
				if len(kong) != 2 {
					return fmt.Errorf("%d Kong pods", len(kong))
				}
				return nil
			})
			if err != nil {
				t.Fatalf("no scale-in to 2: %v", err)
			}
			t.Logf("scale-in to 2 done %s after the load stopped", time.Since(loadStart.Add(served)).Round(time.Second))
			watched := watch.Stop()
			t.Logf("watcher: %s", watched)
			if load.Failed > 0 || watched.Failed > 0 {
				t.Errorf("failed requests: load %s; watcher %s", load, watched)
			}
			if total := load.OK + watched.OK; total < 10000 {
				t.Errorf("only %d requests went through; want 10000 or more", total)
			}
			return ctx
		}).
		Assess("an HPA on a metric nobody serves names the missing link", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
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
			// The HPA controller's condition, not a timeout, says why: no
			// custom metrics API is registered for this metric.
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
		}).
		Feature()
	testenv.Test(t, f)
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

// hpaSeesMetric returns nil once the HPA holds a current CPU value, else an
// error naming the broken link: the HPA's condition says why it cannot
// read metrics (no APIService, metrics-server not serving, no samples).
func hpaSeesMetric(ctx context.Context, cs kubernetes.Interface) error {
	hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(kongNamespace).Get(ctx, "kong", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, m := range hpa.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
			return nil
		}
	}
	return errors.New(describeHPA(hpa))
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
