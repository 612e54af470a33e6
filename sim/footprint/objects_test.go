package footprint

import (
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"konductor.dev/controller/translate"
)

// lastApplied is the annotation kubectl apply keeps on what it applied.
const lastApplied = corev1.LastAppliedConfigAnnotation

// app is one application as users deploy it with kubectl apply: a
// Service, an EndpointSlice with three ready endpoints (shaped as the
// EndpointSlice controller writes them: node, zone, Pod reference) and an
// Ingress with one host and one or two paths.
type app struct {
	namespace string
	index     int
}

func (a app) name() string { return fmt.Sprintf("app-%05d", a.index) }

func (a app) labels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": a.name(), "app.kubernetes.io/part-of": "footprint"}
}

// withLastApplied records obj as kubectl apply would before sending it.
func withLastApplied(obj metav1.Object, typeMeta metav1.TypeMeta) {
	applied := map[string]any{"apiVersion": typeMeta.APIVersion, "kind": typeMeta.Kind, "metadata": obj}
	switch o := obj.(type) {
	case *corev1.Service:
		applied["spec"] = o.Spec
	case *networkingv1.Ingress:
		applied["spec"] = o.Spec
	}
	raw, err := json.Marshal(applied)
	if err != nil {
		panic(fmt.Sprintf("marshalling the last-applied configuration of %s: %v", obj.GetName(), err))
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[lastApplied] = string(raw) + "\n"
	obj.SetAnnotations(ann)
}

// service is headless: the local cluster's Service CIDR is a /24, too
// small for 10k ClusterIPs, and the controller reads no ClusterIP of a
// backend. It has no selector: its endpoints are written by the test.
func (a app) service() *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name(), Labels: a.labels()},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: corev1.ClusterIPNone,
			Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
	withLastApplied(svc, metav1.TypeMeta{APIVersion: "v1", Kind: "Service"})
	return svc
}

func (a app) endpointSlice(serviceUID types.UID) *discoveryv1.EndpointSlice {
	port, portName, protocol := int32(8080), "http", corev1.ProtocolTCP
	yes, no := true, false
	labels := a.labels()
	labels[discoveryv1.LabelServiceName] = a.name()
	// Not the EndpointSlice controller's own value, which would make it
	// delete slices of a Service without a selector.
	labels[discoveryv1.LabelManagedBy] = "footprint.konductor.dev"
	isController := true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: a.namespace, Name: a.name() + "-" + fmt.Sprintf("%05x", a.index*7919%(1<<20)),
			Labels:      labels,
			Annotations: map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-27T12:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: a.name(), UID: serviceUID,
				Controller: &isController, BlockOwnerDeletion: &isController,
			}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &protocol}},
	}
	for k := range 3 {
		node, zone := fmt.Sprintf("node-%c", 'a'+k), fmt.Sprintf("zone-%c", 'a'+k)
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 100+a.index/256, a.index%256, k+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no},
			NodeName:   &node,
			Zone:       &zone,
			TargetRef: &corev1.ObjectReference{
				Kind: "Pod", Namespace: a.namespace, Name: fmt.Sprintf("%s-7d9f8c6b5-%c%04d", a.name(), 'a'+k, a.index),
				UID: types.UID(uuid.NewString()),
			},
		})
	}
	return es
}

// ingress has one host; every other app also routes /api, and every
// fourth strips the path.
func (a app) ingress(class string) *networkingv1.Ingress {
	prefix, specific := networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: a.name(), Port: networkingv1.ServiceBackendPort{Name: "http"},
	}}
	paths := []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}}
	if a.index%2 == 0 {
		paths = append(paths, networkingv1.HTTPIngressPath{Path: "/api", PathType: &specific, Backend: backend})
	}
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name(), Labels: a.labels()},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host:             a.name() + ".apps.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
			}},
		},
	}
	if a.index%4 == 0 {
		ing.Annotations = map[string]string{translate.AnnotationStripPath: "true"}
	}
	withLastApplied(ing, metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"})
	return ing
}
