// Package status writes the addresses at which Kong serves traffic into
// status.loadBalancer.ingress of the Ingresses konductor configured.
//
// Only the elected replica calls the Writer, and only for Ingresses whose
// configuration every Kong replica has applied, or (Clear) for Ingresses
// that left our class; those decisions are the Loop's (loop.go). The Writer
// itself guarantees that an Ingress whose status already holds the wanted
// addresses is never written (no update churn, no resource version bumps),
// that Clear never wipes addresses other than exactly ours, and that
// conflicts are retried against a fresh read.
//
// Writes are JSON merge patches of the status subresource that carry only
// status.loadBalancer and the resourceVersion the decision was made on (see
// statusPatch): never the cached object's metadata, which the informer
// cache may have trimmed.
package status

import (
	"context"
	"encoding/json"
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
		patch, err := statusPatch(current.ResourceVersion, want)
		if err != nil {
			return err
		}
		_, err = w.Client.NetworkingV1().Ingresses(ing.Namespace).Patch(ctx, ing.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
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

// statusPatch is the JSON merge patch that sets status.loadBalancer.ingress
// to want (nil or empty: removes it) on the object at resourceVersion.
//
// It carries nothing else: for Ingress the API server keeps the request's
// metadata on a status write, so a whole-object UpdateStatus would send
// back the informer's copy, and the cache could never drop a label or an
// annotation without deleting it on the server. The resourceVersion makes
// the write conditional (409 Conflict when the object changed since it was
// read); without one (some fakes) the write is unconditional. A merge
// patch replaces a list as a whole, so no address of an older value
// survives.
func statusPatch(resourceVersion string, want []networkingv1.IngressLoadBalancerIngress) ([]byte, error) {
	type loadBalancer struct {
		Ingress []networkingv1.IngressLoadBalancerIngress `json:"ingress"` // null deletes
	}
	type status struct {
		LoadBalancer loadBalancer `json:"loadBalancer"`
	}
	type metadata struct {
		ResourceVersion string `json:"resourceVersion,omitempty"`
	}
	var p struct {
		Metadata *metadata `json:"metadata,omitempty"`
		Status   status    `json:"status"`
	}
	if resourceVersion != "" {
		p.Metadata = &metadata{ResourceVersion: resourceVersion}
	}
	if len(want) > 0 {
		p.Status.LoadBalancer.Ingress = want
	}
	return json.Marshal(p)
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
