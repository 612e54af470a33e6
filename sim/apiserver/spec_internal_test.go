package apiserver

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// specChanged skips the conversion only for types whose JSON has no spec:
// for every type it answers what comparing the converted specs answers.
func TestSpecChangedSkipsOnlySpeclessTypes(t *testing.T) {
	ingress := func(host string) *networkingv1.Ingress {
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "i"}, Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host}}}}
	}
	unstructuredWith := func(spec any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Thing", "spec": spec}}
	}
	cases := []struct {
		name      string
		old, next runtime.Object
		mayHave   bool
		changed   bool
	}{
		{"configmap data changed", &corev1.ConfigMap{Data: map[string]string{"a": "1"}}, &corev1.ConfigMap{Data: map[string]string{"a": "2"}}, false, false},
		{"secret", &corev1.Secret{}, &corev1.Secret{Data: map[string][]byte{"k": []byte("v")}}, false, false},
		{"endpointslice", &discoveryv1.EndpointSlice{}, &discoveryv1.EndpointSlice{Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}}, false, false},
		{"ingress same spec", ingress("a"), ingress("a"), true, false},
		{"ingress spec changed", ingress("a"), ingress("b"), true, true},
		{"pod spec changed", &corev1.Pod{}, &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n"}}, true, true},
		{"service status only", &corev1.Service{}, &corev1.Service{Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}}}, true, false},
		{"ingressclass", &networkingv1.IngressClass{}, &networkingv1.IngressClass{Spec: networkingv1.IngressClassSpec{Controller: "x"}}, true, true},
		{"unstructured spec changed", unstructuredWith(map[string]any{"a": "1"}), unstructuredWith(map[string]any{"a": "2"}), true, true},
		{"unstructured same spec", unstructuredWith(map[string]any{"a": "1"}), unstructuredWith(map[string]any{"a": "1"}), true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayHaveSpec(tc.old); got != tc.mayHave {
				t.Errorf("mayHaveSpec = %v, want %v", got, tc.mayHave)
			}
			if got := specChanged(tc.old, tc.next); got != tc.changed {
				t.Errorf("specChanged = %v, want %v", got, tc.changed)
			}
		})
	}
}
