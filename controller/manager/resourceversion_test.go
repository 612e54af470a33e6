package manager

import (
	"encoding/json"
	"strconv"
	"sync/atomic"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// versionIngresses makes the fake API server keep the resourceVersion
// contract for Ingresses, as a real one does: every stored Ingress carries a
// version, each write gives it a new one, and a patch naming an older
// version is refused with a Conflict. client-go's fake stores objects as
// they were sent, without versions, and the status writer tells its own
// write's echo from a change by the version: without them a status pass that
// runs before the informer delivers that echo writes the same status again.
// objs are the world's initial objects; they get versions before the
// clientset is built from them.
func versionIngresses(objs []runtime.Object) func(*fake.Clientset) {
	var last atomic.Int64
	next := func() string { return strconv.FormatInt(last.Add(1), 10) }
	for _, o := range objs {
		if ing, ok := o.(*networkingv1.Ingress); ok && ing.ResourceVersion == "" {
			ing.ResourceVersion = next()
		}
	}
	return func(c *fake.Clientset) {
		stamp := func(a k8stesting.Action) (bool, runtime.Object, error) {
			if o, ok := a.(k8stesting.CreateAction); ok {
				if m, ok := o.GetObject().(metav1.Object); ok {
					m.SetResourceVersion(next())
				}
			}
			return false, nil, nil
		}
		c.PrependReactor("create", "ingresses", stamp)
		c.PrependReactor("update", "ingresses", stamp)
		c.PrependReactor("patch", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
			p := a.(k8stesting.PatchAction)
			if p.GetPatchType() != types.MergePatchType {
				return false, nil, nil
			}
			stored, err := c.Tracker().Get(a.GetResource(), a.GetNamespace(), p.GetName())
			if err != nil {
				return true, nil, err
			}
			current := stored.(*networkingv1.Ingress)
			var precondition struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(p.GetPatch(), &precondition); err != nil {
				return true, nil, apierrors.NewBadRequest(err.Error())
			}
			if rv := precondition.Metadata.ResourceVersion; rv != "" && rv != current.ResourceVersion {
				return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), p.GetName(), nil)
			}
			original, err := json.Marshal(current)
			if err != nil {
				return true, nil, err
			}
			merged, err := jsonpatch.MergePatch(original, p.GetPatch())
			if err != nil {
				return true, nil, apierrors.NewBadRequest(err.Error())
			}
			patched := &networkingv1.Ingress{}
			if err := json.Unmarshal(merged, patched); err != nil {
				return true, nil, apierrors.NewBadRequest(err.Error())
			}
			patched.ResourceVersion = next()
			if err := c.Tracker().Update(a.GetResource(), patched, a.GetNamespace()); err != nil {
				return true, nil, err
			}
			return true, patched.DeepCopy(), nil
		})
	}
}
