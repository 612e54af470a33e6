// Package versioned gives client-go's fake clientset the API server's
// resourceVersion contract, for tests of code that depends on it.
//
// client-go's fake stores objects as they were sent: a stored object
// carries no resourceVersion of its own, writes do not change it, and a
// write made on an old version succeeds. Code that tells its own write's
// echo from another writer's change by the version, or that relies on a
// Conflict to make it read again, cannot be tested against that. The
// clientset NewClientset returns behaves as the API server does, for every
// resource: every stored object has a version, every write gives it a new
// one, and a write naming an older version is refused with 409 Conflict.
package versioned

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync/atomic"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// NewClientset returns a fake clientset holding objs, which keeps the
// resourceVersion contract:
//   - objs without a version get one; versions already set are kept (they
//     must be decimal numbers), and new ones count on from the highest;
//   - create and update store the object with a new version; an update
//     naming a version other than the stored one is refused with Conflict
//     (one naming none is unconditional, as the API server allows for the
//     built-in types);
//   - merge, strategic merge and JSON patches are applied to the stored
//     object and store it with a new version; a merge or strategic merge
//     patch naming metadata.resourceVersion other than the stored one is
//     refused with Conflict. Server-side apply patches are refused with
//     BadRequest rather than stored without a version.
//
// objs are given versions in place, before the clientset is built.
func NewClientset(objs ...runtime.Object) *fake.Clientset {
	var last atomic.Int64
	for _, o := range objs {
		if m, err := meta.Accessor(o); err == nil && m.GetResourceVersion() != "" {
			v, err := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
			if err != nil {
				panic(fmt.Sprintf("versioned: %s %q has resourceVersion %q, want a decimal number", reflect.TypeOf(o).Elem().Name(), m.GetName(), m.GetResourceVersion()))
			}
			last.Store(max(last.Load(), v))
		}
	}
	next := func() string { return strconv.FormatInt(last.Add(1), 10) }
	for _, o := range objs {
		if m, err := meta.Accessor(o); err == nil && m.GetResourceVersion() == "" {
			m.SetResourceVersion(next())
		}
	}
	c := fake.NewClientset(objs...)
	v := &versions{c: c, next: next}
	c.PrependReactor("create", "*", v.create)
	c.PrependReactor("update", "*", v.update)
	c.PrependReactor("patch", "*", v.patch)
	return c
}

type versions struct {
	c    *fake.Clientset
	next func() string
}

// create stamps the object and lets the fake store it.
func (v *versions) create(a k8stesting.Action) (bool, runtime.Object, error) {
	if m, err := meta.Accessor(a.(k8stesting.CreateAction).GetObject()); err == nil {
		m.SetResourceVersion(v.next())
	}
	return false, nil, nil
}

// update checks the version the writer saw, then stamps the object and
// lets the fake store it.
func (v *versions) update(a k8stesting.Action) (bool, runtime.Object, error) {
	m, err := meta.Accessor(a.(k8stesting.UpdateAction).GetObject())
	if err != nil {
		return false, nil, nil
	}
	stored, err := v.c.Tracker().Get(a.GetResource(), a.GetNamespace(), m.GetName())
	if err != nil {
		return false, nil, nil // the fake answers NotFound
	}
	if err := precondition(a, m.GetName(), stored, m.GetResourceVersion()); err != nil {
		return true, nil, err
	}
	m.SetResourceVersion(v.next())
	return false, nil, nil
}

// patch applies the patch itself, since the stored result must carry a
// new version.
func (v *versions) patch(a k8stesting.Action) (bool, runtime.Object, error) {
	p := a.(k8stesting.PatchAction)
	stored, err := v.c.Tracker().Get(a.GetResource(), a.GetNamespace(), p.GetName())
	if err != nil {
		return true, nil, err
	}
	original, err := json.Marshal(stored)
	if err != nil {
		return true, nil, err
	}
	var patched []byte
	switch p.GetPatchType() {
	case types.MergePatchType, types.StrategicMergePatchType:
		var named struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(p.GetPatch(), &named); err != nil {
			return true, nil, apierrors.NewBadRequest(fmt.Sprintf("%s patch of %s %q is not JSON: %v", p.GetPatchType(), a.GetResource().Resource, p.GetName(), err))
		}
		if err := precondition(a, p.GetName(), stored, named.Metadata.ResourceVersion); err != nil {
			return true, nil, err
		}
		if p.GetPatchType() == types.MergePatchType {
			patched, err = jsonpatch.MergePatch(original, p.GetPatch())
		} else {
			patched, err = strategicpatch.StrategicMergePatch(original, p.GetPatch(), stored)
		}
	case types.JSONPatchType:
		var ops jsonpatch.Patch
		if ops, err = jsonpatch.DecodePatch(p.GetPatch()); err == nil {
			patched, err = ops.Apply(original)
		}
	default:
		return true, nil, apierrors.NewBadRequest(fmt.Sprintf("versioned fake: %s patches are not supported (%s %q)", p.GetPatchType(), a.GetResource().Resource, p.GetName()))
	}
	if err != nil {
		return true, nil, apierrors.NewBadRequest(fmt.Sprintf("%s patch of %s %q: %v", p.GetPatchType(), a.GetResource().Resource, p.GetName(), err))
	}
	obj := reflect.New(reflect.TypeOf(stored).Elem()).Interface().(runtime.Object)
	if err := json.Unmarshal(patched, obj); err != nil {
		return true, nil, apierrors.NewBadRequest(fmt.Sprintf("%s patch of %s %q: %v", p.GetPatchType(), a.GetResource().Resource, p.GetName(), err))
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return true, nil, err
	}
	m.SetResourceVersion(v.next())
	if err := v.c.Tracker().Update(a.GetResource(), obj, a.GetNamespace()); err != nil {
		return true, nil, err
	}
	return true, obj.DeepCopyObject(), nil
}

// precondition refuses a write naming a version other than the stored one.
func precondition(a k8stesting.Action, name string, stored runtime.Object, named string) error {
	m, err := meta.Accessor(stored)
	if err != nil {
		return nil
	}
	if named == "" || named == m.GetResourceVersion() {
		return nil
	}
	return apierrors.NewConflict(a.GetResource().GroupResource(), name,
		fmt.Errorf("the object has been modified; please apply your changes to the latest version (resourceVersion %q, stored %q)", named, m.GetResourceVersion()))
}
