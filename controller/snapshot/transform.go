package snapshot

import (
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/translate"
)

// trim is the informers' transform: it runs once on every object before it
// is cached, in place (client-go hands the transform the only reference),
// and is idempotent. It keeps what controller/translate, the manager and
// the status writer read and drops the rest; with 10k applications the
// dropped parts are most of the cache.
//
// Services and EndpointSlices are replaced by translation's compact form
// (see compact.go): of a Service its konghq.com/ annotations, type,
// externalName and port names and numbers; of an EndpointSlice its Service
// label, address type, port names and numbers and the addresses of its
// serving endpoints. The selector, cluster IPs, status, node, zone, hints,
// hostname and Pod reference go: translation routes to EndpointSlices or
// the external name, and the publish Service is watched by the manager,
// not through here.
//
// What every other cached object keeps: name, namespace, uid, resourceVersion
// (change detection, the status writer's staleness check and the
// precondition of its patches), generation, creationTimestamp (translation
// orders conflicts by age) and deletionTimestamp. managedFields,
// ownerReferences and finalizers are dropped from everything trimmed.
//
// Ingresses keep their spec and status, and of their metadata only the
// annotations the controller reads: the kubernetes.io/ingress.class
// annotation (controller/ingressclass) and every konghq.com/ one
// (controller/translate). Labels and kubectl's last-applied-configuration,
// about 2 KB per Ingress, go. That is safe only because the status writer
// sends a merge patch of status.loadBalancer and the resourceVersion, never
// the cached object: the Ingress status strategy keeps the request's
// metadata on a whole-object UpdateStatus, which would have deleted on the
// server every annotation and label dropped here.
func trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		keepIdentity(&o.ObjectMeta, nil, annotationsWhere(o.Annotations, readFromIngresses))
	case *corev1.Service:
		return compactService(o), nil
	case *discoveryv1.EndpointSlice:
		return compactEndpointSlice(o), nil
	case *corev1.Secret:
		trimSecret(o)
	case *unstructured.Unstructured:
		return compactKongObject(o)
	case *networkingv1.IngressClass:
		o.ManagedFields = nil
		o.Annotations = withoutLastApplied(o.Annotations)
	default:
		if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
			a.SetManagedFields(nil)
		}
	}
	return obj, nil
}

// keepIdentity reduces m to the fields every cached object keeps, with the
// given labels and annotations.
func keepIdentity(m *metav1.ObjectMeta, labels, annotations map[string]string) {
	*m = metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         namespaces.intern(m.Namespace),
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            labels,
		Annotations:       annotations,
	}
}

// trimSecret keeps the type and the certificate and key of a TLS Secret;
// a CA bundle or anything else stored beside them goes. A Secret cached for
// its konghq.com labels (a credential, a plugin's config) keeps those
// labels and its data; any other Secret keeps no data.
func trimSecret(s *corev1.Secret) {
	if s.Type != corev1.SecretTypeTLS {
		var kept map[string]string
		if isLabelledSecret(s) {
			kept = labelsWhere(s.Labels, LabelCredential, LabelSecret)
		} else {
			s.Data = nil
		}
		keepIdentity(&s.ObjectMeta, kept, nil)
		s.StringData, s.Immutable = nil, nil
		return
	}
	keepIdentity(&s.ObjectMeta, nil, nil)
	var data map[string][]byte
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		if v, ok := s.Data[k]; ok {
			if data == nil {
				data = make(map[string][]byte, 2)
			}
			data[k] = v
		}
	}
	s.Data, s.StringData, s.Immutable = data, nil, nil
}

// readFromIngresses tells the Ingress annotations the controller reads.
func readFromIngresses(key string) bool {
	return key == ingressclass.AnnotationIngressClass || strings.HasPrefix(key, translate.AnnotationPrefix)
}

// annotationsWhere returns the annotations of a whose key keep accepts, nil
// if none, in a new map: a map keeps the memory of deleted entries.
func annotationsWhere(a map[string]string, keep func(key string) bool) map[string]string {
	var out map[string]string
	for k, v := range a {
		if keep(k) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// withoutLastApplied drops kubectl apply's copy of the object, often the
// largest annotation.
func withoutLastApplied(a map[string]string) map[string]string {
	if _, ok := a[corev1.LastAppliedConfigAnnotation]; !ok {
		return a
	}
	out := maps.Clone(a)
	delete(out, corev1.LastAppliedConfigAnnotation)
	if len(out) == 0 {
		return nil
	}
	return out
}

// labelsWhere returns the labels of l with the given keys, nil if none.
func labelsWhere(l map[string]string, keys ...string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := l[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = v
		}
	}
	return out
}
