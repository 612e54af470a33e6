package translate

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"

	"github.com/kong/go-kong/kong"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/controller/translate/declarative"
)

// certificate is a TLS Secret checked once per translation, however many
// Ingresses use it.
type certificate struct {
	entity *declarative.Certificate // nil when the Secret is unusable
	err    error
}

func (t *translator) translateTLS(ref ObjectRef, tags []*string, namespace string, index int, entry networkingv1.IngressTLS) {
	field := func() string { return "spec.tls[" + strconv.Itoa(index) + "]" }
	if entry.SecretName == "" {
		// No secret means Kong's default certificate; nothing to configure.
		return
	}
	secret := nsName{namespace, entry.SecretName}
	cert := t.certificate(secret)
	if cert.err != nil {
		t.report(ref, field()+".secretName", ReasonInvalidTLSSecret, "%v; TLS for these hosts skipped, routes still served", cert.err)
		return
	}
	for i, host := range entry.Hosts {
		hostField := func() string { return field() + ".hosts[" + strconv.Itoa(i) + "]" }
		if err := validateSNI(host); err != nil {
			t.report(ref, hostField(), ReasonInvalidHost, "%v; SNI skipped", err)
			continue
		}
		if prev, taken := t.snis[host]; taken {
			if prev.secret != secret {
				t.report(ref, hostField(), ReasonConflictingSNI,
					"SNI %q already uses Secret %s/%s of %s, which is older; skipped",
					host, prev.secret.namespace, prev.secret.name, prev.owner)
			}
			continue
		}
		t.snis[host] = sniClaim{secret: secret, owner: ref}
		cert.entity.SNIs = append(cert.entity.SNIs, t.sni(tags, host))
	}
}

func (t *translator) certificate(key nsName) *certificate {
	if c, ok := t.certs[key]; ok {
		return c
	}
	c := &certificate{}
	t.certs[key] = c
	secret := t.secrets[key]
	if secret == nil {
		c.err = fmt.Errorf("Secret %s/%s not found", key.namespace, key.name)
		return c
	}
	if secret.Type != corev1.SecretTypeTLS {
		c.err = fmt.Errorf("Secret %s/%s has type %q, want %q", key.namespace, key.name, secret.Type, corev1.SecretTypeTLS)
		return c
	}
	certPEM, keyPEM := secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]
	// X509KeyPair parses the PEM blocks and the leaf certificate, and checks
	// that the private key belongs to it.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		c.err = fmt.Errorf("Secret %s/%s does not hold a usable certificate and key: %v", key.namespace, key.name, err)
		return c
	}
	ref := ObjectRef{Kind: "Secret", Namespace: secret.Namespace, Name: secret.Name, UID: secret.UID}
	c.entity = &declarative.Certificate{Certificate: kong.Certificate{
		ID:   kong.String(t.entityID("certificates", key.namespace+"/"+key.name)),
		Cert: kong.String(string(certPEM)),
		Key:  kong.String(string(keyPEM)),
		Tags: t.tagsFor(ref),
	}}
	return c
}

// certificates lists the usable certificates that serve at least one SNI;
// a certificate without SNIs would never be presented.
func (t *translator) certificates() []*declarative.Certificate {
	var out []*declarative.Certificate
	for _, c := range t.certs {
		if c.entity == nil || len(c.entity.SNIs) == 0 {
			continue
		}
		slices.SortFunc(c.entity.SNIs, func(a, b *kong.SNI) int { return cmp.Compare(*a.Name, *b.Name) })
		out = append(out, c.entity)
	}
	slices.SortFunc(out, func(a, b *declarative.Certificate) int { return cmp.Compare(*a.ID, *b.ID) })
	return out
}

type sniBlock struct {
	sni      kong.SNI
	id, name string
}

func (t *translator) sni(tags []*string, host string) *kong.SNI {
	b := &sniBlock{id: t.entityID("snis", host), name: host}
	b.sni.ID, b.sni.Name, b.sni.Tags = &b.id, &b.name, tags
	return &b.sni
}
