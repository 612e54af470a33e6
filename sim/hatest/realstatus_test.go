package hatest

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/controller/status"
)

// TestRealAPIServerStatusPatch checks the status writer against a real
// kube-apiserver: it writes from a cached copy trimmed of labels and
// annotations without deleting them on the server, a stale copy gets a
// 409 and is re-read rather than overwriting, and Clear removes only our
// addresses.
func TestRealAPIServerStatusPatch(t *testing.T) {
	rc := startRealCluster(t)
	ctx := context.Background()
	ingresses := rc.admin.NetworkingV1().Ingresses("default")

	original, err := ingresses.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	original.Labels = map[string]string{"team": "payments"}
	original.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", "konghq.com/strip-path": "true"}
	labelled, err := ingresses.Update(ctx, original, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The informer's copy, trimmed as controller/snapshot trims it.
	cached := labelled.DeepCopy()
	cached.Labels = nil
	cached.Annotations = map[string]string{"konghq.com/strip-path": "true"}
	w := &status.Writer{Client: rc.admin}
	ours := []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.7"}}
	if written, err := w.Update(ctx, cached, ours); err != nil || !written {
		t.Fatalf("Update from a trimmed copy = %v, %v; want a write", written, err)
	}
	got, err := ingresses.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !status.Equal(got.Status.LoadBalancer.Ingress, ours) {
		t.Fatalf("status %+v, want %+v", got.Status.LoadBalancer.Ingress, ours)
	}
	if got.Labels["team"] != "payments" || got.Annotations["kubectl.kubernetes.io/last-applied-configuration"] != "{}" {
		t.Fatalf("the status write changed metadata: labels %v, annotations %v", got.Labels, got.Annotations)
	}

	// Someone else changes the status; a writer holding the stale copy
	// must get the conflict, re-read, and then write what it wants.
	theirs := []networkingv1.IngressLoadBalancerIngress{{Hostname: "lb.example.net"}}
	got.Status.LoadBalancer.Ingress = theirs
	if _, err := ingresses.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := &status.Writer{Client: rc.admin}
	moved := []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.8"}}
	if written, err := other.Update(ctx, cached, moved); err != nil || !written {
		t.Fatalf("Update from a stale copy = %v, %v; want a write after re-reading", written, err)
	}
	if got, err = ingresses.Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if !status.Equal(got.Status.LoadBalancer.Ingress, moved) {
		t.Fatalf("status %+v after the conflict, want %+v", got.Status.LoadBalancer.Ingress, moved)
	}

	// Clear leaves addresses that are not exactly ours: the stale copy
	// still shows ours, so the writer tries, gets the conflict and finds
	// someone else's addresses on the fresh read.
	cached.Status.LoadBalancer.Ingress = ours
	if written, err := other.Clear(ctx, cached, ours); err != nil || written {
		t.Fatalf("Clear of addresses not ours = %v, %v; want no write", written, err)
	}
	if written, err := other.Clear(ctx, got, moved); err != nil || !written {
		t.Fatalf("Clear of our addresses = %v, %v; want a write", written, err)
	}
	if got, err = ingresses.Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.LoadBalancer.Ingress) != 0 || got.Labels["team"] != "payments" {
		t.Fatalf("after Clear: status %+v, labels %v", got.Status.LoadBalancer.Ingress, got.Labels)
	}
}
