package translate

import (
	"fmt"
	"net"
	"regexp"
	"regexp/syntax"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// kongPaths converts one Ingress path to Kong route paths.
//
// A plain Kong path is a raw string prefix (/foo also matches /foobar), so a
// Prefix path /foo becomes the regex ~/foo$ (the path itself) plus the plain
// prefix /foo/ (everything below it); Exact becomes the anchored regex alone.
// Regex metacharacters of Prefix and Exact paths are escaped because
// Kubernetes means them literally.
//
// ImplementationSpecific paths follow the Kong Ingress Controller: a path
// that starts with the regex prefix (/~ unless the konghq.com/regex-prefix
// annotation names another) is a Kong regex, the prefix being replaced by
// Kong's ~ (/~/foo/\d{3} becomes ~/foo/\d{3}); a path that starts with ~
// is already a Kong regex; any other path is a plain Kong prefix.
func kongPaths(path string, pathType *networkingv1.PathType, regexPrefix string) ([]string, error) {
	if path == "" {
		path = "/"
	}
	typ := networkingv1.PathTypeImplementationSpecific
	if pathType != nil {
		typ = *pathType
	}
	switch typ {
	case networkingv1.PathTypePrefix:
		if err := validatePlainPath(path); err != nil {
			return nil, err
		}
		base := strings.TrimRight(path, "/")
		if base == "" {
			return []string{"/"}, nil
		}
		return []string{"~" + regexp.QuoteMeta(base) + "$", base + "/"}, nil
	case networkingv1.PathTypeExact:
		if err := validatePlainPath(path); err != nil {
			return nil, err
		}
		return []string{"~" + regexp.QuoteMeta(path) + "$"}, nil
	case networkingv1.PathTypeImplementationSpecific:
		if regexPrefix != "" && strings.HasPrefix(path, regexPrefix) {
			re := path[len(regexPrefix):]
			if re == "" {
				re = "/" // the bare prefix matches every path
			}
			return []string{"~" + re}, validateRegexPath(re)
		}
		if strings.HasPrefix(path, "~") {
			return []string{path}, validateRegexPath(path[1:])
		}
		return []string{path}, validatePlainPath(path)
	default:
		return nil, fmt.Errorf("unsupported pathType %q (want Prefix, Exact or ImplementationSpecific)", typ)
	}
}

// DefaultRegexPrefix marks an ImplementationSpecific path as a regex, as
// in the Kong Ingress Controller; konghq.com/regex-prefix overrides it.
const DefaultRegexPrefix = "/~"

// pathKey is an Ingress path, its pathType (typeSet false for none) and the
// regex prefix in force.
type pathKey struct {
	path        string
	typ         networkingv1.PathType
	typeSet     bool
	regexPrefix string
}

// kongPathsEntry is the outcome of kongPaths for one pathKey. key joins the
// Kong paths, for claims.
type kongPathsEntry struct {
	paths []string
	key   string
	err   error
}

// kongPathsOf is kongPaths, worked out once per distinct path in a
// translation: many Ingresses use the same few paths (/, /api, ...). The
// entry's paths are shared; entities get copies.
func (t *translator) kongPathsOf(path string, pathType *networkingv1.PathType, regexPrefix string) kongPathsEntry {
	key := pathKey{path: path, regexPrefix: regexPrefix}
	if pathType != nil {
		key.typ, key.typeSet = *pathType, true
	}
	if e, ok := t.paths[key]; ok {
		return e
	}
	paths, err := kongPaths(path, pathType, regexPrefix)
	e := kongPathsEntry{paths: paths, key: strings.Join(paths, " "), err: err}
	t.paths[key] = e
	return e
}

// conflictPath is the path as it takes part in conflict detection: a Prefix
// path with or without its trailing slash means the same thing.
func conflictPath(path string, pathType *networkingv1.PathType) string {
	if path == "" {
		path = "/"
	}
	if pathType != nil && *pathType == networkingv1.PathTypePrefix {
		if base := strings.TrimRight(path, "/"); base != "" {
			return base
		}
		return "/"
	}
	return path
}

// validatePlainPath accepts what Kong accepts as a plain (prefix) path: an
// absolute path of RFC 3986 characters in the normal form Kong insists on
// (no empty, "." or ".." segments, percent-encoding only where needed and in
// upper case).
func validatePlainPath(path string) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("path %q must start with /", path)
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '%':
			if i+2 >= len(path) || !isUpperHex(path[i+1]) || !isUpperHex(path[i+2]) {
				return fmt.Errorf("path %q has an invalid percent-encoding at offset %d (want %%XX in upper case)", path, i)
			}
			if decoded := unhex(path[i+1])<<4 | unhex(path[i+2]); isUnreserved(decoded) {
				return fmt.Errorf("path %q percent-encodes the unreserved character %q", path, decoded)
			}
			i += 2
		case isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@/", c) >= 0:
		default:
			return fmt.Errorf("path %q contains the character %q, which is not allowed in a URL path", path, c)
		}
	}
	for _, bad := range []string{"//", "/./", "/../"} {
		if strings.Contains(path, bad) {
			return fmt.Errorf("path %q is not normalized: it contains %q", path, bad)
		}
	}
	if strings.HasSuffix(path, "/.") || strings.HasSuffix(path, "/..") {
		return fmt.Errorf("path %q is not normalized: it ends with a dot segment", path)
	}
	return nil
}

// validateRegexPath checks a Kong regex path (without its ~). Kong compiles
// it with PCRE; RE2's Perl syntax is a close, slightly stricter stand-in
// (no look-around or back-references), so a regex accepted here is accepted
// by Kong.
//
// Kong also applies two of its plain-path rules to regex paths: no empty
// segment ("//") and no "%" that does not start a percent-encoding.
func validateRegexPath(re string) error {
	if !strings.HasPrefix(re, "/") {
		return fmt.Errorf("regex path %q must start with ~/", "~"+re)
	}
	if strings.Contains(re, "//") {
		return fmt.Errorf("regex path %q must not contain an empty segment (//)", "~"+re)
	}
	for rest := re; ; {
		i := strings.IndexByte(rest, '%')
		if i < 0 {
			break
		}
		if i+2 >= len(rest) || !isHex(rest[i+1]) || !isHex(rest[i+2]) {
			return fmt.Errorf("regex path %q has a %% that does not start a percent-encoding (%%XX)", "~"+re)
		}
		rest = rest[i+3:]
	}
	if _, err := syntax.Parse(re, syntax.Perl); err != nil {
		return fmt.Errorf("regex path %q does not compile: %v", "~"+re, err)
	}
	return nil
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
}

func isHex(c byte) bool { return isUpperHex(c) || 'a' <= c && c <= 'f' }

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// validateHost accepts a DNS name or a wildcard DNS name (*.example.com), as
// both Kubernetes and Kong do for Ingress hosts and SNIs.
func validateHost(host string) error {
	if isPlainHost(host) {
		return nil
	}
	return checkHost(host)
}

// checkHost is validateHost without the fast path.
func checkHost(host string) error {
	var problems []string
	if strings.HasPrefix(host, "*.") {
		problems = validation.IsWildcardDNS1123Subdomain(host)
	} else {
		problems = validation.IsDNS1123Subdomain(host)
	}
	// The API server's subdomain check bounds only the whole name; Kong
	// also refuses any label longer than 63 characters (RFC 1123).
	for _, label := range strings.Split(host, ".") {
		if len(label) > validation.DNS1123LabelMaxLength {
			problems = append(problems, fmt.Sprintf("label %.20q… is longer than %d characters", label, validation.DNS1123LabelMaxLength))
			break
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("host %q is invalid: %s", host, strings.Join(problems, "; "))
	}
	return nil
}

// isPlainHost is a fast, allocation-free test for the common case of
// validateHost: it accepts only names that validateHost accepts (a DNS-1123
// subdomain, optionally behind "*.", of at most 253 characters, with labels
// of at most 63), and leaves anything unusual to the full check.
func isPlainHost(host string) bool {
	if len(host) == 0 || len(host) > validation.DNS1123SubdomainMaxLength {
		return false
	}
	name := strings.TrimPrefix(host, "*.")
	labelStart := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
			continue
		}
		label := name[labelStart:i]
		if len(label) == 0 || len(label) > validation.DNS1123LabelMaxLength || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		labelStart = i + 1
	}
	return true
}

// validateSNI accepts what validateHost accepts except IP addresses: the
// API server admits "192.0.2.1" in spec.tls[].hosts, but TLS server names
// are never IP addresses and Kong refuses the whole document for one.
func validateSNI(host string) error {
	if net.ParseIP(host) != nil {
		return fmt.Errorf("host %q is an IP address, which cannot be a TLS server name", host)
	}
	return validateHost(host)
}
