// Package synthetic makes the uniform workload the controller's benchmarks
// and scale tests run on: n applications, each an Ingress, its Service and
// an EndpointSlice of three ready endpoints.
package synthetic

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Apps returns n applications spread over 50 namespaces: application i is
// ingresses[i] (host app-<i>.example.com, Prefix /api, created i seconds
// after the first), services[i] (port "http" 80 → 8080) and slices[i].
func Apps(n int) (ingresses []*networkingv1.Ingress, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) {
	prefix := networkingv1.PathTypePrefix
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	portName, port, ready := "http", int32(8080), true
	for i := range n {
		ns, name := fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("app-%05d", i)
		ingresses = append(ingresses, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("ing-" + name),
				CreationTimestamp: metav1.NewTime(created.Add(time.Duration(i) * time.Second))},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
				Host: name + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/api", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}},
					}},
				}},
			}}},
		})
		services = append(services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("svc-" + name)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-x", Namespace: ns,
				Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		for j := range 3 {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", i>>8&255, i&255, j+1)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			})
		}
		slices = append(slices, slice)
	}
	return ingresses, services, slices
}
