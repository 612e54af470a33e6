// Package manifests renders the kustomize overlays under deploy/ with the
// kustomize Go API and decodes the result into typed Kubernetes objects, so
// tests can check them and e2e suites can apply them without a kustomize or
// kubectl binary.
package manifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The base carries the Kong CustomResourceDefinitions: client-go's scheme,
// which the decoder below and the e2e-framework clients use, learns the
// kind.
func init() {
	if err := apiextensionsv1.AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}

// Overlays are the deployable shapes under deploy/overlays.
var Overlays = []string{"dbless-sidecar", "dbless-gateway-discovery", "postgres"}

// Components are the optional pieces under deploy/components.
var Components = []string{"hpa", "pdb", "kongsim", "kong-metrics", "hpa-requests", "hpa-bandwidth", "router-expressions"}

// Addons are cluster add-ons under deploy/addons that the autoscaling
// components need.
var Addons = []string{"metrics-server", "prometheus", "keda"}

// RepoRoot finds the repository around the working directory by its go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("manifests: no go.work above the working directory")
		}
		dir = parent
	}
}

// Build describes what to render: an overlay with optional components and
// strategic-merge or JSON6902 patches (kustomize "patches" entries, as YAML
// text with an optional target).
type Build struct {
	// DeployDir is the deploy/ directory of the repository.
	DeployDir string
	// Overlay names a directory under deploy/overlays.
	Overlay string
	// Components name directories under deploy/components.
	Components []string
	// Patches are applied after the overlay and components.
	Patches []Patch
}

// Patch is one kustomize patch.
type Patch struct {
	// Patch is a strategic-merge patch or a JSON6902 op list, in YAML.
	Patch string `json:"patch"`
	// Target selects the objects of a JSON6902 patch; nil for
	// strategic-merge patches, which name their object themselves.
	Target *Target `json:"target,omitempty"`
}

// Target selects objects by kind and name.
type Target struct {
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
}

// Render renders b. A plain overlay is rendered in place; with components or
// patches, a throwaway kustomization that refers to the overlay is written to
// a temporary directory, so deploy/ itself is never modified.
func Render(b Build) ([]runtime.Object, error) {
	overlay := filepath.Join(b.DeployDir, "overlays", b.Overlay)
	if st, err := os.Stat(overlay); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("manifests: overlay %q: no directory %s", b.Overlay, overlay)
	}
	dir := overlay
	if len(b.Components) > 0 || len(b.Patches) > 0 {
		tmp, err := os.MkdirTemp("", "konductor-kustomize-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		// kustomize refuses absolute paths; refer to deploy/ relative to tmp.
		rel := func(p string) (string, error) { return filepath.Rel(tmp, p) }
		overlayRel, err := rel(overlay)
		if err != nil {
			return nil, err
		}
		k := map[string]any{
			"apiVersion": "kustomize.config.k8s.io/v1beta1",
			"kind":       "Kustomization",
			"resources":  []string{overlayRel},
		}
		var comps []string
		for _, c := range b.Components {
			comp := filepath.Join(b.DeployDir, "components", c)
			if st, err := os.Stat(comp); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("manifests: component %q: no directory %s", c, comp)
			}
			compRel, err := rel(comp)
			if err != nil {
				return nil, err
			}
			comps = append(comps, compRel)
		}
		if len(comps) > 0 {
			k["components"] = comps
		}
		if len(b.Patches) > 0 {
			k["patches"] = b.Patches
		}
		raw, err := yaml.Marshal(k)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), raw, 0o600); err != nil {
			return nil, err
		}
		dir = tmp
	}
	return RenderDir(dir)
}

// RenderDir renders the kustomization in dir and decodes every object
// strictly (unknown or duplicated fields are errors) into its typed Go form;
// kinds client-go does not know (APIService, KongClusterPlugin, KEDA's
// ScaledObject) stay *unstructured.Unstructured.
func RenderDir(dir string) ([]runtime.Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("manifests: kustomize build %s: %w", dir, err)
	}
	decoder := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	var objs []runtime.Object
	for _, r := range res.Resources() {
		raw, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("manifests: %s: %w", r.CurId(), err)
		}
		obj, _, err := decoder.Decode(raw, nil, nil)
		if runtime.IsNotRegisteredError(err) {
			u := &unstructured.Unstructured{}
			obj, err = u, yaml.Unmarshal(raw, &u.Object)
		}
		if err != nil {
			return nil, fmt.Errorf("manifests: %s %s/%s: %w", r.GetKind(), r.GetNamespace(), r.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// ID names an object as "Kind namespace/name" (or "Kind name" when
// cluster-scoped), for messages and lookups.
func ID(obj runtime.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	m, ok := obj.(interface {
		GetNamespace() string
		GetName() string
	})
	if !ok {
		return kind
	}
	if m.GetNamespace() == "" {
		return kind + " " + m.GetName()
	}
	return kind + " " + strings.Join([]string{m.GetNamespace(), m.GetName()}, "/")
}

// NodePortPatch turns the Service name into a NodePort Service whose i-th
// port gets nodePorts[i]; the e2e suite uses it on the Kong proxy (80 and
// 443) so that kind can map them to the host.
func NodePortPatch(name string, nodePorts ...int32) Patch {
	var b strings.Builder
	b.WriteString("- op: replace\n  path: /spec/type\n  value: NodePort\n")
	for i, p := range nodePorts {
		fmt.Fprintf(&b, "- op: add\n  path: /spec/ports/%d/nodePort\n  value: %d\n", i, p)
	}
	return Patch{Target: &Target{Kind: "Service", Name: name}, Patch: b.String()}
}
