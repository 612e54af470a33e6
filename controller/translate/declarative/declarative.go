// Package declarative holds the Kong declarative configuration (format 3.0)
// that konductor pushes to DB-less Kong with POST /config.
//
// Entities are go-kong's own types (kong.Service, kong.Route, kong.Upstream,
// kong.Target, kong.Certificate, kong.SNI), wrapped only where the declarative
// format nests children under a parent. Keeping go-kong's types means the
// DB-mode sync can hand the very same entities to the Admin API through
// go-kong, and the JSON field names are Kong's by construction.
//
// Children are nested (routes under services, targets under upstreams, SNIs
// under certificates), so they carry no foreign key: the parent is implied.
package declarative

import "github.com/kong/go-kong/kong"

// FormatVersion is the declarative format konductor writes.
const FormatVersion = "3.0"

// Config is one complete declarative document. All slices are sorted by the
// producer; Marshal does not reorder.
type Config struct {
	FormatVersion string         `json:"_format_version"`
	Services      []*Service     `json:"services,omitempty"`
	Upstreams     []*Upstream    `json:"upstreams,omitempty"`
	Certificates  []*Certificate `json:"certificates,omitempty"`
	Plugins       []*Plugin      `json:"plugins,omitempty"`
	Consumers     []*Consumer    `json:"consumers,omitempty"`
}

// Consumer is a Kong consumer with its credentials nested.
type Consumer struct {
	ID                   *string       `json:"id,omitempty"`
	Username             *string       `json:"username,omitempty"`
	CustomID             *string       `json:"custom_id,omitempty"`
	Tags                 []*string     `json:"tags,omitempty"`
	KeyAuthCredentials   []*Credential `json:"keyauth_credentials,omitempty"`
	BasicAuthCredentials []*Credential `json:"basicauth_credentials,omitempty"`
	JWTSecrets           []*Credential `json:"jwt_secrets,omitempty"`
	ACLs                 []*Credential `json:"acls,omitempty"`
	HMACAuthCredentials  []*Credential `json:"hmacauth_credentials,omitempty"`
}

// Credential is one credential of a consumer. The kinds share one type;
// each sets only its own fields (key-auth: key; basic-auth: username,
// password; jwt: key, algorithm, secret, rsa_public_key; acl: group;
// hmac-auth: username, secret).
type Credential struct {
	ID           *string   `json:"id,omitempty"`
	Key          *string   `json:"key,omitempty"`
	Username     *string   `json:"username,omitempty"`
	Password     *string   `json:"password,omitempty"`
	Secret       *string   `json:"secret,omitempty"`
	Algorithm    *string   `json:"algorithm,omitempty"`
	RSAPublicKey *string   `json:"rsa_public_key,omitempty"`
	Group        *string   `json:"group,omitempty"`
	Tags         []*string `json:"tags,omitempty"`
}

// Plugin is a Kong plugin at the top level of the document. Its parent is
// named by id in Route, Service or Consumer (none of them for a global
// plugin). It is konductor's own type rather than kong.Plugin: the config
// is rendered once per KongPlugin and shared by every entity it is attached
// to, instead of being re-encoded from a map for each of them.
type Plugin struct {
	ID           *string    `json:"id,omitempty"`
	Name         *string    `json:"name,omitempty"`
	InstanceName *string    `json:"instance_name,omitempty"`
	Config       *RawObject `json:"config,omitempty"`
	Enabled      *bool      `json:"enabled,omitempty"`
	Protocols    []*string  `json:"protocols,omitempty"`
	Route        *string    `json:"route,omitempty"`
	Service      *string    `json:"service,omitempty"`
	Consumer     *string    `json:"consumer,omitempty"`
	Tags         []*string  `json:"tags,omitempty"`
}

// RawObject is a JSON object rendered verbatim; it must be compact, as
// encoding/json would render it.
type RawObject struct{ json []byte }

// NewRawObject wraps compact JSON.
func NewRawObject(compact []byte) *RawObject { return &RawObject{compact} }

// Set makes r render compact.
func (r *RawObject) Set(compact []byte) { r.json = compact }

// Bytes returns the JSON; the caller must not modify it.
func (r *RawObject) Bytes() []byte { return r.json }

// MarshalJSON renders the object as given ("null" when empty).
func (r RawObject) MarshalJSON() ([]byte, error) {
	if len(r.json) == 0 {
		return []byte("null"), nil
	}
	return r.json, nil
}

// Service is a Kong service with its routes nested.
type Service struct {
	kong.Service
	Routes []*kong.Route `json:"routes,omitempty"`
}

// Upstream is a Kong upstream with its targets nested.
type Upstream struct {
	kong.Upstream
	Targets []*kong.Target `json:"targets,omitempty"`
}

// Certificate is a Kong certificate with its SNIs nested as entities. The
// declarative format wants SNI records here, whereas kong.Certificate.SNIs is
// the Admin API's list-of-names shorthand; this field shadows it in JSON.
type Certificate struct {
	kong.Certificate
	SNIs []*kong.SNI `json:"snis,omitempty"`
}

// New returns an empty document of the current format.
func New() *Config { return &Config{FormatVersion: FormatVersion} }

// Marshal renders the document as compact JSON. Field order follows the
// struct declarations and every slice is pre-sorted, so equal documents
// always render to equal bytes.
func (c *Config) Marshal() ([]byte, error) { return c.MarshalJSON() }

// Counts reports how many entities of each kind the document holds, which is
// handy for logs and metrics.
func (c *Config) Counts() map[string]int {
	n := map[string]int{"services": len(c.Services), "upstreams": len(c.Upstreams), "certificates": len(c.Certificates)}
	for _, s := range c.Services {
		n["routes"] += len(s.Routes)
	}
	for _, u := range c.Upstreams {
		n["targets"] += len(u.Targets)
	}
	for _, cert := range c.Certificates {
		n["snis"] += len(cert.SNIs)
	}
	n["plugins"] = len(c.Plugins)
	n["consumers"] = len(c.Consumers)
	for _, cs := range c.Consumers {
		n["credentials"] += len(cs.KeyAuthCredentials) + len(cs.BasicAuthCredentials) + len(cs.JWTSecrets) +
			len(cs.ACLs) + len(cs.HMACAuthCredentials)
	}
	return n
}
