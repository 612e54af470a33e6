package translate

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

// plainConfig renders through encoding/json's reflection, the reference for
// the fast encoder behind Body.
type plainConfig Config

var fuzzPathTypes = []networkingv1.PathType{
	networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific, "Bogus",
}

var fuzzAnnotations = []string{
	AnnotationStripPath, AnnotationPreserveHost, AnnotationProtocols, AnnotationMethods,
	AnnotationHTTPSRedirectCode, AnnotationPathHandling, AnnotationRegexPriority, AnnotationHostAliases,
	AnnotationRequestBuffering, AnnotationResponseBuffering,
	AnnotationRegexPrefix, AnnotationSNIs, AnnotationHeadersPrefix + "x-a", AnnotationTags, AnnotationPlugins,
}

var fuzzServiceAnnotations = []string{
	AnnotationProtocol, AnnotationPath, AnnotationConnectTimeout, AnnotationReadTimeout,
	AnnotationWriteTimeout, AnnotationRetries,
	AnnotationHostHeader, AnnotationTLSVerify, AnnotationTLSVerifyDepth, AnnotationTags, AnnotationPlugins,
}

// FuzzTranslate builds a small snapshot from fuzzed strings and numbers:
// three Ingresses that share hosts, paths and a Service, so that conflicts,
// defaults, annotations and TLS interact. Translate must not panic, must be
// deterministic under any input order, must keep its invariants, and Body
// must equal what encoding/json renders for Config.
func FuzzTranslate(f *testing.F) {
	f.Add("example.com", "/foo", uint8(0), "echo", int32(80), "http", uint8(2), "https", "10.0.0.1", int64(0), true)
	f.Add("*.example.com", "~/re/[0-9]+", uint8(2), "echo", int32(0), "http", uint8(3), "get,POST", "fd00::1", int64(-5), false)
	f.Add("", "", uint8(1), "ghost", int32(70000), "", uint8(7), "a.example.com", "", int64(3), true)
	f.Add("Bad Host", "/a//b", uint8(3), "", int32(-1), "x", uint8(11), "<&>\u2028", "not-an-ip", int64(1), false)
	f.Add("a.b", "/%zz", uint8(14), "echo", int32(80), "", uint8(255), "\xff", "10.0.0.1", int64(0), true)

	cert, key := fuzzCertificate(f)
	f.Fuzz(func(t *testing.T, host, path string, pathType uint8, svcName string, port int32, portName string,
		annotation uint8, value, address string, ageOffset int64, externalName bool) {
		snap := fuzzSnapshot(host, path, pathType, svcName, port, portName, annotation, value, address, ageOffset, externalName, cert, key)
		for _, opts := range []Options{{}, {RouterFlavor: RouterFlavorExpressions}} {
			res := Translate(snap, opts)
			checkInvariants(t, snap, opts, res)
			if opts.RouterFlavor == RouterFlavorExpressions {
				checkExpressionRoutes(t, res)
			}

			want, err := json.Marshal((*plainConfig)(res.Config))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Body, want) {
				t.Fatalf("Body differs from encoding/json:\n got %s\nwant %s", res.Body, want)
			}
			// Repeated translation of the very same objects is stable too,
			// and does not mutate its input.
			if again := Translate(snap, opts); again.Hash != res.Hash {
				t.Fatalf("second translation hashed %s, first %s", again.Hash, res.Hash)
			}
		}
	})
}

func fuzzSnapshot(host, path string, pathType uint8, svcName string, port int32, portName string,
	annotation uint8, value, address string, ageOffset int64, externalName bool, cert, key []byte) Snapshot {
	pt := fuzzPathTypes[int(pathType)%len(fuzzPathTypes)]
	var ptr *networkingv1.PathType
	if pathType < 200 {
		ptr = &pt
	}
	backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: svcName, Port: networkingv1.ServiceBackendPort{Number: port, Name: portName}}}
	if pathType%7 == 6 {
		backend.Service.Port.Name = "" // by number only
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ingress := func(name string, created time.Time, annotations map[string]string, paths ...string) *networkingv1.Ingress {
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: k8stypes.UID("uid-" + name),
				CreationTimestamp: metav1.NewTime(created), Annotations: annotations},
			Spec: networkingv1.IngressSpec{
				DefaultBackend: &backend,
				TLS:            []networkingv1.IngressTLS{{SecretName: "tls", Hosts: []string{host, value}}},
			},
		}
		rule := networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{}}}
		for _, p := range paths {
			rule.HTTP.Paths = append(rule.HTTP.Paths, networkingv1.HTTPIngressPath{Path: p, PathType: ptr, Backend: backend})
		}
		ing.Spec.Rules = []networkingv1.IngressRule{rule, {Host: value}}
		return ing
	}
	annotations := map[string]string{}
	if int(annotation) < len(fuzzAnnotations) {
		annotations[fuzzAnnotations[annotation]] = value
	}
	svcAnnotations := map[string]string{}
	if i := int(annotation) - len(fuzzAnnotations); i >= 0 && i < len(fuzzServiceAnnotations) {
		svcAnnotations[fuzzServiceAnnotations[i]] = value
	}
	offset := time.Duration(ageOffset%1000) * time.Second

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName, Namespace: "default", UID: "svc-uid", Annotations: svcAnnotations},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: port}}},
	}
	if externalName {
		svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, host
	}
	ready := len(address)%2 == 0
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "slice", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{address, "10.0.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{address}},
		},
	}
	secretType := corev1.SecretTypeTLS
	if len(value)%3 == 0 {
		secretType = corev1.SecretTypeOpaque
	}
	// Plugins named like the fuzzed value (the plugins annotation may name
	// them), one with a config from a Secret holding the value; consumers
	// that share a username and whose credential holds the value.
	config, _ := json.Marshal(map[string]string{"v": value})
	var plugins []*Plugin
	for i, doc := range []string{
		`{"kind":"KongPlugin","metadata":{"name":` + jsonString(value) + `,"namespace":"default"},"plugin":"cors","instance_name":"i","config":` + string(config) + `}`,
		`{"kind":"KongClusterPlugin","metadata":{"name":"g","labels":{"global":"true"}},"plugin":` + jsonString(value) + `}`,
		`{"kind":"KongPlugin","metadata":{"name":"from-secret","namespace":"default"},"plugin":"acl","protocols":[` + jsonString(portName) + `],"configFrom":{"secretKeyRef":{"name":"conf","key":"c"}}}`,
	} {
		if p, err := PluginFromJSON([]byte(doc)); err == nil {
			plugins = append(plugins, p)
		} else if i != 0 {
			panic(err)
		}
	}
	consumers := []*Consumer{
		{Namespace: "default", Name: "a", Username: value, Credentials: []string{"cred", "conf"}, Annotations: map[string]string{AnnotationPlugins: value}},
		{Namespace: "default", Name: "b", Username: svcName, CustomID: value, Credentials: []string{"cred"}, Created: metav1.NewTime(base.Add(offset))},
	}
	return Snapshot{
		Plugins:   plugins,
		Consumers: consumers,
		Ingresses: []*networkingv1.Ingress{
			ingress("a", base, annotations, path, path+"/"),
			ingress("b", base.Add(offset), nil, path, "/"+value),
			ingress("c", base.Add(-offset), annotations, value),
		},
		Services:       ServicesOf(svc),
		EndpointSlices: EndpointSlicesOf(slice),
		Secrets: []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "default", UID: "sec-uid"},
			Type:       secretType,
			Data:       map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
		}, {
			ObjectMeta: metav1.ObjectMeta{Name: "conf", Namespace: "default", Labels: map[string]string{LabelSecret: "true"}},
			Data:       map[string][]byte{"c": []byte(value)},
		}, {
			ObjectMeta: metav1.ObjectMeta{Name: "cred", Namespace: "default", Labels: map[string]string{LabelCredential: portName}},
			Data:       map[string][]byte{"key": []byte(value), "group": []byte(value), "username": []byte(value), "password": []byte(value), "secret": []byte(value)},
		}},
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var (
	fuzzCertOnce sync.Once
	fuzzCert     []byte
	fuzzKey      []byte
)

// fuzzCertificate makes one self-signed certificate per process; the fuzz
// body compares translations made within the process, so it need not be
// the same across runs.
func fuzzCertificate(tb testing.TB) (certPEM, keyPEM []byte) {
	fuzzCertOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.com"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			tb.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		fuzzCert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		fuzzKey = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	})
	return fuzzCert, fuzzKey
}
