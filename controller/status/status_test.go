package status

import (
	"context"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"konductor.dev/controller/testsupport/versioned"
)

func lb(ipOrHost ...string) []networkingv1.IngressLoadBalancerIngress {
	var out []networkingv1.IngressLoadBalancerIngress
	for _, a := range ipOrHost {
		out = append(out, entry(a))
	}
	return out
}

func TestAddresses(t *testing.T) {
	svc := func(typ corev1.ServiceType, clusterIPs []string, lbs ...corev1.LoadBalancerIngress) *corev1.Service {
		s := &corev1.Service{Spec: corev1.ServiceSpec{Type: typ, ClusterIPs: clusterIPs}}
		if len(clusterIPs) > 0 {
			s.Spec.ClusterIP = clusterIPs[0]
		}
		s.Status.LoadBalancer.Ingress = lbs
		return s
	}
	tests := []struct {
		name     string
		svc      *corev1.Service
		explicit []string
		want     []networkingv1.IngressLoadBalancerIngress
	}{
		{"nothing", nil, nil, nil},
		{"explicit ip and hostname", nil, []string{"10.0.0.1", " kong.example.com"}, lb("10.0.0.1", "kong.example.com")},
		{"explicit beats service", svc(corev1.ServiceTypeLoadBalancer, []string{"10.96.0.9"}, corev1.LoadBalancerIngress{IP: "1.2.3.4"}), []string{"5.6.7.8"}, lb("5.6.7.8")},
		{"load balancer ip and hostname", svc(corev1.ServiceTypeLoadBalancer, []string{"10.96.0.9"}, corev1.LoadBalancerIngress{IP: "1.2.3.4"}, corev1.LoadBalancerIngress{Hostname: "lb.example.net"}), nil, lb("1.2.3.4", "lb.example.net")},
		{"pending load balancer falls back to cluster IP", svc(corev1.ServiceTypeLoadBalancer, []string{"10.96.0.9"}), nil, lb("10.96.0.9")},
		{"dual stack cluster IPs", svc(corev1.ServiceTypeClusterIP, []string{"10.96.0.9", "fd00::9"}), nil, lb("10.96.0.9", "fd00::9")},
		{"headless has no address", svc(corev1.ServiceTypeClusterIP, []string{corev1.ClusterIPNone}), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Addresses(tt.svc, tt.explicit); !Equal(got, tt.want) {
				t.Errorf("Addresses = %v, want %v", got, tt.want)
			}
		})
	}
}

func newIngress() *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1", ResourceVersion: "5"}}
}

func countStatusUpdates(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func TestWriterSkipsWhenUnchanged(t *testing.T) {
	ing := newIngress()
	ing.Status.LoadBalancer.Ingress = lb("1.2.3.4")
	c := fake.NewClientset(ing)
	w := &Writer{Client: c}
	wrote, err := w.Update(context.Background(), ing, lb("1.2.3.4"))
	if err != nil || wrote {
		t.Fatalf("wrote=%v err=%v, want no write", wrote, err)
	}
	if n := countStatusUpdates(c); n != 0 {
		t.Errorf("%d status updates, want 0", n)
	}
}

func TestWriterWritesOnceWhileCacheIsStale(t *testing.T) {
	ing := newIngress()
	c := fake.NewClientset(ing)
	w := &Writer{Client: c}
	ctx := context.Background()
	if wrote, err := w.Update(ctx, ing, lb("1.2.3.4")); err != nil || !wrote {
		t.Fatalf("first update: wrote=%v err=%v", wrote, err)
	}
	// The informer has not delivered our own write yet: same stale copy.
	if wrote, err := w.Update(ctx, ing, lb("1.2.3.4")); err != nil || wrote {
		t.Fatalf("second update on stale cache: wrote=%v err=%v", wrote, err)
	}
	got, err := c.NetworkingV1().Ingresses("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(got.Status.LoadBalancer.Ingress, lb("1.2.3.4")) {
		t.Errorf("stored status %v", got.Status.LoadBalancer.Ingress)
	}
	if n := countStatusUpdates(c); n != 1 {
		t.Errorf("%d status updates, want 1", n)
	}
	// A real change on a fresh copy is written.
	got.ResourceVersion = "7"
	if wrote, err := w.Update(ctx, got, lb("5.6.7.8")); err != nil || !wrote {
		t.Fatalf("changed update: wrote=%v err=%v", wrote, err)
	}
}

func TestWriterWithoutResourceVersions(t *testing.T) {
	ing := newIngress()
	ing.ResourceVersion = ""
	c := fake.NewClientset(ing)
	w := &Writer{Client: c}
	if wrote, err := w.Update(context.Background(), ing, lb("1.2.3.4")); err != nil || !wrote {
		t.Fatalf("wrote=%v err=%v, want a write", wrote, err)
	}
}

func TestWriterRetriesConflicts(t *testing.T) {
	ing := newIngress()
	c := fake.NewClientset(ing)
	conflicts := 2
	c.PrependReactor("patch", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, "web", nil)
		}
		return false, nil, nil
	})
	w := &Writer{Client: c}
	if wrote, err := w.Update(context.Background(), ing, lb("1.2.3.4")); err != nil || !wrote {
		t.Fatalf("wrote=%v err=%v", wrote, err)
	}
	if n := countStatusUpdates(c); n != 3 {
		t.Errorf("%d status update attempts, want 3 (two conflicts, one success)", n)
	}
}

func TestWriterNamesTheObjectOnError(t *testing.T) {
	c := fake.NewClientset() // the Ingress is gone from the API server
	w := &Writer{Client: c}
	_, err := w.Update(context.Background(), newIngress(), lb("1.2.3.4"))
	if err == nil || !strings.Contains(err.Error(), "Ingress default/web") || !strings.Contains(err.Error(), "status.loadBalancer") {
		t.Fatalf("err = %v, want it to name the Ingress and field", err)
	}
}

func TestWriterClear(t *testing.T) {
	ours := lb("203.0.113.7")
	tests := []struct {
		name      string
		stored    []networkingv1.IngressLoadBalancerIngress
		ours      []networkingv1.IngressLoadBalancerIngress
		wantWrite bool
		wantAfter []networkingv1.IngressLoadBalancerIngress
	}{
		{"exactly ours is cleared", ours, ours, true, nil},
		{"another controller's addresses stay", lb("198.51.100.1"), ours, false, lb("198.51.100.1")},
		{"ours mixed with others stay", lb("203.0.113.7", "198.51.100.1"), ours, false, lb("203.0.113.7", "198.51.100.1")},
		{"empty status is left alone", nil, ours, false, nil},
		{"nothing published means nothing to clear", ours, nil, false, ours},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ing := newIngress()
			ing.Status.LoadBalancer.Ingress = tt.stored
			c := fake.NewClientset(ing)
			w := &Writer{Client: c}
			wrote, err := w.Clear(context.Background(), ing, tt.ours)
			if err != nil || wrote != tt.wantWrite {
				t.Fatalf("wrote=%v err=%v, want wrote=%v", wrote, err, tt.wantWrite)
			}
			got := storedWeb(t, c)
			if !Equal(got.Status.LoadBalancer.Ingress, tt.wantAfter) {
				t.Errorf("stored status %v, want %v", got.Status.LoadBalancer.Ingress, tt.wantAfter)
			}
			want := 0
			if tt.wantWrite {
				want = 1
			}
			if n := countStatusUpdates(c); n != want {
				t.Errorf("%d status updates, want %d", n, want)
			}
		})
	}
}

func TestWriterClearRechecksAfterConflict(t *testing.T) {
	// Our cache still shows our addresses; meanwhile the controller that
	// now owns the Ingress published its own.
	cached := newIngress()
	cached.Status.LoadBalancer.Ingress = lb("203.0.113.7")
	stored := cached.DeepCopy()
	stored.ResourceVersion = "6"
	stored.Status.LoadBalancer.Ingress = lb("198.51.100.1")
	c := versioned.NewClientset(stored)
	w := &Writer{Client: c}
	wrote, err := w.Clear(context.Background(), cached, lb("203.0.113.7"))
	if err != nil || wrote {
		t.Fatalf("wrote=%v err=%v, want no write", wrote, err)
	}
	got := storedWeb(t, c)
	if !Equal(got.Status.LoadBalancer.Ingress, lb("198.51.100.1")) {
		t.Errorf("the other controller's status was replaced by %v", got.Status.LoadBalancer.Ingress)
	}
}

func TestWriterClearsOnceWhileCacheIsStale(t *testing.T) {
	ing := newIngress()
	ing.Status.LoadBalancer.Ingress = lb("203.0.113.7")
	c := fake.NewClientset(ing)
	w := &Writer{Client: c}
	for i, want := range []bool{true, false} {
		if wrote, err := w.Clear(context.Background(), ing, lb("203.0.113.7")); err != nil || wrote != want {
			t.Fatalf("clear %d on the same cached copy: wrote=%v err=%v, want %v", i+1, wrote, err, want)
		}
	}
	if n := countStatusUpdates(c); n != 1 {
		t.Errorf("%d status updates, want 1", n)
	}
}

// statusPatches returns the bodies of the status patches sent to c.
func statusPatches(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetSubresource() == "status" {
			if p.GetPatchType() != types.MergePatchType {
				out = append(out, "unexpected patch type "+string(p.GetPatchType()))
				continue
			}
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}

func TestWriterPatchesOnlyWhatItOwns(t *testing.T) {
	tests := []struct {
		name  string
		rv    string
		write func(*Writer, *networkingv1.Ingress) (bool, error)
		want  string
	}{
		{
			name: "update",
			rv:   "5",
			write: func(w *Writer, ing *networkingv1.Ingress) (bool, error) {
				return w.Update(context.Background(), ing, lb("1.2.3.4", "kong.example.com"))
			},
			want: `{"metadata":{"resourceVersion":"5"},"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"},{"hostname":"kong.example.com"}]}}}`,
		},
		{
			name: "clear removes the list",
			rv:   "5",
			write: func(w *Writer, ing *networkingv1.Ingress) (bool, error) {
				return w.Clear(context.Background(), ing, lb("203.0.113.7"))
			},
			want: `{"metadata":{"resourceVersion":"5"},"status":{"loadBalancer":{"ingress":null}}}`,
		},
		{
			name: "without a resource version the patch is unconditional",
			rv:   "",
			write: func(w *Writer, ing *networkingv1.Ingress) (bool, error) {
				return w.Update(context.Background(), ing, lb("1.2.3.4"))
			},
			want: `{"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := newIngress()
			stored.ResourceVersion = tt.rv
			stored.Labels = map[string]string{"app": "web"}
			stored.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "kubernetes.io/ingress.class": "kong"}
			stored.Status.LoadBalancer.Ingress = lb("203.0.113.7")
			c := fake.NewClientset(stored)
			// The informer's copy, trimmed: no labels, no last-applied.
			cached := stored.DeepCopy()
			cached.Labels = nil
			cached.Annotations = map[string]string{"kubernetes.io/ingress.class": "kong"}
			if wrote, err := tt.write(&Writer{Client: c}, cached); err != nil || !wrote {
				t.Fatalf("wrote=%v err=%v, want a write", wrote, err)
			}
			if got := statusPatches(c); len(got) != 1 || got[0] != tt.want {
				t.Errorf("status patches %q, want [%s]", got, tt.want)
			}
			got := storedWeb(t, c)
			if !reflect.DeepEqual(got.Labels, stored.Labels) || !reflect.DeepEqual(got.Annotations, stored.Annotations) {
				t.Errorf("metadata changed by a status write: labels %v annotations %v", got.Labels, got.Annotations)
			}
		})
	}
}

func TestWriterUpdateRereadsAfterConflict(t *testing.T) {
	// The cache is behind: the stored object moved on (another writer
	// published other addresses), so the patch on the cached version is
	// refused and the decision is made again on a fresh read.
	cached := newIngress()
	stored := cached.DeepCopy()
	stored.ResourceVersion = "6"
	stored.Status.LoadBalancer.Ingress = lb("198.51.100.1")
	c := versioned.NewClientset(stored)
	w := &Writer{Client: c}
	if wrote, err := w.Update(context.Background(), cached, lb("1.2.3.4")); err != nil || !wrote {
		t.Fatalf("wrote=%v err=%v, want a write", wrote, err)
	}
	patches := statusPatches(c)
	if len(patches) != 2 || !strings.Contains(patches[0], `"resourceVersion":"5"`) || !strings.Contains(patches[1], `"resourceVersion":"6"`) {
		t.Errorf("status patches %q, want one on version 5 (refused) then one on version 6", patches)
	}
	got := storedWeb(t, c)
	if !Equal(got.Status.LoadBalancer.Ingress, lb("1.2.3.4")) {
		t.Errorf("stored status %v", got.Status.LoadBalancer.Ingress)
	}
}

func TestWriterRefusesAReplacedIngress(t *testing.T) {
	cached := newIngress()
	stored := cached.DeepCopy()
	stored.UID, stored.ResourceVersion = "u2", "9"
	c := versioned.NewClientset(stored)
	_, err := (&Writer{Client: c}).Update(context.Background(), cached, lb("1.2.3.4"))
	if err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("err = %v, want the replaced Ingress named", err)
	}
	if n := len(statusPatches(c)); n != 1 {
		t.Errorf("%d status patches, want only the refused one", n)
	}
}

// storedWeb reads Ingress default/web as the API server holds it.
func storedWeb(t *testing.T, c *fake.Clientset) *networkingv1.Ingress {
	t.Helper()
	ing, err := c.NetworkingV1().Ingresses("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ing
}
