//go:build e2e

package suite

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"konductor.dev/controller/translate"
	"konductor.dev/e2e/harness"
)

// e2eKey is the test consumer's key-auth key.
const e2eKey = "e2e-key-6c1d0f"

// kongObject is a configuration.konghq.com/v1 object in the echo namespace.
func kongObject(kind, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetAPIVersion(translate.KongGroup + "/" + translate.KongVersion)
	u.SetKind(kind)
	u.SetNamespace(echoNamespace)
	u.SetName(name)
	return u
}

// createAll creates objs and registers their deletion with t.
func createAll(ctx context.Context, t *testing.T, r *resources.Resources, objs ...k8s.Object) {
	t.Helper()
	for _, o := range objs {
		if err := r.Create(ctx, o); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		t.Cleanup(func() { _ = r.Delete(context.WithoutCancel(ctx), o) })
	}
}

// TestPluginsThroughFailover: with gateway discovery, a key-auth-protected
// route keeps refusing anonymous requests and accepting the consumer's key
// while the leader is deleted, and a rate limit keeps limiting after a Kong
// pod restart.
func TestPluginsThroughFailover(t *testing.T) {
	skipUnlessRunnable(t)
	const failoverMargin = 15 * time.Second
	class := "kong"
	strip := func(plugins string) map[string]string {
		return map[string]string{"konghq.com/strip-path": "true", translate.AnnotationPlugins: plugins}
	}
	f := features.New("plugins through failover").
		WithLabel("overlay", "dbless-gateway-discovery").
		Setup(setUp("dbless-gateway-discovery")).
		Assess("key-auth: anonymous requests stay refused and the key stays accepted while the leader is deleted", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			r := cfg.Client().Resources()
			p, err := proxy(cfg)
			if err != nil {
				t.Fatal(err)
			}
			createAll(ctx, t, r,
				kongObject(translate.KindKongPlugin, "e2e-auth", map[string]any{"plugin": "key-auth", "config": map[string]any{"key_names": []any{"apikey"}}}),
				&corev1.Secret{
					TypeMeta: metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
					ObjectMeta: metav1.ObjectMeta{Namespace: echoNamespace, Name: "e2e-alice-key",
						Labels: map[string]string{translate.LabelCredential: "key-auth"}},
					StringData: map[string]string{"key": e2eKey},
				},
				func() *unstructured.Unstructured {
					c := kongObject(translate.KindKongConsumer, "e2e-alice", map[string]any{"username": "e2e-alice", "credentials": []any{"e2e-alice-key"}})
					c.SetAnnotations(map[string]string{"kubernetes.io/ingress.class": class})
					return c
				}(),
				ingress("protected", "/protected", networkingv1.PathTypePrefix, &class, strip("e2e-auth")),
			)
			keyed := "/protected?apikey=" + e2eKey
			if err := expectStatus(ctx, p, keyed, http.StatusOK, routeTimeout); err != nil {
				t.Fatalf("the consumer's key is not accepted: %v", err)
			}
			if err := expectStatus(ctx, p, "/protected", http.StatusUnauthorized, routeTimeout); err != nil {
				t.Fatalf("anonymous requests are not refused: %v", err)
			}

			o := controllerOptions(t, ctx, cfg)
			bound := o.ElectionLeaseDuration + o.ElectionRetryPeriod + failoverMargin
			leader, err := lockHolder(ctx, cfg, o, bound, 250*time.Millisecond, "")
			if err != nil {
				t.Fatalf("no leader: %v", err)
			}

			withKey := harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: keyed})
			defer withKey.Stop()
			anonymous := harness.StartTraffic(ctx, p, harness.TrafficOptions{Path: "/protected"})
			defer anonymous.Stop()
			if err := r.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: leader}}); err != nil {
				t.Fatalf("deleting leader pod %s: %v", leader, err)
			}
			t.Logf("deleted leader pod %s", leader)
			if _, err := lockHolder(ctx, cfg, o, bound, 100*time.Millisecond, leader); err != nil {
				t.Fatalf("no new leader: %v", err)
			}
			var ctrl appsv1.Deployment
			if err := r.Get(ctx, "konductor", kongNamespace, &ctrl); err != nil {
				t.Fatal(err)
			}
			if err := waitAvailable(ctx, cfg, []runtime.Object{&ctrl}); err != nil {
				t.Fatal(err)
			}
			if res := withKey.Stop(); res.Failed > 0 || res.OK == 0 {
				t.Errorf("requests with the key during the failover: %s", res)
			} else {
				t.Logf("requests with the key during the failover: %s", res)
			}
			// Every anonymous request must fail (401); one that got 200
			// found the route open.
			if res := anonymous.Stop(); res.OK > 0 || res.Sent == 0 {
				t.Errorf("anonymous requests during the failover: %d of %d got through", res.OK, res.Sent)
			} else {
				t.Logf("anonymous requests during the failover: all %d refused", res.Sent)
			}
			return ctx
		}).
		Assess("rate-limiting keeps limiting after a Kong pod restart", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			r := cfg.Client().Resources()
			p, err := proxy(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The local policy counts per Kong node and per minute: with
			// two nodes and a minute boundary at worst 4×limit requests
			// pass, so a burst of burst requests must meet a 429.
			const limit, burst = 3, 20
			createAll(ctx, t, r,
				kongObject(translate.KindKongPlugin, "e2e-limit", map[string]any{"plugin": "rate-limiting",
					"config": map[string]any{"minute": int64(limit), "policy": "local"}}),
				ingress("limited", "/limited", networkingv1.PathTypePrefix, &class, strip("e2e-limit")),
			)
			if err := expectStatus(ctx, p, "/limited", http.StatusOK, routeTimeout); err != nil {
				t.Fatal(err)
			}
			limited := func() error {
				codes := map[int]int{}
				for range burst {
					status, _, err := p.Get(ctx, "/limited")
					if err != nil {
						return err
					}
					codes[status]++
				}
				if codes[http.StatusTooManyRequests] == 0 {
					return fmt.Errorf("%d requests in a burst, none limited: %v", burst, codes)
				}
				return nil
			}
			if err := poll(ctx, routeTimeout, time.Second, func(context.Context) error { return limited() }); err != nil {
				t.Fatalf("before the restart: %v", err)
			}

			kongs, err := kongPods(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(kongs) == 0 {
				t.Fatal("no Kong pod")
			}
			if err := r.Delete(ctx, &kongs[0]); err != nil {
				t.Fatalf("deleting Kong pod %s: %v", kongs[0].Name, err)
			}
			t.Logf("deleted Kong pod %s", kongs[0].Name)
			var kong appsv1.Deployment
			if err := r.Get(ctx, "kong", kongNamespace, &kong); err != nil {
				t.Fatal(err)
			}
			// The old pod may still be terminating; wait for the
			// Deployment to be whole again before the burst.
			err = poll(ctx, deployTimeout, 500*time.Millisecond, func(ctx context.Context) error {
				pods, err := kongPods(ctx, cfg)
				if err != nil {
					return err
				}
				for _, pod := range pods {
					if pod.Name == kongs[0].Name {
						return fmt.Errorf("Kong pod %s still exists", pod.Name)
					}
				}
				return waitAvailable(ctx, cfg, []runtime.Object{&kong})
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := limited(); err != nil {
				t.Fatalf("after the Kong restart: %v", err)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}
