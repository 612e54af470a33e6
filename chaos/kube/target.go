package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/engine"
	"konductor.dev/chaos/journal"
)

// Options configure a Target.
type Options struct {
	Config *rest.Config
	// Provider is the kind of cluster: local (process faults possible),
	// kind, or any.
	Provider drill.Provider
	// DeployDir is the repository's deploy/ directory.
	DeployDir string
	// ProxyURL reaches the Kong proxy Service from here (e.g. a kind
	// NodePort); empty means through the ready endpoints of its
	// EndpointSlices, as on the local cluster, which has no kube-proxy.
	ProxyURL string
	// EchoImage is the backend's image (default konductor.dev/echo:dev).
	EchoImage string
	// ReadyTimeout bounds deploying and teardown (default 5m).
	ReadyTimeout time.Duration
	Log          func(format string, args ...any)
}

// EchoNamespace holds the backend the drills route to.
const EchoNamespace = "chaos-echo"

// Target is a Kubernetes cluster as a drill target.
type Target struct {
	o    Options
	cs   kubernetes.Interface
	ap   applier
	http *http.Client

	// Set by Setup from the drill and the rendered overlay.
	d                  *drill.Drill
	ns                 string
	objs               []*unstructured.Unstructured
	kongDeploy         string
	ctrlDeploy         string
	kongSel, ctrlSel   labels.Selector
	kongContainer      string
	ctrlContainer      string
	ports              kongPorts
	kongsim            bool
	dbless             bool
	lock               string // election ConfigMap; "" without election
	origReplicas       map[string]int32
	mu                 sync.Mutex
	stoppedPIDs        []int
	probeIngresses     []string
	scaled             bool
	lastHolderAtInject string
}

type kongPorts struct {
	proxy, status, admin int32 // admin 0: not reachable on the pod network
}

// New connects to the cluster.
func New(o Options) (*Target, error) {
	if o.EchoImage == "" {
		o.EchoImage = "konductor.dev/echo:dev"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 5 * time.Minute
	}
	cfg := rest.CopyConfig(o.Config)
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return &Target{o: o, cs: cs, ap: applier{dyn: dyn, mapper: mapper},
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}, nil
}

// Provider implements engine.Target.
func (t *Target) Provider() drill.Provider { return t.o.Provider }

func (t *Target) logf(format string, args ...any) {
	if t.o.Log != nil {
		t.o.Log(format, args...)
	}
}

// Setup renders and applies the drill's overlay and the echo backend, and
// waits until every Kong serves the backend.
func (t *Target) Setup(ctx context.Context, d *drill.Drill, j *journal.Writer) error {
	t.d = d
	t.ns = d.Target.Namespace
	if t.ns == "" {
		t.ns = "kong"
	}
	comps := slices.Clone(d.Target.Components)
	if t.o.Provider == drill.ProviderLocal && !slices.Contains(comps, "kongsim") {
		comps = append(comps, "kongsim") // the local cluster runs kongsim for the kong image
	}
	objs, err := Render(t.o.DeployDir, d.Target.Overlay, comps, nil)
	if err != nil {
		return err
	}
	if err := t.learn(objs); err != nil {
		return err
	}
	var patches []map[string]any
	if d.Target.KongReplicas > 0 {
		patches = append(patches, replicasPatch(t.kongDeploy, d.Target.KongReplicas))
	}
	if d.Target.ControllerReplicas > 0 && t.ctrlDeploy != t.kongDeploy {
		patches = append(patches, replicasPatch(t.ctrlDeploy, d.Target.ControllerReplicas))
	}
	if len(patches) > 0 {
		if objs, err = Render(t.o.DeployDir, d.Target.Overlay, comps, patches); err != nil {
			return err
		}
	}
	t.objs = objs
	// The drill deploys its own topology and removes it after: it refuses
	// to run over one that is already there.
	for _, ns := range []string{t.ns, EchoNamespace} {
		if _, err := t.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("namespace %s already exists; the drill deploys its own topology and would not leave the cluster as found (delete it, or use another cluster)", ns)
		} else if !apierrors.IsNotFound(err) {
			return err
		}
	}
	t.logf("  deploying overlay %s (components %v)", d.Target.Overlay, comps)
	start := time.Now()
	if err := t.ap.apply(ctx, append(slices.Clone(objs), t.echoObjects()...)); err != nil {
		return err
	}
	if err := t.waitAvailable(ctx); err != nil {
		return err
	}
	if err := t.waitServing(ctx, "/", EchoHost, t.o.ReadyTimeout); err != nil {
		return fmt.Errorf("the proxy does not serve the echo backend: %w", err)
	}
	t.origReplicas = map[string]int32{}
	for _, name := range []string{t.kongDeploy, t.ctrlDeploy} {
		dep, err := t.cs.AppsV1().Deployments(t.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		t.origReplicas[name] = ptrOr(dep.Spec.Replicas, 1)
	}
	t.logf("  deployed and serving in %s", time.Since(start).Round(time.Second))
	return nil
}

// learn finds Kong and the controllers in the rendered objects.
func (t *Target) learn(objs []*unstructured.Unstructured) error {
	t.kongDeploy, t.ctrlDeploy, t.lock = "", "", ""
	for _, o := range objs {
		if o.GetKind() != "Deployment" || o.GetNamespace() != t.ns {
			continue
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
			return fmt.Errorf("%s: %w", id(o), err)
		}
		sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
		if err != nil {
			return fmt.Errorf("%s: spec.selector: %w", id(o), err)
		}
		for _, c := range dep.Spec.Template.Spec.Containers {
			switch repo := imageRepository(c.Image); {
			case repo == "kong" || repo == "kong/kong" || repo == "kongsim":
				t.kongDeploy, t.kongSel, t.kongContainer = dep.Name, sel, c.Name
				t.kongsim = repo == "kongsim"
				t.ports = kongPorts{}
				env := map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				t.dbless = env["KONG_DATABASE"] == "off"
				for _, p := range c.Ports {
					switch p.Name {
					case "proxy":
						t.ports.proxy = p.ContainerPort
					case "status":
						t.ports.status = p.ContainerPort
					case "admin":
						if !strings.HasPrefix(env["KONG_ADMIN_LISTEN"], "127.") {
							t.ports.admin = p.ContainerPort
						}
					}
				}
			case repo == "konductor":
				t.ctrlDeploy, t.ctrlSel, t.ctrlContainer = dep.Name, sel, c.Name
				t.lock = electionLock(append(slices.Clone(c.Command), c.Args...))
			}
		}
	}
	switch {
	case t.kongDeploy == "":
		return fmt.Errorf("overlay %s: no Deployment in namespace %s runs Kong", t.d.Target.Overlay, t.ns)
	case t.ctrlDeploy == "":
		return fmt.Errorf("overlay %s: no Deployment in namespace %s runs konductor", t.d.Target.Overlay, t.ns)
	case t.ports.proxy == 0:
		return fmt.Errorf("overlay %s: the Kong container has no port named proxy", t.d.Target.Overlay)
	}
	if t.ctrlDeploy == t.kongDeploy {
		t.lock = "" // sidecars each configure their own Kong: no election
	}
	return nil
}

// electionLock is the ConfigMap the controller elects with
// (<election-id>-<ingress-class>), as konductor and KIC name it.
func electionLock(args []string) string {
	id, class, mode := "ingress-controller-leader", "kong", "auto"
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--election-id="); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(a, "--ingress-class="); ok {
			class = v
		}
		if v, ok := strings.CutPrefix(a, "--leader-elect="); ok {
			mode = v
		}
	}
	if mode == "false" {
		return ""
	}
	return id + "-" + class
}

func imageRepository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if colon := strings.LastIndexByte(image, ':'); colon > strings.LastIndexByte(image, '/') {
		image = image[:colon]
	}
	return strings.TrimPrefix(image, "docker.io/library/")
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// waitAvailable waits until every Deployment of the drill and the backend
// has all replicas updated and available, and every Job has succeeded.
func (t *Target) waitAvailable(ctx context.Context) error {
	for _, ns := range []string{t.ns, EchoNamespace} {
		err := poll(ctx, t.o.ReadyTimeout, time.Second, func(ctx context.Context) error {
			deps, err := t.cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, d := range deps.Items {
				if err := deploymentDone(&d); err != nil {
					return err
				}
			}
			jobs, err := t.cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, jb := range jobs.Items {
				if jb.Status.Succeeded < 1 {
					return fmt.Errorf("Job %s/%s has not succeeded", ns, jb.Name)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// deploymentSettled reads Deployment name of the drill's namespace and
// reports, as deploymentDone does, whether it runs every replica it wants
// at its latest generation: what a fault's recovery waits for.
func (t *Target) deploymentSettled(ctx context.Context, name string) error {
	d, err := t.cs.AppsV1().Deployments(t.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	return deploymentDone(d)
}

// deploymentDone reports an error naming what is missing until d runs
// every replica it wants, updated and available, at its latest generation.
func deploymentDone(d *appsv1.Deployment) error {
	want := ptrOr(d.Spec.Replicas, 1)
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want || d.Status.Replicas != want {
		return fmt.Errorf("Deployment %s/%s: %d/%d updated, %d/%d available, %d running", d.Namespace, d.Name,
			d.Status.UpdatedReplicas, want, d.Status.AvailableReplicas, want, d.Status.Replicas)
	}
	return nil
}

// poll calls check every interval until it returns nil or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, check func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		err := check(ctx)
		if err != nil && ctx.Err() != nil && last != nil {
			return false, nil // cut short by the deadline: the previous answer says more
		}
		last = err
		return last == nil, nil
	})
	if err != nil {
		if last == nil {
			last = err
		}
		return fmt.Errorf("not within %s: %w", timeout, last)
	}
	return nil
}

// Teardown deletes what Setup applied and waits for the namespaces to go.
func (t *Target) Teardown(ctx context.Context) error {
	if t.objs == nil {
		return nil
	}
	objs := append(slices.Clone(t.objs), t.echoObjects()...)
	err := t.ap.remove(ctx, objs)
	// The verdict is in: the pods need not drain (Kong's preStop waits
	// 15 s), so they go at once. A terminating namespace admits no new pod
	// for a ReplicaSet to create meanwhile.
	zero := int64(0)
	for _, ns := range []string{t.ns, EchoNamespace} {
		if derr := t.cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); derr != nil && !apierrors.IsNotFound(derr) {
			err = errors.Join(err, fmt.Errorf("deleting the pods of namespace %s: %w", ns, derr))
		}
	}
	for _, ns := range []string{t.ns, EchoNamespace} {
		err = errors.Join(err, poll(ctx, t.o.ReadyTimeout, time.Second, func(ctx context.Context) error {
			_, err := t.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("namespace %s still exists (%v)", ns, err)
		}))
	}
	t.objs = nil
	return err
}

// pods lists the pods matching sel in the drill's namespace, oldest first.
func (t *Target) pods(ctx context.Context, sel labels.Selector) ([]corev1.Pod, error) {
	list, err := t.cs.CoreV1().Pods(t.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	pods := list.Items
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, nil
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyKongs lists the Ready Kong pods.
func (t *Target) readyKongs(ctx context.Context) ([]corev1.Pod, error) {
	pods, err := t.pods(ctx, t.kongSel)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(pods, func(p corev1.Pod) bool { return !podReady(&p) }), nil
}

func hostPort(ip string, port int32) string { return net.JoinHostPort(ip, strconv.Itoa(int(port))) }

// waitServing waits until every Ready Kong answers 2xx for path (with Host
// host) and there are as many Ready Kongs as the Deployment wants.
func (t *Target) waitServing(ctx context.Context, path, host string, timeout time.Duration) error {
	return poll(ctx, timeout, 100*time.Millisecond, func(ctx context.Context) error { return t.serving(ctx, path, host) })
}

func (t *Target) serving(ctx context.Context, path, host string) error {
	dep, err := t.cs.AppsV1().Deployments(t.ns).Get(ctx, t.kongDeploy, metav1.GetOptions{})
	if err != nil {
		return err
	}
	kongs, err := t.readyKongs(ctx)
	if err != nil {
		return err
	}
	if want := int(ptrOr(dep.Spec.Replicas, 1)); len(kongs) < want {
		return fmt.Errorf("%d of %d Kong pods ready", len(kongs), want)
	}
	for _, k := range kongs {
		code, err := t.get(ctx, "http://"+hostPort(k.Status.PodIP, t.ports.proxy)+path, host)
		if err != nil {
			return fmt.Errorf("Kong %s: %w", k.Name, err)
		}
		if code/100 != 2 {
			return fmt.Errorf("Kong %s answers %d for %s%s", k.Name, code, host, path)
		}
	}
	return nil
}

func (t *Target) get(ctx context.Context, url, host string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (t *Target) getJSON(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

var _ engine.Target = (*Target)(nil)
