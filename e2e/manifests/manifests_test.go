package manifests

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func deployDir(t *testing.T) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy")
}

func render(t *testing.T, b Build) []runtime.Object {
	t.Helper()
	b.DeployDir = deployDir(t)
	objs, err := Render(b)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func deployment(t *testing.T, objs []runtime.Object, name string) *appsv1.Deployment {
	t.Helper()
	d := Find[*appsv1.Deployment](objs, "kong", name)
	if d == nil {
		t.Fatalf("no Deployment kong/%s", name)
	}
	return d
}

func container(t *testing.T, d *appsv1.Deployment, match func(corev1.Container) bool) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if match(d.Spec.Template.Spec.Containers[i]) {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("%s: no such container", ID(d))
	return nil
}

func images(objs []runtime.Object) []string {
	var out []string
	for _, w := range Workloads(objs) {
		for _, c := range allContainers(w.Template.Spec) {
			out = append(out, c.Image)
		}
	}
	return out
}

// TestOverlays renders every overlay, alone and with every component, and
// runs all consistency checks plus what each shape promises.
func TestOverlays(t *testing.T) {
	tests := []struct {
		name  string
		build Build
		// shape checks what is specific to the overlay.
		shape func(t *testing.T, objs []runtime.Object)
	}{
		{
			name:  "dbless-sidecar",
			build: Build{Overlay: "dbless-sidecar"},
			shape: func(t *testing.T, objs []runtime.Object) {
				d := deployment(t, objs, "kong")
				kong := container(t, d, IsKong)
				ctrl := container(t, d, IsKonductor)
				if kong.Image != "kong:3.9" || ctrl.Image != "konductor:dev" {
					t.Errorf("images %q, %q; want kong:3.9 and konductor:dev", kong.Image, ctrl.Image)
				}
				o, err := ControllerOptions(d.Spec.Template, d.Namespace, *ctrl)
				if err != nil {
					t.Fatal(err)
				}
				if len(o.KongAdminURLs) != 1 || o.KongAdminURLs[0] != "http://localhost:8001" || o.KongAdminSvc != "" {
					t.Errorf("sidecar must talk to its own Kong: --kong-admin-url %v, --kong-admin-svc %q", o.KongAdminURLs, o.KongAdminSvc)
				}
				if got := literalEnv(*kong)["KONG_ADMIN_LISTEN"]; got != "127.0.0.1:8001" {
					t.Errorf("KONG_ADMIN_LISTEN = %q; the sidecar's Kong Admin API must stay on localhost:8001", got)
				}
				if o.LeaderElect != "auto" {
					t.Errorf("--leader-elect = %q, want auto (off for sidecars)", o.LeaderElect)
				}
			},
		},
		{
			name:  "dbless-gateway-discovery",
			build: Build{Overlay: "dbless-gateway-discovery"},
			shape: func(t *testing.T, objs []runtime.Object) {
				ctrl := deployment(t, objs, "konductor")
				if *ctrl.Spec.Replicas < 2 {
					t.Errorf("konductor replicas = %d, want 2 or more", *ctrl.Spec.Replicas)
				}
				c := container(t, ctrl, IsKonductor)
				o, err := ControllerOptions(ctrl.Spec.Template, ctrl.Namespace, *c)
				if err != nil {
					t.Fatal(err)
				}
				if o.KongAdminSvc != "kong/kong-admin" {
					t.Errorf("--kong-admin-svc = %q, want kong/kong-admin", o.KongAdminSvc)
				}
				admin := Find[*corev1.Service](objs, "kong", "kong-admin")
				if admin.Spec.ClusterIP != corev1.ClusterIPNone {
					t.Errorf("Service kong/kong-admin must be headless, clusterIP %q", admin.Spec.ClusterIP)
				}
				kong := container(t, deployment(t, objs, "kong"), IsKong)
				if literalEnv(*kong)["KONG_DATABASE"] != "off" {
					t.Errorf("Kong must be DB-less")
				}
			},
		},
		{
			name:  "postgres",
			build: Build{Overlay: "postgres"},
			shape: func(t *testing.T, objs []runtime.Object) {
				ctrl := deployment(t, objs, "konductor")
				if *ctrl.Spec.Replicas != 3 {
					t.Errorf("konductor replicas = %d, want 3", *ctrl.Spec.Replicas)
				}
				zones := false
				for _, c := range ctrl.Spec.Template.Spec.TopologySpreadConstraints {
					zones = zones || c.TopologyKey == "topology.kubernetes.io/zone"
				}
				if !zones {
					t.Error("konductor has no topologySpreadConstraint over topology.kubernetes.io/zone")
				}
				kong := container(t, deployment(t, objs, "kong"), IsKong)
				if literalEnv(*kong)["KONG_DATABASE"] != "postgres" {
					t.Error("Kong must use KONG_DATABASE=postgres")
				}
				job := Find[*batchv1.Job](objs, "kong", "kong-migrations")
				if job == nil {
					t.Fatal("no migrations Job")
				}
				if got := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " "); got != "kong migrations bootstrap" {
					t.Errorf("migrations args %q", got)
				}
				if Find[*appsv1.StatefulSet](objs, "kong", "postgres") == nil || Find[*corev1.Service](objs, "kong", "postgres") == nil {
					t.Error("no PostgreSQL StatefulSet and Service")
				}
			},
		},
		{
			name:  "postgres with hpa, pdb and kongsim",
			build: Build{Overlay: "postgres", Components: []string{"hpa", "pdb", "kongsim"}},
			shape: func(t *testing.T, objs []runtime.Object) {
				for _, img := range images(objs) {
					if imageRepository(img) == "kong" {
						t.Errorf("image %s left after the kongsim component", img)
					}
				}
				job := Find[*batchv1.Job](objs, "kong", "kong-migrations")
				if got := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " "); got != "migrations bootstrap" {
					t.Errorf("kongsim migrations args %q, want %q", got, "migrations bootstrap")
				}
				if Find[*autoscalingv2.HorizontalPodAutoscaler](objs, "kong", "kong") == nil || Find[*policyv1.PodDisruptionBudget](objs, "kong", "kong") == nil {
					t.Error("hpa or pdb component missing")
				}
			},
		},
		{
			name:  "sidecar with kongsim",
			build: Build{Overlay: "dbless-sidecar", Components: []string{"kongsim"}},
			shape: func(t *testing.T, objs []runtime.Object) {
				kong := container(t, deployment(t, objs, "kong"), IsKong)
				if kong.Image != "kongsim:dev" {
					t.Errorf("Kong image %q, want kongsim:dev", kong.Image)
				}
			},
		},
		{
			name: "as the e2e suite deploys it",
			build: Build{Overlay: "dbless-gateway-discovery", Components: []string{"kongsim"},
				Patches: []Patch{NodePortPatch("kong-proxy", 30080, 30443)}},
			shape: func(t *testing.T, objs []runtime.Object) {
				svc := Find[*corev1.Service](objs, "kong", "kong-proxy")
				if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].NodePort != 30080 || svc.Spec.Ports[1].NodePort != 30443 || svc.Spec.Ports[1].Port != 443 {
					t.Errorf("kong-proxy is %s with ports %+v, want NodePort 30080 for 80 and 30443 for 443", svc.Spec.Type, svc.Spec.Ports)
				}
			},
		},
		{
			name:  "gateway discovery scaled on requests/s",
			build: Build{Overlay: "dbless-gateway-discovery", Components: []string{"kong-metrics", "hpa-requests", "pdb"}},
			shape: func(t *testing.T, objs []runtime.Object) {
				kong := deployment(t, objs, "kong")
				if a := kong.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "8100" {
					t.Errorf("Kong pods not annotated for scraping the Status API: %v", a)
				}
				so := Find[*unstructured.Unstructured](objs, "kong", "kong")
				if so == nil || so.GetKind() != "ScaledObject" {
					t.Fatal("no ScaledObject kong/kong")
				}
				triggers, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
				if len(triggers) != 1 || !strings.Contains(fmt.Sprint(triggers[0]), "kong_http_requests_total") {
					t.Errorf("ScaledObject triggers = %v, want a kong_http_requests_total query", triggers)
				}
				if Find[*unstructured.Unstructured](objs, "", "prometheus") == nil {
					t.Error("no global prometheus KongClusterPlugin")
				}
			},
		},
		{
			name:  "router_flavor expressions added to Kong's environment",
			build: Build{Overlay: "postgres", Components: []string{"router-expressions"}},
			shape: func(t *testing.T, objs []runtime.Object) {
				kong := container(t, deployment(t, objs, "kong"), IsKong)
				flavor, database := "", ""
				for _, e := range kong.Env {
					switch e.Name {
					case "KONG_ROUTER_FLAVOR":
						flavor = e.Value
					case "KONG_DATABASE":
						database = e.Value
					}
				}
				if flavor != "expressions" || database != "postgres" {
					t.Errorf("Kong env KONG_ROUTER_FLAVOR=%q KONG_DATABASE=%q, want expressions added beside postgres", flavor, database)
				}
			},
		},
		{
			name:  "gateway discovery with hpa and pdb",
			build: Build{Overlay: "dbless-gateway-discovery", Components: []string{"hpa", "pdb"}},
			shape: func(t *testing.T, objs []runtime.Object) {
				if Find[*autoscalingv2.HorizontalPodAutoscaler](objs, "kong", "kong") == nil {
					t.Error("no HPA")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, tt.build)
			for _, err := range Check(objs) {
				t.Error(err)
			}
			tt.shape(t, objs)
		})
	}
}

// TestCheckFindsBreakage breaks one thing at a time in a rendered overlay
// and wants the checks to name it: a check that cannot fail proves nothing.
func TestCheckFindsBreakage(t *testing.T) {
	tests := []struct {
		name    string
		overlay string
		breakIt func(objs []runtime.Object)
		want    string
	}{
		{
			name: "lock name does not match the election id", overlay: "dbless-gateway-discovery",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "konductor").Spec.Template.Spec.Containers[0]
				c.Args = append(c.Args, "--election-id=other")
			},
			want: `"other-kong"`,
		},
		{
			name: "memory limit not handed to the Go runtime", overlay: "dbless-gateway-discovery",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "konductor").Spec.Template.Spec.Containers[0]
				c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
			},
			want: "env GOMEMLIMIT is not",
		},
		{
			name: "election role not narrowed", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				r := Find[*rbacv1.Role](objs, "kong", "konductor-leader-election")
				for i := range r.Rules {
					r.Rules[i].ResourceNames = nil
				}
			},
			want: "narrow it with resourceNames",
		},
		{
			name: "no watch on the lock", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				r := Find[*rbacv1.Role](objs, "kong", "konductor-leader-election")
				r.Rules[1].Verbs = []string{"get", "update"}
			},
			want: "watch configmaps",
		},
		{
			name: "no pods rule for the pod-evidence takeover", overlay: "dbless-gateway-discovery",
			breakIt: func(objs []runtime.Object) {
				r := Find[*rbacv1.Role](objs, "kong", "konductor-leader-election")
				r.Rules = slices.DeleteFunc(r.Rules, func(p rbacv1.PolicyRule) bool { return slices.Contains(p.Resources, "pods") })
			},
			want: "watch pods (--election-pod-evidence is on",
		},
		{
			name: "container name not given in a two-container pod", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "kong").Spec.Template.Spec.Containers[1]
				c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "CONTAINER_NAME" })
			},
			want: "env CONTAINER_NAME is missing and the Pod has 2 containers",
		},
		{
			name: "container name wrong", overlay: "postgres",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "konductor").Spec.Template.Spec.Containers[0]
				for i := range c.Env {
					if c.Env[i].Name == "CONTAINER_NAME" {
						c.Env[i].Value = "konductor"
					}
				}
			},
			want: `env CONTAINER_NAME is "konductor"`,
		},
		{
			name: "missing status permission", overlay: "postgres",
			breakIt: func(objs []runtime.Object) {
				r := Find[*rbacv1.ClusterRole](objs, "", "konductor")
				r.Rules = r.Rules[:1]
			},
			want: "patch ingresses/status.networking.k8s.io",
		},
		{
			name: "Kong without an ssl proxy listener", overlay: "dbless-gateway-discovery",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "kong").Spec.Template.Spec.Containers[0]
				for i := range c.Env {
					if c.Env[i].Name == "KONG_PROXY_LISTEN" {
						c.Env[i].Value = "0.0.0.0:8000, 0.0.0.0:8443"
					}
				}
			},
			want: `has no ssl listener`,
		},
		{
			name: "proxy Service without 443", overlay: "postgres",
			breakIt: func(objs []runtime.Object) {
				svc := Find[*corev1.Service](objs, "kong", "kong-proxy")
				svc.Spec.Ports = svc.Spec.Ports[:1]
			},
			want: "spec.ports has no port 443",
		},
		{
			name: "proxy Service 443 to the plain listener", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				svc := Find[*corev1.Service](objs, "kong", "kong-proxy")
				for i := range svc.Spec.Ports {
					if svc.Spec.Ports[i].Port == 443 {
						svc.Spec.Ports[i].TargetPort = intstr.FromString("proxy")
					}
				}
			},
			want: "targets Deployment kong/kong port 8000, which is not an ssl listener",
		},
		{
			name: "readiness probe on the wrong port", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "kong").Spec.Template.Spec.Containers[1]
				c.ReadinessProbe.HTTPGet.Port = intstr.FromString("metrics")
			},
			want: "is not --health-probe-bind-address's port",
		},
		{
			name: "kong status listener moved", overlay: "dbless-gateway-discovery",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "kong").Spec.Template.Spec.Containers[0]
				for i := range c.Env {
					if c.Env[i].Name == "KONG_STATUS_LISTEN" {
						c.Env[i].Value = "0.0.0.0:8200"
					}
				}
			},
			want: "not KONG_STATUS_LISTEN's port 8200",
		},
		{
			name: "no resource requests", overlay: "postgres",
			breakIt: func(objs []runtime.Object) {
				Find[*appsv1.Deployment](objs, "kong", "konductor").Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
			},
			want: "resources.requests.cpu is not set",
		},
		{
			name: "selector misses the template", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				Find[*appsv1.Deployment](objs, "kong", "kong").Spec.Template.Labels["app.kubernetes.io/name"] = "other"
			},
			want: "does not match spec.template.metadata.labels",
		},
		{
			name: "service selects nothing", overlay: "dbless-gateway-discovery",
			breakIt: func(objs []runtime.Object) {
				Find[*corev1.Service](objs, "kong", "kong-admin").Spec.Selector = map[string]string{"app": "nothing"}
			},
			want: "selects no pod template",
		},
		{
			name: "publish service missing", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				Find[*corev1.Service](objs, "kong", "kong-proxy").Name = "renamed"
			},
			want: "--publish-service names Service kong/kong-proxy",
		},
		{
			name: "unknown flag", overlay: "dbless-sidecar",
			breakIt: func(objs []runtime.Object) {
				c := &Find[*appsv1.Deployment](objs, "kong", "kong").Spec.Template.Spec.Containers[1]
				c.Args = append(c.Args, "--no-such-flag")
			},
			want: "no-such-flag",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := render(t, Build{Overlay: tt.overlay})
			tt.breakIt(objs)
			err := errors.Join(Check(objs)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v; want an error containing %q", err, tt.want)
			}
			t.Log(err)
		})
	}
}

// TestRenderRejects covers bad input: unknown overlays and components, and
// a typo'd field, which strict decoding must refuse.
func TestRenderRejects(t *testing.T) {
	dir := deployDir(t)
	tests := []struct {
		name  string
		build Build
		want  string
	}{
		{"unknown overlay", Build{DeployDir: dir, Overlay: "nope"}, `overlay "nope"`},
		{"unknown component", Build{DeployDir: dir, Overlay: "dbless-sidecar", Components: []string{"nope"}}, `component "nope"`},
		{"misspelled field", Build{DeployDir: dir, Overlay: "dbless-sidecar", Patches: []Patch{{
			Target: &Target{Kind: "Deployment", Name: "kong"},
			Patch:  "- op: add\n  path: /spec/template/spec/containers/0/readinesProbe\n  value: {}\n",
		}}}, "readinesProbe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.build)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestAddons renders the cluster add-ons the autoscaling components need:
// each builds, and each aggregated API is served by a Service of the add-on.
func TestAddons(t *testing.T) {
	for _, name := range Addons {
		t.Run(name, func(t *testing.T) {
			objs, err := RenderDir(filepath.Join(deployDir(t), "addons", name))
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if name == "keda" {
				want = 2 // the operator and its metrics server
			}
			if len(Workloads(objs)) != want {
				t.Errorf("%d workloads, want %d", len(Workloads(objs)), want)
			}
			// The add-ons' images name their user, which a kubelet cannot
			// check against runAsNonRoot: each pod names it as a number.
			for _, w := range Workloads(objs) {
				psc := w.Template.Spec.SecurityContext
				for _, c := range w.Template.Spec.Containers {
					nonRoot, user := false, int64(0)
					if psc != nil {
						nonRoot = psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
						if psc.RunAsUser != nil {
							user = *psc.RunAsUser
						}
					}
					if csc := c.SecurityContext; csc != nil {
						if csc.RunAsNonRoot != nil {
							nonRoot = *csc.RunAsNonRoot
						}
						if csc.RunAsUser != nil {
							user = *csc.RunAsUser
						}
					}
					if nonRoot && user == 0 {
						t.Errorf("%s: container %q: runAsNonRoot without a non-zero runAsUser", w.ID, c.Name)
					}
				}
			}
			for _, check := range []func([]runtime.Object) []error{checkResources, checkSelectors, checkServices} {
				for _, err := range check(objs) {
					t.Error(err)
				}
			}
			for _, u := range All[*unstructured.Unstructured](objs) {
				if u.GetKind() != "APIService" {
					continue
				}
				ns, _, _ := unstructured.NestedString(u.Object, "spec", "service", "namespace")
				svc, _, _ := unstructured.NestedString(u.Object, "spec", "service", "name")
				if Find[*corev1.Service](objs, ns, svc) == nil {
					t.Errorf("APIService %s names Service %s/%s, which the add-on lacks", u.GetName(), ns, svc)
				}
			}
		})
	}
}
