package snapshot

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"konductor.dev/controller/translate"
)

// Services and EndpointSlices are cached in translation's compact form
// (translate.Service, translate.EndpointSlice), not as API objects: with
// 10k of each, that is ~15 MB of a live heap of ~47 MB. The wrappers below
// add the resourceVersion and the metav1.Object view client-go's store
// keys, indexes and compares objects by.

// cachedService is a Service as the cache keeps it.
type cachedService struct {
	translate.Service
	trimmedMeta
}

func (c *cachedService) GetNamespace() string              { return c.Namespace }
func (c *cachedService) SetNamespace(ns string)            { c.Namespace = ns }
func (c *cachedService) GetName() string                   { return c.Name }
func (c *cachedService) SetName(name string)               { c.Name = name }
func (c *cachedService) GetUID() types.UID                 { return c.UID }
func (c *cachedService) SetUID(uid types.UID)              { c.UID = uid }
func (c *cachedService) GetAnnotations() map[string]string { return c.Annotations }
func (c *cachedService) SetAnnotations(a map[string]string) {
	c.Annotations = a
}

// cachedEndpointSlice is an EndpointSlice as the cache keeps it.
type cachedEndpointSlice struct {
	translate.EndpointSlice
	trimmedMeta
}

func (c *cachedEndpointSlice) GetNamespace() string   { return c.Namespace }
func (c *cachedEndpointSlice) SetNamespace(ns string) { c.Namespace = ns }
func (c *cachedEndpointSlice) GetName() string        { return c.Name }
func (c *cachedEndpointSlice) SetName(name string)    { c.Name = name }

// compactService converts a Service for the cache.
func compactService(s *corev1.Service) *cachedService {
	c := &cachedService{Service: *translate.ServiceOf(s), trimmedMeta: trimmedMeta{resourceVersion: s.ResourceVersion}}
	c.Namespace = namespaces.intern(c.Namespace)
	c.Type = canonical(c.Type, corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort,
		corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName)
	for i := range c.Ports {
		c.Ports[i].Name = portNames.intern(c.Ports[i].Name)
	}
	return c
}

// compactEndpointSlice converts an EndpointSlice for the cache.
func compactEndpointSlice(es *discoveryv1.EndpointSlice) *cachedEndpointSlice {
	c := &cachedEndpointSlice{EndpointSlice: *translate.EndpointSliceOf(es), trimmedMeta: trimmedMeta{resourceVersion: es.ResourceVersion}}
	c.Namespace = namespaces.intern(c.Namespace)
	c.AddressType = canonical(c.AddressType, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN)
	for i := range c.Ports {
		c.Ports[i].Name = portNames.intern(c.Ports[i].Name)
	}
	return c
}

// canonical returns the constant among known equal to v, sharing its
// storage instead of the decoded copy; v itself if none is.
func canonical[T ~string](v T, known ...T) T {
	for _, k := range known {
		if v == k {
			return k
		}
	}
	return v
}

// Strings repeated across thousands of objects (namespaces, port names) are
// decoded into a fresh copy each; the cache keeps one. An interner stops
// growing at its limit, so unusual input costs memory, never correctness.
var (
	namespaces = &interner{limit: 1 << 14}
	portNames  = &interner{limit: 1 << 12}
)

type interner struct {
	mu    sync.Mutex
	limit int
	seen  map[string]string
}

func (in *interner) intern(s string) string {
	if s == "" {
		return ""
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if kept, ok := in.seen[s]; ok {
		return kept
	}
	if len(in.seen) < in.limit {
		if in.seen == nil {
			in.seen = map[string]string{}
		}
		in.seen[s] = s
	}
	return s
}

// trimmedMeta completes the metav1.Object view of a cached object. It keeps
// the resourceVersion (client-go tells resyncs from updates by it, and so do
// the change handlers); every other field was dropped by the transform, and
// as metav1.Object documents for unsupported fields, reads return the zero
// value and writes are ignored. The wrappers provide namespace and name.
type trimmedMeta struct {
	resourceVersion string
}

func (m *trimmedMeta) GetResourceVersion() string                    { return m.resourceVersion }
func (m *trimmedMeta) SetResourceVersion(v string)                   { m.resourceVersion = v }
func (m *trimmedMeta) GetUID() types.UID                             { return "" }
func (m *trimmedMeta) SetUID(types.UID)                              {}
func (m *trimmedMeta) GetGenerateName() string                       { return "" }
func (m *trimmedMeta) SetGenerateName(string)                        {}
func (m *trimmedMeta) GetGeneration() int64                          { return 0 }
func (m *trimmedMeta) SetGeneration(int64)                           {}
func (m *trimmedMeta) GetSelfLink() string                           { return "" }
func (m *trimmedMeta) SetSelfLink(string)                            {}
func (m *trimmedMeta) GetCreationTimestamp() metav1.Time             { return metav1.Time{} }
func (m *trimmedMeta) SetCreationTimestamp(metav1.Time)              {}
func (m *trimmedMeta) GetDeletionTimestamp() *metav1.Time            { return nil }
func (m *trimmedMeta) SetDeletionTimestamp(*metav1.Time)             {}
func (m *trimmedMeta) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (m *trimmedMeta) SetDeletionGracePeriodSeconds(*int64)          {}
func (m *trimmedMeta) GetLabels() map[string]string                  { return nil }
func (m *trimmedMeta) SetLabels(map[string]string)                   {}
func (m *trimmedMeta) GetAnnotations() map[string]string             { return nil }
func (m *trimmedMeta) SetAnnotations(map[string]string)              {}
func (m *trimmedMeta) GetFinalizers() []string                       { return nil }
func (m *trimmedMeta) SetFinalizers([]string)                        {}
func (m *trimmedMeta) GetOwnerReferences() []metav1.OwnerReference   { return nil }
func (m *trimmedMeta) SetOwnerReferences([]metav1.OwnerReference)    {}
func (m *trimmedMeta) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (m *trimmedMeta) SetManagedFields([]metav1.ManagedFieldsEntry)  {}

var (
	_ metav1.Object = (*cachedService)(nil)
	_ metav1.Object = (*cachedEndpointSlice)(nil)
)
