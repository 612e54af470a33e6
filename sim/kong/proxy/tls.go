package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Certificate is a loaded certificate entity and the SNIs naming it.
type Certificate struct {
	ID   string
	Cert *tls.Certificate
	SNIs []string
}

// certIndex finds a certificate by server name, as Kong does: an exact
// SNI, then a leading wildcard ("*.example.com"), then a trailing one
// ("example.*").
type certIndex struct {
	exact, prefix, suffix map[string]*tls.Certificate
}

func compileCertificates(certs []Certificate) *certIndex {
	if len(certs) == 0 {
		return nil
	}
	ix := &certIndex{exact: map[string]*tls.Certificate{}, prefix: map[string]*tls.Certificate{}, suffix: map[string]*tls.Certificate{}}
	for _, c := range certs {
		if c.Cert == nil {
			continue
		}
		for _, name := range c.SNIs {
			name = strings.ToLower(name)
			switch {
			case strings.HasPrefix(name, "*."):
				ix.suffix[name[1:]] = c.Cert // ".example.com"
			case strings.HasSuffix(name, ".*"):
				ix.prefix[name[:len(name)-1]] = c.Cert // "example."
			default:
				ix.exact[name] = c.Cert
			}
		}
	}
	return ix
}

func (ix *certIndex) lookup(name string) *tls.Certificate {
	if ix == nil || name == "" {
		return nil
	}
	name = strings.ToLower(name)
	if c := ix.exact[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c := ix.suffix[name[i:]]; c != nil {
			return c
		}
	}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		if c := ix.prefix[name[:i+1]]; c != nil {
			return c
		}
	}
	return nil
}

// TLSConfig is the proxy's TLS listener configuration: the certificate of
// the SNI the client asks for, else Kong's default self-signed one.
func (p *Proxy) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: p.certificate,
	}
}

func (p *Proxy) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := p.state.Load().certs.lookup(hello.ServerName); c != nil {
		return c, nil
	}
	return p.defaultCertificate()
}

// defaultCertificate is made on first use, as Kong generates its own at
// start: self-signed for "localhost".
func (p *Proxy) defaultCertificate() (*tls.Certificate, error) {
	p.defaultCertOnce.Do(func() { p.defaultCert, p.defaultCertErr = selfSigned("localhost") })
	return p.defaultCert, p.defaultCertErr
}

func selfSigned(name string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{CommonName: name, Organization: []string{"Kong"}, OrganizationalUnit: []string{"IT Department"},
			Locality: []string{"San Francisco"}, Province: []string{"California"}, Country: []string{"US"}},
		DNSNames:  []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// defaultCertState is embedded in Proxy.
type defaultCertState struct {
	defaultCertOnce sync.Once
	defaultCert     *tls.Certificate
	defaultCertErr  error
}
