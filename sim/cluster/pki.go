package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the key material of one cluster: a CA, the API server's serving
// certificate signed by it, the service-account signing key, the nodes'
// kubelet serving certificate and the client certificate the API server
// presents to kubelets. All of it is generated in-process so the cluster
// needs no openssl.
type pki struct {
	CACertFile, ServingCertFile, ServingKeyFile, ServiceAccountKeyFile string
	CACertPEM                                                          []byte
	// KubeletClientCertFile and KubeletClientKeyFile are the API server's
	// identity towards kubelets (pods/log, nodes/proxy): a member of
	// system:masters, as kubeadm's apiserver-kubelet-client is.
	KubeletClientCertFile, KubeletClientKeyFile string
	// KubeletServing is the node agent's serving certificate for the
	// nodes' InternalIP (the extra IPs given to newPKI).
	KubeletServing tls.Certificate
}

// newPKI writes the cluster's keys into dir. The serving certificate names
// every address a client may use for the API server: loopback, the in-cluster
// Service IP and DNS names, and extraIPs (the pod network's gateway).
func newPKI(dir string, extraIPs []net.IP, extraDNS []string) (*pki, error) {
	now := time.Now()
	caCert, caKey, caDER, err := newCA("konductor-localcluster-ca", x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature)
	if err != nil {
		return nil, err
	}

	servingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	servingTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1)}, extraIPs...),
		DNSNames: append([]string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		}, extraDNS...),
	}
	servingDER, err := x509.CreateCertificate(rand.Reader, servingTmpl, caCert, &servingKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create serving certificate: %w", err)
	}

	// Kubelet certificates: every node of the agent has the same address.
	kubeletServing, kubeletServingKey, err := issueLeaf(caCert, caKey, &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "konductor-process-kubelet"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1)}, extraIPs...),
	})
	if err != nil {
		return nil, fmt.Errorf("create kubelet serving certificate: %w", err)
	}
	kubeletClient, kubeletClientKey, err := issueLeaf(caCert, caKey, &x509.Certificate{
		SerialNumber: big.NewInt(4),
		Subject:      pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("create kubelet client certificate: %w", err)
	}

	// Service-account tokens are signed with RSA: RS256 is what every
	// Kubernetes client and OIDC verifier accepts.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}

	p := &pki{
		CACertFile:            filepath.Join(dir, "ca.crt"),
		ServingCertFile:       filepath.Join(dir, "apiserver.crt"),
		ServingKeyFile:        filepath.Join(dir, "apiserver.key"),
		ServiceAccountKeyFile: filepath.Join(dir, "sa.key"),
		CACertPEM:             pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		KubeletClientCertFile: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		KubeletClientKeyFile:  filepath.Join(dir, "apiserver-kubelet-client.key"),
	}
	if p.KubeletServing, err = tls.X509KeyPair(kubeletServing, kubeletServingKey); err != nil {
		return nil, err
	}
	servingKeyDER, err := x509.MarshalECPrivateKey(servingKey)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		p.CACertFile:            p.CACertPEM,
		p.ServingCertFile:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: servingDER}),
		p.ServingKeyFile:        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: servingKeyDER}),
		p.ServiceAccountKeyFile: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
		p.KubeletClientCertFile: kubeletClient,
		p.KubeletClientKeyFile:  kubeletClientKey,
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// issueLeaf signs tmpl (validity and key usage filled in) with the CA for a
// new P-256 key and returns certificate and key as PEM.
// newCA makes a self-signed CA valid for ten years.
func newCA(commonName string, usage x509.KeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              usage,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create CA %s: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, key, der, nil
}

func issueLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(10*365*24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
