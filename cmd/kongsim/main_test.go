package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	gokong "github.com/kong/go-kong/kong"
)

func TestParseListen(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"0.0.0.0:8000", "0.0.0.0:8000", ""},
		{"127.0.0.1:8001 reuseport backlog=16384", "127.0.0.1:8001", ""},
		{"0.0.0.0:8000, 0.0.0.0:8443 http2 ssl", "0.0.0.0:8000", ""},
		{"[::1]:8001", "[::1]:8001", ""},
		{"off", "", ""},
		{"", "", ""},
		{"8001", "", "expected host:port"},
		{"a:b", "", "bad port"},
	} {
		got, err := parseListen(c.in)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parseListen(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfig(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.database != "off" || c.proxyListen != "0.0.0.0:8000" || c.adminListen != "127.0.0.1:8001" ||
		c.statusListen != "" || c.updateFrequency != 5*time.Second || c.routerFlavor != "traditional_compatible" {
		t.Errorf("defaults = %+v", c)
	}
	if d := c.dsn(); d != "postgres://kong:@127.0.0.1:5432/kong?sslmode=disable" {
		t.Errorf("dsn = %s", d)
	}
	c, err = loadConfig(envOf(map[string]string{"KONG_DATABASE": "postgres", "KONG_DB_UPDATE_FREQUENCY": "0.25",
		"KONG_PG_HOST": "db", "KONG_PG_PASSWORD": "p@ss", "KONG_STATUS_LISTEN": "0.0.0.0:8100",
		"KONG_ROUTER_FLAVOR": "expressions"}))
	if err != nil || c.updateFrequency != 250*time.Millisecond || c.statusListen != "0.0.0.0:8100" || c.routerFlavor != "expressions" ||
		c.dsn() != "postgres://kong:p%40ss@db:5432/kong?sslmode=disable" {
		t.Errorf("config = %+v %v", c, err)
	}
	for _, bad := range []map[string]string{
		{"KONG_DATABASE": "cassandra"}, {"KONG_DB_UPDATE_FREQUENCY": "-1"},
		{"KONG_ADMIN_LISTEN": "nope"}, {"KONG_PG_PORT": "x"}, {"KONG_LOG_LEVEL": "loud"},
		{"KONG_ROUTER_FLAVOR": "atc"},
	} {
		if _, err := loadConfig(envOf(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestHelpAndUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, envOf(nil), &out, &errOut, nil); code != 0 ||
		!strings.Contains(out.String(), "KONG_DB_UPDATE_FREQUENCY") {
		t.Errorf("--help = %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"start", "now"}, envOf(nil), &out, &errOut, nil); code != 2 {
		t.Errorf("unknown command exit = %d", code)
	}
	if code := run(context.Background(), []string{"migrations", "bootstrap"}, envOf(nil), &out, &errOut, nil); code != 1 {
		t.Errorf("bootstrap without postgres exit = %d", code)
	}
}

// TestServeDBLess runs the binary's wiring on loopback: load a config with
// go-kong, see readiness and the proxy follow, then shut down cleanly.
func TestServeDBLess(t *testing.T) {
	env := envOf(map[string]string{
		"KONG_ADMIN_LISTEN": "127.0.0.1:0", "KONG_PROXY_LISTEN": "127.0.0.1:0 reuseport",
		"KONG_STATUS_LISTEN": "127.0.0.1:0", "KONG_LOG_LEVEL": "warn",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [3]string, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, nil, env, io.Discard, io.Discard, func(a, p, s, _ string) { addrs <- [3]string{a, p, s} })
	}()
	var a [3]string
	select {
	case a = <-addrs:
	case code := <-exit:
		t.Fatalf("kongsim exited early with %d", code)
	}
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("http://" + a[2] + "/status/ready"); code != 503 {
		t.Errorf("ready before config = %d", code)
	}
	base := "http://" + a[0]
	client, err := gokong.NewClient(&base, &http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"_format_version":"3.0","services":[{"name":"s","host":"127.0.0.1","port":1,"routes":[{"paths":["/"]}]}]}`
	if err := client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(cfg), true, true); err != nil {
		t.Fatal(err)
	}
	if code := get("http://" + a[2] + "/status/ready"); code != 200 {
		t.Errorf("ready after config = %d", code)
	}
	if code := get("http://" + a[1] + "/nothing-listens-there"); code != 502 {
		t.Errorf("proxy to a closed port = %d, want 502", code)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("exit code = %d", code)
	}
}

func TestParseListens(t *testing.T) {
	got, err := parseListens("0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl")
	want := []listenAddr{{addr: "0.0.0.0:8000"}, {addr: "0.0.0.0:8443", ssl: true, http2: true}}
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseListens = %v, %v; want %v", got, err, want)
	}
	if got, err := parseListens("off"); err != nil || got != nil {
		t.Errorf("off = %v, %v", got, err)
	}
	if _, err := parseListens("0.0.0.0:8000,"); err == nil {
		t.Error("a trailing comma was accepted")
	}
	c, err := loadConfig(envOf(map[string]string{"KONG_PROXY_LISTEN": "127.0.0.1:8443 ssl, 127.0.0.1:8000"}))
	if err != nil || c.proxyListen != "127.0.0.1:8000" || len(c.proxyListens) != 2 {
		t.Errorf("config = %+v, %v", c, err)
	}
}

// selfSignedPEM returns a certificate and key for name, PEM-encoded.
func selfSignedPEM(t *testing.T, name string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
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

// TestServeTLS runs a proxy with a plain and a TLS listener: SNI picks the
// loaded certificate or the default one, and route protocols decide what
// each listener may serve.
func TestServeTLS(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Via", r.Header.Get("Via"))
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	upURL, _ := url.Parse(upstream.URL)
	host, port, _ := net.SplitHostPort(upURL.Host)

	cert, key := selfSignedPEM(t, "secure.test")
	doc, _ := json.Marshal(map[string]any{
		"_format_version": "3.0",
		"certificates":    []any{map[string]any{"cert": cert, "key": key, "snis": []any{"secure.test", "*.wild.test"}}},
		"services": []any{map[string]any{"name": "s", "host": host, "port": json.Number(port), "routes": []any{
			map[string]any{"name": "tls-only", "hosts": []any{"secure.test", "a.wild.test"}, "protocols": []any{"https"}},
			map[string]any{"name": "moved", "hosts": []any{"moved.test"}, "protocols": []any{"https"}, "https_redirect_status_code": 301},
			map[string]any{"name": "plain-only", "hosts": []any{"plain.test"}, "protocols": []any{"http"}},
		}}},
	})
	env := envOf(map[string]string{
		"KONG_ADMIN_LISTEN": "127.0.0.1:0", "KONG_PROXY_LISTEN": "127.0.0.1:0, 127.0.0.1:0 http2 ssl",
		"KONG_LOG_LEVEL": "warn",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [3]string, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, nil, env, io.Discard, io.Discard, func(a, p, _, ps string) { addrs <- [3]string{a, p, ps} })
	}()
	var a [3]string
	select {
	case a = <-addrs:
	case code := <-exit:
		t.Fatalf("kongsim exited early with %d", code)
	}
	resp, err := http.Post("http://"+a[0]+"/config", "application/json", bytes.NewReader(doc))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST /config = %v %v", resp, err)
	}
	resp.Body.Close()

	// do sends one request over TLS with server name sni (or plain HTTP
	// when sni is "") and returns the response and the certificate seen.
	do := func(sni, hostHeader string) (*http.Response, *x509.Certificate) {
		t.Helper()
		var peer *x509.Certificate
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error { peer = cs.PeerCertificates[0]; return nil }}}
		defer tr.CloseIdleConnections()
		target := "http://" + a[1] + "/"
		if sni != "" {
			target = "https://" + a[2] + "/"
		}
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Host = hostHeader
		resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, peer
	}
	resp, peer := do("secure.test", "secure.test")
	if resp.StatusCode != 200 || peer.Subject.CommonName != "secure.test" || resp.Header.Get("X-Seen-Proto") != "https" ||
		resp.Header.Get("X-Seen-Via") != "1.1 kong/3.9.1" || resp.Header.Get("Via") != "1.1 kong/3.9.1" {
		t.Errorf("https secure.test = %d cert %q headers %v", resp.StatusCode, peer.Subject.CommonName, resp.Header)
	}
	if resp, peer = do("a.wild.test", "a.wild.test"); resp.StatusCode != 200 || peer.Subject.CommonName != "secure.test" {
		t.Errorf("wildcard SNI = %d cert %q", resp.StatusCode, peer.Subject.CommonName)
	}
	// No SNI matches: Kong's default self-signed certificate.
	resp, peer = do("unknown.test", "plain.test")
	if peer.Subject.CommonName != "localhost" || len(peer.Subject.Organization) == 0 || peer.Subject.Organization[0] != "Kong" {
		t.Errorf("default certificate = %v", peer.Subject)
	}
	if resp.StatusCode != 404 {
		t.Errorf("https on an http-only route = %d, want 404", resp.StatusCode)
	}
	if resp, _ = do("", "secure.test"); resp.StatusCode != 426 || resp.Header.Get("Upgrade") != "TLS/1.2, HTTP/1.1" {
		t.Errorf("http on an https-only route = %d %v, want 426", resp.StatusCode, resp.Header)
	}
	if resp, _ = do("", "moved.test"); resp.StatusCode != 301 || resp.Header.Get("Location") != "https://moved.test/" {
		t.Errorf("http on a redirecting route = %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ = do("", "plain.test"); resp.StatusCode != 200 || resp.Header.Get("X-Seen-Proto") != "http" {
		t.Errorf("http on an http route = %d", resp.StatusCode)
	}
	// The listener flagged http2 offers h2; Kong's Via upstream names it.
	h2 := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{ServerName: "secure.test", InsecureSkipVerify: true}}
	defer h2.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://"+a[2]+"/", nil)
	req.Host = "secure.test"
	resp, err = (&http.Client{Transport: h2}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("X-Seen-Via") != "2 kong/3.9.1" {
		t.Errorf("h2 request = %s %d %v", resp.Proto, resp.StatusCode, resp.Header)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("exit code = %d", code)
	}
}
