package translate

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestServiceOf(t *testing.T) {
	kongOnly := map[string]string{AnnotationProtocol: "https"}
	tests := []struct {
		name string
		in   *corev1.Service
		want *Service
	}{
		{name: "nil", in: nil, want: nil},
		{
			name: "keeps identity, konghq.com annotations, type, externalName, port names and numbers",
			in: &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u1", ResourceVersion: "7",
					Labels:      map[string]string{"app": "web"},
					Annotations: map[string]string{AnnotationProtocol: "https", corev1.LastAppliedConfigAnnotation: "{}", "konghq.com": "no prefix"}},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "api.example.com",
					Selector: map[string]string{"app": "web"}, ClusterIP: "10.0.0.1",
					Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}, {Port: 81}}},
			},
			want: &Service{Namespace: "shop", Name: "web", UID: "u1", Annotations: map[string]string{AnnotationProtocol: "https"},
				Type: corev1.ServiceTypeExternalName, ExternalName: "api.example.com",
				Ports: []ServicePort{{Name: "http", Port: 80}, {Port: 81}}},
		},
		{
			name: "no konghq.com annotations and no ports",
			in:   &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Annotations: map[string]string{"a": "b"}}},
			want: &Service{Namespace: "shop", Name: "web"},
		},
		{
			name: "only konghq.com annotations: the map is shared",
			in:   &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Annotations: kongOnly}},
			want: &Service{Namespace: "shop", Name: "web", Annotations: kongOnly},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ServiceOf(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ServiceOf:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestEndpointSliceOf(t *testing.T) {
	yes, no := true, false
	name, port := "http", int32(8080)
	endpoint := func(addr string, c discoveryv1.EndpointConditions) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: c}
	}
	tests := []struct {
		name string
		in   *discoveryv1.EndpointSlice
		want *EndpointSlice
	}{
		{name: "nil", in: nil, want: nil},
		{
			name: "serving addresses in slice order; named, unnamed and unset ports",
			in: &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web", "x": "y"}},
				AddressType: discoveryv1.AddressTypeIPv6,
				Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}, {Port: &port}, {Name: &name}},
				Endpoints: []discoveryv1.Endpoint{
					endpoint("fd00::3", discoveryv1.EndpointConditions{Ready: &yes}),
					endpoint("fd00::1", discoveryv1.EndpointConditions{}), // readiness unknown: serves
					endpoint("fd00::2", discoveryv1.EndpointConditions{Ready: &no}),
					endpoint("fd00::4", discoveryv1.EndpointConditions{Ready: &yes, Terminating: &yes}),
					endpoint("fd00::5", discoveryv1.EndpointConditions{Ready: &yes, Terminating: &no, Serving: &no}),
					{Addresses: []string{"fd00::6", "fd00::7"}},
				},
			},
			want: &EndpointSlice{Namespace: "shop", Name: "web-1", Service: "web", AddressType: discoveryv1.AddressTypeIPv6,
				Ports:   []EndpointPort{{Name: "http", Port: 8080}, {Port: 8080}, {Name: "http"}},
				Serving: []string{"fd00::3", "fd00::1", "fd00::5", "fd00::6", "fd00::7"}},
		},
		{
			name: "no Service label, nothing serving",
			in: &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "lonely"}, AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints: []discoveryv1.Endpoint{endpoint("10.0.0.1", discoveryv1.EndpointConditions{Ready: &no})}},
			want: &EndpointSlice{Namespace: "shop", Name: "lonely", AddressType: discoveryv1.AddressTypeIPv4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EndpointSliceOf(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("EndpointSliceOf:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
