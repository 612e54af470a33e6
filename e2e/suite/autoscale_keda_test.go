//go:build e2e

package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"

	"konductor.dev/e2e/manifests"
	"konductor.dev/sim/cluster"
)

// kedaScaling is one way of scaling Kong through KEDA: the component with
// the ScaledObject, and the per-pod threshold the test sets so that its
// bounded load crosses it and the watcher's trickle alone does not.
type kedaScaling struct {
	component string
	// what the trigger measures: a unit for messages, and a name for the
	// feature (no slash: it would nest the subtests).
	what, feature string
	// threshold per Kong pod: the paced load (at most kedaLoadRate) is
	// about five pods' worth, the watcher's at most 20 requests/s is far
	// below two pods' worth.
	threshold float64
}

// kedaLoadInterval paces each of the loadLoops request loops: at most
// kedaLoadRate requests/s in all, so that the HPA's decision follows the
// threshold rather than the maximum replica count, and the machine is not
// saturated by the load.
const (
	kedaLoadInterval = 10 * time.Millisecond
	kedaLoadRate     = loadLoops * int(time.Second/kedaLoadInterval)
)

// kedaMetricsComponents are the binaries of hack/build-metrics.sh the
// KEDA features need on the local cluster, and the images they stand for.
var kedaMetricsComponents = map[string]string{
	"prometheus":   "prometheus",
	"keda":         "keda",
	"keda-adapter": "keda-metrics-apiserver",
}

// needKEDABinaries fails (CI) or skips the test when the local cluster has
// no Prometheus or KEDA binaries, naming the command that builds them.
func needKEDABinaries(ctx context.Context, t *testing.T) {
	t.Helper()
	if world.Images == nil {
		return // kind pulls the images
	}
	components := slices.Sorted(func(yield func(string) bool) {
		for c := range kedaMetricsComponents {
			if !yield(c) {
				return
			}
		}
	})
	_, err := cluster.FindMetricsBinaries(ctx, components...)
	for _, c := range components {
		if _, ok := world.Images[kedaMetricsComponents[c]]; !ok && err == nil {
			err = fmt.Errorf("image %s has no binary %s in the local cluster's image map", kedaMetricsComponents[c], c)
		}
	}
	if err == nil {
		return
	}
	msg := fmt.Sprintf("the local cluster lacks Prometheus or KEDA (%v): run METRICS_COMPONENTS=%q hack/build-metrics.sh", err, strings.Join(components, " "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED (not passed): " + msg)
}

// TestAutoscaleRequests: Prometheus scrapes Kong's request counter, KEDA
// serves its rate through the external metrics API, and the HPA KEDA made
// scales Kong from 2 out under a load step and back in after it, every new
// Kong configured before it turns Ready and no request failing.
func TestAutoscaleRequests(t *testing.T) {
	testAutoscale(t, kedaChain(kedaScaling{component: "hpa-requests", what: "requests/s", feature: "requests per second", threshold: 120}))
}

// TestAutoscaleBandwidth is TestAutoscaleRequests on bytes per second
// (requests plus responses: about 380 bytes each through kongsim).
func TestAutoscaleBandwidth(t *testing.T) {
	testAutoscale(t, kedaChain(kedaScaling{component: "hpa-bandwidth", what: "bytes/s", feature: "bandwidth", threshold: 50000}))
}

// kedaDrillPatches make the shipped ScaledObject reachable by the test's
// load and its scale-in short: the test's threshold, at most 6 Kong pods
// on a shared machine, and drillScaleDown.
func kedaDrillPatches(s kedaScaling) []manifests.Patch {
	return []manifests.Patch{{
		Target: &manifests.Target{Kind: "ScaledObject", Name: "kong"},
		Patch: fmt.Sprintf(`- op: replace
  path: /spec/triggers/0/metadata/threshold
  value: "%s"
- op: replace
  path: /spec/maxReplicaCount
  value: 6
- op: replace
  path: /spec/advanced/horizontalPodAutoscalerConfig/behavior/scaleDown
  value: %s`, strconv.FormatFloat(s.threshold, 'f', -1, 64), drillScaleDown),
	}}
}

// kedaChain: Prometheus scrapes Kong (components/kong-metrics), the
// ScaledObject of s.component makes KEDA serve the trigger's query through
// the external metrics API to the HPA KEDA owns.
func kedaChain(s kedaScaling) autoscaleChain {
	return autoscaleChain{
		feature: s.feature + " through KEDA", metric: s.feature,
		components:   []string{"kong-metrics", s.component},
		addons:       []string{"prometheus", "keda"},
		patches:      kedaDrillPatches(s),
		loadInterval: kedaLoadInterval,
		needs:        needKEDABinaries,
		tune:         quickKEDALeaderElection,
		whole: func(ctx context.Context, cs kubernetes.Interface) (string, error) {
			c, err := checkChain(ctx, cs, kongNamespace, "kong")
			if err != nil {
				return "", err
			}
			return c.String(), nil
		},
		// The load in Prometheus, in the external metrics API, then the
		// HPA's decision. A link counts once it shows more than two pods'
		// worth.
		follow: func(t *testing.T, loadStart time.Time) func(context.Context, kubernetes.Interface) (int32, error) {
			scaleAt := 2 * s.threshold * 1.1 // the HPA's 10% tolerance
			var inProm, inAPI, decided time.Duration
			return func(ctx context.Context, cs kubernetes.Interface) (int32, error) {
				c, err := checkChain(ctx, cs, kongNamespace, "kong")
				if err != nil {
					return 0, err
				}
				if inProm == 0 && c.prometheus > scaleAt {
					inProm = time.Since(loadStart)
					t.Logf("Prometheus: %.0f %s %s after the load step", c.prometheus, s.what, inProm.Round(time.Millisecond))
				}
				if inAPI == 0 && c.external > scaleAt {
					inAPI = time.Since(loadStart)
					t.Logf("external metrics API: %.0f %s %s after the load step", c.external, s.what, inAPI.Round(time.Millisecond))
				}
				if decided == 0 && c.hpa.Status.DesiredReplicas > 2 {
					decided = time.Since(loadStart)
					t.Logf("HPA %s decided %d replicas %s after the load step (%s; threshold %.0f %s per pod, load at most %d requests/s)",
						c.hpa.Name, c.hpa.Status.DesiredReplicas, decided.Round(time.Millisecond), describeExternalHPA(c.hpa), s.threshold, s.what, kedaLoadRate)
				}
				if decided == 0 {
					return 0, fmt.Errorf("HPA %s still wants %d (%s; Prometheus %.0f, external metrics API %.0f, scale-out above %.0f)",
						c.hpa.Name, c.hpa.Status.DesiredReplicas, describeExternalHPA(c.hpa), c.prometheus, c.external, scaleAt)
				}
				return c.hpa.Status.DesiredReplicas, nil
			}
		},
		// First, while Prometheus and KEDA's HPA warm up anyway: the
		// chain's recovery from this step is the whole chain the scaling
		// step starts from.
		before: []namedStep{{"with KEDA's metrics server down the chain names the APIService link", kedaMetricsServerDown}},
		after:  []namedStep{{"a ScaledObject on a series Prometheus lacks names the Prometheus link", missingSeries}},
	}
}

// quickKEDALeaderElection gives the KEDA operator of the test a short
// leader-election lease. The operator exits once on its first start, after
// it wrote its certificates (so that it loads them), without releasing its
// lease; with KEDA's default 15 s lease its new process, and every link
// after it, waits that long. The shipped addon keeps KEDA's defaults: in a
// cluster this happens once, at install.
func quickKEDALeaderElection(t *testing.T, objs []runtime.Object) {
	for _, d := range manifests.All[*appsv1.Deployment](objs) {
		if d.Namespace != "keda" || d.Name != "keda-operator" {
			continue
		}
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			if c.Name != "keda-operator" {
				continue
			}
			c.Env = append(c.Env,
				corev1.EnvVar{Name: "KEDA_OPERATOR_LEADER_ELECTION_LEASE_DURATION", Value: "4s"},
				corev1.EnvVar{Name: "KEDA_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE", Value: "3s"},
				corev1.EnvVar{Name: "KEDA_OPERATOR_LEADER_ELECTION_RETRY_PERIOD", Value: "500ms"})
			return
		}
	}
	t.Fatal("the keda addon has no container keda-operator in Deployment keda/keda-operator")
}

// missingSeries: a ScaledObject whose query finds no series breaks the
// chain at Prometheus, and the HPA KEDA made for it agrees.
func missingSeries(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	so := missingSeriesScaledObject()
	if err := cfg.Client().Resources().Create(ctx, so); err != nil {
		t.Fatal(err)
	}
	defer deleteScaledObjects(t, cfg, []runtime.Object{so})
	// Wait until KEDA has made the HPA and tried the metric: the chain
	// must then stop at Prometheus, not at a later link.
	var last error
	err = poll(ctx, time.Minute, time.Second, func(ctx context.Context) error {
		_, last = checkChain(ctx, cs, echoNamespace, so.GetName())
		var broken *brokenLink
		if errors.As(last, &broken) && broken.link == linkPrometheus {
			return nil
		}
		return fmt.Errorf("chain check says %v; want the Prometheus link", last)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chain check: %v", last)
	// The HPA KEDA made agrees: it cannot read the metric.
	hpaName := "keda-hpa-" + so.GetName()
	err = poll(ctx, 2*time.Minute, time.Second, func(ctx context.Context) error {
		hpa, err := cs.AutoscalingV2().HorizontalPodAutoscalers(echoNamespace).Get(ctx, hpaName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range hpa.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive && c.Status == corev1.ConditionFalse {
				t.Logf("HPA %s: %s: %s", hpaName, c.Reason, c.Message)
				return nil
			}
		}
		return fmt.Errorf("HPA %s: no ScalingActive=False yet (%s)", hpaName, describeExternalHPA(hpa))
	})
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// kedaMetricsServerDown: with KEDA's metrics server scaled to zero the
// chain check names the APIService link, and once it is back the chain is
// whole again.
func kedaMetricsServerDown(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	// A request through Kong gives Prometheus the series the trigger
	// queries: the chain then passes the Prometheus link, which comes
	// before the APIService.
	p, err := loadProxy(ctx, cfg, cs)
	if err != nil {
		t.Fatal(err)
	}
	if err := expectStatus(ctx, p, "/", http.StatusOK, routeTimeout); err != nil {
		t.Fatal(err)
	}
	scale := func(ctx context.Context, n int32) error {
		deployments := cs.AppsV1().Deployments("keda")
		sc, err := deployments.GetScale(ctx, "keda-metrics-apiserver", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = n
		_, err = deployments.UpdateScale(ctx, "keda-metrics-apiserver", sc, metav1.UpdateOptions{})
		return err
	}
	if err := scale(ctx, 0); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = scale(context.WithoutCancel(ctx), 1)
		}
	}()
	var last error
	err = poll(ctx, 2*time.Minute, time.Second, func(ctx context.Context) error {
		_, last = checkChain(ctx, cs, kongNamespace, "kong")
		var broken *brokenLink
		if errors.As(last, &broken) && broken.link == linkAPIService {
			return nil
		}
		return fmt.Errorf("chain check says %v; want the APIService link", last)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chain check: %v", last)
	// Back up, the chain is whole again.
	if err := scale(ctx, 1); err != nil {
		t.Fatal(err)
	}
	restored = true
	began := time.Now()
	if err := poll(ctx, 3*time.Minute, time.Second, func(ctx context.Context) error {
		_, err := checkChain(ctx, cs, kongNamespace, "kong")
		return err
	}); err != nil {
		t.Fatalf("the chain did not recover: %v", err)
	}
	t.Logf("chain whole again %s after the metrics server came back", time.Since(began).Round(time.Second))
	return ctx
}

// The links of the metrics chain, in the order the data flows.
const (
	linkScaledObject = "KEDA ScaledObject"
	linkPrometheus   = "Prometheus"
	linkAPIService   = "external metrics APIService"
	linkExternalAPI  = "external metrics API"
	linkHPA          = "HorizontalPodAutoscaler"
)

// brokenLink says which link of the chain failed and why.
type brokenLink struct {
	link string
	err  error
}

func (b *brokenLink) Error() string { return fmt.Sprintf("broken link %q: %v", b.link, b.err) }
func (b *brokenLink) Unwrap() error { return b.err }

func broken(link string, format string, args ...any) error {
	return &brokenLink{link: link, err: fmt.Errorf(format, args...)}
}

// chainState is what each link of a working chain shows.
type chainState struct {
	prometheus float64 // the trigger's query, evaluated by Prometheus
	external   float64 // the same through external.metrics.k8s.io
	hpa        *autoscalingv2.HorizontalPodAutoscaler
}

func (c chainState) String() string {
	return fmt.Sprintf("Prometheus %.1f, external metrics API %.1f, HPA %s (%s)", c.prometheus, c.external, c.hpa.Name, describeExternalHPA(c.hpa))
}

// scaledObject is the part of KEDA's ScaledObject the chain check reads.
type scaledObject struct {
	Spec struct {
		Triggers []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
	Status struct {
		HPAName             string             `json:"hpaName"`
		ExternalMetricNames []string           `json:"externalMetricNames"`
		Conditions          []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

// checkChain follows the metric of ScaledObject namespace/name from
// Prometheus to the HPA and returns what each link shows, or the first
// broken link: the trigger's query answers in Prometheus (through the API
// server's service proxy), KEDA's APIService is available, the external
// metrics API serves the value, and the HPA KEDA made reads it.
func checkChain(ctx context.Context, cs kubernetes.Interface, namespace, name string) (chainState, error) {
	var c chainState
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/keda.sh/v1alpha1/namespaces", namespace, "scaledobjects", name).DoRaw(ctx)
	if err != nil {
		return c, broken(linkScaledObject, "ScaledObject %s/%s: %v", namespace, name, err)
	}
	var so scaledObject
	if err := json.Unmarshal(raw, &so); err != nil {
		return c, broken(linkScaledObject, "ScaledObject %s/%s: %v", namespace, name, err)
	}
	if len(so.Spec.Triggers) == 0 || so.Spec.Triggers[0].Type != "prometheus" {
		return c, broken(linkScaledObject, "ScaledObject %s/%s: the chain check follows a first trigger of type prometheus", namespace, name)
	}
	trigger := so.Spec.Triggers[0].Metadata
	ready := "no Ready condition yet"
	if i := slices.IndexFunc(so.Status.Conditions, func(c metav1.Condition) bool { return c.Type == "Ready" }); i >= 0 {
		cond := so.Status.Conditions[i]
		ready = fmt.Sprintf("Ready=%s %s: %s", cond.Status, cond.Reason, cond.Message)
	}

	// Link 1: Prometheus has the series.
	if c.prometheus, err = queryPrometheus(ctx, cs, trigger["serverAddress"], trigger["query"]); err != nil {
		return c, broken(linkPrometheus, "%v (ScaledObject %s)", err, ready)
	}
	// Link 2: the aggregation layer reaches KEDA's metrics server.
	if err := apiServiceAvailable(ctx, cs, "v1beta1.external.metrics.k8s.io"); err != nil {
		return c, broken(linkAPIService, "%v", err)
	}
	// Link 3: KEDA serves the value.
	if len(so.Status.ExternalMetricNames) == 0 || so.Status.HPAName == "" {
		return c, broken(linkExternalAPI, "ScaledObject %s/%s names no external metric or HPA yet (%s)", namespace, name, ready)
	}
	metric := so.Status.ExternalMetricNames[0]
	if c.external, err = externalMetric(ctx, cs, namespace, metric, "scaledobject.keda.sh/name="+name); err != nil {
		return c, broken(linkExternalAPI, "%s: %v (ScaledObject %s)", metric, err, ready)
	}
	// Link 4: the HPA reads it.
	if c.hpa, err = cs.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, so.Status.HPAName, metav1.GetOptions{}); err != nil {
		return c, broken(linkHPA, "%v", err)
	}
	for _, cond := range c.hpa.Status.Conditions {
		if cond.Type == autoscalingv2.ScalingActive && cond.Status != corev1.ConditionTrue {
			return c, broken(linkHPA, "%s: ScalingActive=%s %s: %s", c.hpa.Name, cond.Status, cond.Reason, cond.Message)
		}
	}
	if !slices.ContainsFunc(c.hpa.Status.CurrentMetrics, func(m autoscalingv2.MetricStatus) bool {
		return m.External != nil && m.External.Metric.Name == metric
	}) {
		return c, broken(linkHPA, "%s holds no value of %s yet (%s)", c.hpa.Name, metric, describeExternalHPA(c.hpa))
	}
	return c, nil
}

// queryPrometheus evaluates query in the Prometheus at serverAddress (an
// in-cluster Service URL, reached through the API server's service proxy)
// and returns the value of its single sample; no sample is an error.
func queryPrometheus(ctx context.Context, cs kubernetes.Interface, serverAddress, query string) (float64, error) {
	u, err := url.Parse(serverAddress)
	if err != nil {
		return 0, fmt.Errorf("serverAddress %q: %w", serverAddress, err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, "80"
	}
	svc, ns, _ := strings.Cut(host, ".")
	ns, _, _ = strings.Cut(ns, ".")
	if svc == "" || ns == "" {
		return 0, fmt.Errorf("serverAddress %q is not a Service's address (<service>.<namespace>.svc)", serverAddress)
	}
	raw, err := cs.CoreV1().Services(ns).ProxyGet(u.Scheme, svc, port, "/api/v1/query", map[string]string{"query": query}).DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("query %q at Service %s/%s: %v: %.200s", query, ns, svc, err, raw)
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return 0, fmt.Errorf("query %q: %v", query, err)
	}
	if resp.Status != "success" {
		return 0, fmt.Errorf("query %q: %s", query, resp.Error)
	}
	if len(resp.Data.Result) != 1 {
		return 0, fmt.Errorf("query %q returns %d samples, want 1 (is the pod scraped, is Kong's prometheus plugin on?)", query, len(resp.Data.Result))
	}
	v, ok := resp.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("query %q: sample value %v", query, resp.Data.Result[0].Value)
	}
	return strconv.ParseFloat(v, 64)
}

// apiServiceAvailable returns nil when the APIService's Available
// condition is True, else its reason and message.
func apiServiceAvailable(ctx context.Context, cs kubernetes.Interface, name string) error {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices", name).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("APIService %s: %v", name, err)
	}
	var svc struct {
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &svc); err != nil {
		return fmt.Errorf("APIService %s: %v", name, err)
	}
	for _, c := range svc.Status.Conditions {
		if c.Type == "Available" {
			if c.Status == metav1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("APIService %s: Available=%s %s: %s", name, c.Status, c.Reason, c.Message)
		}
	}
	return fmt.Errorf("APIService %s has no Available condition yet", name)
}

// externalMetric reads one external metric's value (the sum of its items).
func externalMetric(ctx context.Context, cs kubernetes.Interface, namespace, metric, selector string) (float64, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/external.metrics.k8s.io/v1beta1/namespaces", namespace, metric).
		Param("labelSelector", selector).DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("%v: %.200s", err, raw)
	}
	var list struct {
		Items []struct {
			Value resource.Quantity `json:"value"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, err
	}
	if len(list.Items) == 0 {
		return 0, errors.New("no items")
	}
	sum := 0.0
	for _, it := range list.Items {
		sum += it.Value.AsApproximateFloat64()
	}
	return sum, nil
}

// describeExternalHPA is an HPA on external metrics in one line, with the
// conditions that are not True.
func describeExternalHPA(hpa *autoscalingv2.HorizontalPodAutoscaler) string {
	s := fmt.Sprintf("replicas %d→%d", hpa.Status.CurrentReplicas, hpa.Status.DesiredReplicas)
	for _, m := range hpa.Status.CurrentMetrics {
		if m.External != nil {
			if v := m.External.Current.AverageValue; v != nil {
				s += fmt.Sprintf(", %s %s per pod", m.External.Metric.Name, v)
			} else if v := m.External.Current.Value; v != nil {
				s += fmt.Sprintf(", %s %s", m.External.Metric.Name, v)
			}
		}
	}
	for _, c := range hpa.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			s += fmt.Sprintf("; %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	return s
}

// missingSeriesScaledObject scales the echo backend on a series no
// exporter has.
func missingSeriesScaledObject() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1",
		"kind":       "ScaledObject",
		"metadata":   map[string]any{"name": "echo-on-a-missing-series", "namespace": echoNamespace},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"name": "echo"},
			"minReplicaCount": int64(1),
			"maxReplicaCount": int64(2),
			"triggers": []any{map[string]any{
				"type":       "prometheus",
				"metricType": "AverageValue",
				"metadata": map[string]any{
					"serverAddress":    "http://prometheus.monitoring.svc:9090",
					"query":            `sum(rate(kong_no_such_series_total{namespace="kong"}[30s]))`,
					"threshold":        "10",
					"ignoreNullValues": "false",
				},
			}},
		},
	}}
}

// deleteScaledObjects deletes the ScaledObjects among objs and waits until
// KEDA has released them (its finalizer), so that their namespaces can go.
func deleteScaledObjects(t *testing.T, cfg *envconf.Config, objs []runtime.Object) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := cfg.Client().Resources()
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || u.GetKind() != "ScaledObject" {
			continue
		}
		if err := r.Delete(ctx, u); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting ScaledObject %s/%s: %v", u.GetNamespace(), u.GetName(), err)
			continue
		}
		err := poll(ctx, time.Minute, time.Second, func(ctx context.Context) error {
			cur := u.DeepCopy()
			if err := r.Get(ctx, u.GetName(), u.GetNamespace(), cur); apierrors.IsNotFound(err) {
				return nil
			} else if err != nil {
				return err
			}
			return fmt.Errorf("ScaledObject %s/%s still there (finalizers %v)", u.GetNamespace(), u.GetName(), cur.GetFinalizers())
		})
		if err != nil {
			t.Errorf("ScaledObject not released: %v", err)
		}
	}
}
