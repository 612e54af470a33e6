package translate

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// AnnotationPrefix starts every annotation konductor reads.
const AnnotationPrefix = "konghq.com/"

// Ingress annotations.
const (
	AnnotationStripPath         = AnnotationPrefix + "strip-path"
	AnnotationPreserveHost      = AnnotationPrefix + "preserve-host"
	AnnotationProtocols         = AnnotationPrefix + "protocols"
	AnnotationMethods           = AnnotationPrefix + "methods"
	AnnotationHTTPSRedirectCode = AnnotationPrefix + "https-redirect-status-code"
	AnnotationPathHandling      = AnnotationPrefix + "path-handling"
	AnnotationRegexPriority     = AnnotationPrefix + "regex-priority"
	AnnotationRegexPrefix       = AnnotationPrefix + "regex-prefix"
	AnnotationHostAliases       = AnnotationPrefix + "host-aliases"
	AnnotationRequestBuffering  = AnnotationPrefix + "request-buffering"
	AnnotationResponseBuffering = AnnotationPrefix + "response-buffering"
	AnnotationSNIs              = AnnotationPrefix + "snis"
	// AnnotationHeadersPrefix starts konghq.com/headers.<name>: the route
	// matches requests whose header <name> has one of the listed values.
	AnnotationHeadersPrefix = AnnotationPrefix + "headers."
	// AnnotationTags adds tags to the entities of an Ingress or a Service.
	AnnotationTags = AnnotationPrefix + "tags"
)

// unsupportedAnnotations are the Kong Ingress Controller's annotations
// konductor deliberately does not implement, with the reason reported.
var unsupportedAnnotations = map[string]string{
	AnnotationPrefix + "override":                   "was removed from the Kong Ingress Controller in 3.0",
	AnnotationPrefix + "rewrite":                    "URI rewriting is not supported; use a request-transformer KongPlugin",
	AnnotationPrefix + "client-cert":                "upstream client certificates are not supported",
	AnnotationPrefix + "ca-certificates-secrets":    "upstream CA certificates are not supported",
	AnnotationPrefix + "ca-certificates-configmaps": "upstream CA certificates are not supported",
	AnnotationPrefix + "ca-certificates":            "upstream CA certificates are not supported",
	AnnotationPrefix + "upstream-policy":            "KongUpstreamPolicy is not supported",
}

// reportUnsupported warns about each deliberately unsupported annotation.
func (a *annotationErrors) reportUnsupported(annotations map[string]string) {
	for key := range annotations {
		if why, ok := unsupportedAnnotations[key]; ok {
			a.errs = append(a.errs, ObjectError{Object: a.ref, Field: "metadata.annotations[" + key + "]",
				Reason: ReasonUnsupportedFeature, Message: why + "; ignored"})
		}
	}
}

// tagsAnnotation reads konghq.com/tags: comma-separated tags, each printable
// without spaces (Kong's rule), added to the object's entities.
func (a *annotationErrors) tagsAnnotation(annotations map[string]string) []string {
	v, ok := annotations[AnnotationTags]
	if !ok {
		return nil
	}
	var tags []string
	for _, tag := range list(v, func(s string) string { return s }) {
		if strings.IndexFunc(tag, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) >= 0 {
			a.add(AnnotationTags, "tag %q contains a space, a control character or a slash; tag ignored", tag)
			continue
		}
		tags = append(tags, tag)
	}
	return tags
}

// Service annotations.
const (
	AnnotationProtocol       = AnnotationPrefix + "protocol"
	AnnotationPath           = AnnotationPrefix + "path"
	AnnotationConnectTimeout = AnnotationPrefix + "connect-timeout"
	AnnotationReadTimeout    = AnnotationPrefix + "read-timeout"
	AnnotationWriteTimeout   = AnnotationPrefix + "write-timeout"
	AnnotationRetries        = AnnotationPrefix + "retries"
)

// routeSettings are the per-Ingress route fields. The defaults follow
// Ingress semantics rather than Kong's: the request path reaches the backend
// unchanged (strip_path false) and so does the Host header (preserve_host
// true).
type routeSettings struct {
	stripPath, preserveHost             bool
	requestBuffering, responseBuffering bool
	protocols, methods, hostAliases     []string
	httpsRedirectCode, regexPriority    int
	pathHandling                        string
	regexPrefix                         string // marks ImplementationSpecific regex paths
	plugins                             []*pluginEntry
	snis                                []string
	headers                             map[string][]string
	tags                                []string // of konghq.com/tags
}

// defaultProtocols is shared by the settings of every Ingress without a
// protocols annotation; it is never modified (entities get copies).
var defaultProtocols = []string{"http", "https"}

func defaultRouteSettings() routeSettings {
	return routeSettings{
		preserveHost: true, requestBuffering: true, responseBuffering: true,
		protocols: defaultProtocols, httpsRedirectCode: 426, pathHandling: "v0",
		regexPrefix: DefaultRegexPrefix,
	}
}

// annotationErrors collects problems with one object's annotations.
type annotationErrors struct {
	ref  ObjectRef
	errs []ObjectError
}

func (a *annotationErrors) add(key, format string, args ...any) {
	a.errs = append(a.errs, ObjectError{
		Object: a.ref, Field: "metadata.annotations[" + key + "]",
		Reason: ReasonInvalidAnnotation, Message: fmt.Sprintf(format, args...),
	})
}

func (a *annotationErrors) bool(annotations map[string]string, key string, into *bool) {
	v, ok := annotations[key]
	if !ok {
		return
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		*into = true
	case "false":
		*into = false
	default:
		a.add(key, "%q is not a boolean (want true or false); using %t", v, *into)
	}
}

func (a *annotationErrors) int(annotations map[string]string, key string, lo, hi int, into *int) {
	v, ok := annotations[key]
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		a.add(key, "%q is not an integer in [%d, %d]; using %d", v, lo, hi, *into)
		return
	}
	*into = n
}

// list splits a comma-separated annotation, trimming blanks, dropping empty
// items and duplicates, and sorting for a stable output.
func list(v string, normalize func(string) string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = normalize(strings.TrimSpace(item)); item != "" {
			out = append(out, item)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var httpMethod = regexp.MustCompile(`^[A-Z]+$`)

// protocolFamilies are the route protocol sets Kong allows together (it
// rejects mixing across them); WebSocket routes need Kong Enterprise.
var protocolFamilies = [][]string{{"http", "https"}, {"grpc", "grpcs"}}

func parseRouteSettings(ref ObjectRef, annotations map[string]string) (routeSettings, []ObjectError) {
	rs := defaultRouteSettings()
	a := &annotationErrors{ref: ref}
	a.bool(annotations, AnnotationStripPath, &rs.stripPath)
	a.bool(annotations, AnnotationPreserveHost, &rs.preserveHost)
	a.bool(annotations, AnnotationRequestBuffering, &rs.requestBuffering)
	a.bool(annotations, AnnotationResponseBuffering, &rs.responseBuffering)
	a.int(annotations, AnnotationRegexPriority, -(1 << 31), 1<<31-1, &rs.regexPriority)

	if v, ok := annotations[AnnotationProtocols]; ok {
		protocols := list(v, strings.ToLower)
		family := -1
		for i, f := range protocolFamilies {
			if len(protocols) > 0 && isSubset(protocols, f) {
				family = i
			}
		}
		if family < 0 {
			a.add(AnnotationProtocols, "%q is not a non-empty subset of one of %v; using %s",
				v, protocolFamilies, strings.Join(rs.protocols, ","))
		} else {
			rs.protocols = protocols
		}
	}
	if v, ok := annotations[AnnotationMethods]; ok {
		methods := list(v, strings.ToUpper)
		if i := slices.IndexFunc(methods, func(m string) bool { return !httpMethod.MatchString(m) }); i >= 0 {
			a.add(AnnotationMethods, "%q is not an HTTP method; matching all methods", methods[i])
		} else {
			rs.methods = methods
		}
	}
	if v, ok := annotations[AnnotationHTTPSRedirectCode]; ok {
		code, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || !slices.Contains([]int{301, 302, 307, 308, 426}, code) {
			a.add(AnnotationHTTPSRedirectCode, "%q is not one of 301, 302, 307, 308, 426; using %d", v, rs.httpsRedirectCode)
		} else {
			rs.httpsRedirectCode = code
		}
	}
	if v, ok := annotations[AnnotationPathHandling]; ok {
		if v = strings.TrimSpace(v); v == "v0" || v == "v1" {
			rs.pathHandling = v
		} else {
			a.add(AnnotationPathHandling, "%q is not v0 or v1; using %s", v, rs.pathHandling)
		}
	}
	if v, ok := annotations[AnnotationRegexPrefix]; ok {
		if v = strings.TrimSpace(v); v == "" {
			a.add(AnnotationRegexPrefix, "an empty regex prefix would make every path a regex; using %s", rs.regexPrefix)
		} else {
			rs.regexPrefix = v
		}
	}
	if v, ok := annotations[AnnotationHostAliases]; ok {
		for _, host := range list(v, strings.ToLower) {
			if err := validateHost(host); err != nil {
				a.add(AnnotationHostAliases, "%v; alias ignored", err)
				continue
			}
			rs.hostAliases = append(rs.hostAliases, host)
		}
	}

	if v, ok := annotations[AnnotationSNIs]; ok {
		for _, sni := range list(v, strings.ToLower) {
			if err := validateSNI(sni); err != nil {
				a.add(AnnotationSNIs, "%v; SNI ignored", err)
				continue
			}
			rs.snis = append(rs.snis, sni)
		}
		if len(rs.snis) > 0 && !slices.ContainsFunc(rs.protocols, func(p string) bool { return p == "https" || p == "grpcs" }) {
			a.add(AnnotationSNIs, "SNIs need the https or grpcs protocol (konghq.com/protocols is %s); SNIs ignored", strings.Join(rs.protocols, ","))
			rs.snis = nil
		}
	}
	for key, v := range annotations {
		name, ok := strings.CutPrefix(key, AnnotationHeadersPrefix)
		if !ok {
			continue
		}
		name = strings.ToLower(name)
		switch {
		case name == "" || strings.IndexFunc(name, func(r rune) bool { return !isTokenChar(r) }) >= 0:
			a.add(key, "%q is not an HTTP header name; header match ignored", name)
			continue
		case name == "host":
			a.add(key, "the Host header is matched by the rule's host and konghq.com/host-aliases; header match ignored")
			continue
		}
		values := list(v, func(s string) string { return s })
		if len(values) == 0 {
			a.add(key, "no header values; header match ignored")
			continue
		}
		if rs.headers == nil {
			rs.headers = map[string][]string{}
		}
		rs.headers[name] = values
	}
	rs.tags = a.tagsAnnotation(annotations)
	a.reportUnsupported(annotations)

	// Kong rejects gRPC routes that strip the path or match on methods.
	if isSubset(rs.protocols, protocolFamilies[1]) {
		if rs.stripPath {
			a.add(AnnotationStripPath, "gRPC routes cannot strip the path; using false")
			rs.stripPath = false
		}
		if rs.methods != nil {
			a.add(AnnotationMethods, "gRPC routes cannot match on methods; matching all methods")
			rs.methods = nil
		}
	}
	return rs, a.errs
}

// isTokenChar tells the characters of an HTTP token (RFC 9110), which
// header names are.
func isTokenChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func isSubset(items, of []string) bool {
	for _, item := range items {
		if !slices.Contains(of, item) {
			return false
		}
	}
	return true
}

// serviceSettings are the Kong service fields a Kubernetes Service's
// annotations control. Unset values are Kong's defaults, written out so the
// document reads the same as what Kong stores.
type serviceSettings struct {
	protocol                                  string
	path                                      string
	connectTimeout, readTimeout, writeTimeout int
	retries                                   int
	hostHeader                                string // the upstream's host_header
	tlsVerify                                 *bool
	tlsVerifyDepth                            *int
	tags                                      []string // of konghq.com/tags
}

// More Service annotations.
const (
	AnnotationHostHeader     = AnnotationPrefix + "host-header"
	AnnotationTLSVerify      = AnnotationPrefix + "tls-verify"
	AnnotationTLSVerifyDepth = AnnotationPrefix + "tls-verify-depth"
)

const maxTimeoutMillis = 1<<31 - 2 // Kong's upper bound for timeouts

func parseServiceSettings(ref ObjectRef, annotations map[string]string) (serviceSettings, []ObjectError) {
	ss := serviceSettings{protocol: "http", connectTimeout: 60000, readTimeout: 60000, writeTimeout: 60000, retries: 5}
	a := &annotationErrors{ref: ref}
	a.int(annotations, AnnotationConnectTimeout, 1, maxTimeoutMillis, &ss.connectTimeout)
	a.int(annotations, AnnotationReadTimeout, 1, maxTimeoutMillis, &ss.readTimeout)
	a.int(annotations, AnnotationWriteTimeout, 1, maxTimeoutMillis, &ss.writeTimeout)
	a.int(annotations, AnnotationRetries, 0, 32767, &ss.retries)
	if v, ok := annotations[AnnotationProtocol]; ok {
		switch p := strings.ToLower(strings.TrimSpace(v)); p {
		case "http", "https", "grpc", "grpcs":
			ss.protocol = p
		default:
			a.add(AnnotationProtocol, "%q is not one of http, https, grpc, grpcs; using %s", v, ss.protocol)
		}
	}
	if v, ok := annotations[AnnotationHostHeader]; ok {
		if err := validateHost(strings.TrimSpace(v)); err != nil || strings.HasPrefix(strings.TrimSpace(v), "*") {
			a.add(AnnotationHostHeader, "%q is not a host name; ignored", v)
		} else {
			ss.hostHeader = strings.TrimSpace(v)
		}
	}
	if v, ok := annotations[AnnotationTLSVerify]; ok {
		if verify, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			a.add(AnnotationTLSVerify, "%q is not a boolean (want true or false); Kong's default applies", v)
		} else {
			ss.tlsVerify = &verify
		}
	}
	if v, ok := annotations[AnnotationTLSVerifyDepth]; ok {
		if depth, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || depth < 0 || depth > 64 {
			a.add(AnnotationTLSVerifyDepth, "%q is not an integer in [0, 64]; Kong's default applies", v)
		} else {
			ss.tlsVerifyDepth = &depth
		}
	}
	ss.tags = a.tagsAnnotation(annotations)
	a.reportUnsupported(annotations)
	if v, ok := annotations[AnnotationPath]; ok {
		switch err := validatePlainPath(v); {
		case err != nil:
			a.add(AnnotationPath, "%v; path ignored", err)
		case ss.protocol != "http" && ss.protocol != "https":
			a.add(AnnotationPath, "a %s service cannot have a path; path ignored", ss.protocol)
		default:
			ss.path = v
		}
	}
	return ss, a.errs
}
