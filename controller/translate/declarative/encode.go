package declarative

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/kong/go-kong/kong"
)

// The document of a large cluster runs to tens of megabytes, and the
// reflection in encoding/json was the largest single cost of a translation.
// This encoder writes the same bytes as encoding/json (field order, omitempty,
// string escaping; equivalence is tested field by field and fuzzed) while
// touching only fields that are set. The rare nested-object fields (health
// checks, client certificates, headers, ...) are still handed to
// encoding/json.

// MarshalJSON renders the document exactly as encoding/json would render the
// struct, only faster.
func (c *Config) MarshalJSON() ([]byte, error) {
	e := &encoder{buf: make([]byte, 0, c.sizeHint())}
	o := e.begin()
	o.key("_format_version")
	e.buf = appendString(e.buf, c.FormatVersion)
	if len(c.Services) > 0 {
		o.key("services")
		arrayOf(e, c.Services, e.service)
	}
	if len(c.Upstreams) > 0 {
		o.key("upstreams")
		arrayOf(e, c.Upstreams, e.upstream)
	}
	if len(c.Certificates) > 0 {
		o.key("certificates")
		arrayOf(e, c.Certificates, e.certificate)
	}
	o.end()
	return e.buf, e.err
}

// sizeHint guesses the encoded size from typical entity sizes, so a large
// document is not copied over and over while its buffer grows.
func (c *Config) sizeHint() int {
	n := 64
	for _, s := range c.Services {
		if s != nil {
			n += 450 + 600*len(s.Routes)
		}
	}
	for _, u := range c.Upstreams {
		if u != nil {
			n += 250 + 200*len(u.Targets)
		}
	}
	for _, cert := range c.Certificates {
		if cert == nil {
			continue
		}
		n += 400 + 200*len(cert.SNIs)
		if cert.Cert != nil && cert.Key != nil {
			n += len(*cert.Cert) + len(*cert.Key)
		}
	}
	return n
}

type encoder struct {
	buf []byte
	err error
	// tags remembers where a tag list was first written. The translator
	// gives every entity derived from one Kubernetes object the same tag
	// slice, so most lists are copies of an earlier one; a slice is the same
	// list exactly when it starts at the same element and has the same length.
	tags map[tagList]span
}

type tagList struct {
	first **string
	n     int
}

type span struct{ start, end int }

// object tracks the fields written so far in one JSON object.
type object struct {
	e *encoder
	n int
}

func (e *encoder) begin() *object {
	e.buf = append(e.buf, '{')
	return &object{e: e}
}

func (o *object) key(k string) {
	if o.n > 0 {
		o.e.buf = append(o.e.buf, ',')
	}
	o.n++
	o.e.buf = append(o.e.buf, '"')
	o.e.buf = append(o.e.buf, k...)
	o.e.buf = append(o.e.buf, '"', ':')
}

func (o *object) end() { o.e.buf = append(o.e.buf, '}') }

func (o *object) str(k string, v *string) {
	if v != nil {
		o.key(k)
		o.e.buf = appendString(o.e.buf, *v)
	}
}

func (o *object) int(k string, v *int) {
	if v != nil {
		o.key(k)
		o.e.buf = strconv.AppendInt(o.e.buf, int64(*v), 10)
	}
}

func (o *object) int64(k string, v *int64) {
	if v != nil {
		o.key(k)
		o.e.buf = strconv.AppendInt(o.e.buf, *v, 10)
	}
}

func (o *object) uint64(k string, v *uint64) {
	if v != nil {
		o.key(k)
		o.e.buf = strconv.AppendUint(o.e.buf, *v, 10)
	}
}

func (o *object) bool(k string, v *bool) {
	if v != nil {
		o.key(k)
		o.e.buf = strconv.AppendBool(o.e.buf, *v)
	}
}

func (o *object) strs(k string, v []*string) {
	if len(v) == 0 {
		return
	}
	o.key(k)
	o.list(v)
}

// tagList writes a tag list, copying an earlier rendering of the same list.
func (o *object) tagList(v []*string) {
	if len(v) == 0 {
		return
	}
	o.key("tags")
	key := tagList{&v[0], len(v)}
	if s, ok := o.e.tags[key]; ok {
		o.e.buf = append(o.e.buf, o.e.buf[s.start:s.end]...)
		return
	}
	start := len(o.e.buf)
	o.list(v)
	if o.e.tags == nil {
		o.e.tags = make(map[tagList]span)
	}
	o.e.tags[key] = span{start, len(o.e.buf)}
}

func (o *object) list(v []*string) {
	o.e.buf = append(o.e.buf, '[')
	for i, s := range v {
		if i > 0 {
			o.e.buf = append(o.e.buf, ',')
		}
		if s == nil {
			o.e.buf = append(o.e.buf, "null"...)
		} else {
			o.e.buf = appendString(o.e.buf, *s)
		}
	}
	o.e.buf = append(o.e.buf, ']')
}

// std writes a field through encoding/json; set says whether omitempty
// keeps it.
func (o *object) std(k string, set bool, v any) {
	if !set {
		return
	}
	o.key(k)
	b, err := json.Marshal(v)
	if err != nil && o.e.err == nil {
		o.e.err = err
	}
	o.e.buf = append(o.e.buf, b...)
}

func arrayOf[T any](e *encoder, items []*T, encode func(*T)) {
	e.buf = append(e.buf, '[')
	for i, item := range items {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if item == nil {
			e.buf = append(e.buf, "null"...)
		} else {
			encode(item)
		}
	}
	e.buf = append(e.buf, ']')
}

// The field lists below follow go-kong's struct declarations, which is the
// order encoding/json uses; embedded fields come before the wrapper's own.

func (e *encoder) service(s *Service) {
	o := e.begin()
	o.std("client_certificate", s.ClientCertificate != nil, s.ClientCertificate)
	o.int("connect_timeout", s.ConnectTimeout)
	o.int("created_at", s.CreatedAt)
	o.bool("enabled", s.Enabled)
	o.str("host", s.Host)
	o.str("id", s.ID)
	o.str("name", s.Name)
	o.str("path", s.Path)
	o.int("port", s.Port)
	o.str("protocol", s.Protocol)
	o.int("read_timeout", s.ReadTimeout)
	o.int("retries", s.Retries)
	o.int("updated_at", s.UpdatedAt)
	o.str("url", s.URL)
	o.int("write_timeout", s.WriteTimeout)
	o.tagList(s.Tags)
	o.std("tls_sans", s.TLSSANs != nil, s.TLSSANs)
	o.bool("tls_verify", s.TLSVerify)
	o.int("tls_verify_depth", s.TLSVerifyDepth)
	o.strs("ca_certificates", s.CACertificates)
	if len(s.Routes) > 0 {
		o.key("routes")
		arrayOf(e, s.Routes, e.route)
	}
	o.end()
}

func (e *encoder) route(r *kong.Route) {
	o := e.begin()
	o.int("created_at", r.CreatedAt)
	o.str("expression", r.Expression)
	o.strs("hosts", r.Hosts)
	o.std("headers", len(r.Headers) > 0, r.Headers)
	o.str("id", r.ID)
	o.str("name", r.Name)
	o.strs("methods", r.Methods)
	o.strs("paths", r.Paths)
	o.str("path_handling", r.PathHandling)
	o.bool("preserve_host", r.PreserveHost)
	o.uint64("priority", r.Priority)
	o.strs("protocols", r.Protocols)
	o.int("regex_priority", r.RegexPriority)
	o.std("service", r.Service != nil, r.Service)
	o.bool("strip_path", r.StripPath)
	o.int("updated_at", r.UpdatedAt)
	o.strs("snis", r.SNIs)
	o.std("sources", len(r.Sources) > 0, r.Sources)
	o.std("destinations", len(r.Destinations) > 0, r.Destinations)
	o.tagList(r.Tags)
	o.int("https_redirect_status_code", r.HTTPSRedirectStatusCode)
	o.bool("request_buffering", r.RequestBuffering)
	o.bool("response_buffering", r.ResponseBuffering)
	o.end()
}

func (e *encoder) upstream(u *Upstream) {
	o := e.begin()
	o.str("id", u.ID)
	o.str("name", u.Name)
	o.str("host_header", u.HostHeader)
	o.std("client_certificate", u.ClientCertificate != nil, u.ClientCertificate)
	o.str("algorithm", u.Algorithm)
	o.int("slots", u.Slots)
	o.std("healthchecks", u.Healthchecks != nil, u.Healthchecks)
	o.int64("created_at", u.CreatedAt)
	o.str("hash_on", u.HashOn)
	o.str("hash_fallback", u.HashFallback)
	o.str("hash_on_header", u.HashOnHeader)
	o.str("hash_fallback_header", u.HashFallbackHeader)
	o.str("hash_on_cookie", u.HashOnCookie)
	o.str("hash_on_cookie_path", u.HashOnCookiePath)
	o.str("hash_on_query_arg", u.HashOnQueryArg)
	o.str("hash_fallback_query_arg", u.HashFallbackQueryArg)
	o.str("hash_on_uri_capture", u.HashOnURICapture)
	o.str("hash_fallback_uri_capture", u.HashFallbackURICapture)
	o.bool("use_srv_name", u.UseSrvName)
	o.str("sticky_sessions_cookie", u.StickySessionsCookie)
	o.str("sticky_sessions_cookie_path", u.StickySessionsCookiePath)
	o.tagList(u.Tags)
	if len(u.Targets) > 0 {
		o.key("targets")
		arrayOf(e, u.Targets, e.target)
	}
	o.end()
}

func (e *encoder) target(t *kong.Target) {
	o := e.begin()
	o.std("created_at", t.CreatedAt != nil, t.CreatedAt)
	o.str("id", t.ID)
	o.str("target", t.Target)
	o.std("upstream", t.Upstream != nil, t.Upstream)
	o.int("weight", t.Weight)
	o.tagList(t.Tags)
	o.bool("failover", t.Failover)
	o.end()
}

func (e *encoder) certificate(c *Certificate) {
	o := e.begin()
	o.str("id", c.ID)
	o.str("cert", c.Cert)
	o.str("cert_alt", c.CertAlt)
	o.str("key", c.Key)
	o.str("key_alt", c.KeyAlt)
	o.int64("created_at", c.CreatedAt)
	// kong.Certificate.SNIs is shadowed by the wrapper's SNIs in JSON.
	o.tagList(c.Tags)
	if len(c.SNIs) > 0 {
		o.key("snis")
		arrayOf(e, c.SNIs, e.sni)
	}
	o.end()
}

func (e *encoder) sni(s *kong.SNI) {
	o := e.begin()
	o.str("id", s.ID)
	o.str("name", s.Name)
	o.int64("created_at", s.CreatedAt)
	o.std("certificate", s.Certificate != nil, s.Certificate)
	o.tagList(s.Tags)
	o.end()
}

const lowerHex = "0123456789abcdef"

// appendString quotes s the way encoding/json does by default: control
// characters, quotes and backslashes escaped, <, > and & as \u escapes (HTML
// safe), U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', lowerHex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
