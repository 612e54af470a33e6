//go:build e2e

package suite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/pkg/envconf"

	"konductor.dev/controller/options"
	"konductor.dev/e2e/harness"
	"konductor.dev/e2e/manifests"
)

// failed records that some test failed, for log export at the end.
var failed atomic.Bool

// skipUnlessRunnable skips t when the suite cannot run here, and marks the
// run failed when t fails.
func skipUnlessRunnable(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip("SKIPPED (not passed): " + skipReason)
	}
	t.Cleanup(func() {
		if t.Failed() {
			failed.Store(true)
		}
	})
}

const (
	kongNamespace = "kong"
	echoNamespace = "e2e-echo"
	// deployTimeout bounds how long an overlay may take to become available
	// (image pulls on kind included).
	deployTimeout = 4 * time.Minute
)

// render renders an overlay for this world: kongsim when asked for, and the
// proxy Service on the NodePort that kind maps to the host.
func render(overlay string) ([]runtime.Object, error) {
	b := manifests.Build{DeployDir: world.DeployDir, Overlay: overlay,
		Patches: []manifests.Patch{manifests.NodePortPatch("kong-proxy", harness.ProxyNodePort, harness.ProxyTLSNodePort)}}
	if world.Kongsim {
		b.Components = []string{"kongsim"}
	}
	return manifests.Render(b)
}

// kindRank orders objects for creation: what others refer to goes first.
var kindRank = []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
	"Secret", "ConfigMap", "IngressClass", "Service", "NetworkPolicy"}

func rank(o runtime.Object) int {
	if i := slices.Index(kindRank, o.GetObjectKind().GroupVersionKind().Kind); i >= 0 {
		return i
	}
	return len(kindRank)
}

// apply creates objs in dependency order, replacing cluster-scoped objects
// left by an earlier feature.
func apply(ctx context.Context, cfg *envconf.Config, objs []runtime.Object) error {
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b runtime.Object) int { return rank(a) - rank(b) })
	r := cfg.Client().Resources()
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, o := range objs {
		// Custom resources wait until their definitions are served.
		if crd, ok := o.(*apiextensionsv1.CustomResourceDefinition); ok {
			crds = append(crds, crd)
		} else if len(crds) > 0 {
			if err := waitEstablished(ctx, cfg, crds); err != nil {
				return err
			}
			crds = nil
		}
		obj, ok := o.(k8s.Object)
		if !ok {
			return fmt.Errorf("%s is not a Kubernetes object", manifests.ID(o))
		}
		err := r.Create(ctx, obj)
		if apierrors.IsAlreadyExists(err) {
			current := obj.DeepCopyObject().(k8s.Object)
			if err = r.Get(ctx, obj.GetName(), obj.GetNamespace(), current); err == nil {
				obj.SetResourceVersion(current.GetResourceVersion())
				err = r.Update(ctx, obj)
			}
		}
		if err != nil {
			return fmt.Errorf("creating %s: %w", manifests.ID(o), err)
		}
	}
	return nil
}

// waitEstablished waits until the API server serves every one of crds.
func waitEstablished(ctx context.Context, cfg *envconf.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	r := cfg.Client().Resources()
	for _, crd := range crds {
		err := poll(ctx, time.Minute, 250*time.Millisecond, func(ctx context.Context) error {
			var cur apiextensionsv1.CustomResourceDefinition
			if err := r.Get(ctx, crd.Name, "", &cur); err != nil {
				return err
			}
			for _, c := range cur.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("CustomResourceDefinition %s is not established yet", crd.Name)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// remove deletes objs and waits until their namespaces are gone, so the
// next feature starts from a clean cluster.
func remove(ctx context.Context, cfg *envconf.Config, objs []runtime.Object) error {
	r := cfg.Client().Resources()
	var errs []error
	var namespaces []string
	for _, o := range objs {
		obj := o.(k8s.Object)
		if _, isNS := o.(*corev1.Namespace); isNS {
			namespaces = append(namespaces, obj.GetName())
		}
		if obj.GetNamespace() != "" {
			continue // goes with its namespace
		}
		if o.GetObjectKind().GroupVersionKind().Kind == "CustomResourceDefinition" {
			continue // kept for the next feature: deleting one takes a while
		}
		if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", manifests.ID(o), err))
		}
	}
	errs = append(errs, dropPods(ctx, cfg, namespaces))
	for _, ns := range namespaces {
		errs = append(errs, poll(ctx, 3*time.Minute, 250*time.Millisecond, func(ctx context.Context) error {
			err := r.Get(ctx, ns, "", &corev1.Namespace{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("namespace %s still exists (%v)", ns, err)
		}))
	}
	return errors.Join(errs...)
}

// dropPods deletes the pods of the terminating namespaces at once, without
// their graceful stop: the namespace controller looks again at a namespace
// whose pods still run only after half their grace period (15 s of the
// overlays' 30) plus its 5 s delay, and how a pod stops once its feature is
// over proves nothing (the features prove Kong's drain and the controllers'
// handover themselves). The namespaces are terminating, so no controller
// makes new pods; the node agent (or kubelet) kills the processes.
func dropPods(ctx context.Context, cfg *envconf.Config, namespaces []string) error {
	if len(namespaces) == 0 {
		return nil
	}
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		return err
	}
	zero := int64(0)
	var errs []error
	for _, ns := range namespaces {
		err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting the pods of namespace %s: %w", ns, err))
		}
	}
	return errors.Join(errs...)
}

// poll calls check every interval until it returns nil or timeout passes,
// and then returns check's last error.
func poll(ctx context.Context, timeout, interval time.Duration, check func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		last = check(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("not within %s: %w", timeout, last)
	}
	return nil
}

// waitAvailable waits until every Deployment among objs has all its
// replicas updated and available.
func waitAvailable(ctx context.Context, cfg *envconf.Config, objs []runtime.Object) error {
	r := cfg.Client().Resources()
	for _, d := range manifests.All[*appsv1.Deployment](objs) {
		err := poll(ctx, deployTimeout, time.Second, func(ctx context.Context) error {
			var cur appsv1.Deployment
			if err := r.Get(ctx, d.Name, d.Namespace, &cur); err != nil {
				return err
			}
			want := int32(1)
			if cur.Spec.Replicas != nil {
				want = *cur.Spec.Replicas
			}
			if cur.Status.ObservedGeneration < cur.Generation || cur.Status.UpdatedReplicas != want || cur.Status.AvailableReplicas != want {
				return fmt.Errorf("Deployment %s/%s: %d/%d updated, %d/%d available", d.Namespace, d.Name, cur.Status.UpdatedReplicas, want, cur.Status.AvailableReplicas, want)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// echoObjects is the backend: an echo Deployment behind a Service, and an
// Ingress routing exactly "/" to it through Kong.
func echoObjects() []runtime.Object {
	labels := map[string]string{"app.kubernetes.io/name": "echo"}
	replicas := int32(2)
	exact := networkingv1.PathTypeExact
	class := "kong"
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	return []runtime.Object{
		&corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: echoNamespace}},
		&appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"},
			ObjectMeta: metav1.ObjectMeta{Namespace: echoNamespace, Name: "echo", Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name:  "echo",
						Image: harness.EchoImage,
						Env: []corev1.EnvVar{
							{Name: "PORT", Value: "8080"}, {Name: "STATUS_PORT", Value: "8180"},
							{Name: "POD_NAME", ValueFrom: field("metadata.name")},
							{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
							{Name: "POD_IP", ValueFrom: field("status.podIP")},
						},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "status", ContainerPort: 8180}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/status/ready", Port: intstr.FromString("status")}},
							PeriodSeconds: 2,
						},
					}}},
				},
			},
		},
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Namespace: echoNamespace, Name: "echo"},
			Spec: corev1.ServiceSpec{
				Selector: labels,
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
			},
		},
		ingress("echo", "/", exact, &class, nil),
	}
}

func ingress(name, path string, pathType networkingv1.PathType, class *string, annotations map[string]string) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		TypeMeta:   metav1.TypeMeta{Kind: "Ingress", APIVersion: "networking.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: echoNamespace, Name: name, Annotations: annotations},
		Spec: networkingv1.IngressSpec{
			IngressClassName: class,
			Rules: []networkingv1.IngressRule{{IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path: path, PathType: &pathType,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: "echo", Port: networkingv1.ServiceBackendPort{Name: "http"},
					}},
				}},
			}}}},
		},
	}
}

// proxy reaches the Kong proxy Service from the test process.
func proxy(cfg *envconf.Config) (harness.Proxy, error) {
	httpClient := &http.Client{Timeout: 5 * time.Second}
	if world.ProxyURL != "" {
		return harness.URLProxy{Base: world.ProxyURL, Client: httpClient}, nil
	}
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		return nil, err
	}
	return &harness.EndpointProxy{Client: cs, Namespace: kongNamespace, Service: "kong-proxy", PortName: "proxy", HTTP: httpClient}, nil
}

// expectStatus polls path through the proxy until it answers want.
func expectStatus(ctx context.Context, p harness.Proxy, path string, want int, timeout time.Duration) error {
	return poll(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) error {
		status, body, err := p.Get(ctx, path)
		if err != nil {
			return err
		}
		if status != want {
			return fmt.Errorf("GET %s: status %d (%.200s), want %d", path, status, body, want)
		}
		return nil
	})
}

// setUp renders overlay, applies it with the echo backend and waits until
// every Deployment is available. What it applies is removed when the
// feature's test ends, however it ends: e2e-framework runs a feature's
// Teardown steps only when Setup returned normally, so a Setup that calls
// t.Fatal would otherwise leave its namespaces (and the proxy's NodePort)
// to break every later feature.
func setUp(overlay string) func(context.Context, *testing.T, *envconf.Config) context.Context {
	return func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
		skipUnlessRunnable(t)
		objs, err := render(overlay)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, echoObjects()...)
		t.Cleanup(func() { cleanUp(t, cfg, objs) })
		start := time.Now()
		if err := apply(ctx, cfg, objs); err != nil {
			t.Fatal(err)
		}
		if err := waitAvailable(ctx, cfg, objs); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s available in %s", overlay, time.Since(start).Round(time.Millisecond))
		return ctx
	}
}

// cleanUp removes objs and waits until they are gone, on a context of its
// own: the feature's may be over. A failed feature's cluster state is
// described first, so the log says why it failed.
func cleanUp(t *testing.T, cfg *envconf.Config, objs []runtime.Object) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if t.Failed() {
		describeFailure(ctx, t, cfg)
	}
	start := time.Now()
	if err := remove(ctx, cfg, objs); err != nil {
		t.Errorf("cleaning up after %s: %v", t.Name(), err)
		return
	}
	t.Logf("cleaned up in %s", time.Since(start).Round(time.Millisecond))
}

// describeFailure logs the state of every pod in the feature's namespaces
// that is not Ready, with its container states: most setup failures are a
// pod that never started.
func describeFailure(ctx context.Context, t *testing.T, cfg *envconf.Config) {
	var pods corev1.PodList
	if err := cfg.Client().Resources().List(ctx, &pods); err != nil {
		t.Logf("listing pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		if p.Namespace != kongNamespace && p.Namespace != echoNamespace {
			continue
		}
		if podReady(p) || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		t.Logf("pod %s/%s on %q: phase %s", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase)
		for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			switch st := cs.State; {
			case st.Waiting != nil:
				t.Logf("  container %s: waiting %s: %s (restarts %d)", cs.Name, st.Waiting.Reason, st.Waiting.Message, cs.RestartCount)
			case st.Terminated != nil:
				t.Logf("  container %s: terminated %s, exit %d (restarts %d)", cs.Name, st.Terminated.Reason, st.Terminated.ExitCode, cs.RestartCount)
			default:
				t.Logf("  container %s: running, ready %t (restarts %d)", cs.Name, cs.Ready, cs.RestartCount)
			}
			if last := cs.LastTerminationState.Terminated; last != nil {
				t.Logf("    last exit %d (%s)", last.ExitCode, last.Reason)
			}
		}
	}
}

// lockHolder polls the election lock until it names a holder other than
// previous (empty: any holder) and returns that pod's name.
func lockHolder(ctx context.Context, cfg *envconf.Config, o *options.Options, timeout, interval time.Duration, previous string) (string, error) {
	var holder string
	err := poll(ctx, timeout, interval, func(ctx context.Context) error {
		var lock corev1.ConfigMap
		if err := cfg.Client().Resources().Get(ctx, o.ElectionLockName(), o.ElectionNamespace, &lock); err != nil {
			return err
		}
		pod, err := harness.LeaderPod(&lock)
		if err != nil {
			return err
		}
		if pod == previous {
			return fmt.Errorf("pod %s still holds the lock", previous)
		}
		holder = pod
		return nil
	})
	return holder, err
}

// kongPods lists the Kong pods of the overlay's namespace, terminating
// ones included.
func kongPods(ctx context.Context, cfg *envconf.Config) ([]corev1.Pod, error) {
	var pods corev1.PodList
	err := cfg.Client().Resources().List(ctx, &pods, resources.WithLabelSelector("app.kubernetes.io/name=kong"))
	return slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool { return p.Namespace != kongNamespace }), err
}
