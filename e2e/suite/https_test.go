//go:build e2e

package suite

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"konductor.dev/e2e/harness"
)

// httpsHost is the host the HTTPS feature's Ingress and certificate name.
const httpsHost = "secure.e2e.test"

// httpsRequests bounds the HTTPS request loop.
const httpsRequests = 200

// TestHTTPS: an Ingress with spec.tls is served over HTTPS through the
// proxy Service's port 443 with the certificate of its TLS Secret, chosen
// by SNI; another server name gets Kong's default certificate.
func TestHTTPS(t *testing.T) {
	skipUnlessRunnable(t)
	var cert *x509.Certificate
	f := features.New("HTTPS").
		WithLabel("overlay", "dbless-sidecar").
		Setup(setUp("dbless-sidecar")).
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var secret *corev1.Secret
			cert, secret = tlsSecret(t, "secure-tls", httpsHost)
			ing := ingress("echo-tls", "/", networkingv1.PathTypePrefix, ptr("kong"), nil)
			ing.Spec.Rules[0].Host = httpsHost
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{httpsHost}, SecretName: "secure-tls"}}
			// Deleted with the echo namespace at teardown.
			if err := apply(ctx, cfg, []runtime.Object{secret, ing}); err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Assess("HTTPS with the Ingress's SNI gets its certificate and the backend", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			pool := x509.NewCertPool()
			pool.AddCert(cert)
			// Verifying against the Secret's certificate alone proves the
			// proxy served exactly it, for exactly this host.
			client := httpsClient(&tls.Config{ServerName: httpsHost, RootCAs: pool})
			err := poll(ctx, routeTimeout, 250*time.Millisecond, func(ctx context.Context) error {
				addrs, err := httpsAddrs(ctx, cfg)
				if err != nil {
					return err
				}
				for _, addr := range addrs {
					if _, err := httpsGet(ctx, client, addr, httpsHost, "/"); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			addrs, err := httpsAddrs(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			failures := 0
			var first error
			start := time.Now()
			for i := range httpsRequests {
				if _, err := httpsGet(ctx, client, addrs[i%len(addrs)], httpsHost, fmt.Sprintf("/?req=%d", i)); err != nil {
					failures++
					if first == nil {
						first = err
					}
				}
			}
			t.Logf("%d HTTPS requests over %d proxy endpoints in %s: %d errors", httpsRequests, len(addrs), time.Since(start).Round(time.Millisecond), failures)
			if failures > 0 {
				t.Fatalf("%d of %d HTTPS requests failed; first: %v", failures, httpsRequests, first)
			}
			return ctx
		}).
		Assess("another server name gets Kong's default certificate", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			addrs, err := httpsAddrs(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var served *x509.Certificate
			client := httpsClient(&tls.Config{ServerName: "unknown.e2e.test", InsecureSkipVerify: true,
				VerifyConnection: func(cs tls.ConnectionState) error {
					served = cs.PeerCertificates[0]
					return nil
				}})
			// The hostless echo Ingress answers any host, over HTTPS too.
			if _, err := httpsGet(ctx, client, addrs[0], "unknown.e2e.test", "/"); err != nil {
				t.Fatal(err)
			}
			if served == nil || served.Equal(cert) {
				t.Fatalf("SNI unknown.e2e.test was served the Ingress's certificate")
			}
			if err := served.VerifyHostname("unknown.e2e.test"); err == nil {
				t.Errorf("default certificate %v unexpectedly covers unknown.e2e.test", served.DNSNames)
			}
			t.Logf("default certificate: CN=%s SANs=%v", served.Subject.CommonName, served.DNSNames)
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

func ptr[T any](v T) *T { return &v }

func httpsClient(conf *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}}
}

// httpsAddrs lists host:port addresses of the proxy Service's port 443:
// kind's host mapping, or the ready endpoints of port "proxy-tls".
func httpsAddrs(ctx context.Context, cfg *envconf.Config) ([]string, error) {
	if world.ProxyTLSAddr != "" {
		return []string{world.ProxyTLSAddr}, nil
	}
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		return nil, err
	}
	ep := &harness.EndpointProxy{Client: cs, Namespace: kongNamespace, Service: "kong-proxy", PortName: "proxy-tls", Scheme: "https"}
	urls, err := ep.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 {
		return nil, fmt.Errorf("Service %s/kong-proxy has no ready endpoint on port \"proxy-tls\"", kongNamespace)
	}
	for i, u := range urls {
		urls[i] = strings.TrimPrefix(u, "https://")
	}
	return urls, nil
}

// httpsGet requests https://host+path at addr and expects the echo
// backend's 200 answer.
func httpsGet(ctx context.Context, client *http.Client, addr, host, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET https://%s%s via %s: %w", host, path, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var echo struct{ Pod, Namespace string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &echo) != nil || echo.Namespace != echoNamespace {
		return nil, fmt.Errorf("GET https://%s%s via %s: status %d: %.200s", host, path, addr, resp.StatusCode, body)
	}
	return resp, nil
}

// tlsSecret makes a kubernetes.io/tls Secret in the echo namespace holding
// a fresh self-signed certificate for host.
func tlsSecret(t *testing.T, name, host string) (*x509.Certificate, *corev1.Secret) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// Self-signed and trusted directly by the client.
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert, &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: echoNamespace, Name: name},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		},
	}
}
