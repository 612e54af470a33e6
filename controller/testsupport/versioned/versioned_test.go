package versioned

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	typednetworkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"
)

func ingress(rv string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: rv}}
}

func TestInitialVersions(t *testing.T) {
	unversioned := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "default"}}
	c := NewClientset(ingress("41"), unversioned)
	svc, err := c.CoreV1().Services("default").Get(context.Background(), "svc", metav1.GetOptions{})
	if err != nil || svc.ResourceVersion != "42" {
		t.Errorf("an object without a version got %q (err %v), want 42: the next after the highest given", svc.ResourceVersion, err)
	}
	ing, _ := c.NetworkingV1().Ingresses("default").Get(context.Background(), "web", metav1.GetOptions{})
	if ing.ResourceVersion != "41" {
		t.Errorf("a given version became %q, want it kept (41)", ing.ResourceVersion)
	}
}

func TestWrites(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// write runs against a stored Ingress at version 5.
		write        func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error)
		wantConflict bool
		wantClass    string // spec.ingressClassName after a write that succeeds
	}{
		{
			name: "update on the stored version",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Update(ctx, withClass(ingress("5"), "kong"), metav1.UpdateOptions{})
			},
			wantClass: "kong",
		},
		{
			name: "update on an older version",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Update(ctx, withClass(ingress("4"), "kong"), metav1.UpdateOptions{})
			},
			wantConflict: true,
		},
		{
			name: "update naming no version is unconditional",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Update(ctx, withClass(ingress(""), "kong"), metav1.UpdateOptions{})
			},
			wantClass: "kong",
		},
		{
			name: "status update on an older version",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.UpdateStatus(ctx, ingress("3"), metav1.UpdateOptions{})
			},
			wantConflict: true,
		},
		{
			name: "merge patch on the stored version",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"resourceVersion":"5"},"spec":{"ingressClassName":"kong"}}`), metav1.PatchOptions{})
			},
			wantClass: "kong",
		},
		{
			name: "merge patch of status on an older version",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"resourceVersion":"4"},"status":{}}`), metav1.PatchOptions{}, "status")
			},
			wantConflict: true,
		},
		{
			name: "strategic merge patch on an older version",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"metadata":{"resourceVersion":"1"},"spec":{"ingressClassName":"kong"}}`), metav1.PatchOptions{})
			},
			wantConflict: true,
		},
		{
			name: "strategic merge patch naming no version",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"spec":{"ingressClassName":"kong"}}`), metav1.PatchOptions{})
			},
			wantClass: "kong",
		},
		{
			name: "JSON patch",
			write: func(c typednetworkingv1.IngressInterface) (*networkingv1.Ingress, error) {
				return c.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"add","path":"/spec/ingressClassName","value":"kong"}]`), metav1.PatchOptions{})
			},
			wantClass: "kong",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClientset(ingress("5"))
			ings := c.NetworkingV1().Ingresses("default")
			got, err := tt.write(ings)
			stored, getErr := ings.Get(ctx, "web", metav1.GetOptions{})
			if getErr != nil {
				t.Fatal(getErr)
			}
			if tt.wantConflict {
				if !apierrors.IsConflict(err) {
					t.Fatalf("err = %v, want a Conflict", err)
				}
				if stored.ResourceVersion != "5" || stored.Spec.IngressClassName != nil {
					t.Errorf("a refused write changed the stored object: version %s, class %v", stored.ResourceVersion, stored.Spec.IngressClassName)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want the write to succeed", err)
			}
			if got.ResourceVersion != "6" || stored.ResourceVersion != "6" {
				t.Errorf("versions after the write: returned %q, stored %q; want both 6", got.ResourceVersion, stored.ResourceVersion)
			}
			if stored.Spec.IngressClassName == nil || *stored.Spec.IngressClassName != tt.wantClass {
				t.Errorf("stored class %v, want %s", stored.Spec.IngressClassName, tt.wantClass)
			}
		})
	}
}

func TestCreateAndApply(t *testing.T) {
	ctx := context.Background()
	c := NewClientset(ingress("5"))
	svc, err := c.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc"}}, metav1.CreateOptions{})
	if err != nil || svc.ResourceVersion != "6" {
		t.Errorf("created with version %q (err %v), want 6", svc.ResourceVersion, err)
	}
	_, err = c.NetworkingV1().Ingresses("default").Patch(ctx, "web", types.ApplyPatchType, []byte(`{}`), metav1.PatchOptions{FieldManager: "t"})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("apply patch: err = %v, want BadRequest (not supported here)", err)
	}
}

func withClass(ing *networkingv1.Ingress, class string) *networkingv1.Ingress {
	ing.Spec.IngressClassName = &class
	return ing
}
