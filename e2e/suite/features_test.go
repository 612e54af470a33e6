//go:build e2e

package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"konductor.dev/controller/options"
	"konductor.dev/e2e/harness"
	"konductor.dev/e2e/manifests"
)

// routeTimeout bounds how long a new or changed route may take to serve.
const routeTimeout = 2 * time.Minute

// TestBasic: the sidecar overlay routes through Kong to the backend and
// publishes the proxy's address in Ingress status.
func TestBasic(t *testing.T) {
	skipUnlessRunnable(t)
	f := features.New("DB-less sidecar").
		WithLabel("overlay", "dbless-sidecar").
		Setup(setUp("dbless-sidecar")).
		Assess("traffic through the Kong proxy reaches the echo backend", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			p, err := proxy(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = poll(ctx, routeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
				status, body, err := p.Get(ctx, "/")
				if err != nil {
					return err
				}
				var echo struct{ Pod, Namespace string }
				if status != http.StatusOK || json.Unmarshal(body, &echo) != nil {
					return fmt.Errorf("GET /: status %d: %.200s", status, body)
				}
				if echo.Namespace != echoNamespace || !strings.HasPrefix(echo.Pod, "echo-") {
					return fmt.Errorf("GET / answered by %s/%s, not the echo backend", echo.Namespace, echo.Pod)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Assess("Ingress status gets the proxy Service's address", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			r := cfg.Client().Resources()
			var svc corev1.Service
			if err := r.Get(ctx, "kong-proxy", kongNamespace, &svc); err != nil {
				t.Fatal(err)
			}
			want := []string{svc.Spec.ClusterIP}
			for _, lb := range svc.Status.LoadBalancer.Ingress {
				want = append(want, lb.IP, lb.Hostname)
			}
			err := poll(ctx, time.Minute, 500*time.Millisecond, func(ctx context.Context) error {
				var ing networkingv1.Ingress
				if err := r.Get(ctx, "echo", echoNamespace, &ing); err != nil {
					return err
				}
				got := ing.Status.LoadBalancer.Ingress
				if len(got) == 0 {
					return fmt.Errorf("Ingress %s/echo has no status.loadBalancer.ingress", echoNamespace)
				}
				for _, a := range got {
					if (a.IP == "" && a.Hostname == "") || !(slices.Contains(want, a.IP) || slices.Contains(want, a.Hostname)) {
						return fmt.Errorf("Ingress status address %+v is not one of Service kong/kong-proxy's %v", a, want)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// TestFailover: with gateway discovery and two controllers, deleting the
// leader drops no request, and a change made right after reaches Kong
// within lease duration + retry period + margin.
func TestFailover(t *testing.T) {
	skipUnlessRunnable(t)
	// failoverMargin covers what follows a takeover: debounce, translation,
	// the push to every Kong, and the test's polling.
	const failoverMargin = 15 * time.Second
	f := features.New("leader failover").
		WithLabel("overlay", "dbless-gateway-discovery").
		Setup(setUp("dbless-gateway-discovery")).
		Assess("killing the leader keeps traffic flowing and a later change lands in time", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			r := cfg.Client().Resources()
			p, err := proxy(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := expectStatus(ctx, p, "/", http.StatusOK, routeTimeout); err != nil {
				t.Fatal(err)
			}
			o := controllerOptions(t, ctx, cfg)
			bound := o.ElectionLeaseDuration + o.ElectionRetryPeriod + failoverMargin

			leader, err := lockHolder(ctx, cfg, o, bound, 250*time.Millisecond, "")
			if err != nil {
				t.Fatalf("no leader: %v", err)
			}

			traffic := harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: "/"})
			defer traffic.Stop()
			killed := time.Now()
			if err := r.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: leader}}); err != nil {
				t.Fatalf("deleting leader pod %s: %v", leader, err)
			}
			t.Logf("deleted leader pod %s", leader)

			successor, err := lockHolder(ctx, cfg, o, bound, 100*time.Millisecond, leader)
			if err != nil {
				t.Fatalf("no new leader: %v", err)
			}
			t.Logf("pod %s took the lock %s after the delete", successor, time.Since(killed).Round(time.Millisecond))

			strip := map[string]string{"konghq.com/strip-path": "true"}
			class := "kong"
			if err := r.Create(ctx, ingress("after-failover", "/after-failover", networkingv1.PathTypePrefix, &class, strip)); err != nil {
				t.Fatal(err)
			}
			if err := expectStatus(ctx, p, "/after-failover", http.StatusOK, bound-time.Since(killed)); err != nil {
				t.Fatalf("change made after the failover did not reach Kong within %s of the delete: %v", bound, err)
			}
			t.Logf("change served %s after the delete (bound %s)", time.Since(killed).Round(time.Millisecond), bound)

			// Keep the traffic running until the Deployment has replaced the
			// deleted controller, so the whole handover is covered.
			var ctrl appsv1.Deployment
			if err := r.Get(ctx, "konductor", kongNamespace, &ctrl); err != nil {
				t.Fatal(err)
			}
			if err := waitAvailable(ctx, cfg, []runtime.Object{&ctrl}); err != nil {
				t.Fatal(err)
			}

			if res := traffic.Stop(); res.Failed > 0 || res.OK == 0 {
				t.Fatalf("traffic during failover: %s", res)
			} else {
				t.Logf("traffic during failover: %s", res)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// TestKongRestart: a deleted Kong pod is replaced by one that is configured
// before it turns Ready, and the proxy Service serves without errors
// throughout.
func TestKongRestart(t *testing.T) {
	skipUnlessRunnable(t)
	f := features.New("Kong restart").
		WithLabel("overlay", "dbless-gateway-discovery").
		Setup(setUp("dbless-gateway-discovery")).
		Assess("a new Kong pod is configured before it turns Ready and traffic never fails", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			r := cfg.Client().Resources()
			cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
			if err != nil {
				t.Fatal(err)
			}
			p, err := proxy(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := expectStatus(ctx, p, "/", http.StatusOK, routeTimeout); err != nil {
				t.Fatal(err)
			}
			before, err := kongPods(ctx, cfg)
			if err != nil || len(before) < 2 {
				t.Fatalf("want 2 or more Kong pods, have %d (%v)", len(before), err)
			}
			old := map[string]bool{}
			for _, pod := range before {
				old[pod.Name] = true
			}

			traffic := harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: "/"})
			defer traffic.Stop()
			victim := before[0].Name
			deleted := time.Now()
			if err := r.Delete(ctx, &before[0]); err != nil {
				t.Fatalf("deleting Kong pod %s: %v", victim, err)
			}

			// Watch the replacement: the first time it is seen Ready, it must
			// already route "/" — its readiness gates traffic on configuration.
			var replacement string
			err = poll(ctx, deployTimeout, 100*time.Millisecond, func(ctx context.Context) error {
				pods, err := kongPods(ctx, cfg)
				if err != nil {
					return err
				}
				for _, pod := range pods {
					if old[pod.Name] || pod.DeletionTimestamp != nil {
						continue
					}
					replacement = pod.Name
					if !podReady(pod) {
						return fmt.Errorf("replacement %s not Ready yet", pod.Name)
					}
					body, err := cs.CoreV1().Pods(kongNamespace).ProxyGet("http", pod.Name, "8000", "/", nil).DoRaw(ctx)
					if err != nil {
						t.Errorf("Kong pod %s is Ready but does not route / yet: %v: %.200s", pod.Name, err, body)
					}
					return nil
				}
				return fmt.Errorf("no replacement for %s yet", victim)
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("replacement %s Ready and routing %s after the delete", replacement, time.Since(deleted).Round(time.Millisecond))

			var kong appsv1.Deployment
			if err := r.Get(ctx, "kong", kongNamespace, &kong); err != nil {
				t.Fatal(err)
			}
			if err := waitAvailable(ctx, cfg, []runtime.Object{&kong}); err != nil {
				t.Fatal(err)
			}
			if res := traffic.Stop(); res.Failed > 0 || res.OK == 0 {
				t.Fatalf("traffic during the Kong restart: %s", res)
			} else {
				t.Logf("traffic during the Kong restart: %s", res)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// TestPostgresMode: the postgres overlay as shipped — PostgreSQL in a
// StatefulSet on a provisioned volume, the migrations Job, Kong nodes on
// the database and three controllers of which exactly one leads — routes
// traffic to the backend.
func TestPostgresMode(t *testing.T) {
	skipUnlessRunnable(t)
	f := features.New("PostgreSQL mode").
		WithLabel("overlay", "postgres").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			if world.Provider == "local" && world.Images != nil {
				if _, ok := world.Images["postgres"]; !ok {
					t.Fatal("the local cluster has no postgres image: it needs bin/pgentry (make build) and PostgreSQL's binaries (hack/postgres.sh install)")
				}
			}
			return ctx
		}).
		Setup(setUp("postgres")).
		Assess("the migrations Job completed and PostgreSQL runs on a bound volume", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			r := cfg.Client().Resources()
			err := poll(ctx, deployTimeout, time.Second, func(ctx context.Context) error {
				var job batchv1.Job
				if err := r.Get(ctx, "kong-migrations", kongNamespace, &job); err != nil {
					return err
				}
				if job.Status.Succeeded < 1 {
					return fmt.Errorf("Job kong/kong-migrations: %d succeeded, %d failed", job.Status.Succeeded, job.Status.Failed)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var pvc corev1.PersistentVolumeClaim
			if err := r.Get(ctx, "data-postgres-0", kongNamespace, &pvc); err != nil {
				t.Fatal(err)
			}
			if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
				t.Fatalf("PersistentVolumeClaim kong/data-postgres-0 is %s (volume %q), want Bound", pvc.Status.Phase, pvc.Spec.VolumeName)
			}
			var sts appsv1.StatefulSet
			if err := r.Get(ctx, "postgres", kongNamespace, &sts); err != nil {
				t.Fatal(err)
			}
			if sts.Status.ReadyReplicas != 1 {
				t.Fatalf("StatefulSet kong/postgres: %d ready replicas, want 1", sts.Status.ReadyReplicas)
			}
			return ctx
		}).
		Assess("traffic through the Kong proxy reaches the echo backend", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			p, err := proxy(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := expectStatus(ctx, p, "/", http.StatusOK, routeTimeout); err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Assess("three controllers run and exactly one holds the lock", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			r := cfg.Client().Resources()
			o := controllerOptions(t, ctx, cfg)
			var pods corev1.PodList
			if err := r.List(ctx, &pods, resources.WithLabelSelector("app.kubernetes.io/name=konductor")); err != nil {
				t.Fatal(err)
			}
			running := map[string]bool{}
			for _, p := range pods.Items {
				if p.Namespace == kongNamespace && p.DeletionTimestamp == nil && podReady(p) {
					running[p.Name] = true
				}
			}
			if len(running) != 3 {
				t.Fatalf("%d Ready konductor pods, want 3", len(running))
			}
			err := poll(ctx, o.ElectionLeaseDuration+o.ElectionRetryPeriod, 250*time.Millisecond, func(ctx context.Context) error {
				var lock corev1.ConfigMap
				if err := r.Get(ctx, o.ElectionLockName(), o.ElectionNamespace, &lock); err != nil {
					return err
				}
				leader, err := harness.LeaderPod(&lock)
				if err != nil {
					return err
				}
				if !running[leader] {
					return fmt.Errorf("the lock names %s, not one of the running controllers %v", leader, running)
				}
				t.Logf("leader: %s", leader)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// controllerOptions parses the running konductor Deployment's flags, so the
// bounds follow what was deployed.
func controllerOptions(t *testing.T, ctx context.Context, cfg *envconf.Config) *options.Options {
	t.Helper()
	var d appsv1.Deployment
	if err := cfg.Client().Resources().Get(ctx, "konductor", kongNamespace, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if manifests.IsKonductor(c) {
			o, err := manifests.ControllerOptions(d.Spec.Template, d.Namespace, c)
			if err != nil {
				t.Fatal(err)
			}
			return o
		}
	}
	t.Fatal("Deployment kong/konductor has no konductor container")
	return nil
}
