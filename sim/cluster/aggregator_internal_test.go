package cluster

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The API server presents the front-proxy client certificate to aggregated
// servers, which accept it only if it chains to the requestheader CA and
// carries an allowed name.
func TestFrontProxyCertificateIsAcceptedByItsCA(t *testing.T) {
	dir := t.TempDir()
	fp, err := newFrontProxy(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca, client := readCert(t, fp.CAFile), readCert(t, fp.ClientCertFile)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify as a client of the front-proxy CA: %v", err)
	}
	if client.Subject.CommonName != frontProxyClientName {
		t.Errorf("client CN = %q, want %q", client.Subject.CommonName, frontProxyClientName)
	}
	flags := fp.apiServerFlags()
	for _, want := range []string{
		"--requestheader-client-ca-file=" + fp.CAFile,
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--proxy-client-cert-file=" + fp.ClientCertFile,
		"--proxy-client-key-file=" + fp.ClientKeyFile,
		"--enable-aggregator-routing=true",
	} {
		if !slices.Contains(flags, want) {
			t.Errorf("API server flags lack %s", want)
		}
	}
	if _, err := os.Stat(fp.ClientKeyFile); err != nil {
		t.Error(err)
	}
}

func TestMetricsImagesMapOnlyBuiltBinaries(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"metrics-server", "keda-adapter"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stageDir := t.TempDir()
	m, err := MetricsImages(dir, stageDir)
	if err != nil {
		t.Fatal(err)
	}
	for image, want := range map[string]string{
		"registry.k8s.io/metrics-server/metrics-server:v0.8.0": filepath.Join(stageDir, "metrics-images", "metrics-server"),
		"ghcr.io/kedacore/keda-metrics-apiserver:2.20.2":       filepath.Join(stageDir, "metrics-images", "keda-adapter"),
	} {
		if got, err := m.Resolve(image); err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", image, got, err, want)
		}
	}
	for _, image := range []string{"quay.io/prometheus/prometheus:v3.16.0", "ghcr.io/kedacore/keda:2.20.2"} {
		if got, err := m.Resolve(image); err == nil {
			t.Errorf("Resolve(%s) = %q, want an error: the binary is not built", image, got)
		}
	}
}

// kong quit in a preStop hook finds kong on PATH: the kong image's
// directory holds kong and kongsim, both the kongsim binary.
func TestKongImageHasKongOnPath(t *testing.T) {
	bin := t.TempDir()
	kongsim := filepath.Join(bin, "kongsim")
	if err := os.WriteFile(kongsim, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := DefaultImages(bin)
	entry, err := m.Resolve("kong:3.9")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kong", "kongsim"} {
		path := filepath.Join(filepath.Dir(entry), name)
		if target, err := filepath.EvalSymlinks(path); err != nil || target != kongsim {
			t.Errorf("%s leads to %q (%v), want %s", path, target, err, kongsim)
		}
	}
}
