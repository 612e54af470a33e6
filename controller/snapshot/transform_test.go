package snapshot

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/translate"
)

var (
	created  = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	deleted  = metav1.NewTime(time.Date(2026, 1, 3, 3, 4, 5, 0, time.UTC))
	managed  = []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}}
	owner    = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web", UID: "svc-uid"}}
	tlsCert  = []byte("-----BEGIN CERTIFICATE-----")
	tlsKey   = []byte("-----BEGIN PRIVATE KEY-----")
	yes, no  = true, false
	http80   = "http"
	port8080 = int32(8080)
	tcp      = corev1.ProtocolTCP
)

// fullMeta is metadata as the API server sends it for an object applied
// with kubectl.
func fullMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: "shop", UID: types.UID("uid-" + name), ResourceVersion: "42", Generation: 3,
		CreationTimestamp: created, DeletionTimestamp: &deleted,
		Labels: map[string]string{"app.kubernetes.io/name": name, discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
		Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation:    `{"apiVersion":"v1","kind":"Service"}`,
			translate.AnnotationProtocol:          "https",
			translate.AnnotationStripPath:         "true",
			"meta.helm.sh/release-name":           "shop",
			"kubernetes.io/ingress.class":         "kong",
			"endpoints.kubernetes.io/last-change": "2026-01-02T03:04:05Z",
		},
		OwnerReferences: owner, Finalizers: []string{"example.com/keep"}, ManagedFields: managed,
	}
}

// identity is what keepIdentity leaves of fullMeta.
func identity(m metav1.ObjectMeta, labels, annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion, Generation: m.Generation,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp, Labels: labels, Annotations: annotations,
	}
}

func withoutManagedFields(m metav1.ObjectMeta) metav1.ObjectMeta {
	m.ManagedFields = nil
	return m
}

func fullIngress() *networkingv1.Ingress {
	class, prefix := "kong", networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: fullMeta("web"),
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "cert"}},
			Rules: []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}},
				}}},
			}}}},
		},
		Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.1"}}}},
	}
}

func fullService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: fullMeta("web"),
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeClusterIP,
			ExternalName: "",
			Selector:     map[string]string{"app": "web"},
			ClusterIP:    "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, AppProtocol: &http80}},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.1"}}}},
	}
}

func fullEndpointSlice() *discoveryv1.EndpointSlice {
	node, zone, host := "node-a", "zone-a", "web-0"
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  fullMeta("web-x1"),
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &http80, Port: &port8080, Protocol: &tcp, AppProtocol: &http80}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.244.0.5"},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no},
			Hostname:   &host, NodeName: &node, Zone: &zone,
			TargetRef:          &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-0", UID: "pod-uid"},
			DeprecatedTopology: map[string]string{"topology.kubernetes.io/zone": zone},
			Hints:              &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: zone}}},
		}},
	}
}

func fullSecret() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: fullMeta("cert"),
		Type:       corev1.SecretTypeTLS,
		Immutable:  &yes,
		Data:       map[string][]byte{corev1.TLSCertKey: tlsCert, corev1.TLSPrivateKeyKey: tlsKey, "ca.crt": []byte("ca")},
	}
}

func fullClass() *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: fullMeta("kong")}
	c.Namespace = ""
	c.Spec.Controller = "ingress-controllers.konghq.com/kong"
	return c
}

func TestTrim(t *testing.T) {
	tests := []struct {
		name string
		in   func() any
		want func() any
	}{
		{
			// The status writer patches status only, so the cache keeps
			// of the metadata just what the controller reads.
			name: "Ingress keeps spec, status, the class and konghq.com annotations",
			in:   func() any { return fullIngress() },
			want: func() any {
				i := fullIngress()
				i.ObjectMeta = identity(i.ObjectMeta, nil, map[string]string{
					"kubernetes.io/ingress.class": "kong",
					translate.AnnotationProtocol:  "https",
					translate.AnnotationStripPath: "true",
				})
				return i
			},
		},
		{
			name: "Ingress without annotations the controller reads keeps none",
			in: func() any {
				i := fullIngress()
				i.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "konghq.com": "not the prefix"}
				return i
			},
			want: func() any {
				i := fullIngress()
				i.ObjectMeta = identity(i.ObjectMeta, nil, nil)
				return i
			},
		},
		{
			name: "Service becomes its compact form: konghq.com annotations, type, externalName, port names and numbers",
			in:   func() any { return fullService() },
			want: func() any {
				return &cachedService{
					Service: translate.Service{Namespace: "shop", Name: "web", UID: "uid-web",
						Annotations: map[string]string{translate.AnnotationProtocol: "https", translate.AnnotationStripPath: "true"},
						Type:        corev1.ServiceTypeClusterIP, Ports: []translate.ServicePort{{Name: "http", Port: 80}}},
					trimmedMeta: trimmedMeta{resourceVersion: "42"},
				}
			},
		},
		{
			name: "ExternalName Service keeps its name",
			in: func() any {
				s := fullService()
				s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "api.example.com"
				s.Spec.Ports = nil
				return s
			},
			want: func() any {
				return &cachedService{
					Service: translate.Service{Namespace: "shop", Name: "web", UID: "uid-web",
						Annotations: map[string]string{translate.AnnotationProtocol: "https", translate.AnnotationStripPath: "true"},
						Type:        corev1.ServiceTypeExternalName, ExternalName: "api.example.com"},
					trimmedMeta: trimmedMeta{resourceVersion: "42"},
				}
			},
		},
		{
			name: "EndpointSlice becomes its compact form: Service label, port names and numbers, serving addresses",
			in: func() any {
				es := fullEndpointSlice()
				ep := es.Endpoints[0]
				for _, c := range []discoveryv1.EndpointConditions{
					{Ready: &no}, {Ready: &yes, Terminating: &yes}, {Serving: &yes}, {Ready: &yes, Serving: &no},
				} {
					ep.Addresses, ep.Conditions = []string{"10.244.9." + strconv.Itoa(len(es.Endpoints))}, c
					es.Endpoints = append(es.Endpoints, ep)
				}
				unnamed := int32(9090)
				es.Ports = append(es.Ports, discoveryv1.EndpointPort{Port: &unnamed}, discoveryv1.EndpointPort{Name: &http80})
				return es
			},
			want: func() any {
				return &cachedEndpointSlice{
					EndpointSlice: translate.EndpointSlice{Namespace: "shop", Name: "web-x1", Service: "web",
						AddressType: discoveryv1.AddressTypeIPv4,
						Ports:       []translate.EndpointPort{{Name: "http", Port: 8080}, {Port: 9090}, {Name: "http"}},
						// ready, or readiness unknown, and not terminating
						Serving: []string{"10.244.0.5", "10.244.9.3", "10.244.9.4"}},
					trimmedMeta: trimmedMeta{resourceVersion: "42"},
				}
			},
		},
		{
			name: "EndpointSlice without a Service label or endpoints",
			in: func() any {
				es := fullEndpointSlice()
				delete(es.Labels, discoveryv1.LabelServiceName)
				es.Endpoints = nil
				return es
			},
			want: func() any {
				return &cachedEndpointSlice{
					EndpointSlice: translate.EndpointSlice{Namespace: "shop", Name: "web-x1",
						AddressType: discoveryv1.AddressTypeIPv4, Ports: []translate.EndpointPort{{Name: "http", Port: 8080}}},
					trimmedMeta: trimmedMeta{resourceVersion: "42"},
				}
			},
		},
		{
			name: "TLS Secret keeps type, certificate and key",
			in:   func() any { return fullSecret() },
			want: func() any {
				s := fullSecret()
				return &corev1.Secret{
					ObjectMeta: identity(s.ObjectMeta, nil, nil),
					Type:       corev1.SecretTypeTLS,
					Data:       map[string][]byte{corev1.TLSCertKey: tlsCert, corev1.TLSPrivateKeyKey: tlsKey},
				}
			},
		},
		{
			name: "Secret without certificate or key keeps no data",
			in: func() any {
				s := fullSecret()
				s.Type, s.Data = corev1.SecretTypeOpaque, map[string][]byte{"token": []byte("x")}
				return s
			},
			want: func() any {
				s := fullSecret()
				return &corev1.Secret{ObjectMeta: identity(s.ObjectMeta, nil, nil), Type: corev1.SecretTypeOpaque}
			},
		},
		{
			name: "IngressClass loses managedFields and the last-applied annotation",
			in:   func() any { return fullClass() },
			want: func() any {
				c := fullClass()
				c.ObjectMeta = withoutManagedFields(c.ObjectMeta)
				delete(c.Annotations, corev1.LastAppliedConfigAnnotation)
				return c
			},
		},
		{
			name: "other objects lose only managedFields",
			in:   func() any { return &corev1.ConfigMap{ObjectMeta: fullMeta("cm"), Data: map[string]string{"k": "v"}} },
			want: func() any {
				return &corev1.ConfigMap{ObjectMeta: withoutManagedFields(fullMeta("cm")), Data: map[string]string{"k": "v"}}
			},
		},
		{
			name: "non-objects pass through",
			in:   func() any { return "not an object" },
			want: func() any { return "not an object" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, want := tt.in(), tt.want()
			got, err := trim(in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("trim:\n got %s\nwant %s", dump(got), dump(want))
			}
			again, err := trim(got)
			if err != nil || !reflect.DeepEqual(again, want) {
				t.Errorf("trim is not idempotent:\n got %s\nwant %s (err %v)", dump(again), dump(want), err)
			}
		})
	}
}

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestWithoutLastApplied(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]string
		want map[string]string
	}{
		{"nil", nil, nil},
		{"only last-applied", map[string]string{corev1.LastAppliedConfigAnnotation: "{}"}, nil},
		{"others kept", map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "a": "b"}, map[string]string{"a": "b"}},
		{"untouched", map[string]string{"a": "b"}, map[string]string{"a": "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withoutLastApplied(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTrimKeepsTranslation translates every snapshot of translate's golden
// tests twice, as written and trimmed after adding what real API servers
// and controllers add (managedFields, kubectl's annotation, node and Pod
// references, selectors, cluster IPs, CA bundles): the results must be the
// same, byte for byte, errors included.
func TestTrimKeepsTranslation(t *testing.T) {
	inputs, err := filepath.Glob("../translate/testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no ../translate/testdata/*.yaml (err %v)", err)
	}
	for _, input := range inputs {
		t.Run(strings.TrimSuffix(filepath.Base(input), ".yaml"), func(t *testing.T) {
			want := translate.Translate(loadObjects(t, input).Snapshot(), translate.Options{})
			var trimmed translate.Snapshot
			for _, obj := range objectsOf(loadObjects(t, input)) {
				decorate(obj)
				before := classMembership(obj)
				out, err := trim(obj)
				if err != nil {
					t.Fatal(err)
				}
				if after := classMembership(obj); after != before {
					t.Errorf("%s: class membership %v before trimming, %v after", dump(obj), before, after)
				}
				switch o := out.(type) {
				case *networkingv1.Ingress:
					trimmed.Ingresses = append(trimmed.Ingresses, o)
				case *cachedService:
					trimmed.Services = append(trimmed.Services, &o.Service)
				case *cachedEndpointSlice:
					trimmed.EndpointSlices = append(trimmed.EndpointSlices, &o.EndpointSlice)
				case *corev1.Secret:
					trimmed.Secrets = append(trimmed.Secrets, o)
				case *cachedPlugin:
					trimmed.Plugins = append(trimmed.Plugins, &o.Plugin)
				case *cachedConsumer:
					trimmed.Consumers = append(trimmed.Consumers, &o.Consumer)
				default:
					t.Fatalf("trim made a %T of %s", out, dump(obj))
				}
			}
			got := translate.Translate(trimmed, translate.Options{})
			if got.Hash != want.Hash || !bytes.Equal(got.Body, want.Body) {
				t.Errorf("trimmed objects translate into a different document:\n got %s\nwant %s", got.Body, want.Body)
			}
			if !reflect.DeepEqual(got.Errors, want.Errors) || !reflect.DeepEqual(got.Translated, want.Translated) {
				t.Errorf("trimmed objects report differently:\n got %v %v\nwant %v %v", got.Errors, got.Translated, want.Errors, want.Translated)
			}
		})
	}
}

// classMembership is ingressclass.Matches for an Ingress against our class
// and another, our class being the default or not.
func classMembership(obj runtime.Object) [4]bool {
	ing, ok := obj.(*networkingv1.Ingress)
	if !ok {
		return [4]bool{}
	}
	return [4]bool{
		ingressclass.Matches(ing, "kong", false), ingressclass.Matches(ing, "kong", true),
		ingressclass.Matches(ing, "nginx", false), ingressclass.Matches(ing, "nginx", true),
	}
}

// objectsOf lists every object of s.
func objectsOf(s translate.Objects) []runtime.Object {
	var out []runtime.Object
	for _, o := range s.Ingresses {
		out = append(out, o)
	}
	for _, o := range s.Services {
		out = append(out, o)
	}
	for _, o := range s.EndpointSlices {
		out = append(out, o)
	}
	for _, o := range s.Secrets {
		out = append(out, o)
	}
	for _, o := range s.Plugins {
		out = append(out, o)
	}
	for _, o := range s.Consumers {
		out = append(out, o)
	}
	return out
}

// decorate adds to obj what a real cluster adds and translation must not
// depend on.
func decorate(obj runtime.Object) {
	m := obj.(metav1.Object)
	m.SetManagedFields(managed)
	m.SetOwnerReferences(owner)
	ann := m.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[corev1.LastAppliedConfigAnnotation] = dump(obj)
	ann["meta.helm.sh/release-name"] = "shop"
	if _, ok := obj.(*networkingv1.Ingress); ok {
		// Half of them carry the legacy class annotation, which must
		// survive trimming to keep deciding membership.
		if len(m.GetName())%2 == 0 {
			ann[ingressclass.AnnotationIngressClass] = "kong"
		}
	}
	m.SetAnnotations(ann)
	labels := m.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app.kubernetes.io/part-of"] = "shop"
	m.SetLabels(labels)
	switch o := obj.(type) {
	case *corev1.Service:
		o.Spec.Selector = map[string]string{"app": o.Name}
		if o.Spec.Type != corev1.ServiceTypeExternalName {
			o.Spec.ClusterIP, o.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.10"}
		}
	case *discoveryv1.EndpointSlice:
		node := "node-a"
		for i := range o.Endpoints {
			o.Endpoints[i].NodeName = &node
			o.Endpoints[i].TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: o.Namespace, Name: o.Name}
		}
	case *corev1.Secret:
		if o.Data != nil {
			o.Data["ca.crt"] = []byte("ca")
		}
	}
}

// loadObjects reads one of translate's golden input bundles.
func loadObjects(t *testing.T, path string) translate.Objects {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := translate.DecodeYAML(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return snap
}

// TestCacheServesTrimmedObjects checks the wiring: what the informers
// cache, and the snapshot hands out, is already trimmed.
func TestCacheServesTrimmedObjects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := start(t, Config{Client: fake.NewClientset(fullService(), fullEndpointSlice(), fullSecret(), fullIngress()), IngressClass: "kong"})
		s := c.Snapshot()
		if len(s.Services) != 1 || len(s.EndpointSlices) != 1 || len(s.Secrets) != 1 || len(s.Ingresses) != 1 {
			t.Fatalf("snapshot holds %d Services, %d EndpointSlices, %d Secrets, %d Ingresses; want one of each",
				len(s.Services), len(s.EndpointSlices), len(s.Secrets), len(s.Ingresses))
		}
		if svc := s.Services[0]; !reflect.DeepEqual(svc, translate.ServiceOf(fullService())) || svc.Annotations[corev1.LastAppliedConfigAnnotation] != "" {
			t.Errorf("cached Service not in compact form: %s", dump(svc))
		}
		if es := s.EndpointSlices[0]; !reflect.DeepEqual(es, translate.EndpointSliceOf(fullEndpointSlice())) {
			t.Errorf("cached EndpointSlice not in compact form: %s", dump(es))
		}
		if _, ok := s.Secrets[0].Data["ca.crt"]; ok {
			t.Errorf("cached Secret kept ca.crt")
		}
		if ing := s.Ingresses[0]; ing.ManagedFields != nil || ing.Labels != nil || ing.Annotations[corev1.LastAppliedConfigAnnotation] != "" ||
			ing.Annotations["kubernetes.io/ingress.class"] != "kong" || ing.Annotations[translate.AnnotationProtocol] != "https" {
			t.Errorf("cached Ingress: want managedFields, labels and last-applied dropped, class and konghq.com annotations kept: %s", dump(ing))
		}
	})
}
