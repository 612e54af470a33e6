package kongclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kong/go-kong/kong"
)

const rootDBLess = `{"version":"3.9.1","node_id":"5f7b3c1e-0000-4000-8000-000000000001","hostname":"kong-0",
 "tagline":"Welcome to kong","configuration":{"database":"off","router_flavor":"traditional_compatible","role":"traditional"},
 "plugins":{"available_on_server":{}}}`

func TestParseRoot(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Root
		wantErr string
	}{
		{name: "DB-less 3.9", body: rootDBLess, want: Root{Version: "3.9.1", NodeID: "5f7b3c1e-0000-4000-8000-000000000001",
			Hostname: "kong-0", Database: "off", RouterFlavor: "traditional_compatible", Role: "traditional"}},
		{name: "postgres", body: `{"version":"3.4.1","configuration":{"database":"postgres","router_flavor":"traditional_compatible"}}`,
			want: Root{Version: "3.4.1", Database: "postgres", RouterFlavor: "traditional_compatible"}},
		{name: "enterprise four-part version", body: `{"version":"3.4.3.12","configuration":{"database":"off","router_flavor":"expressions"}}`,
			want: Root{Version: "3.4.3.12", Database: "off", RouterFlavor: "expressions"}},
		{name: "too old", body: `{"version":"3.3.0","configuration":{"database":"off","router_flavor":"traditional"}}`, wantErr: "older than the minimum"},
		{name: "missing version", body: `{"configuration":{"database":"off","router_flavor":"traditional"}}`, wantErr: `"version" is missing`},
		{name: "unparseable version", body: `{"version":"banana","configuration":{"database":"off","router_flavor":"traditional"}}`, wantErr: `cannot parse "banana"`},
		{name: "missing router flavor", body: `{"version":"3.9.1","configuration":{"database":"off"}}`, wantErr: "router_flavor"},
		{name: "missing database", body: `{"version":"3.9.1","configuration":{"router_flavor":"traditional_compatible"}}`, wantErr: "configuration.database"},
		{name: "not JSON", body: `<html>`, wantErr: "not a Kong root document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRoot([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Semver.Major() != 3 {
				t.Fatalf("Semver = %v", got.Semver)
			}
			got.Semver, tc.want.Semver = kong.Version{}, kong.Version{}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if got.DBLess() != (tc.want.Database == "off") {
				t.Fatal("DBLess disagrees with Database")
			}
		})
	}
}

func FuzzParseRoot(f *testing.F) {
	f.Add([]byte(rootDBLess))
	f.Add([]byte(`{"version":"3.4.3.12-enterprise-edition","configuration":{"database":"off","router_flavor":"x"}}`))
	f.Add([]byte(`{"version":"","configuration":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		root, err := ParseRoot(raw)
		if err != nil {
			return
		}
		if root.Version == "" || root.RouterFlavor == "" || root.Database == "" {
			t.Fatalf("accepted an incomplete root: %+v", root)
		}
	})
}

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	sreq := req.Clone(req.Context())
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	t.h.ServeHTTP(rec, sreq)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		status  int
		body    string
		wantErr string
	}{
		{name: "healthy DB-less node", token: "s3cret", status: 200, body: rootDBLess},
		{name: "database down", token: "s3cret", status: 500, body: `{"message":"An unexpected error occurred"}`, wantErr: "500"},
		{name: "wrong token", token: "nope", status: 401, body: `{"message":"Invalid credentials. Token or User credentials required"}`, wantErr: "401"},
		{name: "no router flavor", token: "s3cret", status: 200, body: `{"version":"3.9.1","configuration":{"database":"off"}}`, wantErr: "router_flavor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/" || r.Method != http.MethodGet {
					http.NotFound(w, r)
					return
				}
				code := tc.status
				if r.Header.Get(DefaultHeaderName) != "s3cret" && code == 200 {
					code = 401
				}
				w.WriteHeader(code)
				_, _ = w.Write([]byte(tc.body))
			})
			client, err := NewHTTPClient(ClientOptions{Token: tc.token, Transport: handlerTransport{admin}})
			if err != nil {
				t.Fatal(err)
			}
			root, err := Probe(context.Background(), client, "http://kong-0:8001")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "http://kong-0:8001") {
					t.Fatalf("err = %v, want it to mention %q and the URL", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !root.DBLess() || root.Version != "3.9.1" {
				t.Fatalf("root = %+v", root)
			}
		})
	}
}

func TestHeaderName(t *testing.T) {
	tests := []struct {
		name, header, wantHeader string
	}{
		{name: "default header", wantHeader: "Kong-Admin-Token"},
		{name: "custom header", header: "X-Admin-Key", wantHeader: "X-Admin-Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got http.Header
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header })
			client, err := NewHTTPClient(ClientOptions{Token: "t0k", HeaderName: tc.header, Transport: handlerTransport{h}})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, "http://kong/status", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got.Get(tc.wantHeader) != "t0k" {
				t.Fatalf("headers = %v, want %s: t0k", got, tc.wantHeader)
			}
			if req.Header.Get(tc.wantHeader) != "" {
				t.Fatal("caller's request was modified")
			}
		})
	}
}

func TestOptionErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		o       ClientOptions
		wantErr string
	}{
		{name: "missing CA file", o: ClientOptions{CACertFile: filepath.Join(dir, "absent.pem")}, wantErr: "CACertFile"},
		{name: "CA file without PEM", o: ClientOptions{CACertFile: junk}, wantErr: "no PEM certificate"},
		{name: "CA PEM without PEM", o: ClientOptions{CACertPEM: []byte("junk")}, wantErr: "CACertPEM"},
		{name: "cert without key", o: ClientOptions{ClientCertFile: junk}, wantErr: "ClientKeyFile is not"},
		{name: "key without cert", o: ClientOptions{ClientKeyFile: junk}, wantErr: "ClientCertFile is not"},
		{name: "bad key pair", o: ClientOptions{ClientCertFile: junk, ClientKeyFile: junk}, wantErr: "ClientCertFile/ClientKeyFile"},
		{name: "TLS with custom transport", o: ClientOptions{TLSSkipVerify: true, Transport: http.DefaultTransport}, wantErr: "custom Transport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHTTPClient(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// TestTLS runs against a real TLS listener on 127.0.0.1 that requires a
// client certificate.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	clientCert, clientKey, clientPool := writeClientCert(t, dir)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(rootDBLess))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	srv.StartTLS()
	defer srv.Close()
	serverCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	tests := []struct {
		name    string
		o       ClientOptions
		wantErr string
	}{
		{name: "trusted CA and client cert", o: ClientOptions{CACertPEM: serverCA, ClientCertFile: clientCert, ClientKeyFile: clientKey}},
		{name: "server name override", o: ClientOptions{CACertPEM: serverCA, TLSServerName: "example.com", ClientCertFile: clientCert, ClientKeyFile: clientKey}},
		{name: "wrong server name", o: ClientOptions{CACertPEM: serverCA, TLSServerName: "kong.invalid", ClientCertFile: clientCert, ClientKeyFile: clientKey}, wantErr: "certificate"},
		{name: "skip verify", o: ClientOptions{TLSSkipVerify: true, ClientCertFile: clientCert, ClientKeyFile: clientKey}},
		{name: "unknown CA", o: ClientOptions{ClientCertFile: clientCert, ClientKeyFile: clientKey}, wantErr: "certificate"},
		{name: "no client cert", o: ClientOptions{CACertPEM: serverCA}, wantErr: "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Timeout = 10 * time.Second
			client, err := NewHTTPClient(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer client.CloseIdleConnections()
			root, err := Probe(context.Background(), client, srv.URL)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if root.Version != "3.9.1" {
				t.Fatalf("root = %+v", root)
			}
		})
	}
}

// writeClientCert writes a self-signed client certificate and key as PEM
// files and returns their paths and a pool trusting the certificate.
func writeClientCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "konductor"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
