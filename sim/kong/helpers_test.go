package kong_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	gokong "github.com/kong/go-kong/kong"

	sim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// env is one node reached through go-kong over the in-memory transport.
type env struct {
	node   *sim.Node
	mem    *store.Memory // nil in DB-less mode
	client *gokong.Client
	http   *http.Client
}

type mode string

const (
	dbless mode = sim.DatabaseOff
	dbmode mode = sim.DatabasePostgres
)

var modes = []mode{dbless, dbmode}

func newEnv(t testing.TB, m mode) *env {
	t.Helper()
	opts := sim.Options{Database: string(m), NodeID: "11111111-2222-3333-4444-555555555555", Hostname: "kong-0", Logger: quietLogger()}
	e := &env{}
	if m == dbmode {
		e.mem = store.NewMemory()
		opts.Backend = e.mem
	}
	n, err := sim.NewNode(opts)
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	e.node = n
	e.http = &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())}
	base := "http://kong-0:8001"
	e.client, err = gokong.NewClient(&base, e.http)
	if err != nil {
		t.Fatalf("go-kong NewClient: %v", err)
	}
	return e
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// do sends a raw request and returns status and decoded JSON body.
func (e *env) do(t testing.TB, method, path, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://kong-0:8001"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		_ = json.Unmarshal(b, &out)
	}
	return resp.StatusCode, out
}

func apiStatus(err error) int {
	if apiErr, ok := err.(*gokong.APIError); ok {
		return apiErr.Code()
	}
	return 0
}

func mustAPIError(t testing.TB, err error, status int) *gokong.APIError {
	t.Helper()
	apiErr, ok := err.(*gokong.APIError)
	if !ok || apiErr.Code() != status {
		t.Fatalf("want HTTP %d API error, got %v", status, err)
	}
	return apiErr
}

// selfSigned returns a PEM certificate and key for name.
func selfSigned(t testing.TB, name string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
}

const sampleConfig = `
_format_version: "3.0"
services:
- name: default.echo.80
  host: echo.default.80.svc
  port: 80
  routes:
  - name: default.echo.example-com.0
    hosts: ["example.com"]
    paths: ["~/echo$", "/echo/"]
    strip_path: false
    tags: ["k8s-name:echo", "k8s-namespace:default", "k8s-kind:Ingress"]
  plugins:
  - name: cors
    config: {origins: ["*"]}
upstreams:
- name: echo.default.80.svc
  targets:
  - {target: 10.244.0.5:8080, weight: 100}
  - {target: 10.244.0.6}
consumers:
- username: alice
`
