package integration

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// IngressClass is the class every Ingress built here carries, konductor's
// default --ingress-class.
const IngressClass = "kong"

// App is one application as a user deploys it: a Service on port 80 whose
// ready endpoints listen on Port, and an Ingress routing Host and the
// Prefix path Path to it.
type App struct {
	Namespace, Name string
	Host, Path      string
	Addresses       []string // endpoint IPs; default 10.244.0.1
	Port            int32    // endpoint port; default 8080
}

func (a App) defaults() App {
	if a.Namespace == "" {
		a.Namespace = metav1.NamespaceDefault
	}
	if a.Path == "" {
		a.Path = "/"
	}
	if a.Host == "" {
		a.Host = a.Name + ".example.com"
	}
	if len(a.Addresses) == 0 {
		a.Addresses = []string{"10.244.0.1"}
	}
	if a.Port == 0 {
		a.Port = 8080
	}
	return a
}

// Objects returns the app's Service, EndpointSlice and Ingress.
func (a App) Objects() []runtime.Object {
	return []runtime.Object{a.Service(), a.EndpointSlice(), a.Ingress()}
}

// Service is the app's Service: port 80 ("http") to target Port.
func (a App) Service() *corev1.Service {
	a = a.defaults()
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Name, UID: uid("svc", a.Namespace, a.Name)},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.0.10",
			Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromInt32(a.Port), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// EndpointSlice lists the app's ready endpoints.
func (a App) EndpointSlice() *discoveryv1.EndpointSlice {
	a = a.defaults()
	name, port, ready := "http", a.Port, true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: a.Namespace, Name: a.Name + "-x1", UID: uid("eps", a.Namespace, a.Name),
			Labels: map[string]string{discoveryv1.LabelServiceName: a.Name},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for _, addr := range a.Addresses {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return es
}

// Ingress routes Host and Path (Prefix) to the app's Service port 80.
func (a App) Ingress() *networkingv1.Ingress {
	a = a.defaults()
	class, prefix := IngressClass, networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: a.Namespace, Name: a.Name, UID: uid("ing", a.Namespace, a.Name), Generation: 1,
		},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: a.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: a.Path, PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: a.Name, Port: networkingv1.ServiceBackendPort{Number: 80},
						}},
					}},
				}},
			}},
		},
	}
}

// Apps returns n apps named app-0 … app-<n-1>, each with its own host and
// endpoint address.
func Apps(n int) []App {
	apps := make([]App, n)
	for i := range apps {
		apps[i] = App{
			Name:      "app-" + strconv.Itoa(i),
			Addresses: []string{"10." + strconv.Itoa(100+i/65536%100) + "." + strconv.Itoa(i/256%256) + "." + strconv.Itoa(i%256)},
		}
	}
	return apps
}

func uid(kind, ns, name string) types.UID { return types.UID(kind + "-" + ns + "-" + name) }
