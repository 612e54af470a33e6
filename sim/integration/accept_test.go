package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// goldenDir holds the translator's golden declarative files.
const goldenDir = "../../controller/translate/testdata"

// TestGoldenConfigsLoadIntoKongsim checks that every declarative document
// the translator's golden tests pin down is one Kong accepts: kongsim
// parses it, loads it through POST /config as the controller sends it, and
// keeps every entity.
func TestGoldenConfigsLoadIntoKongsim(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.golden.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s (err %v)", goldenDir, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".golden.json"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var golden struct {
				Config json.RawMessage `json:"config"`
			}
			if err := json.Unmarshal(raw, &golden); err != nil || len(golden.Config) == 0 {
				t.Fatalf("%s: no config document (err %v)", file, err)
			}
			// Golden files named *.expressions are translated for
			// router_flavor=expressions, and load into such a node.
			flavor := kong.DefaultRouterFlavor
			if strings.HasSuffix(file, ".expressions.golden.json") {
				flavor = kong.FlavorExpressions
			}
			st, err := kong.ParseDeclarativeFlavor(golden.Config, 0, flavor)
			if err != nil {
				t.Fatalf("ParseDeclarative: %v", err)
			}
			if want := countEntities(t, golden.Config); st.Count() != want {
				t.Errorf("kongsim holds %d entities, the document declares %d", st.Count(), want)
			}
			node := newFlavorNode(t, flavor)
			code, body := postConfig(t, node, golden.Config)
			switch {
			case code == http.StatusCreated:
			case code == http.StatusNotModified && st.Empty():
				// The empty document is what an empty node already serves.
			default:
				t.Fatalf("POST /config: HTTP %d: %s", code, body)
			}
			if node.ConfigHash() != st.Hash() {
				t.Errorf("node serves %s after POST /config, ParseDeclarative hashed %s", node.ConfigHash(), st.Hash())
			}
		})
	}
}

// TestRandomSnapshotsTranslateToConfigsKongAccepts is a property test:
// for random snapshots full of edge cases (wildcard and odd hosts, regex
// and odd paths, every supported annotation with good and bad values,
// named and numbered ports, ExternalName Services, IPv6 and unready
// endpoints, good and bad TLS Secrets), whatever the translator does not
// report as broken must load into kongsim. A failure is a translator /
// kongsim mismatch; its seed replays it (KONDUCTOR_SEED=<seed>).
func TestRandomSnapshotsTranslateToConfigsKongAccepts(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	first := uint64(1)
	if s := os.Getenv("KONDUCTOR_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KONDUCTOR_SEED=%q: %v", s, err)
		}
		first, seeds = v, 1
	}
	cert, key := selfSignedCertificate(t)
	translated := 0
	// Under router_flavor=expressions every route is an ATC expression,
	// which kongsim parses and checks as Kong's schema does.
	for _, flavor := range []string{kong.DefaultRouterFlavor, kong.FlavorExpressions} {
		node := newFlavorNode(t, flavor)
		for seed := first; seed < first+uint64(seeds); seed++ {
			snap := randomSnapshot(mrand.New(mrand.NewPCG(seed, 0x6b6f6e64)), cert, key)
			res := translate.Translate(snap, translate.Options{RouterFlavor: flavor})
			if flavor == kong.DefaultRouterFlavor {
				translated += len(res.Translated)
			}
			if _, err := kong.ParseDeclarativeFlavor(res.Body, 0, flavor); err != nil {
				t.Errorf("%s seed %d: kongsim refuses the translation: %v\nbody: %s", flavor, seed, err, clip(res.Body))
				continue
			}
			if code, body := postConfig(t, node, res.Body); code != http.StatusCreated && code != http.StatusNotModified {
				t.Errorf("%s seed %d: POST /config: HTTP %d: %s\nbody: %s", flavor, seed, code, body, clip(res.Body))
			}
		}
	}
	// The generator must not degenerate into snapshots where everything is
	// broken: then the property would hold vacuously.
	t.Logf("%d snapshots, %d Ingresses translated and loaded", seeds, translated)
	if seeds >= 50 && translated < seeds {
		t.Errorf("only %d Ingresses translated over %d snapshots", translated, seeds)
	}
}

func newNode(t testing.TB) *kong.Node { return newFlavorNode(t, "") }

// newFlavorNode is a DB-less node of the given router flavor ("" for
// Kong's default).
func newFlavorNode(t testing.TB, flavor string) *kong.Node {
	t.Helper()
	n, err := kong.NewNode(kong.Options{Logger: testLogger(t), RouterFlavor: flavor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// postConfig sends body as the controller does.
func postConfig(t testing.TB, n *kong.Node, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://kong/config?check_hash=1&flatten_errors=1", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := kong.NewInMemoryTransport(n.Admin()).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(clip(out))
}

func clip(b []byte) []byte {
	if len(b) > 4000 {
		return append(b[:4000:4000], "…"...)
	}
	return b
}

// countEntities counts the entities a declarative document declares, nested
// ones included.
func countEntities(t testing.TB, doc []byte) int {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal(doc, &top); err != nil {
		t.Fatal(err)
	}
	var count func(v any) int
	count = func(v any) int {
		n := 0
		obj, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		for key, val := range obj {
			if key == "_format_version" || key == "tags" {
				continue
			}
			if list, ok := val.([]any); ok && isCollection(key) {
				for _, item := range list {
					if _, ok := item.(map[string]any); ok {
						n += 1 + count(item)
					}
				}
			}
		}
		return n
	}
	return count(top)
}

func isCollection(key string) bool {
	switch key {
	case "services", "routes", "upstreams", "targets", "plugins", "consumers", "certificates", "ca_certificates", "snis",
		"keyauth_credentials", "basicauth_credentials", "jwt_secrets", "acls", "hmacauth_credentials":
		return true
	}
	return false
}

// mix returns one of odd one time in five, else one of plain.
func mix[T any](r *mrand.Rand, plain, odd []T) T {
	if r.IntN(5) == 0 {
		return pick(r, odd...)
	}
	return pick(r, plain...)
}

// pick returns one of vs.
func pick[T any](r *mrand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }

var (
	// Hosts and paths come in plain and odd sets; mostly plain, so that
	// most snapshots translate to something.
	plainHosts = []string{"example.com", "*.example.com", "a.example.com", "b.example.org", ""}
	oddHosts   = []string{longLabelHost,
		"EXAMPLE.org", "xn--bcher-kva.example", "a_b.example.com", "192.0.2.1", "example.*", "bad host",
		"example.com.", "-lead.example.com", strings.Repeat("l", 63) + ".example.com", "*", "*.*.example.com",
		"münchen.example", "host:8080",
	}
	plainPaths = []string{"/", "/foo", "/foo/", "/api/v1", "~/re/[0-9]+"}
	oddPaths   = []string{
		"/a//b", "/%2F", "/with space", "/foo$", "/a.b", "/*", "/(x)", "", "/ü", "/foo?x", "foo", "/a/../b",
		"/~tilde", "/[", "~/unclosed(", "/" + strings.Repeat("p", 300), "/a+b", "/a^b", "/\\", "/%zz",
	}
	randomPathTypes = []networkingv1.PathType{
		networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific, "", "Regex",
	}
	randomAnnotations = map[string][]string{
		translate.AnnotationStripPath:         {"true", "false", "yes", ""},
		translate.AnnotationPreserveHost:      {"true", "false", "0"},
		translate.AnnotationProtocols:         {"http", "https", "http,https", "grpc", "grpcs", "tcp", "bogus", "HTTPS", " http , https "},
		translate.AnnotationMethods:           {"GET", "get,post", "BREW", "", "GET,GET", "PURGE", "g e t"},
		translate.AnnotationHTTPSRedirectCode: {"301", "302", "307", "308", "426", "999", "x"},
		translate.AnnotationPathHandling:      {"v0", "v1", "v2"},
		translate.AnnotationRegexPriority:     {"10", "-1", "x", "99999999999", "0"},
		translate.AnnotationHostAliases:       {"b.example.com", "*.alias.com", "bad host", "a.example.com,c.example.com", ""},
		translate.AnnotationRequestBuffering:  {"true", "false", "x"},
		translate.AnnotationResponseBuffering: {"true", "false", "x"},
	}
	randomServiceAnnotations = map[string][]string{
		translate.AnnotationProtocol:       {"http", "https", "grpc", "grpcs", "tcp", "tls", "ws", "wss", "bogus"},
		translate.AnnotationPath:           {"/base", "nopath", "/a b", "/", "/base/"},
		translate.AnnotationConnectTimeout: {"1000", "0", "-1", "x", "2147483648"},
		translate.AnnotationReadTimeout:    {"1000", "0", "2147483647"},
		translate.AnnotationWriteTimeout:   {"1000", "-5", "60000"},
		translate.AnnotationRetries:        {"0", "32767", "32768", "-1", "x"},
	}
	// TLS hosts: the API server checks them as DNS-1123 subdomains, which
	// admits an IPv4 address and labels longer than 63 characters; Kong
	// refuses both as SNI names, so the translator must report them on the
	// Ingress rather than emit them (see mismatchTLSHosts).
	tlsHosts = append([]string{"example.com", "*.example.com", "a.example.com", "other.example.org", "", "xn--bcher-kva.example"}, mismatchTLSHosts...)
	// mismatchTLSHosts once made the translator emit an SNI Kong refuses;
	// they stay in the draw as a regression check.
	mismatchTLSHosts = []string{"192.0.2.1", longLabelHost}
	// longLabelHost has a 64-character label: a valid DNS-1123 subdomain
	// for the API server, an invalid hostname for Kong. The translator lets
	// it through as a route host and as an SNI until it checked label
	// lengths; it is drawn as a rule host and a TLS host.
	longLabelHost   = strings.Repeat("l", 64) + ".example.com"
	randomAddresses = []string{"10.0.0.1", "10.0.0.2", "fd00::1", "127.0.0.1", "not-an-ip", "0.0.0.0", ""}
	// Ports as the API server admits them (1-65535): it refuses anything
	// else in Services, EndpointSlices and Ingress backends.
	randomPorts     = []int32{80, 8080, 443, 1, 65535}
	randomPortNames = []string{"http", "https", "", "grpc", "admin"}
)

// randomSnapshot builds 1–4 Services with slices and 1–4 Ingresses in one
// or two namespaces, sharing names so that backends, conflicts and TLS
// interact.
func randomSnapshot(r *mrand.Rand, cert, key []byte) translate.Snapshot {
	var snap translate.Objects
	namespaces := []string{"default", "team-b"}
	svcNames := []string{"echo", "api", "web", "ghost"} // ghost is never created
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	for _, ns := range namespaces {
		for _, name := range svcNames[:3] {
			if r.IntN(4) == 0 {
				continue
			}
			i++
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(fmt.Sprintf("svc-%s-%s-%d", ns, name, i)), Annotations: map[string]string{}},
				Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.1"},
			}
			for range 1 + r.IntN(2) {
				sp := corev1.ServicePort{
					Name: mix(r, randomPortNames[:1], randomPortNames), Port: mix(r, []int32{80}, randomPorts),
					TargetPort: pick(r, intstr.FromInt32(8080), intstr.FromString("http")),
				}
				// The API server refuses a repeated port name or number.
				if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sp.Name || p.Port == sp.Port }) {
					svc.Spec.Ports = append(svc.Spec.Ports, sp)
				}
			}
			if r.IntN(6) == 0 {
				svc.Spec.Type, svc.Spec.ExternalName = corev1.ServiceTypeExternalName, pick(r, "ext.example.net", "bad name", "")
			}
			for k, vs := range randomServiceAnnotations {
				if r.IntN(10) == 0 {
					svc.Annotations[k] = pick(r, vs...)
				}
			}
			snap.Services = append(snap.Services, svc)
			for j := range r.IntN(3) {
				portName, port := pick(r, randomPortNames...), pick(r, randomPorts...)
				es := &discoveryv1.EndpointSlice{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d-%d", name, i, j),
						Labels: map[string]string{discoveryv1.LabelServiceName: name}},
					AddressType: pick(r, discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN),
					Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
				}
				for range r.IntN(4) {
					ready := pick(r, new(true), new(false), (*bool)(nil))
					es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
						Addresses:  []string{pick(r, randomAddresses...)},
						Conditions: discoveryv1.EndpointConditions{Ready: ready, Terminating: pick(r, new(true), (*bool)(nil))},
					})
				}
				snap.EndpointSlices = append(snap.EndpointSlices, es)
			}
		}
	}
	for i := range 1 + r.IntN(4) {
		ns, name := pick(r, namespaces...), fmt.Sprintf("ing-%d", i)
		backend := func() networkingv1.IngressBackend {
			port := networkingv1.ServiceBackendPort{Number: mix(r, []int32{80}, randomPorts)}
			if r.IntN(3) == 0 {
				port = networkingv1.ServiceBackendPort{Name: mix(r, randomPortNames[:1], randomPortNames)}
			}
			return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: mix(r, svcNames[:3], svcNames[3:]), Port: port}}
		}
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(fmt.Sprintf("ing-%s-%d", ns, i)),
				CreationTimestamp: metav1.NewTime(base.Add(time.Duration(r.IntN(3)) * time.Minute)), Annotations: map[string]string{}},
		}
		if r.IntN(4) == 0 {
			b := backend()
			ing.Spec.DefaultBackend = &b
		}
		for range 1 + r.IntN(3) {
			rule := networkingv1.IngressRule{Host: mix(r, plainHosts, oddHosts)}
			if r.IntN(8) > 0 {
				rule.HTTP = &networkingv1.HTTPIngressRuleValue{}
				for range 1 + r.IntN(3) {
					pt := mix(r, randomPathTypes[:3], randomPathTypes[3:])
					p := networkingv1.HTTPIngressPath{Path: mix(r, plainPaths, oddPaths), Backend: backend()}
					if pt != "" {
						p.PathType = &pt
					}
					rule.HTTP.Paths = append(rule.HTTP.Paths, p)
				}
			}
			ing.Spec.Rules = append(ing.Spec.Rules, rule)
		}
		for k, vs := range randomAnnotations {
			if r.IntN(12) == 0 {
				ing.Annotations[k] = pick(r, vs...)
			}
		}
		if r.IntN(3) == 0 {
			ing.Spec.TLS = []networkingv1.IngressTLS{{
				SecretName: pick(r, "tls-good", "tls-bad", "tls-missing"),
				Hosts:      []string{pick(r, tlsHosts...), pick(r, tlsHosts...)},
			}}
		}
		snap.Ingresses = append(snap.Ingresses, ing)
	}
	for _, ns := range namespaces {
		snap.Secrets = append(snap.Secrets,
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls-good", UID: types.UID("sec-good-" + ns)},
				Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls-bad", UID: types.UID("sec-bad-" + ns)},
				Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: []byte("not a certificate"), corev1.TLSPrivateKeyKey: key}},
		)
	}
	return snap.Snapshot()
}

// selfSignedCertificate returns a PEM certificate and key for
// example.com and *.example.com.
func selfSignedCertificate(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.com"},
		DNSNames:  []string{"example.com", "*.example.com"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
