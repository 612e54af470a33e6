package proxy

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// hmac-auth: requests signed with a consumer's shared secret
// (draft-cavage HTTP signatures, as Kong's plugin reads them).
type hmacAuth struct {
	noResponse
	conf struct {
		HideCredentials bool     `json:"hide_credentials"`
		ValidateBody    bool     `json:"validate_request_body"`
		ClockSkew       float64  `json:"clock_skew"`
		Anonymous       string   `json:"anonymous"`
		EnforceHeaders  []string `json:"enforce_headers"`
		Algorithms      []string `json:"algorithms"`
		Realm           *string  `json:"realm"`
	}
}

var hmacFields = regexp.MustCompile(`^\s*[Hh]mac\s*username="(.+)",\s*algorithm="(.+)",\s*headers="(.+)",\s*signature="(.+)"`)

const (
	msgHMACNotValid = "HMAC signature cannot be verified"
	msgHMACNotSame  = "HMAC signature does not match"
)

func (a *hmacAuth) access(x *exchange) {
	c := &a.conf
	if c.Anonymous != "" && x.credential != "" {
		return
	}
	msg, wwwAuth := a.authenticate(x)
	if msg == "" {
		return
	}
	if c.Anonymous != "" {
		x.anonymous(c.Anonymous)
		return
	}
	x.errorExit(http.StatusUnauthorized, msg, "WWW-Authenticate", wwwAuth)
}

func (a *hmacAuth) clockOK(x *exchange, header string) bool {
	v := x.r.Header.Get(header)
	if v == "" {
		return false
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return false
	}
	skew := x.now.Sub(t)
	if skew < 0 {
		skew = -skew
	}
	return skew <= time.Duration(a.conf.ClockSkew*float64(time.Second))
}

type hmacParams struct {
	username, algorithm, signature string
	headers                        []string
}

func parseHMAC(v string) *hmacParams {
	m := hmacFields.FindStringSubmatch(v)
	if m == nil {
		return nil
	}
	return &hmacParams{username: m[1], algorithm: m[2], headers: strings.Split(m[3], " "), signature: m[4]}
}

func (a *hmacAuth) authenticate(x *exchange) (string, string) {
	c := &a.conf
	wwwAuth := "hmac"
	if c.Realm != nil {
		wwwAuth = `hmac realm="` + *c.Realm + `"`
	}
	authz, proxyAuthz := x.r.Header.Get("Authorization"), x.r.Header.Get("Proxy-Authorization")
	if authz == "" && proxyAuthz == "" {
		return "Unauthorized", wwwAuth
	}
	if !a.clockOK(x, "X-Date") && !a.clockOK(x, "Date") {
		return msgHMACNotValid + ", a valid date or x-date header is required for HMAC Authentication", wwwAuth
	}
	params := parseHMAC(proxyAuthz)
	if params == nil {
		params = parseHMAC(authz)
		if c.HideCredentials {
			x.up.Del("Authorization")
		}
	} else if c.HideCredentials {
		x.up.Del("Proxy-Authorization")
	}
	if params == nil || !a.validParams(params) {
		return msgHMACNotValid, wwwAuth
	}
	cred := x.ps.hmac[params.username]
	if cred == nil {
		return msgHMACNotValid, wwwAuth
	}
	want := hmacSign(params, cred.Secret, x.r)
	got, err := base64.StdEncoding.DecodeString(params.signature)
	if err != nil || !hmac.Equal(want, got) {
		return msgHMACNotSame, wwwAuth
	}
	if c.ValidateBody {
		sum := sha256.Sum256(x.readBody())
		if x.r.Header.Get("Digest") != "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]) {
			return msgHMACNotSame, wwwAuth
		}
	}
	x.setConsumer(x.ps.consumers[cred.ConsumerID], cred.ID, cred.Username)
	return "", ""
}

func (a *hmacAuth) validParams(p *hmacParams) bool {
	have := map[string]bool{}
	for _, h := range p.headers {
		have[h] = true
	}
	for _, h := range a.conf.EnforceHeaders {
		if !have[h] {
			return false
		}
	}
	for _, alg := range a.conf.Algorithms {
		if alg == p.algorithm {
			return true
		}
	}
	return false
}

// hmacSign computes the signature of the signing string Kong builds: one
// "name: value" line per listed header, the request line for
// "request-line" and "@request-target".
func hmacSign(p *hmacParams, secret string, r *http.Request) []byte {
	var newHash func() hash.Hash
	switch p.algorithm {
	case "hmac-sha1":
		newHash = sha1.New
	case "hmac-sha384":
		newHash = sha512.New384
	case "hmac-sha512":
		newHash = sha512.New
	default:
		newHash = sha256.New
	}
	uri := r.URL.RequestURI()
	lines := make([]string, len(p.headers))
	for i, h := range p.headers {
		v := r.Header.Get(h)
		switch {
		case v != "":
			lines[i] = h + ": " + v
		case h == "@request-target":
			lines[i] = h + ": " + strings.ToLower(r.Method) + " " + uri
		case h == "request-line":
			lines[i] = fmt.Sprintf("%s %s HTTP/%d.%d", r.Method, uri, r.ProtoMajor, r.ProtoMinor)
		case strings.EqualFold(h, "host"):
			lines[i] = h + ": " + r.Host
		default:
			lines[i] = h + ":"
		}
	}
	m := hmac.New(newHash, []byte(secret))
	m.Write([]byte(strings.Join(lines, "\n")))
	return m.Sum(nil)
}
