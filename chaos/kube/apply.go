package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// fieldManager owns what the drill tool applies.
const fieldManager = "konductor-chaos"

// kindRank orders objects for applying: what others refer to goes first.
var kindRank = []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
	"Role", "RoleBinding", "Secret", "ConfigMap", "IngressClass", "Service", "NetworkPolicy"}

func rank(o *unstructured.Unstructured) int {
	if i := slices.Index(kindRank, o.GetKind()); i >= 0 {
		return i
	}
	return len(kindRank)
}

func id(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetKind() + " " + o.GetName()
	}
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// applier applies and deletes unstructured objects.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func (a applier) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id(o), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

// apply server-side applies objs in dependency order.
func (a applier) apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(x, y *unstructured.Unstructured) int { return rank(x) - rank(y) })
	for _, o := range objs {
		r, err := a.resource(o)
		if err != nil {
			return err
		}
		if _, err := r.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
			return fmt.Errorf("applying %s: %w", id(o), err)
		}
	}
	return nil
}

// remove deletes the cluster-scoped objects and namespaces among objs (the
// namespaced ones go with their namespace) in reverse order.
func (a applier) remove(ctx context.Context, objs []*unstructured.Unstructured) error {
	var errs []error
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		if o.GetNamespace() != "" {
			continue
		}
		r, err := a.resource(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		policy := metav1.DeletePropagationBackground
		if err := r.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", id(o), err))
		}
	}
	return errors.Join(errs...)
}
