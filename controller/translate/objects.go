package translate

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// Service is what translation reads of a Kubernetes Service. The snapshot
// cache keeps Services in this form: with 10k Services the API objects'
// structs alone are 6 MB, most of it fields no Kong entity depends on.
// ServiceOf makes one from the API object.
type Service struct {
	Namespace string
	Name      string
	UID       types.UID
	// Annotations holds the konghq.com/ annotations, the only ones read.
	Annotations  map[string]string
	Type         corev1.ServiceType
	ExternalName string
	Ports        []ServicePort
}

// ServicePort is one port of a Service: Ingress backends name it or give
// its number, and EndpointSlices carry its name.
type ServicePort struct {
	Name string
	Port int32
}

// EndpointSlice is what translation reads of a discovery.k8s.io/v1
// EndpointSlice: the Service it belongs to, its address type, its ports and
// the addresses that may receive traffic. Endpoints that do not are left
// out, so their conditions need not be kept. EndpointSliceOf makes one from
// the API object.
type EndpointSlice struct {
	Namespace string
	Name      string
	// Service is the kubernetes.io/service-name label; a slice without it
	// belongs to no Service and is ignored.
	Service     string
	AddressType discoveryv1.AddressType
	Ports       []EndpointPort
	// Serving lists, in slice order, the addresses of the endpoints that
	// are ready (or of unknown readiness) and not terminating.
	Serving []string
}

// EndpointPort is one port of an EndpointSlice. Name is empty for the
// single unnamed port of a Service; Port is 0 when the slice leaves it
// unset, which no target can use.
type EndpointPort struct {
	Name string
	Port int32
}

// ServiceOf returns what translation reads of svc; nil for nil. The result
// shares svc's strings and, when svc has no other annotations, its
// annotation map.
func ServiceOf(svc *corev1.Service) *Service {
	if svc == nil {
		return nil
	}
	out := &Service{
		Namespace:    svc.Namespace,
		Name:         svc.Name,
		UID:          svc.UID,
		Annotations:  kongAnnotations(svc.Annotations),
		Type:         svc.Spec.Type,
		ExternalName: svc.Spec.ExternalName,
	}
	if len(svc.Spec.Ports) > 0 {
		out.Ports = make([]ServicePort, len(svc.Spec.Ports))
		for i, p := range svc.Spec.Ports {
			out.Ports[i] = ServicePort{Name: p.Name, Port: p.Port}
		}
	}
	return out
}

// EndpointSliceOf returns what translation reads of es; nil for nil.
func EndpointSliceOf(es *discoveryv1.EndpointSlice) *EndpointSlice {
	if es == nil {
		return nil
	}
	out := &EndpointSlice{
		Namespace:   es.Namespace,
		Name:        es.Name,
		Service:     es.Labels[discoveryv1.LabelServiceName],
		AddressType: es.AddressType,
	}
	if len(es.Ports) > 0 {
		out.Ports = make([]EndpointPort, len(es.Ports))
		for i, p := range es.Ports {
			if p.Name != nil {
				out.Ports[i].Name = *p.Name
			}
			if p.Port != nil {
				out.Ports[i].Port = *p.Port
			}
		}
	}
	n := 0
	for _, ep := range es.Endpoints {
		if serving(ep.Conditions) {
			n += len(ep.Addresses)
		}
	}
	if n > 0 {
		out.Serving = make([]string, 0, n)
		for _, ep := range es.Endpoints {
			if serving(ep.Conditions) {
				out.Serving = append(out.Serving, ep.Addresses...)
			}
		}
	}
	return out
}

// Objects are API objects of the kinds a Snapshot is made of, as read from
// the API server or a YAML bundle.
type Objects struct {
	Ingresses      []*networkingv1.Ingress
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Secrets        []*corev1.Secret
	Plugins        []*unstructured.Unstructured // KongPlugins and KongClusterPlugins
	Consumers      []*unstructured.Unstructured // KongConsumers
}

// Snapshot converts the objects for Translate. Ingresses and Secrets are
// shared, not copied.
func (o Objects) Snapshot() Snapshot {
	return Snapshot{
		Ingresses:      o.Ingresses,
		Services:       ServicesOf(o.Services...),
		EndpointSlices: EndpointSlicesOf(o.EndpointSlices...),
		Secrets:        o.Secrets,
		Plugins:        pluginsOf(o.Plugins),
		Consumers:      consumersOf(o.Consumers),
	}
}

// consumersOf converts KongConsumer objects, leaving out any that is not
// one (DecodeYAML has already refused those).
func consumersOf(objs []*unstructured.Unstructured) []*Consumer {
	var out []*Consumer
	for _, u := range objs {
		if c, err := ConsumerOf(u); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// pluginsOf converts plugin objects, leaving out any that is not one
// (DecodeYAML has already refused those).
func pluginsOf(objs []*unstructured.Unstructured) []*Plugin {
	var out []*Plugin
	for _, u := range objs {
		if p, err := PluginOf(u); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ServicesOf converts API Services for a Snapshot.
func ServicesOf(svcs ...*corev1.Service) []*Service {
	out := make([]*Service, len(svcs))
	for i, s := range svcs {
		out[i] = ServiceOf(s)
	}
	return out
}

// EndpointSlicesOf converts API EndpointSlices for a Snapshot.
func EndpointSlicesOf(slices ...*discoveryv1.EndpointSlice) []*EndpointSlice {
	out := make([]*EndpointSlice, len(slices))
	for i, s := range slices {
		out[i] = EndpointSliceOf(s)
	}
	return out
}

// serving tells whether an endpoint may receive traffic: ready, or of
// unknown readiness, and not terminating.
func serving(c discoveryv1.EndpointConditions) bool {
	ready := c.Ready == nil || *c.Ready
	terminating := c.Terminating != nil && *c.Terminating
	return ready && !terminating
}

// kongAnnotations returns the konghq.com/ annotations of a: a itself when
// it holds no others, nil when it holds none.
func kongAnnotations(a map[string]string) map[string]string {
	kong := 0
	for k := range a {
		if strings.HasPrefix(k, AnnotationPrefix) {
			kong++
		}
	}
	switch kong {
	case 0:
		return nil
	case len(a):
		return a
	}
	out := make(map[string]string, kong)
	for k, v := range a {
		if strings.HasPrefix(k, AnnotationPrefix) {
			out[k] = v
		}
	}
	return out
}
