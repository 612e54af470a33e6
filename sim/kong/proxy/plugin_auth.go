package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"hash"
	"math"
	"math/big"
	"net/http"
	"regexp"
	"strings"
)

// key-auth: a key from a header or the query string names a credential.
type keyAuth struct {
	noResponse
	conf struct {
		KeyNames        []string `json:"key_names"`
		HideCredentials bool     `json:"hide_credentials"`
		Anonymous       string   `json:"anonymous"`
		KeyInHeader     bool     `json:"key_in_header"`
		KeyInQuery      bool     `json:"key_in_query"`
		KeyInBody       bool     `json:"key_in_body"`
		RunOnPreflight  bool     `json:"run_on_preflight"`
		Realm           *string  `json:"realm"`
	}
}

func (k *keyAuth) access(x *exchange) {
	c := &k.conf
	if !c.RunOnPreflight && x.r.Method == http.MethodOptions {
		return
	}
	if c.Anonymous != "" && x.credential != "" {
		return // another method authenticated already (logical OR)
	}
	status, msg, wwwAuth := k.authenticate(x)
	if status == 0 {
		return
	}
	if c.Anonymous != "" {
		x.anonymous(c.Anonymous)
		return
	}
	x.errorExit(status, msg, "WWW-Authenticate", wwwAuth)
}

func (k *keyAuth) authenticate(x *exchange) (int, string, string) {
	c := &k.conf
	wwwAuth := "Key"
	if c.Realm != nil {
		wwwAuth = `Key realm="` + *c.Realm + `"`
	}
	var key string
	var query map[string][]string
	var body map[string]any
	bodyType := ""
	for _, name := range c.KeyNames {
		var vals []string
		if c.KeyInHeader {
			vals = x.r.Header.Values(name)
		}
		if len(vals) == 0 && c.KeyInQuery {
			if query == nil {
				query = x.query()
			}
			vals = query[name]
		}
		if len(vals) == 0 && c.KeyInBody {
			if body == nil {
				body, bodyType = x.bodyArgs()
			}
			switch v := body[name].(type) {
			case string:
				vals = []string{v}
			case []string:
				vals = v
			case []any:
				vals = make([]string, len(v))
			}
		}
		if len(vals) > 1 {
			return http.StatusUnauthorized, "Duplicate API key found", wwwAuth
		}
		if len(vals) == 1 {
			key = vals[0]
			if c.HideCredentials {
				x.up.Del(name)
				x.removeQueryArg(name)
				if c.KeyInBody {
					if body == nil {
						body, bodyType = x.bodyArgs()
					}
					if _, ok := body[name]; ok {
						delete(body, name)
						x.setBodyArgs(body, bodyType)
					}
				}
			}
			break
		}
	}
	if key == "" {
		return http.StatusUnauthorized, "No API key found in request", wwwAuth
	}
	cred := x.ps.keyAuth[key]
	if cred == nil {
		return http.StatusUnauthorized, "Unauthorized", wwwAuth
	}
	x.setConsumer(x.ps.consumers[cred.ConsumerID], cred.ID, cred.ID)
	return 0, "", ""
}

// basic-auth: "Authorization: Basic base64(username:password)".
type basicAuth struct {
	noResponse
	conf struct {
		Anonymous       string `json:"anonymous"`
		HideCredentials bool   `json:"hide_credentials"`
		Realm           string `json:"realm"`
	}
}

var basicScheme = regexp.MustCompile(`^\s*[Bb]asic\s*(.+)`)

func (b *basicAuth) access(x *exchange) {
	c := &b.conf
	if c.Anonymous != "" && x.credential != "" {
		return
	}
	if b.authenticate(x) {
		return
	}
	if c.Anonymous != "" {
		x.anonymous(c.Anonymous)
		return
	}
	x.errorExit(http.StatusUnauthorized, "Unauthorized", "WWW-Authenticate", `Basic realm="`+c.Realm+`"`)
}

func (b *basicAuth) credentials(x *exchange, header string) (string, string, bool) {
	v := x.r.Header.Get(header)
	if b.conf.HideCredentials {
		x.up.Del(header)
	}
	m := basicScheme.FindStringSubmatch(v)
	if m == nil {
		return "", "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(m[1]))
	if err != nil {
		return "", "", false
	}
	user, pass, ok := strings.Cut(string(decoded), ":")
	return user, pass, ok && user != ""
}

func (b *basicAuth) authenticate(x *exchange) bool {
	if x.r.Header.Get("Authorization") == "" && x.r.Header.Get("Proxy-Authorization") == "" {
		return false
	}
	var cred *BasicAuthCredential
	user, pass, ok := b.credentials(x, "Proxy-Authorization")
	if ok {
		cred = x.ps.basicAuth[user]
	}
	if cred == nil {
		if user, pass, ok = b.credentials(x, "Authorization"); !ok {
			return false
		}
		cred = x.ps.basicAuth[user]
	}
	if cred == nil {
		return false
	}
	sum := sha1.Sum([]byte(pass + cred.ConsumerID))
	if !hmac.Equal([]byte(hex.EncodeToString(sum[:])), []byte(cred.PasswordHash)) {
		return false
	}
	x.setConsumer(x.ps.consumers[cred.ConsumerID], cred.ID, cred.Username)
	return true
}

// acl: allow or deny consumers by the groups of their ACL entities.
type acl struct {
	noResponse
	conf struct {
		Allow            []string `json:"allow"`
		Deny             []string `json:"deny"`
		HideGroupsHeader bool     `json:"hide_groups_header"`
	}
}

const msgACLDenied = "You cannot consume this service"

func (a *acl) access(x *exchange) {
	c := &a.conf
	deny := len(c.Deny) > 0
	list := c.Allow
	if deny {
		list = c.Deny
	}
	if x.consumer == nil {
		if x.credential != "" {
			x.errorExit(http.StatusForbidden, msgACLDenied)
		} else {
			x.errorExit(http.StatusUnauthorized, "Unauthorized")
		}
		return
	}
	var groups []string
	ag := x.ps.groups[x.consumer.ID]
	if ag != nil {
		groups = ag.list
	}
	if len(groups) == 0 && !deny {
		if x.credential != "" {
			x.errorExit(http.StatusForbidden, msgACLDenied)
		} else {
			x.errorExit(http.StatusUnauthorized, "Unauthorized")
		}
		return
	}
	in := false
	for _, g := range groups {
		for _, want := range list {
			in = in || g == want
		}
	}
	if in == deny {
		x.errorExit(http.StatusForbidden, msgACLDenied)
		return
	}
	if !c.HideGroupsHeader && ag != nil {
		x.up["X-Consumer-Groups"] = []string{ag.header}
	}
}

// jwt: a signed token whose key claim names a jwt_secret.
type jwtAuth struct {
	noResponse
	conf struct {
		URIParamNames     []string `json:"uri_param_names"`
		CookieNames       []string `json:"cookie_names"`
		HeaderNames       []string `json:"header_names"`
		KeyClaimName      string   `json:"key_claim_name"`
		SecretIsBase64    bool     `json:"secret_is_base64"`
		ClaimsToVerify    []string `json:"claims_to_verify"`
		Anonymous         string   `json:"anonymous"`
		RunOnPreflight    bool     `json:"run_on_preflight"`
		MaximumExpiration float64  `json:"maximum_expiration"`
		Realm             *string  `json:"realm"`
	}
}

var bearerScheme = regexp.MustCompile(`^\s*[Bb]earer\s+(.+)`)

func (j *jwtAuth) access(x *exchange) {
	c := &j.conf
	if !c.RunOnPreflight && x.r.Method == http.MethodOptions {
		return
	}
	if c.Anonymous != "" && x.credential != "" {
		return
	}
	status, body, wwwAuth := j.authenticate(x)
	if status == 0 {
		return
	}
	if c.Anonymous != "" {
		x.anonymous(c.Anonymous)
		return
	}
	x.setExit(status, body, "application/json; charset=utf-8", "WWW-Authenticate", wwwAuth)
}

// tokens gathers the distinct tokens of the request.
func (j *jwtAuth) tokens(x *exchange) []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	q := x.query()
	for _, n := range j.conf.URIParamNames {
		for _, v := range q[n] {
			add(v)
		}
	}
	for _, n := range j.conf.CookieNames {
		if ck, err := x.r.Cookie(n); err == nil {
			add(ck.Value)
		}
	}
	for _, n := range j.conf.HeaderNames {
		for _, v := range x.r.Header.Values(n) {
			if m := bearerScheme.FindStringSubmatch(v); m != nil {
				add(m[1])
			}
		}
	}
	return out
}

func (j *jwtAuth) authenticate(x *exchange) (int, []byte, string) {
	c := &j.conf
	base := "Bearer"
	if c.Realm != nil {
		base = `Bearer realm="` + *c.Realm + `"`
	}
	withErr := base + ` error="invalid_token"`
	msg := func(m string) []byte { b, _ := json.Marshal(map[string]string{"message": m}); return b }
	tokens := j.tokens(x)
	switch len(tokens) {
	case 0:
		return 401, msg("Unauthorized"), base
	case 1:
	default:
		return 401, msg("Multiple tokens provided"), withErr
	}
	tok, err := parseJWT(tokens[0])
	if err != "" {
		return 401, msg("Bad token; " + err), withErr
	}
	keyVal, present := tok.claims[c.KeyClaimName]
	if !present {
		keyVal, present = tok.header[c.KeyClaimName]
	}
	key, _ := keyVal.(string)
	switch {
	case !present:
		return 401, msg("No mandatory '" + c.KeyClaimName + "' in claims"), withErr
	case key == "":
		return 401, msg("Invalid '" + c.KeyClaimName + "' in claims"), withErr
	}
	secret := x.ps.jwt[key]
	if secret == nil {
		return 401, msg("No credentials found for given '" + c.KeyClaimName + "'"), withErr
	}
	alg := secret.Algorithm
	if alg == "" {
		alg = "HS256"
	}
	if tok.header["alg"] != alg {
		return 401, msg("Invalid algorithm"), withErr
	}
	var keyMaterial []byte
	if strings.HasPrefix(alg, "HS") {
		keyMaterial = []byte(secret.Secret)
		if c.SecretIsBase64 {
			keyMaterial, _ = base64.RawURLEncoding.DecodeString(strings.TrimRight(secret.Secret, "="))
		}
	} else {
		keyMaterial = []byte(secret.RSAPublicKey)
	}
	if len(keyMaterial) == 0 {
		return 401, msg("Invalid key/secret"), withErr
	}
	if !verifyJWT(alg, tok.signed, tok.signature, keyMaterial) {
		return 401, msg("Invalid signature"), withErr
	}
	if errs := tok.verifyClaims(c.ClaimsToVerify, x.now.Unix(), c.MaximumExpiration); errs != nil {
		b, _ := json.Marshal(errs)
		return 401, b, withErr
	}
	cons := x.ps.consumers[secret.ConsumerID]
	if cons == nil {
		return 401, msg("Could not find consumer for '" + c.KeyClaimName + "=" + key + "'"), withErr
	}
	x.setConsumer(cons, secret.ID, secret.Key)
	return 0, nil, ""
}

type jwtToken struct {
	header, claims map[string]any
	signed         []byte // header.payload
	signature      []byte
}

func parseJWT(s string) (*jwtToken, string) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, "invalid JWT"
	}
	t := &jwtToken{signed: []byte(parts[0] + "." + parts[1])}
	dec := func(p string) ([]byte, bool) {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p, "="))
		return b, err == nil
	}
	h, ok1 := dec(parts[0])
	c, ok2 := dec(parts[1])
	sig, ok3 := dec(parts[2])
	if !ok1 || !ok2 || !ok3 || json.Unmarshal(h, &t.header) != nil || json.Unmarshal(c, &t.claims) != nil {
		return nil, "invalid JWT"
	}
	t.signature = sig
	return t, ""
}

func jwtHash(alg string) (crypto.Hash, func() hash.Hash) {
	switch alg[2:] {
	case "384":
		return crypto.SHA384, sha512.New384
	case "512":
		return crypto.SHA512, sha512.New
	}
	return crypto.SHA256, sha256.New
}

func verifyJWT(alg string, signed, sig, key []byte) bool {
	if strings.HasPrefix(alg, "HS") {
		_, newHash := jwtHash(alg)
		m := hmac.New(newHash, key)
		m.Write(signed)
		return hmac.Equal(m.Sum(nil), sig)
	}
	block, _ := pem.Decode(key)
	if block == nil {
		return false
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		cert, cerr := x509.ParseCertificate(block.Bytes)
		if cerr != nil {
			return false
		}
		pub = cert.PublicKey
	}
	if alg == "EdDSA" {
		k, ok := pub.(ed25519.PublicKey)
		return ok && ed25519.Verify(k, signed, sig)
	}
	h, newHash := jwtHash(alg)
	d := newHash()
	d.Write(signed)
	digest := d.Sum(nil)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if strings.HasPrefix(alg, "PS") {
			return rsa.VerifyPSS(k, h, digest, sig, nil) == nil
		}
		return strings.HasPrefix(alg, "RS") && rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case *ecdsa.PublicKey:
		n := len(sig) / 2
		if !strings.HasPrefix(alg, "ES") || n == 0 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// verifyClaims checks exp and nbf as Kong's jwt plugin does; the errors
// map claims to messages.
func (t *jwtToken) verifyClaims(names []string, now int64, maxExp float64) map[string]string {
	errs := map[string]string{}
	for _, n := range names {
		v, ok := t.claims[n]
		if !ok {
			continue
		}
		f, isNum := v.(float64)
		if !isNum {
			errs[n] = "must be a number"
			continue
		}
		switch n {
		case "exp":
			if f <= float64(now) {
				errs[n] = "token expired"
			}
		case "nbf":
			if f > float64(now) {
				errs[n] = "token not valid yet"
			}
		}
	}
	if maxExp > 0 {
		if exp, ok := t.claims["exp"].(float64); !ok {
			errs["exp"] = "required field missing"
		} else if exp-float64(now) > maxExp && !math.IsNaN(exp) {
			errs["exp"] = "exceeds maximum allowed expiration"
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
