package declarative

import (
	"cmp"
	"encoding/json"
	"runtime"
	"strconv"
	"sync"
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
//
// A large document is rendered by two goroutines: one writes the start of
// the services list at the front of the buffer, the other writes the rest
// of the document further on, where the first part is expected to end; the
// second part is then moved down to close the gap. Each part is a pure
// function of the Config, so the bytes are the same as from one goroutine.
func (c *Config) MarshalJSON() ([]byte, error) { return c.marshal(runtime.GOMAXPROCS(0) > 1) }

func (c *Config) marshal(parallel bool) ([]byte, error) {
	split, headHint, tailHint := c.split(parallel)
	buf := make([]byte, 0, headHint+tailHint)
	if split == len(c.Services) {
		e := &encoder{}
		b := c.appendTail(e, c.appendHead(e, buf, split), split)
		return b, e.err
	}

	var tail []byte
	tailEncoder := &encoder{}
	var wg sync.WaitGroup
	wg.Go(func() {
		// Capacity runs to the end of buf: a tail longer than expected is
		// moved to a new array by append, never written over anything.
		tail = c.appendTail(tailEncoder, buf[headHint:headHint], split)
	})
	headEncoder := &encoder{}
	// Capacity stops at headHint: a head longer than expected moves to a
	// new array instead of running into the tail.
	head := c.appendHead(headEncoder, buf[:0:headHint], split)
	if len(head) <= headHint {
		head = buf[:len(head)] // still in buf: regain the capacity for the tail
	}
	wg.Wait()
	return append(head, tail...), cmp.Or(headEncoder.err, tailEncoder.err)
}

// Documents with fewer services than this are rendered by one goroutine:
// for them a second one costs more than it saves.
const parallelMinServices = 2000

// split decides how many services the head part renders (all of them when
// the document is rendered by one goroutine), and how big each part is
// expected to be. The parts are balanced by work rather than by size:
// rendering a route takes several times longer than rendering a target.
func (c *Config) split(parallel bool) (split, headHint, tailHint int) {
	total, work := 64, 0
	for _, s := range c.Services {
		total += serviceHint(s)
		work += serviceCost(s)
	}
	for _, u := range c.Upstreams {
		total += upstreamHint(u)
		if u != nil {
			work += upstreamWork + targetWork*len(u.Targets)
		}
	}
	for _, cert := range c.Certificates {
		total += certificateHint(cert)
		if cert != nil {
			work += certificateWork + sniWork*len(cert.SNIs)
		}
	}
	for _, p := range c.Plugins {
		total += 350
		work += pluginWork
		if p != nil && p.Config != nil {
			total += len(p.Config.json)
		}
	}
	for _, cs := range c.Consumers {
		total += 300
		work += consumerWork
		if cs != nil {
			n := len(cs.KeyAuthCredentials) + len(cs.BasicAuthCredentials) + len(cs.JWTSecrets) + len(cs.ACLs) + len(cs.HMACAuthCredentials)
			total += 250 * n
			work += credentialWork * n
		}
	}
	split = len(c.Services)
	if parallel && len(c.Services) >= parallelMinServices {
		headHint, headWork := 64, 0
		for i, s := range c.Services {
			if headWork >= work/2 {
				split = i
				break
			}
			headHint += serviceHint(s)
			headWork += serviceCost(s)
		}
		if split < len(c.Services) {
			return split, headHint, total - headHint
		}
	}
	return split, total, 0
}

// Relative rendering costs, measured on typical entities: a route renders
// about ten strings, a target two (its tags are usually a copy).
const (
	serviceWork     = 6
	routeWork       = 14
	upstreamWork    = 3
	targetWork      = 1
	certificateWork = 20
	sniWork         = 3
	pluginWork      = 8
	consumerWork    = 4
	credentialWork  = 4
)

func serviceCost(s *Service) int {
	if s == nil {
		return 1
	}
	return serviceWork + routeWork*len(s.Routes)
}

// The hints guess encoded sizes from typical entities, slightly high, so
// that a large document is not copied over while its buffer grows.

func serviceHint(s *Service) int {
	if s == nil {
		return 4
	}
	return 450 + 600*len(s.Routes)
}

func upstreamHint(u *Upstream) int {
	if u == nil {
		return 4
	}
	return 250 + 200*len(u.Targets)
}

func certificateHint(cert *Certificate) int {
	if cert == nil {
		return 4
	}
	n := 400 + 200*len(cert.SNIs)
	if cert.Cert != nil && cert.Key != nil {
		n += len(*cert.Cert) + len(*cert.Key)
	}
	return n
}

// appendHead renders the document up to the services from split on.
func (c *Config) appendHead(e *encoder, b []byte, split int) []byte {
	b = appendString(append(b, `{"_format_version":`...), c.FormatVersion)
	if len(c.Services) > 0 {
		b = append(b, `,"services":[`...)
		for i, s := range c.Services[:split] {
			if i > 0 {
				b = append(b, ',')
			}
			b = orNull(b, s, e.service)
		}
	}
	return b
}

// appendTail renders the document from the services at split on.
func (c *Config) appendTail(e *encoder, b []byte, split int) []byte {
	if len(c.Services) > 0 {
		for i, s := range c.Services[split:] {
			if split+i > 0 {
				b = append(b, ',')
			}
			b = orNull(b, s, e.service)
		}
		b = append(b, ']')
	}
	if len(c.Upstreams) > 0 {
		b = arrayOf(append(b, `,"upstreams":`...), c.Upstreams, e.upstream)
	}
	if len(c.Certificates) > 0 {
		b = arrayOf(append(b, `,"certificates":`...), c.Certificates, e.certificate)
	}
	if len(c.Plugins) > 0 {
		b = arrayOf(append(b, `,"plugins":`...), c.Plugins, e.plugin)
	}
	if len(c.Consumers) > 0 {
		b = arrayOf(append(b, `,"consumers":`...), c.Consumers, e.consumer)
	}
	return append(b, '}')
}

type encoder struct {
	err error
	// recentTags remembers where the last few tag lists were written. The
	// translator gives every entity derived from one Kubernetes object the
	// same tag slice, and such entities mostly sit next to each other (an
	// upstream and its targets, the routes of one Ingress), so copying a
	// recent rendering is nearly as good as remembering all of them, and
	// far cheaper than a map. A slice is the same list exactly when it
	// starts at the same element and has the same length.
	recentTags [4]renderedTags
	nextRecent int
}

type renderedTags struct {
	list       tagList
	start, end int
}

type tagList struct {
	first **string
	n     int
}

// closeObject ends the object whose fields were written from start on.
func closeObject(b []byte, start int) []byte {
	if len(b) == start {
		return append(b, '{', '}')
	}
	b[start] = '{' // was the comma before the first field
	return append(b, '}')
}

// Each append* below writes one field, key being its ,"name": prefix, and
// only when encoding/json's omitempty would keep it.

func appendStr(b []byte, key string, v *string) []byte {
	if v == nil {
		return b
	}
	return appendString(append(b, key...), *v)
}

func appendInt(b []byte, key string, v *int) []byte {
	if v == nil {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(*v), 10)
}

func appendInt64(b []byte, key string, v *int64) []byte {
	if v == nil {
		return b
	}
	return strconv.AppendInt(append(b, key...), *v, 10)
}

func appendUint64(b []byte, key string, v *uint64) []byte {
	if v == nil {
		return b
	}
	return strconv.AppendUint(append(b, key...), *v, 10)
}

func appendBool(b []byte, key string, v *bool) []byte {
	if v == nil {
		return b
	}
	return strconv.AppendBool(append(b, key...), *v)
}

func appendStrs(b []byte, key string, v []*string) []byte {
	if len(v) == 0 {
		return b
	}
	return appendList(append(b, key...), v)
}

func appendList(b []byte, v []*string) []byte {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if s == nil {
			b = append(b, "null"...)
		} else {
			b = appendString(b, *s)
		}
	}
	return append(b, ']')
}

// appendTags writes a tag list, copying a recent rendering of the same list.
func (e *encoder) appendTags(b []byte, v []*string) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, `,"tags":`...)
	key := tagList{&v[0], len(v)}
	for _, r := range e.recentTags {
		if r.list == key {
			return append(b, b[r.start:r.end]...)
		}
	}
	start := len(b)
	b = appendList(b, v)
	e.recentTags[e.nextRecent] = renderedTags{key, start, len(b)}
	e.nextRecent = (e.nextRecent + 1) % len(e.recentTags)
	return b
}

// appendStd writes a field through encoding/json; set says whether
// omitempty keeps it.
func (e *encoder) appendStd(b []byte, key string, set bool, v any) []byte {
	if !set {
		return b
	}
	out, err := json.Marshal(v)
	if err != nil && e.err == nil {
		e.err = err
	}
	return append(append(b, key...), out...)
}

func arrayOf[T any](b []byte, items []*T, encode func([]byte, *T) []byte) []byte {
	b = append(b, '[')
	for i, item := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = orNull(b, item, encode)
	}
	return append(b, ']')
}

func orNull[T any](b []byte, item *T, encode func([]byte, *T) []byte) []byte {
	if item == nil {
		return append(b, "null"...)
	}
	return encode(b, item)
}

// The field lists below follow go-kong's struct declarations, which is the
// order encoding/json uses; embedded fields come before the wrapper's own.

func (e *encoder) service(b []byte, s *Service) []byte {
	start := len(b)
	b = e.appendStd(b, `,"client_certificate":`, s.ClientCertificate != nil, s.ClientCertificate)
	b = appendInt(b, `,"connect_timeout":`, s.ConnectTimeout)
	b = appendInt(b, `,"created_at":`, s.CreatedAt)
	b = appendBool(b, `,"enabled":`, s.Enabled)
	b = appendStr(b, `,"host":`, s.Host)
	b = appendStr(b, `,"id":`, s.ID)
	b = appendStr(b, `,"name":`, s.Name)
	b = appendStr(b, `,"path":`, s.Path)
	b = appendInt(b, `,"port":`, s.Port)
	b = appendStr(b, `,"protocol":`, s.Protocol)
	b = appendInt(b, `,"read_timeout":`, s.ReadTimeout)
	b = appendInt(b, `,"retries":`, s.Retries)
	b = appendInt(b, `,"updated_at":`, s.UpdatedAt)
	b = appendStr(b, `,"url":`, s.URL)
	b = appendInt(b, `,"write_timeout":`, s.WriteTimeout)
	b = e.appendTags(b, s.Tags)
	b = e.appendStd(b, `,"tls_sans":`, s.TLSSANs != nil, s.TLSSANs)
	b = appendBool(b, `,"tls_verify":`, s.TLSVerify)
	b = appendInt(b, `,"tls_verify_depth":`, s.TLSVerifyDepth)
	b = appendStrs(b, `,"ca_certificates":`, s.CACertificates)
	if len(s.Routes) > 0 {
		b = arrayOf(append(b, `,"routes":`...), s.Routes, e.route)
	}
	return closeObject(b, start)
}

func (e *encoder) route(b []byte, r *kong.Route) []byte {
	start := len(b)
	b = appendInt(b, `,"created_at":`, r.CreatedAt)
	b = appendStr(b, `,"expression":`, r.Expression)
	b = appendStrs(b, `,"hosts":`, r.Hosts)
	b = e.appendStd(b, `,"headers":`, len(r.Headers) > 0, r.Headers)
	b = appendStr(b, `,"id":`, r.ID)
	b = appendStr(b, `,"name":`, r.Name)
	b = appendStrs(b, `,"methods":`, r.Methods)
	b = appendStrs(b, `,"paths":`, r.Paths)
	b = appendStr(b, `,"path_handling":`, r.PathHandling)
	b = appendBool(b, `,"preserve_host":`, r.PreserveHost)
	b = appendUint64(b, `,"priority":`, r.Priority)
	b = appendStrs(b, `,"protocols":`, r.Protocols)
	b = appendInt(b, `,"regex_priority":`, r.RegexPriority)
	b = e.appendStd(b, `,"service":`, r.Service != nil, r.Service)
	b = appendBool(b, `,"strip_path":`, r.StripPath)
	b = appendInt(b, `,"updated_at":`, r.UpdatedAt)
	b = appendStrs(b, `,"snis":`, r.SNIs)
	b = e.appendStd(b, `,"sources":`, len(r.Sources) > 0, r.Sources)
	b = e.appendStd(b, `,"destinations":`, len(r.Destinations) > 0, r.Destinations)
	b = e.appendTags(b, r.Tags)
	b = appendInt(b, `,"https_redirect_status_code":`, r.HTTPSRedirectStatusCode)
	b = appendBool(b, `,"request_buffering":`, r.RequestBuffering)
	b = appendBool(b, `,"response_buffering":`, r.ResponseBuffering)
	return closeObject(b, start)
}

func (e *encoder) plugin(b []byte, p *Plugin) []byte {
	start := len(b)
	b = appendStr(b, `,"id":`, p.ID)
	b = appendStr(b, `,"name":`, p.Name)
	b = appendStr(b, `,"instance_name":`, p.InstanceName)
	if p.Config != nil {
		raw, _ := p.Config.MarshalJSON()
		b = append(append(b, `,"config":`...), raw...)
	}
	b = appendBool(b, `,"enabled":`, p.Enabled)
	b = appendStrs(b, `,"protocols":`, p.Protocols)
	b = appendStr(b, `,"route":`, p.Route)
	b = appendStr(b, `,"service":`, p.Service)
	b = appendStr(b, `,"consumer":`, p.Consumer)
	b = e.appendTags(b, p.Tags)
	return closeObject(b, start)
}

func (e *encoder) consumer(b []byte, c *Consumer) []byte {
	start := len(b)
	b = appendStr(b, `,"id":`, c.ID)
	b = appendStr(b, `,"username":`, c.Username)
	b = appendStr(b, `,"custom_id":`, c.CustomID)
	b = e.appendTags(b, c.Tags)
	for _, list := range []struct {
		key   string
		creds []*Credential
	}{
		{`,"keyauth_credentials":`, c.KeyAuthCredentials},
		{`,"basicauth_credentials":`, c.BasicAuthCredentials},
		{`,"jwt_secrets":`, c.JWTSecrets},
		{`,"acls":`, c.ACLs},
		{`,"hmacauth_credentials":`, c.HMACAuthCredentials},
	} {
		if len(list.creds) > 0 {
			b = arrayOf(append(b, list.key...), list.creds, e.credential)
		}
	}
	return closeObject(b, start)
}

func (e *encoder) credential(b []byte, c *Credential) []byte {
	start := len(b)
	b = appendStr(b, `,"id":`, c.ID)
	b = appendStr(b, `,"key":`, c.Key)
	b = appendStr(b, `,"username":`, c.Username)
	b = appendStr(b, `,"password":`, c.Password)
	b = appendStr(b, `,"secret":`, c.Secret)
	b = appendStr(b, `,"algorithm":`, c.Algorithm)
	b = appendStr(b, `,"rsa_public_key":`, c.RSAPublicKey)
	b = appendStr(b, `,"group":`, c.Group)
	b = e.appendTags(b, c.Tags)
	return closeObject(b, start)
}

func (e *encoder) upstream(b []byte, u *Upstream) []byte {
	start := len(b)
	b = appendStr(b, `,"id":`, u.ID)
	b = appendStr(b, `,"name":`, u.Name)
	b = appendStr(b, `,"host_header":`, u.HostHeader)
	b = e.appendStd(b, `,"client_certificate":`, u.ClientCertificate != nil, u.ClientCertificate)
	b = appendStr(b, `,"algorithm":`, u.Algorithm)
	b = appendInt(b, `,"slots":`, u.Slots)
	b = e.appendStd(b, `,"healthchecks":`, u.Healthchecks != nil, u.Healthchecks)
	b = appendInt64(b, `,"created_at":`, u.CreatedAt)
	b = appendStr(b, `,"hash_on":`, u.HashOn)
	b = appendStr(b, `,"hash_fallback":`, u.HashFallback)
	b = appendStr(b, `,"hash_on_header":`, u.HashOnHeader)
	b = appendStr(b, `,"hash_fallback_header":`, u.HashFallbackHeader)
	b = appendStr(b, `,"hash_on_cookie":`, u.HashOnCookie)
	b = appendStr(b, `,"hash_on_cookie_path":`, u.HashOnCookiePath)
	b = appendStr(b, `,"hash_on_query_arg":`, u.HashOnQueryArg)
	b = appendStr(b, `,"hash_fallback_query_arg":`, u.HashFallbackQueryArg)
	b = appendStr(b, `,"hash_on_uri_capture":`, u.HashOnURICapture)
	b = appendStr(b, `,"hash_fallback_uri_capture":`, u.HashFallbackURICapture)
	b = appendBool(b, `,"use_srv_name":`, u.UseSrvName)
	b = appendStr(b, `,"sticky_sessions_cookie":`, u.StickySessionsCookie)
	b = appendStr(b, `,"sticky_sessions_cookie_path":`, u.StickySessionsCookiePath)
	b = e.appendTags(b, u.Tags)
	if len(u.Targets) > 0 {
		b = arrayOf(append(b, `,"targets":`...), u.Targets, e.target)
	}
	return closeObject(b, start)
}

func (e *encoder) target(b []byte, t *kong.Target) []byte {
	start := len(b)
	b = e.appendStd(b, `,"created_at":`, t.CreatedAt != nil, t.CreatedAt)
	b = appendStr(b, `,"id":`, t.ID)
	b = appendStr(b, `,"target":`, t.Target)
	b = e.appendStd(b, `,"upstream":`, t.Upstream != nil, t.Upstream)
	b = appendInt(b, `,"weight":`, t.Weight)
	b = e.appendTags(b, t.Tags)
	b = appendBool(b, `,"failover":`, t.Failover)
	return closeObject(b, start)
}

func (e *encoder) certificate(b []byte, c *Certificate) []byte {
	start := len(b)
	b = appendStr(b, `,"id":`, c.ID)
	b = appendStr(b, `,"cert":`, c.Cert)
	b = appendStr(b, `,"cert_alt":`, c.CertAlt)
	b = appendStr(b, `,"key":`, c.Key)
	b = appendStr(b, `,"key_alt":`, c.KeyAlt)
	b = appendInt64(b, `,"created_at":`, c.CreatedAt)
	// kong.Certificate.SNIs is shadowed by the wrapper's SNIs in JSON.
	b = e.appendTags(b, c.Tags)
	if len(c.SNIs) > 0 {
		b = arrayOf(append(b, `,"snis":`...), c.SNIs, e.sni)
	}
	return closeObject(b, start)
}

func (e *encoder) sni(b []byte, s *kong.SNI) []byte {
	start := len(b)
	b = appendStr(b, `,"id":`, s.ID)
	b = appendStr(b, `,"name":`, s.Name)
	b = appendInt64(b, `,"created_at":`, s.CreatedAt)
	b = e.appendStd(b, `,"certificate":`, s.Certificate != nil, s.Certificate)
	b = e.appendTags(b, s.Tags)
	return closeObject(b, start)
}

const lowerHex = "0123456789abcdef"

// safeASCII marks the bytes encoding/json copies as they are.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// Masks for checking eight bytes at once (SWAR): every byte 0x01, or 0x80.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// needsCare reports whether any of the eight bytes in x is not safe ASCII:
// below 0x20, 0x80 or above, or one of " \\ < > &. Each test is the classic
// "has a zero byte" trick, exact as a yes/no answer.
func needsCare(x uint64) bool {
	q, bs, lt, gt, amp := x^(ones*'"'), x^(ones*'\\'), x^(ones*'<'), x^(ones*'>'), x^(ones*'&')
	return ((x-ones*0x20)&^x|x|(q-ones)&^q|(bs-ones)&^bs|(lt-ones)&^lt|(gt-ones)&^gt|(amp-ones)&^amp)&highs != 0
}

// appendString quotes s the way encoding/json does by default: control
// characters, quotes and backslashes escaped, <, > and & as \u escapes (HTML
// safe), U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
//
// Almost every string in a document (ids, names, hosts, tags) needs no
// escaping, so runs of safe bytes are skipped eight at a time and copied in
// one append.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && !needsCare(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
		}
		for i < len(s) && s[i] < utf8.RuneSelf && safeASCII[s[i]] {
			i++
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
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
