package behaviour

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"konductor.dev/controller/translate"
	"konductor.dev/sim/kong"
)

const (
	namespace = "default"
	class     = "kong"
	// backendPort is every endpoint's port; each Service has its own
	// endpoint address, which tells the backends apart.
	backendPort = 8080
)

// cluster collects the objects of one test's Ingresses.
type cluster struct {
	objs     translate.Objects
	services map[string]string // endpoint address → Service name
}

func newCluster() *cluster { return &cluster{services: map[string]string{}} }

// service adds a Service on port 80 with one ready endpoint of its own.
func (c *cluster) service(name string) {
	if _, ok := c.addressOf(name); ok {
		return
	}
	addr := fmt.Sprintf("10.0.%d.%d", len(c.services)/250, 1+len(c.services)%250)
	c.services[addr] = name
	c.objs.Services = append(c.objs.Services, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("svc-" + name)},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{
			Name: "http", Port: 80, TargetPort: intstr.FromInt32(backendPort), Protocol: corev1.ProtocolTCP,
		}}},
	})
	portName, port, ready := "http", int32(backendPort), true
	c.objs.EndpointSlices = append(c.objs.EndpointSlices, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-x1", UID: types.UID("eps-" + name),
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	})
}

func (c *cluster) addressOf(name string) (string, bool) {
	for addr, n := range c.services {
		if n == name {
			return addr, true
		}
	}
	return "", false
}

// path is one HTTPIngressPath: its type ("Prefix", "Exact",
// "ImplementationSpecific"), path and backend Service.
type path struct{ kind, path, service string }

// rule is one IngressRule.
type rule struct {
	host  string
	paths []path
}

// ingress adds an Ingress of our class and the Services it names.
func (c *cluster) ingress(name string, annotations map[string]string, rules ...rule) *networkingv1.Ingress {
	ingressClass := class
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("ing-" + name),
			Generation: 1, Annotations: annotations,
			// Oldest first decides conflicts; creation order keeps the
			// translation deterministic.
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, len(c.objs.Ingresses), 0, time.UTC))},
		Spec: networkingv1.IngressSpec{IngressClassName: &ingressClass},
	}
	for _, r := range rules {
		value := &networkingv1.HTTPIngressRuleValue{}
		for _, p := range r.paths {
			c.service(p.service)
			pathType := networkingv1.PathType(p.kind)
			value.Paths = append(value.Paths, networkingv1.HTTPIngressPath{
				Path: p.path, PathType: &pathType, Backend: backend(p.service),
			})
		}
		ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{
			Host: r.host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: value},
		})
	}
	c.objs.Ingresses = append(c.objs.Ingresses, ing)
	return ing
}

func backend(service string) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: service, Port: networkingv1.ServiceBackendPort{Number: 80},
	}}
}

// tlsSecret adds a kubernetes.io/tls Secret holding a fresh self-signed
// certificate for hosts, and returns the certificate.
func (c *cluster) tlsSecret(t testing.TB, name string, hosts ...string) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, cert := selfSigned(t, hosts...)
	c.objs.Secrets = append(c.objs.Secrets, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("secret-" + name)},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	})
	return cert
}

func selfSigned(t testing.TB, hosts ...string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		DNSNames:  hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), cert
}

// proxy is a kongsim node serving the cluster's translation on a plain and
// a TLS loopback listener, as KONG_PROXY_LISTEN
// "0.0.0.0:8000, 0.0.0.0:8443 http2 ssl" does.
type proxy struct {
	plain, secure *httptest.Server
	services      map[string]string
	Result        translate.Result
}

// flavors are the router flavors each behaviour runs under: Kong's
// default, whose routes are traditional, and expressions, whose routes
// the translator writes as ATC expressions.
var flavors = []string{kong.FlavorTraditionalCompatible, kong.FlavorExpressions}

// eachFlavor runs test once per router flavor, as a subtest named after it.
func eachFlavor(t *testing.T, test func(t *testing.T, flavor string)) {
	for _, flavor := range flavors {
		t.Run(flavor, func(t *testing.T) { test(t, flavor) })
	}
}

// start translates the cluster for a Kong of the given router flavor, as
// the controller does once it has read the flavor from Kong's GET /, loads
// the result into a new kongsim node of that flavor and starts its
// listeners. Translation errors fail the test: every object here is meant
// to be valid.
func (c *cluster) start(t testing.TB, flavor string) *proxy {
	t.Helper()
	res := translate.Translate(c.objs.Snapshot(), translate.Options{RouterFlavor: flavor})
	for _, e := range res.Errors {
		// Traditional routes match a wildcard host deeper than the
		// Ingress API allows, and say so: TestHostPrecedence checks that
		// very difference. Expression routes need no such warning.
		if e.Reason == translate.ReasonWildcardHostDepth && flavor != kong.FlavorExpressions {
			t.Logf("translation warning: %v", e)
			continue
		}
		t.Errorf("translation error: %v", e)
	}
	node, err := kong.NewNode(kong.Options{Logger: slog.New(slog.DiscardHandler), ProxyTransport: echo{}, RouterFlavor: flavor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	req, _ := http.NewRequest(http.MethodPost, "http://kong/config?check_hash=1", bytes.NewReader(res.Body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := kong.NewInMemoryTransport(node.Admin()).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /config: HTTP %d %s", resp.StatusCode, body)
	}
	p := &proxy{services: c.services, Result: res}
	p.plain = httptest.NewServer(node.Proxy())
	t.Cleanup(p.plain.Close)
	p.secure = httptest.NewUnstartedServer(node.Proxy())
	p.secure.TLS = node.ProxyTLSConfig()
	p.secure.StartTLS()
	t.Cleanup(p.secure.Close)
	return p
}

// echo stands in for every pod: it answers with the address Kong dialled
// and the path it forwarded.
type echo struct{}

func (echo) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	host, _, _ := net.SplitHostPort(r.URL.Host)
	body := host + " " + r.URL.EscapedPath()
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r,
	}, nil
}

// answer is what a client saw.
type answer struct {
	status   int
	service  string // the Service whose endpoint answered; "" when none did
	path     string // the path the backend received
	location string
	cert     *x509.Certificate // the proxy's leaf certificate (HTTPS only)
}

func (a answer) String() string {
	if a.service != "" {
		return fmt.Sprintf("HTTP %d from %s (path %s)", a.status, a.service, a.path)
	}
	return fmt.Sprintf("HTTP %d, no backend (Location %q)", a.status, a.location)
}

// get requests http://host+target through the plain listener.
func (p *proxy) get(t testing.TB, host, target string) answer {
	t.Helper()
	return p.do(t, p.plain.URL, host, target, nil)
}

// getTLS requests https://host+target through the TLS listener, sending
// sni as the TLS server name. The client trusts any certificate: the test
// inspects the one served instead.
func (p *proxy) getTLS(t testing.TB, sni, host, target string) answer {
	t.Helper()
	return p.do(t, p.secure.URL, host, target, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
}

func (p *proxy) do(t testing.TB, base, host, target string, tlsConf *tls.Config) answer {
	t.Helper()
	client := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequest(http.MethodGet, base+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, location: resp.Header.Get("Location")}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		a.cert = resp.TLS.PeerCertificates[0]
	}
	if resp.Header.Get("Via") != "" || resp.StatusCode == http.StatusOK {
		if addr, rest, ok := strings.Cut(string(body), " "); ok {
			if name, known := p.services[addr]; known {
				a.service, a.path = name, rest
			}
		}
	}
	return a
}
