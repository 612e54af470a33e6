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
	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/controller/translate/declarative"
)

// Translate converts a snapshot into a Kong declarative configuration. It
// never fails as a whole: problems are reported per object in Result.Errors.
func Translate(s Snapshot, o Options) Result { return translate(s, o, useParallel) }

// translate is Translate with the choice of working on one goroutine or
// two made by parallel, given the number of entities a step makes.
func translate(s Snapshot, o Options, parallel func(entities int) bool) Result {
	t := newTranslator(s, o, parallel)
	// Consumers depend on nothing an Ingress decides, so they are decided
	// and built beside the Ingresses, by a translator of their own.
	ct := t.consumerTranslator()
	runBoth(parallel(len(s.Consumers)), func() {
		for i, ing := range t.ingresses {
			t.translateIngress(int32(i), ing)
		}
		slices.SortFunc(t.routed, compareRefs)
	}, func() {
		ct.translateConsumers(s.Consumers)
		ct.buildConsumers(&ct.builder)
	})
	t.adoptConsumers(ct)
	t.globalPlugins()
	t.parallel = parallel(len(t.routes) + len(t.backends))
	return t.result()
}

type nsName struct{ namespace, name string }

// serviceEntry gathers what the translation needs of one Service, found
// with one map lookup however many Ingress paths point at it.
type serviceEntry struct {
	svc        *Service
	slices     []*EndpointSlice
	sliceCount int // while slices are gathered
	tags       []*string
	settings   serviceSettings
	plugins    []*pluginEntry // of the konghq.com/plugins annotation
	parsed     bool           // settings, tags and plugins are set
	backends   []*backend     // the ports in use
}

// backend is one Kong service (a Kubernetes Service port) and its upstream.
type backend struct {
	port     ServicePort
	entry    *serviceEntry
	service  *declarative.Service
	upstream *declarative.Upstream // nil for ExternalName services
	nRoutes  int
}

// routeOf is a route decided on, with what is needed to build it; routes
// are grouped under their services at the end, in one allocation.
type routeOf struct {
	backend    *backend
	route      *kong.Route // set by build
	ing        *networkingv1.Ingress
	tags       []*string
	hosts      []string
	paths      []string
	settings   *routeSettings
	priority   int
	rule, path int // -1 for the default backend
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
	ingresses []*networkingv1.Ingress // oldest first
	services  map[nsName]*serviceEntry
	secrets   map[nsName]*corev1.Secret
	errs      []ObjectError
	claims    map[claim]int32 // owner: an index in ingresses
	backends  []*backend
	routes    []routeOf
	paths     map[pathKey]kongPathsEntry
	nsTags    map[string]string
	certs     map[nsName]*certificate
	snis      map[string]sniClaim
	routed    []ObjectRef             // Ingresses with at least one route, oldest first
	plugins   map[nsName]*pluginEntry // namespace "" for KongClusterPlugins
	globals   []*pluginEntry          // global KongClusterPlugins applied

	consumers        []*declarative.Consumer // oldest first; made by buildConsumers
	consumerJobs     []consumerJob           // decided, oldest first
	credentialJobs   slab[credentialJob]
	consumerPlugins  []consumerPlugin
	consumerBlocks   slab[consumerBlock]
	pluginLists      slab[*pluginEntry]
	credentialBlocks slab[credentialBlock]
	credentialLists  slab[*declarative.Credential]
	backendLists     slab[*backend]

	hosts    slab[string]        // the hosts of each rule
	settings slab[routeSettings] // the route settings of each Ingress
	parallel bool                // build entities on two goroutines

	// builder makes the entities; a second one joins it for large
	// snapshots (see build).
	builder
}

// newTranslator indexes the snapshot. For a large one the indexes are made
// on two goroutines: the Ingresses, Services and their slices on one, the
// plugins and Secrets on the other.
func newTranslator(s Snapshot, o Options, parallel func(entities int) bool) *translator {
	t := &translator{
		opts:   o,
		paths:  make(map[pathKey]kongPathsEntry),
		nsTags: make(map[string]string),
		certs:  make(map[nsName]*certificate),
		snis:   make(map[string]sniClaim),
	}
	t.builder.expressions = o.RouterFlavor == RouterFlavorExpressions
	runBoth(parallel(len(s.Ingresses)+len(s.Services)+len(s.Plugins)+len(s.Secrets)), func() {
		t.ingresses = ingressesOldestFirst(s.Ingresses)
		t.claims = make(map[claim]int32, 2*len(s.Ingresses))
		t.routes = make([]routeOf, 0, len(s.Ingresses))
		t.backends = make([]*backend, 0, len(s.Services))
		t.routed = make([]ObjectRef, 0, len(s.Ingresses))
		t.indexServices(s.Services, s.EndpointSlices)
	}, func() {
		t.plugins = make(map[nsName]*pluginEntry, len(s.Plugins))
		pluginEntries := make([]pluginEntry, len(s.Plugins))
		for i, p := range s.Plugins {
			if p != nil {
				pluginEntries[i].p = p
				t.plugins[nsName{p.Namespace, p.Name}] = &pluginEntries[i]
			}
		}
		t.secrets = make(map[nsName]*corev1.Secret, len(s.Secrets))
		for _, sec := range s.Secrets {
			if sec != nil {
				t.secrets[nsName{sec.Namespace, sec.Name}] = sec
			}
		}
	})
	return t
}

// indexServices maps the Services by namespace/name, each with its
// EndpointSlices.
func (t *translator) indexServices(services []*Service, endpointSlices []*EndpointSlice) {
	t.services = make(map[nsName]*serviceEntry, len(services))
	entries := make([]serviceEntry, len(services))
	for i, svc := range services {
		if svc != nil {
			entries[i].svc = svc
			t.services[nsName{svc.Namespace, svc.Name}] = &entries[i]
		}
	}
	// Slices are kept in snapshot order; all of them share one allocation.
	owners := make([]*serviceEntry, len(endpointSlices))
	total := 0
	for i, es := range endpointSlices {
		if es == nil {
			continue
		}
		if es.Service != "" {
			if e := t.services[nsName{es.Namespace, es.Service}]; e != nil {
				owners[i] = e
				e.sliceCount++
				total++
			}
		}
	}
	all := make([]*EndpointSlice, total)
	for i, e := range owners {
		if e != nil {
			if e.slices == nil {
				e.slices, all = all[:0:e.sliceCount], all[e.sliceCount:]
			}
			e.slices = append(e.slices, endpointSlices[i])
		}
	}
}

// ingressesOldestFirst orders Ingresses so that the oldest wins every
// conflict: by creation time, then namespace/name (and uid) as a stable
// tie-break.
func ingressesOldestFirst(in []*networkingv1.Ingress) []*networkingv1.Ingress {
	keys := make([]aged[*networkingv1.Ingress], 0, len(in))
	for _, ing := range in {
		if ing != nil {
			keys = append(keys, aged[*networkingv1.Ingress]{ing.CreationTimestamp.Time, ing.Namespace, ing.Name, string(ing.UID), ing})
		}
	}
	return oldestFirst(keys)
}

func ingressRef(ing *networkingv1.Ingress) ObjectRef {
	return ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name, UID: ing.UID}
}

func serviceRef(svc *Service) ObjectRef {
	return ObjectRef{Kind: "Service", Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID}
}

func (t *translator) report(ref ObjectRef, field, reason, format string, args ...any) {
	t.errs = append(t.errs, ObjectError{Object: ref, Field: field, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// defaultBackendPaths are the Kong paths of a default backend: a path-only
// route on / loses to every other route in Kong's precedence (fewest fields
// set, shortest plain prefix).
var defaultBackendPaths = kongPathsEntry{paths: []string{"/"}, key: "/"}

func (t *translator) translateIngress(idx int32, ing *networkingv1.Ingress) {
	ref := ingressRef(ing)
	rs, errs := parseRouteSettings(ref, ing.Annotations)
	tags := t.tagsFor(ref, rs.tags...)
	t.errs = append(t.errs, errs...)
	if t.builder.expressions && len(rs.headers) > 0 {
		t.checkExpressionHeaders(ref, &rs)
	}
	rs.plugins = t.pluginsOf(ref, ing.Annotations)
	settings := t.settings.one()
	*settings = rs
	routes := 0
	addRoute := func(target resolvedBackend, hosts []string, kp kongPathsEntry, priority, rule, path int) {
		b := t.backendFor(target)
		b.nRoutes++
		for _, e := range rs.plugins {
			e.attached++
		}
		t.routes = append(t.routes, routeOf{backend: b, ing: ing, tags: tags, hosts: hosts, paths: kp.paths,
			settings: settings, priority: priority, rule: rule, path: path})
		routes++
	}

	warnedWildcard := false
	for i, rule := range ing.Spec.Rules {
		if rule.Host != "" {
			if err := validateHost(rule.Host); err != nil {
				t.report(ref, fmt.Sprintf("spec.rules[%d].host", i), ReasonInvalidHost, "%v; rule skipped", err)
				continue
			}
			if !warnedWildcard && !t.builder.expressions && strings.HasPrefix(rule.Host, "*.") {
				// The Ingress API matches exactly one label in place of
				// the "*"; Kong's traditional routes match any number of
				// labels and cannot be told otherwise (the schema refuses
				// a header match on Host); expression routes can (see
				// expression.go). Said once per Ingress.
				warnedWildcard = true
				t.report(ref, fmt.Sprintf("spec.rules[%d].host", i), ReasonWildcardHostDepth,
					"Kong matches wildcard host %q at any depth (for example a.b%s), not only one label as the Ingress API specifies; the rule still applies",
					rule.Host, rule.Host[1:])
			}
		}
		if rule.HTTP == nil {
			continue
		}
		var hosts []string // made for the first path that gets a route
		for j, p := range rule.HTTP.Paths {
			field := pathField{rule: i, path: j}
			kp := t.kongPathsOf(p.Path, p.PathType, rs.regexPrefix)
			if kp.err != nil {
				t.report(ref, field.String()+".path", ReasonInvalidPath, "%v; path skipped", kp.err)
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
			if !t.claim(idx, ref, field, claim{rule.Host, pathType, conflictPath(p.Path, p.PathType)},
				claim{rule.Host, kongPathsClaim, kp.key}) {
				continue
			}
			if hosts == nil && rule.Host != "" {
				hosts = t.ruleHosts(rule.Host, rs.hostAliases)
			}
			addRoute(target, hosts, kp, regexPriority(rs.regexPriority, p.PathType), i, j)
		}
	}

	if db := ing.Spec.DefaultBackend; db != nil {
		field := pathField{fixed: "spec.defaultBackend"}
		if target, ok := t.resolveBackend(ref, ing.Namespace, *db, field); ok &&
			t.claim(idx, ref, field, claim{pathType: defaultBackendClaim}, claim{"", kongPathsClaim, defaultBackendPaths.key}) {
			addRoute(target, nil, defaultBackendPaths, regexPriority(rs.regexPriority, nil), -1, -1)
		}
	}

	if routes > 0 {
		t.routed = append(t.routed, ref)
	}
	for i, entry := range ing.Spec.TLS {
		t.translateTLS(ref, tags, ing.Namespace, i, entry)
	}
}

// ruleHosts lists a rule's host and then its aliases.
func (t *translator) ruleHosts(host string, aliases []string) []string {
	n := 1
	for _, alias := range aliases {
		if alias != host {
			n++
		}
	}
	hosts := t.hosts.take(n)[:1]
	hosts[0] = host
	for _, alias := range aliases {
		if alias != host {
			hosts = append(hosts, alias)
		}
	}
	return hosts
}

// regexPriority is the route's regex_priority: twice the annotated value,
// plus one for an Exact path. Kong orders regex paths by regex_priority
// alone, so without the extra one the regex of Exact /foo and that of Prefix
// /foo (both ~/foo$) would tie and Kong would pick either. Doubling keeps
// the annotation's order intact: a route annotated higher still wins over an
// Exact route annotated lower.
func regexPriority(annotated int, pathType *networkingv1.PathType) int {
	if pathType != nil && *pathType == networkingv1.PathTypeExact {
		return 2*annotated + 1
	}
	return 2 * annotated
}

// claim takes all keys for ref, or none of them when an older Ingress (or
// an earlier rule of the same one) already owns one; the conflict is
// reported on ref.
func (t *translator) claim(idx int32, ref ObjectRef, at pathField, keys ...claim) bool {
	for _, key := range keys {
		ownerIdx, taken := t.claims[key]
		if !taken {
			continue
		}
		owner := ingressRef(t.ingresses[ownerIdx])
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
		t.claims[key] = idx
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
	entry *serviceEntry
	port  ServicePort // Port is always set; Name may be empty
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
	entry := t.services[nsName{namespace, b.Service.Name}]
	if entry == nil {
		t.report(ref, field(".service.name"), ReasonServiceNotFound, "Service %s/%s not found; skipped", namespace, b.Service.Name)
		return resolvedBackend{}, false
	}
	svc := entry.svc
	want := b.Service.Port
	if want.Name == "" && want.Number == 0 {
		t.report(ref, field(".service.port"), ReasonInvalidBackend, "a Service port name or number is required; skipped")
		return resolvedBackend{}, false
	}
	if svc.Type == corev1.ServiceTypeExternalName {
		if strings.HasPrefix(svc.ExternalName, "*") {
			t.report(ref, field(".service.name"), ReasonInvalidBackend, "ExternalName Service %s/%s: spec.externalName %q is a wildcard; skipped", namespace, svc.Name, svc.ExternalName)
			return resolvedBackend{}, false
		}
		if err := validateHost(svc.ExternalName); err != nil {
			t.report(ref, field(".service.name"), ReasonInvalidBackend, "ExternalName Service %s/%s: spec.externalName: %v; skipped", namespace, svc.Name, err)
			return resolvedBackend{}, false
		}
	}
	for _, sp := range svc.Ports {
		if (want.Name != "" && sp.Name == want.Name) || (want.Name == "" && sp.Port == want.Number) {
			return resolvedBackend{entry: entry, port: sp}, true
		}
	}
	// An ExternalName Service needs no declared ports: the number is used as is.
	if svc.Type == corev1.ServiceTypeExternalName && want.Name == "" && want.Number > 0 && want.Number <= 65535 {
		return resolvedBackend{entry: entry, port: ServicePort{Port: want.Number}}, true
	}
	port := want.Name
	if port == "" {
		port = strconv.Itoa(int(want.Number))
	}
	t.report(ref, field(".service.port"), ReasonServicePortNotFound, "Service %s/%s has no port %s; skipped", namespace, b.Service.Name, port)
	return resolvedBackend{}, false
}

// backendFor returns the backend for a Service port, registering it on
// first use; its entities are made by build. They carry the Service's tags,
// as they are shared by every Ingress that points at the port.
func (t *translator) backendFor(rb resolvedBackend) *backend {
	e := rb.entry
	for _, b := range e.backends {
		if b.port.Port == rb.port.Port {
			return b
		}
	}
	t.parseService(e)
	b := t.backendSlab.one()
	b.port, b.entry = rb.port, e
	for _, p := range e.plugins {
		p.attached++
	}
	if e.backends == nil {
		// A backend per port at most, but for an ExternalName Service's
		// undeclared port numbers.
		e.backends = t.backendLists.take(max(1, len(e.svc.Ports)))[:0]
	}
	e.backends = append(e.backends, b)
	t.backends = append(t.backends, b)
	return b
}

// parseService reads the Service's annotations and makes its tags, once.
func (t *translator) parseService(e *serviceEntry) {
	if e.parsed {
		return
	}
	ref := serviceRef(e.svc)
	ss, errs := parseServiceSettings(ref, e.svc.Annotations)
	t.errs = append(t.errs, errs...)
	e.settings, e.tags, e.parsed = ss, t.tagsFor(ref, ss.tags...), true
	e.plugins = t.pluginsOf(ref, e.svc.Annotations)
}

func (t *translator) result() Result {
	var translated []ObjectRef // nil when empty, as documented in the golden files
	if len(t.routed) > 0 {
		translated = t.routed
	}
	t.build()
	cfg := declarative.New()

	// Routes go under their services, sorted by name; all route lists share
	// one allocation.
	routes := make([]*kong.Route, len(t.routes))
	for _, b := range t.backends {
		b.service.Routes, routes = routes[:0:b.nRoutes], routes[b.nRoutes:]
	}
	for _, r := range t.routes {
		r.backend.service.Routes = append(r.backend.service.Routes, r.route)
	}
	t.inParallel(func() { cfg.Services = t.sortedServices() }, func() {
		cfg.Upstreams = t.sortedUpstreams()
		for _, e := range t.globals {
			t.builder.attachPlugin(e, "", "", "")
		}
		for _, cp := range t.consumerPlugins {
			t.builder.attachPlugin(cp.e, "consumer", cp.name, cp.id)
		}
		cfg.Plugins = sortedPlugins(t.builder.plugins)
	})
	cfg.Certificates = t.certificates()
	cfg.Consumers = t.consumers

	body, err := cfg.Marshal()
	if err != nil {
		// Only plain strings, ints and bools are marshalled; failure here is
		// a programming error, not bad input.
		panic(fmt.Sprintf("translate: marshal declarative config: %v", err))
	}
	sum := sha256.Sum256(body)
	return Result{
		Config:     cfg,
		Body:       body,
		Hash:       hex.EncodeToString(sum[:]),
		Errors:     sortedErrors(t.errs),
		Translated: translated,
	}
}

// named is a backend with the name it is sorted by. Sorting copies of the
// names, rather than following pointers to them, keeps the comparisons in
// cache.
type named struct {
	name string
	b    *backend
}

// compareNamed orders by name. Names are unique for valid Kubernetes names;
// the tie-break keeps the output deterministic for invalid ones with dots.
func compareNamed(x, y named) int {
	if c := strings.Compare(x.name, y.name); c != 0 {
		return c
	}
	if c := strings.Compare(x.b.entry.svc.Namespace, y.b.entry.svc.Namespace); c != 0 {
		return c
	}
	if c := strings.Compare(x.b.entry.svc.Name, y.b.entry.svc.Name); c != 0 {
		return c
	}
	return cmp.Compare(x.b.port.Port, y.b.port.Port)
}

// sortedServices lists the Kong services by name, each with its routes
// sorted by name; nil when there are none.
func (t *translator) sortedServices() []*declarative.Service {
	if len(t.backends) == 0 {
		return nil
	}
	byName := make([]named, len(t.backends))
	for i, b := range t.backends {
		byName[i] = named{*b.service.Name, b}
		if len(b.service.Routes) > 1 {
			slices.SortFunc(b.service.Routes, func(x, y *kong.Route) int { return strings.Compare(*x.Name, *y.Name) })
		}
	}
	slices.SortFunc(byName, compareNamed)
	services := make([]*declarative.Service, len(byName))
	for i, n := range byName {
		services[i] = n.b.service
	}
	return services
}

// sortedUpstreams lists the upstreams by name; nil when there are none.
func (t *translator) sortedUpstreams() []*declarative.Upstream {
	byName := make([]named, 0, len(t.backends))
	for _, b := range t.backends {
		if b.upstream != nil {
			byName = append(byName, named{*b.upstream.Name, b})
		}
	}
	if len(byName) == 0 {
		return nil
	}
	slices.SortFunc(byName, compareNamed)
	upstreams := make([]*declarative.Upstream, len(byName))
	for i, n := range byName {
		upstreams[i] = n.b.upstream
	}
	return upstreams
}
