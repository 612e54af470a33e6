package translate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kong/go-kong/kong"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/controller/translate/declarative"
)

// Translate converts a snapshot into a Kong declarative configuration. It
// never fails as a whole: problems are reported per object in Result.Errors.
func Translate(s Snapshot, o Options) Result {
	t := newTranslator(s, o)
	for _, ing := range ingressesOldestFirst(s.Ingresses) {
		t.translateIngress(ing)
	}
	return t.result()
}

type nsName struct{ namespace, name string }

type backendKey struct {
	namespace, service string
	port               int32
}

// backend is one Kong service (a Kubernetes Service port) and its routes.
type backend struct {
	service  *declarative.Service
	upstream *declarative.Upstream // nil for ExternalName services
}

// claim records which Ingress owns a host+path, so that later (younger)
// Ingresses asking for the same one are refused.
type claim struct {
	host, pathType, path string
}

type sniClaim struct {
	secret nsName
	owner  ObjectRef
}

type translator struct {
	opts      Options
	services  map[nsName]*corev1.Service
	endpoints map[nsName][]*discoveryv1.EndpointSlice // by namespace and Service name
	secrets   map[nsName]*corev1.Secret
	errs      []ObjectError
	claims    map[claim]ObjectRef
	backends  map[backendKey]*backend
	settings  map[nsName]serviceSettings
	certs     map[nsName]*certificate
	snis      map[string]sniClaim
	routed    []ObjectRef // Ingresses with at least one route, in no particular order
	idBuf     []byte      // scratch space for entityID
}

func newTranslator(s Snapshot, o Options) *translator {
	t := &translator{
		opts:      o,
		services:  make(map[nsName]*corev1.Service, len(s.Services)),
		endpoints: make(map[nsName][]*discoveryv1.EndpointSlice, len(s.EndpointSlices)),
		secrets:   make(map[nsName]*corev1.Secret, len(s.Secrets)),
		claims:    make(map[claim]ObjectRef, 2*len(s.Ingresses)),
		backends:  make(map[backendKey]*backend, len(s.Services)),
		settings:  make(map[nsName]serviceSettings),
		certs:     make(map[nsName]*certificate),
		snis:      make(map[string]sniClaim),
	}
	for _, svc := range s.Services {
		if svc != nil {
			t.services[nsName{svc.Namespace, svc.Name}] = svc
		}
	}
	for _, es := range s.EndpointSlices {
		if es == nil {
			continue
		}
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			key := nsName{es.Namespace, svc}
			t.endpoints[key] = append(t.endpoints[key], es)
		}
	}
	for _, sec := range s.Secrets {
		if sec != nil {
			t.secrets[nsName{sec.Namespace, sec.Name}] = sec
		}
	}
	return t
}

// ingressesOldestFirst orders Ingresses so that the oldest wins every
// conflict: by creation time, then namespace/name as a stable tie-break.
func ingressesOldestFirst(in []*networkingv1.Ingress) []*networkingv1.Ingress {
	out := make([]*networkingv1.Ingress, 0, len(in))
	for _, ing := range in {
		if ing != nil {
			out = append(out, ing)
		}
	}
	slices.SortFunc(out, func(a, b *networkingv1.Ingress) int {
		return cmp.Or(a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID))
	})
	return out
}

func ingressRef(ing *networkingv1.Ingress) ObjectRef {
	return ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name, UID: ing.UID}
}

func serviceRef(svc *corev1.Service) ObjectRef {
	return ObjectRef{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID}
}

func (t *translator) report(ref ObjectRef, field, reason, format string, args ...any) {
	t.errs = append(t.errs, ObjectError{Object: ref, Field: field, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (t *translator) translateIngress(ing *networkingv1.Ingress) {
	ref := ingressRef(ing)
	tags := t.tagsFor(ref)
	rs, errs := parseRouteSettings(ref, ing.Annotations)
	t.errs = append(t.errs, errs...)
	routes := 0
	addRoute := func(target resolvedBackend, r *kong.Route) {
		b := t.backendFor(target)
		b.service.Routes = append(b.service.Routes, r)
		routes++
	}

	for i, rule := range ing.Spec.Rules {
		if rule.Host != "" {
			if err := validateHost(rule.Host); err != nil {
				t.report(ref, fmt.Sprintf("spec.rules[%d].host", i), ReasonInvalidHost, "%v; rule skipped", err)
				continue
			}
		}
		if rule.HTTP == nil {
			continue
		}
		for j, p := range rule.HTTP.Paths {
			field := pathField{rule: i, path: j}
			paths, err := kongPaths(p.Path, p.PathType)
			if err != nil {
				t.report(ref, field.String()+".path", ReasonInvalidPath, "%v; path skipped", err)
				continue
			}
			target, ok := t.resolveBackend(ref, ing.Namespace, p.Backend, field)
			if !ok {
				continue
			}
			pathType := string(networkingv1.PathTypeImplementationSpecific)
			if p.PathType != nil {
				pathType = string(*p.PathType)
			}
			if !t.claim(ref, field, claim{rule.Host, pathType, conflictPath(p.Path, p.PathType)}, kongPathsKey(rule.Host, paths)) {
				continue
			}
			var hosts []string
			if rule.Host != "" {
				hosts = append(hosts, rule.Host)
				for _, alias := range rs.hostAliases {
					if alias != rule.Host {
						hosts = append(hosts, alias)
					}
				}
			}
			name := ing.Namespace + "." + ing.Name + "." + strconv.Itoa(i) + "." + strconv.Itoa(j)
			addRoute(target, t.route(tags, name, hosts, paths, rs))
		}
	}

	if db := ing.Spec.DefaultBackend; db != nil {
		field := pathField{fixed: "spec.defaultBackend"}
		if target, ok := t.resolveBackend(ref, ing.Namespace, *db, field); ok &&
			t.claim(ref, field, claim{pathType: defaultBackendClaim}, kongPathsKey("", []string{"/"})) {
			// A path-only route on / loses to every other route in Kong's
			// precedence (fewest fields set, shortest plain prefix).
			name := ing.Namespace + "." + ing.Name + ".default"
			addRoute(target, t.route(tags, name, nil, []string{"/"}, rs))
		}
	}

	if routes > 0 {
		t.routed = append(t.routed, ref)
	}
	for i, entry := range ing.Spec.TLS {
		t.translateTLS(ref, tags, ing.Namespace, fmt.Sprintf("spec.tls[%d]", i), entry)
	}
}

// claim takes all keys for ref, or none of them when an older Ingress (or
// an earlier rule of the same one) already owns one; the conflict is
// reported on ref.
func (t *translator) claim(ref ObjectRef, at pathField, keys ...claim) bool {
	for _, key := range keys {
		owner, taken := t.claims[key]
		if !taken {
			continue
		}
		var what string
		switch key.pathType {
		case defaultBackendClaim:
			what = "the default backend"
		case kongPathsClaim:
			what = fmt.Sprintf("host %q with Kong paths [%s]", key.host, key.path)
		default:
			what = fmt.Sprintf("host %q, %s path %q", key.host, key.pathType, key.path)
		}
		field := at.String()
		if owner == ref {
			t.report(ref, field, ReasonConflictingRule, "%s is already served by an earlier rule of this Ingress; skipped", what)
		} else {
			t.report(ref, field, ReasonConflictingRule, "%s is already served by %s, which is older; skipped", what, owner)
		}
		return false
	}
	for _, key := range keys {
		t.claims[key] = ref
	}
	return true
}

// Pseudo path types for claims that are not an Ingress path: the default
// backend, and the Kong paths a rule turns into (Prefix / and
// ImplementationSpecific / are different Ingress paths but the same Kong
// route, which Kong would pick between arbitrarily).
const (
	defaultBackendClaim = "DefaultBackend"
	kongPathsClaim      = "KongPaths"
)

func kongPathsKey(host string, paths []string) claim {
	return claim{host: host, pathType: kongPathsClaim, path: strings.Join(paths, " ")}
}

// pathField locates an Ingress path (or the default backend) for error
// reports. It is formatted only when there is an error to report, which
// keeps the common case free of string building.
type pathField struct {
	rule, path int
	fixed      string // used instead of rule and path when set
}

// backend locates the backend of the path.
func (f pathField) backend() string {
	if f.fixed != "" {
		return f.fixed
	}
	return f.String() + ".backend"
}

func (f pathField) String() string {
	if f.fixed != "" {
		return f.fixed
	}
	return fmt.Sprintf("spec.rules[%d].http.paths[%d]", f.rule, f.path)
}

// resolvedBackend is a Service port an Ingress path points to, checked to
// exist but not yet turned into Kong entities.
type resolvedBackend struct {
	svc  *corev1.Service
	port corev1.ServicePort // Port is always set; Name may be empty
}

func (t *translator) resolveBackend(ref ObjectRef, namespace string, b networkingv1.IngressBackend, at pathField) (resolvedBackend, bool) {
	field := func(suffix string) string { return at.backend() + suffix }
	if b.Resource != nil {
		t.report(ref, field(".resource"), ReasonInvalidBackend, "resource backends are not supported; skipped")
		return resolvedBackend{}, false
	}
	if b.Service == nil || b.Service.Name == "" {
		t.report(ref, field(".service.name"), ReasonInvalidBackend, "a backend Service name is required; skipped")
		return resolvedBackend{}, false
	}
	svc := t.services[nsName{namespace, b.Service.Name}]
	if svc == nil {
		t.report(ref, field(".service.name"), ReasonServiceNotFound, "Service %s/%s not found; skipped", namespace, b.Service.Name)
		return resolvedBackend{}, false
	}
	want := b.Service.Port
	if want.Name == "" && want.Number == 0 {
		t.report(ref, field(".service.port"), ReasonInvalidBackend, "a Service port name or number is required; skipped")
		return resolvedBackend{}, false
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		if strings.HasPrefix(svc.Spec.ExternalName, "*") {
			t.report(ref, field(".service.name"), ReasonInvalidBackend, "ExternalName Service %s/%s: spec.externalName %q is a wildcard; skipped", namespace, svc.Name, svc.Spec.ExternalName)
			return resolvedBackend{}, false
		}
		if err := validateHost(svc.Spec.ExternalName); err != nil {
			t.report(ref, field(".service.name"), ReasonInvalidBackend, "ExternalName Service %s/%s: spec.externalName: %v; skipped", namespace, svc.Name, err)
			return resolvedBackend{}, false
		}
	}
	for _, sp := range svc.Spec.Ports {
		if (want.Name != "" && sp.Name == want.Name) || (want.Name == "" && sp.Port == want.Number) {
			return resolvedBackend{svc: svc, port: sp}, true
		}
	}
	// An ExternalName Service needs no declared ports: the number is used as is.
	if svc.Spec.Type == corev1.ServiceTypeExternalName && want.Name == "" && want.Number > 0 && want.Number <= 65535 {
		return resolvedBackend{svc: svc, port: corev1.ServicePort{Port: want.Number}}, true
	}
	port := want.Name
	if port == "" {
		port = strconv.Itoa(int(want.Number))
	}
	t.report(ref, field(".service.port"), ReasonServicePortNotFound, "Service %s/%s has no port %s; skipped", namespace, b.Service.Name, port)
	return resolvedBackend{}, false
}

// backendFor returns the Kong service (and upstream) for a Service port,
// creating them on first use. They carry the Service's tags, as they are
// shared by every Ingress that points at the port.
func (t *translator) backendFor(rb resolvedBackend) *backend {
	key := backendKey{rb.svc.Namespace, rb.svc.Name, rb.port.Port}
	if b, ok := t.backends[key]; ok {
		return b
	}
	tags := t.tagsFor(serviceRef(rb.svc))
	name := fmt.Sprintf("%s.%s.%d", rb.svc.Namespace, rb.svc.Name, rb.port.Port)
	settings := t.serviceSettings(rb.svc)
	b := &backend{}
	if rb.svc.Spec.Type == corev1.ServiceTypeExternalName {
		b.service = t.service(tags, name, rb.svc.Spec.ExternalName, int(rb.port.Port), settings)
	} else {
		upstream := fmt.Sprintf("%s.%s.%d.svc", rb.svc.Name, rb.svc.Namespace, rb.port.Port)
		b.service = t.service(tags, name, upstream, int(rb.port.Port), settings)
		b.upstream = &declarative.Upstream{Upstream: kong.Upstream{
			ID:   kong.String(t.entityID("upstreams", upstream)),
			Name: kong.String(upstream),
			Tags: tags,
		}}
		b.upstream.Targets = t.targets(tags, upstream, rb)
	}
	t.backends[key] = b
	return b
}

func (t *translator) serviceSettings(svc *corev1.Service) serviceSettings {
	key := nsName{svc.Namespace, svc.Name}
	if ss, ok := t.settings[key]; ok {
		return ss
	}
	ss, errs := parseServiceSettings(serviceRef(svc), svc.Annotations)
	t.errs = append(t.errs, errs...)
	t.settings[key] = ss
	return ss
}

func (t *translator) result() Result {
	cfg := declarative.New()
	for _, b := range t.backends {
		slices.SortFunc(b.service.Routes, func(x, y *kong.Route) int { return cmp.Compare(*x.Name, *y.Name) })
		cfg.Services = append(cfg.Services, b.service)
		if b.upstream != nil {
			cfg.Upstreams = append(cfg.Upstreams, b.upstream)
		}
	}
	slices.SortFunc(cfg.Services, func(x, y *declarative.Service) int { return cmp.Compare(*x.Name, *y.Name) })
	slices.SortFunc(cfg.Upstreams, func(x, y *declarative.Upstream) int { return cmp.Compare(*x.Name, *y.Name) })
	cfg.Certificates = t.certificates()

	body, err := cfg.Marshal()
	if err != nil {
		// Only plain strings, ints and bools are marshalled; failure here is
		// a programming error, not bad input.
		panic(fmt.Sprintf("translate: marshal declarative config: %v", err))
	}
	sum := sha256.Sum256(body)

	translated := t.routed
	slices.SortFunc(translated, compareRefs)
	return Result{
		Config:     cfg,
		Body:       body,
		Hash:       hex.EncodeToString(sum[:]),
		Errors:     sortedErrors(t.errs),
		Translated: translated,
	}
}
