package manifests

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"konductor.dev/controller/options"
)

// Workload is a pod template with the object that owns it.
type Workload struct {
	ID       string
	Kind     string
	Name     string
	NS       string
	Selector *metav1.LabelSelector
	Template corev1.PodTemplateSpec
	Replicas int32
}

// Workloads lists the Deployments, StatefulSets and Jobs among objs.
func Workloads(objs []runtime.Object) []Workload {
	var ws []Workload
	for _, o := range objs {
		switch x := o.(type) {
		case *appsv1.Deployment:
			ws = append(ws, Workload{ID(o), "Deployment", x.Name, x.Namespace, x.Spec.Selector, x.Spec.Template, replicas(x.Spec.Replicas)})
		case *appsv1.StatefulSet:
			ws = append(ws, Workload{ID(o), "StatefulSet", x.Name, x.Namespace, x.Spec.Selector, x.Spec.Template, replicas(x.Spec.Replicas)})
		case *batchv1.Job:
			ws = append(ws, Workload{ID(o), "Job", x.Name, x.Namespace, x.Spec.Selector, x.Spec.Template, 1})
		}
	}
	return ws
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// Find returns the object of type T named namespace/name, or nil.
func Find[T interface {
	runtime.Object
	GetNamespace() string
	GetName() string
}](objs []runtime.Object, namespace, name string) T {
	var zero T
	for _, o := range objs {
		if t, ok := o.(T); ok && t.GetNamespace() == namespace && t.GetName() == name {
			return t
		}
	}
	return zero
}

// All returns the objects of type T.
func All[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// IsKong says whether a container runs Kong (the real image or kongsim).
func IsKong(c corev1.Container) bool {
	repo := imageRepository(c.Image)
	return repo == "kong" || repo == "kong/kong" || repo == "kongsim"
}

// IsKonductor says whether a container runs the controller.
func IsKonductor(c corev1.Container) bool { return imageRepository(c.Image) == "konductor" }

func imageRepository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if colon := strings.LastIndexByte(image, ':'); colon > strings.LastIndexByte(image, '/') {
		image = image[:colon]
	}
	return strings.TrimPrefix(image, "docker.io/library/")
}

// ControllerOptions parses a konductor container's args and env with the
// controller's own flag parser, as the process would in that pod.
func ControllerOptions(pod corev1.PodTemplateSpec, namespace string, c corev1.Container) (*options.Options, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = namespace
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = pod.Name + "-pod"
		}
	}
	return options.Parse(append(slices.Clone(c.Command[min(len(c.Command), 1):]), c.Args...), options.Env{
		Getenv:   func(k string) string { return env[k] },
		ReadFile: func(string) ([]byte, error) { return nil, errors.New("not in a pod") },
	})
}

// Check runs every consistency check over a rendered overlay and returns
// one error per problem found, each naming the object and field at fault.
func Check(objs []runtime.Object) []error {
	var errs []error
	for _, check := range []func([]runtime.Object) []error{
		checkResources, checkMemoryLimit, checkSelectors, checkServices, checkProbes, checkController,
		checkDisruptionTargets, checkIngressClass,
	} {
		errs = append(errs, check(objs)...)
	}
	return errs
}

// checkResources: every container of every workload requests CPU and
// memory, so the scheduler and the HPA can work with it.
func checkResources(objs []runtime.Object) []error {
	var errs []error
	for _, w := range Workloads(objs) {
		for _, c := range allContainers(w.Template.Spec) {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
					errs = append(errs, fmt.Errorf("%s: container %q: resources.requests.%s is not set", w.ID, c.Name, r))
				}
			}
		}
	}
	return errs
}

// checkMemoryLimit: a konductor container with a memory limit hands it to
// the Go runtime as GOMEMLIMIT, so that the GC collects harder near the
// limit rather than the kernel killing the process.
func checkMemoryLimit(objs []runtime.Object) []error {
	var errs []error
	for _, w := range Workloads(objs) {
		for _, c := range w.Template.Spec.Containers {
			if _, limited := c.Resources.Limits[corev1.ResourceMemory]; !IsKonductor(c) || !limited {
				continue
			}
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
			if i < 0 {
				errs = append(errs, fmt.Errorf("%s: container %q: resources.limits.memory is set but env GOMEMLIMIT is not", w.ID, c.Name))
				continue
			}
			ref := c.Env[i].ValueFrom
			if ref == nil || ref.ResourceFieldRef == nil || ref.ResourceFieldRef.Resource != "limits.memory" ||
				(ref.ResourceFieldRef.ContainerName != "" && ref.ResourceFieldRef.ContainerName != c.Name) ||
				(!ref.ResourceFieldRef.Divisor.IsZero() && ref.ResourceFieldRef.Divisor.Value() != 1) {
				errs = append(errs, fmt.Errorf("%s: container %q: env GOMEMLIMIT must come from resourceFieldRef limits.memory of the container, in bytes", w.ID, c.Name))
			}
		}
	}
	return errs
}

func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

// checkSelectors: a workload's selector selects its own pod template.
func checkSelectors(objs []runtime.Object) []error {
	var errs []error
	for _, w := range Workloads(objs) {
		if w.Kind == "Job" && w.Selector == nil {
			continue // the Job controller generates it
		}
		sel, err := metav1.LabelSelectorAsSelector(w.Selector)
		if err != nil || w.Selector == nil || sel.Empty() {
			errs = append(errs, fmt.Errorf("%s: spec.selector is missing or invalid (%v)", w.ID, err))
			continue
		}
		if !sel.Matches(labels.Set(w.Template.Labels)) {
			errs = append(errs, fmt.Errorf("%s: spec.selector %s does not match spec.template.metadata.labels %v", w.ID, sel, w.Template.Labels))
		}
	}
	return errs
}

// podsSelectedBy returns the workloads in namespace whose pods match sel.
func podsSelectedBy(objs []runtime.Object, namespace string, sel labels.Selector) []Workload {
	var out []Workload
	for _, w := range Workloads(objs) {
		if w.NS == namespace && sel.Matches(labels.Set(w.Template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

// checkServices: a Service selects some pods, and its target ports exist
// on them.
func checkServices(objs []runtime.Object) []error {
	var errs []error
	for _, svc := range All[*corev1.Service](objs) {
		id := ID(svc)
		if len(svc.Spec.Selector) == 0 {
			errs = append(errs, fmt.Errorf("%s: spec.selector is empty", id))
			continue
		}
		ws := podsSelectedBy(objs, svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector))
		if len(ws) == 0 {
			errs = append(errs, fmt.Errorf("%s: spec.selector %v selects no pod template", id, svc.Spec.Selector))
			continue
		}
		for i, p := range svc.Spec.Ports {
			for _, w := range ws {
				if _, ok := resolvePort(w.Template.Spec.Containers, p.TargetPort); !ok {
					errs = append(errs, fmt.Errorf("%s: spec.ports[%d].targetPort %s is not a port of %s", id, i, p.TargetPort.String(), w.ID))
				}
			}
		}
	}
	return errs
}

// resolvePort finds the container port a named or numbered port refers to.
func resolvePort(containers []corev1.Container, port intstr.IntOrString) (int32, bool) {
	for _, c := range containers {
		for _, cp := range c.Ports {
			if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// checkProbes: probes target ports the container declares, and those are
// the ports the process listens on: Kong's status listener for
// /status/ready, konductor's --health-probe-bind-address for /readyz and
// /healthz. Kong's proxy and admin ports match its listen settings.
func checkProbes(objs []runtime.Object) []error {
	var errs []error
	for _, w := range Workloads(objs) {
		if w.Kind == "Job" {
			continue // runs to completion; nothing routes to it
		}
		for _, c := range w.Template.Spec.Containers {
			where := fmt.Sprintf("%s: container %q", w.ID, c.Name)
			probes := map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe}
			ports := map[string]int32{}
			for _, kind := range []string{"readinessProbe", "livenessProbe"} {
				p := probes[kind]
				if p == nil || p.HTTPGet == nil {
					continue
				}
				port, ok := resolvePort([]corev1.Container{c}, p.HTTPGet.Port)
				if !ok {
					errs = append(errs, fmt.Errorf("%s: %s.httpGet.port %s is not a port of the container", where, kind, p.HTTPGet.Port.String()))
				}
				ports[kind] = port
			}
			switch {
			case IsKong(c):
				errs = append(errs, checkKongProbes(where, c, probes, ports)...)
			case IsKonductor(c):
				errs = append(errs, checkControllerProbes(where, w, c, probes, ports)...)
			}
		}
	}
	return errs
}

func checkKongProbes(where string, c corev1.Container, probes map[string]*corev1.Probe, ports map[string]int32) []error {
	var errs []error
	env := literalEnv(c)
	status, err := listenPort(env["KONG_STATUS_LISTEN"])
	if err != nil {
		return append(errs, fmt.Errorf("%s: env KONG_STATUS_LISTEN: %v (the readiness probe needs the status listener)", where, err))
	}
	if p := probes["readinessProbe"]; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/status/ready" {
		errs = append(errs, fmt.Errorf("%s: readinessProbe must be httpGet /status/ready, so an unconfigured Kong gets no traffic", where))
	} else if ports["readinessProbe"] != status {
		errs = append(errs, fmt.Errorf("%s: readinessProbe port %d is not KONG_STATUS_LISTEN's port %d", where, ports["readinessProbe"], status))
	}
	if p := probes["livenessProbe"]; p != nil && p.HTTPGet != nil && ports["livenessProbe"] != status {
		errs = append(errs, fmt.Errorf("%s: livenessProbe port %d is not KONG_STATUS_LISTEN's port %d", where, ports["livenessProbe"], status))
	}
	for _, l := range []struct{ name, envName string }{{"proxy", "KONG_PROXY_LISTEN"}, {"admin", "KONG_ADMIN_LISTEN"}} {
		name, envName := l.name, l.envName
		declared, ok := resolvePort([]corev1.Container{c}, intstr.FromString(name))
		if !ok {
			continue
		}
		listen, err := listenPort(env[envName])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: env %s: %v", where, envName, err))
		} else if listen != declared {
			errs = append(errs, fmt.Errorf("%s: port %q is %d but %s listens on %d", where, name, declared, envName, listen))
		}
	}
	return errs
}

func checkControllerProbes(where string, w Workload, c corev1.Container, probes map[string]*corev1.Probe, ports map[string]int32) []error {
	var errs []error
	o, err := ControllerOptions(w.Template, w.NS, c)
	if err != nil {
		return nil // reported by checkController
	}
	health, err := listenPort(o.HealthProbeBindAddress)
	if err != nil {
		return []error{fmt.Errorf("%s: --health-probe-bind-address: %v", where, err)}
	}
	for _, want := range []struct{ kind, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
		kind, path := want.kind, want.path
		p := probes[kind]
		switch {
		case p == nil || p.HTTPGet == nil:
			errs = append(errs, fmt.Errorf("%s: %s must be httpGet %s", where, kind, path))
		case p.HTTPGet.Path != path:
			errs = append(errs, fmt.Errorf("%s: %s.httpGet.path is %q, want %q", where, kind, p.HTTPGet.Path, path))
		case ports[kind] != health:
			errs = append(errs, fmt.Errorf("%s: %s port %d is not --health-probe-bind-address's port %d", where, kind, ports[kind], health))
		}
	}
	if metrics, ok := resolvePort([]corev1.Container{c}, intstr.FromString("metrics")); ok {
		if want, err := listenPort(o.MetricsBindAddress); err != nil || want != metrics {
			errs = append(errs, fmt.Errorf("%s: port \"metrics\" is %d but --metrics-bind-address is %q", where, metrics, o.MetricsBindAddress))
		}
	}
	return errs
}

func literalEnv(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

// listenPort reads the port of a listen setting such as "0.0.0.0:8100",
// ":10254" or Kong's "0.0.0.0:8000 reuseport backlog=16384".
func listenPort(listen string) (int32, error) {
	first, _, _ := strings.Cut(strings.TrimSpace(listen), ",")
	first, _, _ = strings.Cut(strings.TrimSpace(first), " ")
	if first == "" || first == "off" {
		return 0, fmt.Errorf("listener %q is off", listen)
	}
	_, port, err := net.SplitHostPort(first)
	if err != nil {
		return 0, fmt.Errorf("%q: %v", listen, err)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: port: %v", listen, err)
	}
	return int32(n), nil
}

// checkController: every konductor container's flags parse, the services
// they name exist, and its service account holds the RBAC it needs: the
// ClusterRole for reading and status, and a namespaced Role for exactly the
// election lock <election-id>-<ingress-class>.
func checkController(objs []runtime.Object) []error {
	var errs []error
	found := false
	for _, w := range Workloads(objs) {
		for _, c := range w.Template.Spec.Containers {
			if !IsKonductor(c) {
				continue
			}
			found = true
			where := fmt.Sprintf("%s: container %q", w.ID, c.Name)
			o, err := ControllerOptions(w.Template, w.NS, c)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: args: %v", where, err))
				continue
			}
			for _, r := range []struct{ flag, ref string }{{"publish-service", o.PublishService}, {"kong-admin-svc", o.KongAdminSvc}} {
				flag, ref := r.flag, r.ref
				if ref == "" {
					continue
				}
				ns, name, _ := options.SplitNamespacedName(ref)
				if Find[*corev1.Service](objs, ns, name) == nil {
					errs = append(errs, fmt.Errorf("%s: --%s names Service %s, which the overlay does not contain", where, flag, ref))
				}
			}
			if o.KongAdminSvc != "" {
				ns, name, _ := options.SplitNamespacedName(o.KongAdminSvc)
				if svc := Find[*corev1.Service](objs, ns, name); svc != nil && !hasPortNamed(svc, o.KongAdminSvcPortNames) {
					errs = append(errs, fmt.Errorf("%s: Service %s has no port named one of --kong-admin-svc-port-names %v", where, o.KongAdminSvc, o.KongAdminSvcPortNames))
				}
			}
			sa := w.Template.Spec.ServiceAccountName
			if sa == "" || Find[*corev1.ServiceAccount](objs, w.NS, sa) == nil {
				errs = append(errs, fmt.Errorf("%s: spec.template.spec.serviceAccountName %q is not a ServiceAccount of the overlay", w.ID, sa))
				continue
			}
			subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: w.NS}
			errs = append(errs, checkClusterRBAC(objs, where, subject)...)
			errs = append(errs, checkElectionRBAC(objs, where, subject, o)...)
		}
	}
	if !found {
		errs = append(errs, errors.New("no konductor container in the overlay"))
	}
	return errs
}

func hasPortNamed(svc *corev1.Service, names []string) bool {
	for _, p := range svc.Spec.Ports {
		if slices.Contains(names, p.Name) {
			return true
		}
	}
	return false
}

// need is one permission the controller uses.
type need struct {
	group, resource string
	verbs           []string
}

var clusterNeeds = []need{
	{"networking.k8s.io", "ingresses", []string{"get", "list", "watch"}},
	{"networking.k8s.io", "ingresses/status", []string{"patch"}},
	{"networking.k8s.io", "ingressclasses", []string{"get", "list", "watch"}},
	{"", "services", []string{"get", "list", "watch"}},
	{"", "secrets", []string{"get", "list", "watch"}},
	{"discovery.k8s.io", "endpointslices", []string{"get", "list", "watch"}},
	{"", "events", []string{"create", "patch"}},
	{"configuration.konghq.com", "kongplugins", []string{"get", "list", "watch"}},
	{"configuration.konghq.com", "kongclusterplugins", []string{"get", "list", "watch"}},
	{"configuration.konghq.com", "kongconsumers", []string{"get", "list", "watch"}},
}

func checkClusterRBAC(objs []runtime.Object, where string, subject rbacv1.Subject) []error {
	var rules []rbacv1.PolicyRule
	for _, b := range All[*rbacv1.ClusterRoleBinding](objs) {
		if b.RoleRef.Kind != "ClusterRole" || !slices.Contains(b.Subjects, subject) {
			continue
		}
		if r := Find[*rbacv1.ClusterRole](objs, "", b.RoleRef.Name); r != nil {
			rules = append(rules, r.Rules...)
		}
	}
	var errs []error
	for _, n := range clusterNeeds {
		for _, v := range n.verbs {
			if !allows(rules, n.group, n.resource, "", v) {
				errs = append(errs, fmt.Errorf("%s: ServiceAccount %s/%s may not %s %s cluster-wide", where, subject.Namespace, subject.Name, v, qualified(n.group, n.resource)))
			}
		}
	}
	return errs
}

// checkElectionRBAC wants create on the lock's resource and get, update and
// watch on the lock's name, in the election namespace, through a Role — and
// no get/update/watch on other names (the point of narrowing).
func checkElectionRBAC(objs []runtime.Object, where string, subject rbacv1.Subject, o *options.Options) []error {
	group, resource := "", "configmaps"
	if o.ElectionLock == options.LockLeases {
		group, resource = "coordination.k8s.io", "leases"
	}
	ns, lock := o.ElectionNamespace, o.ElectionLockName()
	var rules []rbacv1.PolicyRule
	for _, b := range All[*rbacv1.RoleBinding](objs) {
		if b.Namespace != ns || b.RoleRef.Kind != "Role" || !slices.Contains(b.Subjects, subject) {
			continue
		}
		if r := Find[*rbacv1.Role](objs, ns, b.RoleRef.Name); r != nil {
			rules = append(rules, r.Rules...)
		}
	}
	var errs []error
	if !allows(rules, group, resource, "", "create") {
		errs = append(errs, fmt.Errorf("%s: no Role in namespace %q lets ServiceAccount %s create %s (election lock)", where, ns, subject.Name, qualified(group, resource)))
	}
	for _, v := range []string{"get", "update", "watch"} {
		if !allows(rules, group, resource, lock, v) {
			errs = append(errs, fmt.Errorf("%s: no Role in namespace %q lets ServiceAccount %s %s %s %q (the lock <election-id>-<ingress-class>)", where, ns, subject.Name, v, qualified(group, resource), lock))
		}
		if allows(rules, group, resource, lock+"-someone-else", v) {
			errs = append(errs, fmt.Errorf("%s: the election Role lets ServiceAccount %s %s any %s; narrow it with resourceNames [%q]", where, subject.Name, v, qualified(group, resource), lock))
		}
	}
	return errs
}

func qualified(group, resource string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

// allows evaluates RBAC rules the way the API server's authorizer does for
// one request (name "" means a request without a name, like create or list).
func allows(rules []rbacv1.PolicyRule, group, resource, name, verb string) bool {
	match := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, r := range rules {
		if !match(r.APIGroups, group) || !match(r.Resources, resource) || !match(r.Verbs, verb) {
			continue
		}
		if len(r.ResourceNames) == 0 || (name != "" && slices.Contains(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}

// checkDisruptionTargets: PDBs select pods of the overlay, HPAs scale a
// Deployment of the overlay whose containers request CPU, and NetworkPolicy
// named ports exist on the selected pods.
func checkDisruptionTargets(objs []runtime.Object) []error {
	var errs []error
	for _, pdb := range All[*policyv1.PodDisruptionBudget](objs) {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || len(podsSelectedBy(objs, pdb.Namespace, sel)) == 0 {
			errs = append(errs, fmt.Errorf("%s: spec.selector selects no pod template of the overlay", ID(pdb)))
		}
	}
	for _, hpa := range All[*autoscalingv2.HorizontalPodAutoscaler](objs) {
		ref := hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || Find[*appsv1.Deployment](objs, hpa.Namespace, ref.Name) == nil {
			errs = append(errs, fmt.Errorf("%s: spec.scaleTargetRef %s %s is not a Deployment of the overlay", ID(hpa), ref.Kind, ref.Name))
		}
	}
	for _, np := range All[*networkingv1.NetworkPolicy](objs) {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		ws := podsSelectedBy(objs, np.Namespace, sel)
		if err != nil || len(ws) == 0 {
			errs = append(errs, fmt.Errorf("%s: spec.podSelector selects no pod template of the overlay", ID(np)))
			continue
		}
		for i, rule := range np.Spec.Ingress {
			for j, p := range rule.Ports {
				if p.Port == nil {
					continue
				}
				for _, w := range ws {
					if _, ok := resolvePort(w.Template.Spec.Containers, *p.Port); !ok {
						errs = append(errs, fmt.Errorf("%s: spec.ingress[%d].ports[%d].port %s is not a port of %s", ID(np), i, j, p.Port.String(), w.ID))
					}
				}
			}
		}
	}
	return errs
}

// IngressController is the controller value konductor answers to, the Kong
// ingress controller's.
const IngressController = "ingress-controllers.konghq.com/kong"

// checkIngressClass: the IngressClass a controller serves exists and names
// konductor's controller value.
func checkIngressClass(objs []runtime.Object) []error {
	var errs []error
	classes := All[*networkingv1.IngressClass](objs)
	for _, w := range Workloads(objs) {
		for _, c := range w.Template.Spec.Containers {
			if !IsKonductor(c) {
				continue
			}
			o, err := ControllerOptions(w.Template, w.NS, c)
			if err != nil {
				continue // reported by checkController
			}
			i := slices.IndexFunc(classes, func(ic *networkingv1.IngressClass) bool { return ic.Name == o.IngressClass })
			if i < 0 {
				errs = append(errs, fmt.Errorf("%s: container %q: --ingress-class %q has no IngressClass in the overlay", w.ID, c.Name, o.IngressClass))
			} else if classes[i].Spec.Controller != IngressController {
				errs = append(errs, fmt.Errorf("%s: spec.controller is %q, want %q", ID(classes[i]), classes[i].Spec.Controller, IngressController))
			}
		}
	}
	return errs
}
