// Package status writes the addresses at which Kong serves traffic into
// status.loadBalancer.ingress of the Ingresses konductor configured.
//
// Only the elected replica calls the Writer, and only for Ingresses whose
// configuration every Kong replica has applied, or (Clear) for Ingresses
// that left our class; those decisions belong to the caller. The Writer
// itself guarantees that an Ingress whose status already holds the wanted
// addresses is never written (no update churn, no resource version bumps),
// that Clear never wipes addresses other than exactly ours, and that
// conflicts are retried against a fresh read.
package status

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Addresses returns the status entries to publish. Explicit addresses
// (--publish-status-address) win; otherwise the publish Service's
// LoadBalancer addresses, else its ClusterIPs. nil when nothing is known.
func Addresses(publishService *corev1.Service, explicit []string) []networkingv1.IngressLoadBalancerIngress {
	var out []networkingv1.IngressLoadBalancerIngress
	if len(explicit) > 0 {
		for _, a := range explicit {
			out = append(out, entry(strings.TrimSpace(a)))
		}
		return out
	}
	if publishService == nil {
		return nil
	}
	for _, lb := range publishService.Status.LoadBalancer.Ingress {
		if lb.IP != "" || lb.Hostname != "" {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: lb.IP, Hostname: lb.Hostname})
		}
	}
	if len(out) > 0 {
		return out
	}
	ips := publishService.Spec.ClusterIPs
	if len(ips) == 0 && publishService.Spec.ClusterIP != "" {
		ips = []string{publishService.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip})
		}
	}
	return out
}

func entry(a string) networkingv1.IngressLoadBalancerIngress {
	if net.ParseIP(a) != nil {
		return networkingv1.IngressLoadBalancerIngress{IP: a}
	}
	return networkingv1.IngressLoadBalancerIngress{Hostname: a}
}

// Equal reports whether two address lists are the same, order included
// (Addresses is deterministic, so a reordering is a real change).
func Equal(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y networkingv1.IngressLoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname && len(x.Ports) == 0 && len(y.Ports) == 0
	})
}

// Writer updates Ingress status through the API server.
type Writer struct {
	Client kubernetes.Interface
	Logger *slog.Logger

	mu sync.Mutex
	// staleRV remembers, per Ingress, the resource version our last write
	// replaced: while the informer cache still shows it, the cache has not
	// caught up with our own write, and writing again would only churn.
	staleRV map[types.UID]string
}

// Update makes ing's status hold want. ing is the informer's copy and is not
// modified. It reports whether a write was made.
func (w *Writer) Update(ctx context.Context, ing *networkingv1.Ingress, want []networkingv1.IngressLoadBalancerIngress) (bool, error) {
	differs := func(current []networkingv1.IngressLoadBalancerIngress) bool { return !Equal(current, want) }
	written, err := w.write(ctx, ing, want, differs)
	if written && w.Logger != nil {
		w.Logger.Debug("Ingress status updated", "ingress", ing.Namespace+"/"+ing.Name, "addresses", describe(want))
	}
	return written, err
}

// Clear removes the addresses we publish (ours) from the status of an
// Ingress that is no longer ours. It writes only while the status holds
// exactly ours, checked again on a fresh read after a conflict: addresses
// another controller published, or that someone changed, are never wiped.
// ing is the informer's copy and is not modified. It reports whether a
// write was made.
func (w *Writer) Clear(ctx context.Context, ing *networkingv1.Ingress, ours []networkingv1.IngressLoadBalancerIngress) (bool, error) {
	if len(ours) == 0 {
		return false, nil
	}
	holdsOurs := func(current []networkingv1.IngressLoadBalancerIngress) bool { return Equal(current, ours) }
	written, err := w.write(ctx, ing, nil, holdsOurs)
	if written && w.Logger != nil {
		w.Logger.Info("Ingress left our class; removed the addresses we had published", "ingress", ing.Namespace+"/"+ing.Name, "addresses", describe(ours))
	}
	return written, err
}

// write sets ing's status.loadBalancer.ingress to want while needed says
// the current value calls for it, judged on ing first and on a fresh read
// after each conflict.
func (w *Writer) write(ctx context.Context, ing *networkingv1.Ingress, want []networkingv1.IngressLoadBalancerIngress, needed func([]networkingv1.IngressLoadBalancerIngress) bool) (bool, error) {
	if !needed(ing.Status.LoadBalancer.Ingress) {
		return false, nil
	}
	w.mu.Lock()
	replaced, ok := w.staleRV[ing.UID]
	w.mu.Unlock()
	// Without resource versions (some fakes) staleness cannot be told.
	stale := ok && replaced != "" && replaced == ing.ResourceVersion
	if stale {
		return false, nil
	}
	current := ing
	written := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if current == nil {
			fresh, err := w.Client.NetworkingV1().Ingresses(ing.Namespace).Get(ctx, ing.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if fresh.UID != ing.UID {
				return fmt.Errorf("Ingress %s/%s was replaced while updating its status", ing.Namespace, ing.Name)
			}
			if !needed(fresh.Status.LoadBalancer.Ingress) {
				return nil
			}
			current = fresh
		}
		next := current.DeepCopy()
		next.Status.LoadBalancer.Ingress = slices.Clone(want)
		_, err := w.Client.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			w.mu.Lock()
			if w.staleRV == nil {
				w.staleRV = map[types.UID]string{}
			}
			w.staleRV[ing.UID] = current.ResourceVersion
			w.mu.Unlock()
			written = true
			return nil
		}
		current = nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("Ingress %s/%s: status.loadBalancer: %w", ing.Namespace, ing.Name, err)
	}
	return written, nil
}

// Forget drops what the Writer remembers about Ingresses not in keep.
func (w *Writer) Forget(keep func(types.UID) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for uid := range w.staleRV {
		if !keep(uid) {
			delete(w.staleRV, uid)
		}
	}
}

func describe(as []networkingv1.IngressLoadBalancerIngress) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, a.IP+a.Hostname)
	}
	return strings.Join(parts, ",")
}
