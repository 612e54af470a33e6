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
	return n
}
