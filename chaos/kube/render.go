// Package kube is the drill target for any Kubernetes cluster reachable by
// kubeconfig: it deploys a deploy/ overlay by server-side apply, probes
// Kong and the controllers through the API and the pod network, and plants
// faults. Faults that signal processes work on the local process cluster
// (sim/cluster), whose containers are host processes named by their Pod
// status (containerID process://<pid>); elsewhere they are refused.
package kube

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Render renders deploy/overlays/<overlay> with the given components and
// JSON6902 patches (each a map with "target" and "patch") through a
// throwaway kustomization, leaving deploy/ untouched.
func Render(deployDir, overlay string, components []string, patches []map[string]any) ([]*unstructured.Unstructured, error) {
	overlayDir := filepath.Join(deployDir, "overlays", overlay)
	if st, err := os.Stat(overlayDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("overlay %q: no directory %s", overlay, overlayDir)
	}
	tmp, err := os.MkdirTemp("", "konductor-chaos-kustomize-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rel := func(p string) string {
		r, err := filepath.Rel(tmp, p)
		if err != nil {
			return p
		}
		return r
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{rel(overlayDir)},
	}
	var comps []string
	for _, c := range components {
		dir := filepath.Join(deployDir, "components", c)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("component %q: no directory %s", c, dir)
		}
		comps = append(comps, rel(dir))
	}
	if len(comps) > 0 {
		k["components"] = comps
	}
	if len(patches) > 0 {
		k["patches"] = patches
	}
	raw, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), raw, 0o600); err != nil {
		return nil, err
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), tmp)
	if err != nil {
		return nil, fmt.Errorf("kustomize build of overlay %s: %w", overlay, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs, nil
}

// replicasPatch sets the replicas of Deployment name.
func replicasPatch(name string, replicas int) map[string]any {
	return map[string]any{
		"target": map[string]any{"kind": "Deployment", "name": name},
		"patch":  fmt.Sprintf("- op: replace\n  path: /spec/replicas\n  value: %d\n", replicas),
	}
}
