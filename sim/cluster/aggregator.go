package cluster

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
)

// frontProxyClientName is the common name of the certificate the API server
// presents to aggregated API servers (metrics-server, a custom or external
// metrics adapter); they accept X-Remote-User headers only from it.
const frontProxyClientName = "front-proxy-client"

// frontProxy is the key material of the API aggregation layer: a CA of its
// own (kubeadm keeps it apart from the cluster CA, so a client certificate of
// the cluster CA can never pass for the proxy) and the proxy's client
// certificate signed by it.
type frontProxy struct {
	CAFile, ClientCertFile, ClientKeyFile string
}

// newFrontProxy writes the aggregation layer's CA and client certificate into
// dir.
func newFrontProxy(dir string) (*frontProxy, error) {
	ca, caKey, caDER, err := newCA("konductor-localcluster-front-proxy-ca", x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature)
	if err != nil {
		return nil, err
	}
	clientPEM, clientKeyPEM, err := issueLeaf(ca, caKey, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: frontProxyClientName},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("create front-proxy client certificate: %w", err)
	}
	fp := &frontProxy{
		CAFile:         filepath.Join(dir, "front-proxy-ca.crt"),
		ClientCertFile: filepath.Join(dir, "front-proxy-client.crt"),
		ClientKeyFile:  filepath.Join(dir, "front-proxy-client.key"),
	}
	for path, data := range map[string][]byte{
		fp.CAFile:         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		fp.ClientCertFile: clientPEM,
		fp.ClientKeyFile:  clientKeyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return fp, nil
}

// apiServerFlags turn on the aggregation layer: the API server proxies the
// groups of registered APIServices (metrics.k8s.io, external.metrics.k8s.io)
// with the proxy's certificate and the caller's identity in request headers,
// and publishes the CA and header names in kube-system's
// extension-apiserver-authentication ConfigMap, where aggregated servers read
// them. Routing goes to the Service's endpoints (pod IPs), not its cluster
// IP: the host has a route to the pod network but runs no kube-proxy.
func (fp *frontProxy) apiServerFlags() []string {
	return []string{
		"--requestheader-client-ca-file=" + fp.CAFile,
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + fp.ClientCertFile,
		"--proxy-client-key-file=" + fp.ClientKeyFile,
		"--enable-aggregator-routing=true",
	}
}
