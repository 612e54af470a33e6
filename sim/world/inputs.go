package world

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"konductor.dev/controller/ingressclass"
)

// Namespaces and names of the world's objects.
const (
	appNamespace  = "app"
	kongNamespace = "kong"
	adminService  = "kong-admin"
	adminPort     = 8001
	appPort       = 8080
	ingressClass  = "kong"
)

// appHost is the host of app i's Ingress rule.
func appHost(i int) string { return "app-" + strconv.Itoa(i) + ".example.test" }

// appName names app i's Service, Ingress and backend.
func appName(i int) string { return "app-" + strconv.Itoa(i) }

// appIP is the address of app i's single backend pod.
func appIP(i int) string { return "10.2." + strconv.Itoa(i) + ".1" }

// appAt is the app whose backend pod has address ip (see appIP).
func appAt(ip string) (int, bool) {
	rest, ok := strings.CutPrefix(ip, "10.2.")
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ".1")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 || i >= 256 || appIP(i) != ip {
		return 0, false
	}
	return i, true
}

// kongIP is the address of Kong slot j's pod.
func kongIP(j int) string { return "10.1.0." + strconv.Itoa(j+10) }

// kongPod names Kong slot j's pod.
func kongPod(j int) string { return "kong-" + strconv.Itoa(j) }

// appObjects are the Kubernetes objects of app i: a Service, its
// EndpointSlice and an Ingress routing appHost(i) to it.
func appObjects(i int) []runtime.Object {
	name := appName(i)
	pathType := networkingv1.PathTypePrefix
	return []runtime.Object{
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: name},
			Spec: corev1.ServiceSpec{
				ClusterIP: fmt.Sprintf("10.96.0.%d", i+10),
				Selector:  map[string]string{"app": name},
				Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(appPort)}},
			},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: name + "-1",
				Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{appIP(i)},
				Conditions: discoveryv1.EndpointConditions{Ready: ref(true)},
			}},
			Ports: []discoveryv1.EndpointPort{{Name: ref("http"), Port: ref[int32](appPort)}},
		},
		&networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: name},
			Spec: networkingv1.IngressSpec{
				IngressClassName: ref(ingressClass),
				Rules: []networkingv1.IngressRule{{
					Host: appHost(i),
					IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
						Paths: []networkingv1.HTTPIngressPath{{
							Path: "/", PathType: &pathType,
							Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
								Name: name, Port: networkingv1.ServiceBackendPort{Number: 80},
							}},
						}},
					}},
				}},
			},
		},
	}
}

// baseObjects are the objects present before the controllers start.
func baseObjects(apps int) []runtime.Object {
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNamespace}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kongNamespace}},
		&networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: ingressClass},
			Spec:       networkingv1.IngressClassSpec{Controller: ingressclass.ControllerName},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: adminService},
			Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "admin", Port: adminPort}}},
		},
	}
	for i := range apps {
		objs = append(objs, appObjects(i)...)
	}
	return objs
}

// adminSlice lists the Kong pods in slots as the admin Service's endpoints.
func adminSlice(slots []int) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: adminService + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: adminService}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ref("admin"), Port: ref[int32](adminPort)}},
	}
	for _, j := range slots {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{kongIP(j)},
			Conditions: discoveryv1.EndpointConditions{Ready: ref(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: kongNamespace, Name: kongPod(j)},
		})
	}
	return es
}

func ref[T any](v T) *T { return &v }
