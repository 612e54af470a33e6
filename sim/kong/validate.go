package kong

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// entity is one Admin API object in its JSON shape: strings, float64
// numbers, bools, []any, map[string]any and nil.
type entity = map[string]any

// resolver turns a foreign reference given by endpoint key (a service's
// name) into an id; ok is false when nothing matches.
type resolver func(collection, key string) (id string, ok bool)

// errTree holds field errors shaped like Kong's "fields" object: a string
// per invalid field, nested objects for records, arrays (with nulls) for
// element errors, and "@entity" for entity-level messages.
type errTree = map[string]any

// isUUID reports whether s is a UUID in its 8-4-4-4-12 hex form. It is on
// every entity's path, where a regular expression cost more than the rest
// of the id handling.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// normalizeEntity validates in against schema s and returns a new entity in
// which every schema field is present (null when unset) and defaults are
// filled. It returns a non-nil errTree when the input is invalid.
func normalizeEntity(s *entitySchema, in map[string]any, resolve resolver) (entity, errTree) {
	in = expandShorthands(s, in)
	fs := s.fields
	if s.collection == "plugins" {
		var errs errTree
		fs, errs = pluginFields(in)
		if errs != nil {
			// Still report the other fields' problems alongside.
			_, more := normalizeRecord(fs, in, resolve)
			for k, v := range more {
				if _, ok := errs[k]; !ok {
					errs[k] = v
				}
			}
			return nil, errs
		}
	}
	out, errs := normalizeRecord(fs, in, resolve)
	if s.collection == "plugins" && out["consumer"] != nil {
		if p := plugins[asString(out["name"])]; p != nil && p.noConsumer {
			if errs == nil {
				errs = errTree{}
			}
			errs["consumer"] = "value must be null"
		}
	}
	if errs != nil {
		return nil, errs
	}
	var msgs []string
	if s.check != nil {
		msgs = append(msgs, s.check(out)...)
	}
	if s.collection == "plugins" {
		if p := plugins[asString(out["name"])]; p != nil && p.check != nil {
			if cfg, ok := out["config"].(map[string]any); ok {
				msgs = append(msgs, p.check(cfg)...)
			}
		}
	}
	if len(msgs) > 0 {
		return nil, errTree{"@entity": strs(msgs...)}
	}
	finishEntity(s, out)
	return out, nil
}

// pluginFields returns the plugin schema with the config record of the
// named plugin, or an error tree when the name is unknown.
func pluginFields(in map[string]any) ([]*field, errTree) {
	base := schemas["plugins"].fields
	name, _ := in["name"].(string)
	p := plugins[name]
	fs := make([]*field, len(base))
	copy(fs, base)
	for i, f := range fs {
		if f.name == "config" {
			if p != nil {
				fs[i] = p.configField()
			} else {
				fs[i] = &field{name: "config", typ: tRecord}
			}
		}
	}
	if in["name"] == nil {
		return fs, nil
	}
	if p == nil {
		return fs, errTree{"name": fmt.Sprintf("plugin '%v' not enabled; add it to the 'plugins' configuration property", in["name"])}
	}
	return fs, nil
}

// expandShorthands applies Kong's input-only conveniences: a service's
// url, and a plugin config given as null.
func expandShorthands(s *entitySchema, in map[string]any) map[string]any {
	if s.collection != "services" {
		return in
	}
	raw, ok := in["url"]
	if !ok {
		return in
	}
	out := make(map[string]any, len(in)+3)
	for k, v := range in {
		if k != "url" {
			out[k] = v
		}
	}
	u, isStr := raw.(string)
	if raw == nil {
		return out
	}
	parsed, err := url.Parse(u)
	if !isStr || err != nil || parsed.Host == "" || parsed.Scheme == "" {
		// Leave a field that normalizeRecord will report as invalid.
		out["url"] = raw
		return out
	}
	out["protocol"] = parsed.Scheme
	out["host"] = parsed.Hostname()
	if p := parsed.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		out["port"] = float64(n)
	} else if parsed.Scheme == "https" || parsed.Scheme == "grpcs" || parsed.Scheme == "wss" {
		out["port"] = 443.0
	} else {
		out["port"] = 80.0
	}
	if parsed.Path != "" {
		out["path"] = parsed.Path
	} else {
		out["path"] = nil
	}
	return out
}

// finishEntity derives stored values Kong computes itself.
func finishEntity(s *entitySchema, e entity) {
	switch s.collection {
	case "targets":
		e["target"] = targetWithPort(asString(e["target"]))

	case "ca_certificates":
		if block, _ := pem.Decode([]byte(asString(e["cert"]))); block != nil {
			sum := sha256.Sum256(block.Bytes)
			e["cert_digest"] = hex.EncodeToString(sum[:])
		}
	}
}

func normalizeRecord(fs []*field, in map[string]any, resolve resolver) (map[string]any, errTree) {
	out := make(map[string]any, len(fs))
	var errs errTree
	addErr := func(k string, v any) {
		if errs == nil {
			errs = errTree{}
		}
		errs[k] = v
	}
	for _, f := range fs {
		v, present := in[f.name]
		if !present || v == nil {
			if f.def != nil {
				out[f.name] = cloneValue(f.def)
				continue
			}
			if f.typ == tRecord && f.fields != nil && f.required {
				// A required record with defaults is materialized, as Kong
				// does for plugin config and upstream healthchecks.
				v = map[string]any{}
			} else {
				if f.required && !f.auto {
					addErr(f.name, "required field missing")
				}
				out[f.name] = nil
				continue
			}
		}
		nv, ferr := normalizeValue(f, v, resolve)
		if ferr != nil {
			addErr(f.name, ferr)
			continue
		}
		out[f.name] = nv
	}
	// Every schema field is either in out or in errs; anything else in the
	// input is unknown.
	for k := range in {
		if _, ok := out[k]; !ok && (errs == nil || errs[k] == nil) {
			addErr(k, "unknown field")
		}
	}
	return out, errs
}

// normalizeValue type-checks one value; the error is a string, or a nested
// tree for records and collections.
func normalizeValue(f *field, v any, resolve resolver) (any, any) {
	switch f.typ {
	case tString:
		s, ok := v.(string)
		if !ok {
			return nil, "expected a string"
		}
		if minLen := max(f.lenMin, 1); utf8.RuneCountInString(s) < minLen {
			return nil, fmt.Sprintf("length must be at least %d", minLen)
		}
		if f.uuid && !isUUID(s) {
			return nil, "expected a valid UUID"
		}
		if len(f.oneOf) > 0 && !contains(f.oneOf, s) {
			return nil, "expected one of: " + strings.Join(f.oneOf, ", ")
		}
		if f.check != nil {
			if msg := f.check(s); msg != "" {
				return nil, msg
			}
		}
		return v, nil // as decoded: boxing s again would allocate
	case tInteger, tNumber:
		n, ok := v.(float64)
		if !ok {
			if f.typ == tInteger {
				return nil, "expected an integer"
			}
			return nil, "expected a number"
		}
		if f.typ == tInteger && n != math.Trunc(n) {
			return nil, "expected an integer"
		}
		if len(f.oneOf) > 0 && !contains(f.oneOf, strconv.FormatFloat(n, 'f', -1, 64)) {
			return nil, "expected one of: " + strings.Join(f.oneOf, ", ")
		}
		if f.between != nil && (n < f.between[0] || n > f.between[1]) {
			return nil, "value should be between " + strconv.FormatFloat(f.between[0], 'f', -1, 64) + " and " + strconv.FormatFloat(f.between[1], 'f', -1, 64)
		}
		if f.check != nil {
			if msg := f.check(n); msg != "" {
				return nil, msg
			}
		}
		return v, nil // the value as decoded: no second box for n
	case tBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, "expected a boolean"
		}
		return b, nil
	case tArray, tSet:
		arr, ok := v.([]any)
		if !ok {
			// An empty JSON object is how Lua-based encoders send an empty
			// array, and Kong accepts it.
			if m, isMap := v.(map[string]any); isMap && len(m) == 0 {
				return []any{}, nil
			}
			if f.typ == tSet {
				return nil, "expected a set"
			}
			return nil, "expected an array"
		}
		// Scalars come back unchanged, so the input array (decoded for this
		// call and never mutated) is kept rather than copied.
		scalar := f.elem.typ == tString || f.elem.typ == tInteger || f.elem.typ == tNumber || f.elem.typ == tBoolean
		out := arr
		if !scalar {
			out = make([]any, len(arr))
		}
		var errs []any
		for i, el := range arr {
			nv, err := normalizeValue(f.elem, el, resolve)
			if err != nil {
				if errs == nil {
					errs = make([]any, len(arr))
				}
				errs[i] = err
				continue
			}
			if !scalar {
				out[i] = nv
			}
		}
		if errs != nil {
			return nil, trimNulls(errs)
		}
		if scalar {
			return v, nil // as decoded: boxing arr again would allocate
		}
		return out, nil
	case tMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "expected a map"
		}
		out := make(map[string]any, len(m))
		var errs errTree
		for k, el := range m {
			nv, err := normalizeValue(f.elem, el, resolve)
			if err != nil {
				if errs == nil {
					errs = errTree{}
				}
				errs[k] = err
				continue
			}
			out[k] = nv
		}
		if errs != nil {
			return nil, errs
		}
		if f.check != nil {
			if msg := f.check(out); msg != "" {
				return nil, msg
			}
		}
		return out, nil
	case tRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "expected a record"
		}
		if f.fields == nil {
			return cloneValue(m), nil
		}
		out, errs := normalizeRecord(f.fields, m, resolve)
		if errs != nil {
			return nil, errs
		}
		return out, nil
	case tForeign:
		return normalizeForeign(f, v, resolve)
	}
	return nil, "unsupported field type"
}

func normalizeForeign(f *field, v any, resolve resolver) (any, any) {
	var key string
	switch t := v.(type) {
	case string:
		key = t
	case map[string]any:
		if id, ok := t["id"]; ok {
			s, isStr := id.(string)
			if !isStr || !isUUID(s) {
				return nil, errTree{"id": "expected a valid UUID"}
			}
			return map[string]any{"id": strings.ToLower(s)}, nil
		}
		ek := schemas[f.ref].endpointKey
		if ek == "" || t[ek] == nil {
			return nil, errTree{"id": "required field missing"}
		}
		key, _ = t[ek].(string)
	default:
		return nil, "expected a record"
	}
	if isUUID(key) {
		return map[string]any{"id": strings.ToLower(key)}, nil
	}
	if resolve != nil {
		if id, ok := resolve(f.ref, key); ok {
			return map[string]any{"id": id}, nil
		}
	}
	return nil, fmt.Sprintf("could not find %s '%s'", schemas[f.ref].singular, key)
}

// trimNulls keeps an element-error array as short as its last error.
func trimNulls(a []any) []any {
	end := len(a)
	for end > 0 && a[end-1] == nil {
		end--
	}
	return a[:end]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// foreignID returns the id in a normalized foreign field, "" when null.
func foreignID(e entity, name string) string {
	if m, ok := e[name].(map[string]any); ok {
		return asString(m["id"])
	}
	return ""
}

func cloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = cloneValue(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = cloneValue(x)
		}
		return out
	default:
		return v
	}
}

// --- field checks -----------------------------------------------------------

func checkUTF8Name(v any) string {
	s := v.(string)
	if s == "" {
		return "length must be at least 1"
	}
	for _, r := range s {
		if r < utf8.RuneSelf && !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_~", r)) {
			return fmt.Sprintf("invalid value '%s': the only accepted ascii characters are alphanumerics or ., -, _, and ~", s)
		}
	}
	return ""
}

// validHost accepts an IP address or a DNS name: labels of 1-63
// letters, digits, '_' or '-' (not leading), optionally ending in a dot.
func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	if net.ParseIP(strings.Trim(s, "[]")) != nil {
		return true
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c == '-':
			if label == 0 {
				return false
			}
			label++
		case c == '_' || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z'):
			label++
		default:
			return false
		}
		if label > 63 {
			return false
		}
	}
	return true
}

func checkHost(v any) string {
	s := v.(string)
	if !validHost(s) {
		return fmt.Sprintf("invalid value: %s", s)
	}
	return ""
}

func checkUpstreamName(v any) string {
	s := v.(string)
	if !validHost(s) {
		return fmt.Sprintf("Invalid name ('%s'); must be a valid hostname", s)
	}
	return ""
}

func checkSNIName(v any) string {
	s := v.(string)
	if net.ParseIP(s) != nil {
		return "must not be an IP"
	}
	if !validHost(strings.TrimPrefix(strings.TrimSuffix(s, ".*"), "*.")) {
		return fmt.Sprintf("invalid value: %s", s)
	}
	return ""
}

func checkServicePath(v any) string {
	s := v.(string)
	if !strings.HasPrefix(s, "/") {
		return "should start with: /"
	}
	return ""
}

func checkMethod(v any) string {
	s := v.(string)
	if s == "" {
		return "invalid value: " + s
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return "invalid value: " + s
		}
	}
	return ""
}

func checkRouteHost(v any) string {
	s := v.(string)
	if strings.Count(s, "*") > 1 {
		return "only one wildcard must be specified"
	}
	h := s
	if strings.Contains(s, "*") {
		switch {
		case strings.HasPrefix(s, "*."):
			h = s[2:]
		case strings.HasSuffix(s, ".*"):
			h = s[:len(s)-2]
		default:
			return "invalid wildcard: must be placed at leftmost or rightmost label"
		}
	}
	host, port, err := net.SplitHostPort(h)
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			return "invalid port number"
		}
		h = host
	}
	if !validHost(h) {
		return fmt.Sprintf("invalid hostname: %s", s)
	}
	return ""
}

// checkRoutePath validates a route path. Kong compiles `~` paths with PCRE;
// Go's RE2 syntax lacks look-around and back-references, so such paths are
// rejected here although real Kong would accept them.
func checkRoutePath(v any) string {
	s := v.(string)
	switch {
	case strings.HasPrefix(s, "~"):
		if err := compileCached(s[1:]); err != nil {
			return fmt.Sprintf("invalid regex: '%s' (PCRE returned: %v)", s[1:], err)
		}
	case strings.HasPrefix(s, "/"):
		if strings.ContainsAny(s, "\x00") {
			return "invalid path"
		}
	default:
		return "should start with: / (fixed path) or ~/ (regex path)"
	}
	return ""
}

// regexCache remembers which route regexes compile: configurations repeat
// the same few patterns thousands of times. It is bounded by clearing.
var regexCache struct {
	sync.Mutex
	m map[string]error
}

func compileCached(expr string) error {
	regexCache.Lock()
	defer regexCache.Unlock()
	if err, ok := regexCache.m[expr]; ok {
		return err
	}
	if regexCache.m == nil || len(regexCache.m) > 4096 {
		regexCache.m = map[string]error{}
	}
	_, err := regexp.Compile(expr)
	regexCache.m[expr] = err
	return err
}

func checkTag(v any) string {
	s := v.(string)
	for _, r := range s {
		if r == ',' || r == '/' || (r < utf8.RuneSelf && !unicode.IsPrint(r)) || r == utf8.RuneError {
			return fmt.Sprintf("invalid tag '%s': expected printable ascii (except `,` and `/`) or valid utf-8 sequences", s)
		}
	}
	return ""
}

// checkTarget accepts "host", "host:port", "ip", "ip:port" and "[ipv6]:port".
func checkTarget(v any) string {
	s := v.(string)
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, perr := strconv.Atoi(p); perr != nil || n < 0 || n > 65535 {
			return fmt.Sprintf("Invalid target ('%s'); not a valid hostname or ip address", s)
		}
		host = h
	}
	if !validHost(host) {
		return fmt.Sprintf("Invalid target ('%s'); not a valid hostname or ip address", s)
	}
	return ""
}

// targetWithPort adds Kong's default target port 8000.
func targetWithPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil && ip.To4() == nil {
		return "[" + ip.String() + "]:8000"
	}
	return s + ":8000"
}

func checkCertPEM(v any) string {
	block, _ := pem.Decode([]byte(v.(string)))
	if block == nil || block.Type != "CERTIFICATE" {
		return "invalid certificate: x509.new: asn1/tasn_dec.c:309:error:0680007B:asn1 encoding routines::header too long"
	}
	return ""
}

func checkKeyPEM(v any) string {
	block, _ := pem.Decode([]byte(v.(string)))
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return "invalid key: pkey.new:load_key: failed to read key"
	}
	return ""
}

func hasAny(e entity, names ...string) bool {
	for _, n := range names {
		switch v := e[n].(type) {
		case nil:
		case []any:
			if len(v) > 0 {
				return true
			}
		case map[string]any:
			if len(v) > 0 {
				return true
			}
		default:
			return true
		}
	}
	return false
}

func stringList(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		out = append(out, asString(x))
	}
	return out
}

func checkService(e entity) []string {
	proto := asString(e["protocol"])
	if e["path"] != nil && proto != "http" && proto != "https" && proto != "ws" && proto != "wss" {
		return []string{"value = '" + proto + "' does not match: path can only be set when protocol is 'http', 'https', 'ws' or 'wss'"}
	}
	return nil
}

func checkRoute(e entity) []string {
	protos := stringList(e["protocols"])
	var msgs []string
	has := func(p ...string) bool {
		for _, x := range protos {
			if contains(p, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("https", "grpcs", "wss"):
		if !hasAny(e, "methods", "hosts", "headers", "paths", "snis") {
			msgs = append(msgs, "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'")
		}
	case has("http", "grpc", "ws"):
		if !hasAny(e, "methods", "hosts", "headers", "paths") {
			msgs = append(msgs, "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'")
		}
	case has("tcp", "tls", "udp", "tls_passthrough"):
		if !hasAny(e, "sources", "destinations", "snis") {
			msgs = append(msgs, "must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'")
		}
	}
	if hasAny(e, "snis") && !has("https", "grpcs", "tls", "tls_passthrough", "wss") {
		msgs = append(msgs, "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls', 'tls_passthrough' or 'wss'")
	}
	if h, ok := e["headers"].(map[string]any); ok {
		for k := range h {
			if strings.EqualFold(k, "host") {
				msgs = append(msgs, "cannot contain 'host' header, which must be specified in the 'hosts' attribute")
			}
		}
	}
	if len(protos) == 0 {
		msgs = append(msgs, "'protocols' must not be empty")
	}
	return msgs
}
