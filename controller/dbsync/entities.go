package dbsync

import (
	"encoding/json"
	"fmt"

	"github.com/kong/go-kong/kong"

	"konductor.dev/controller/translate/declarative"
)

// Kind is an entity collection konductor manages.
type Kind int

// Kinds, parents before their children.
const (
	KindCertificate Kind = iota
	KindUpstream
	KindService
	KindConsumer
	KindSNI
	KindTarget
	KindRoute
	KindKeyAuth
	KindBasicAuth
	KindJWT
	KindACL
	KindHMACAuth
	KindPlugin
	numKinds
)

// Kinds lists every managed kind, parents first.
var Kinds = []Kind{KindCertificate, KindUpstream, KindService, KindConsumer, KindSNI, KindTarget, KindRoute,
	KindKeyAuth, KindBasicAuth, KindJWT, KindACL, KindHMACAuth, KindPlugin}

// credentialKinds are the consumer credentials konductor manages.
var credentialKinds = []Kind{KindKeyAuth, KindBasicAuth, KindJWT, KindACL, KindHMACAuth}

// String returns the Admin API collection name ("routes").
func (k Kind) String() string {
	switch k {
	case KindCertificate:
		return "certificates"
	case KindUpstream:
		return "upstreams"
	case KindService:
		return "services"
	case KindSNI:
		return "snis"
	case KindTarget:
		return "targets"
	case KindRoute:
		return "routes"
	case KindConsumer:
		return "consumers"
	case KindKeyAuth:
		return "key-auths"
	case KindBasicAuth:
		return "basic-auths"
	case KindJWT:
		return "jwts"
	case KindACL:
		return "acls"
	case KindHMACAuth:
		return "hmac-auths"
	case KindPlugin:
		return "plugins"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// maxDepth is the deepest depth of any kind.
const maxDepth = 2

// depth is how many foreign keys lie between k and an entity without a
// parent: 0 for certificates, upstreams, services and consumers; 1 for
// SNIs, targets, routes and credentials; 2 for plugins, which may point at
// a route, a service and a consumer.
func (k Kind) depth() int {
	switch k {
	case KindCertificate, KindUpstream, KindService, KindConsumer:
		return 0
	case KindPlugin:
		return 2
	}
	return 1
}

// credential reports whether k is a consumer credential.
func (k Kind) credential() bool { return k >= KindKeyAuth && k <= KindHMACAuth }

// Entity is one Kong entity: a *kong.Certificate, *kong.SNI, *kong.Upstream,
// *kong.Target, *kong.Service, *kong.Route, *kong.Consumer, a credential
// (*kong.KeyAuth, *kong.BasicAuth, *kong.JWTAuth, *kong.ACLGroup,
// *kong.HMACAuth) or *kong.Plugin whose ID is set, and whose parent
// reference (SNI.Certificate, Target.Upstream, Route.Service, the
// credential's Consumer, the plugin's Route, Service and Consumer) is set to
// the parent's id.
type Entity struct {
	Kind Kind
	ID   string
	// Parent is the parent's id for SNIs, targets, routes and credentials;
	// for plugins, the first of route, service and consumer they name.
	Parent string
	Obj    any
}

// Parents lists every id e refers to: a plugin may name a route, a service
// and a consumer at once.
func (e Entity) Parents() []string {
	p, ok := e.Obj.(*kong.Plugin)
	if !ok {
		if e.Parent == "" {
			return nil
		}
		return []string{e.Parent}
	}
	var out []string
	if p.Route != nil && p.Route.ID != nil {
		out = append(out, *p.Route.ID)
	}
	if p.Service != nil && p.Service.ID != nil {
		out = append(out, *p.Service.ID)
	}
	if p.Consumer != nil && p.Consumer.ID != nil {
		out = append(out, *p.Consumer.ID)
	}
	return out
}

// Name returns the entity's name (target for targets), for messages.
func (e Entity) Name() string {
	var p *string
	switch o := e.Obj.(type) {
	case *kong.Certificate:
		return e.ID
	case *kong.SNI:
		p = o.Name
	case *kong.Upstream:
		p = o.Name
	case *kong.Target:
		p = o.Target
	case *kong.Service:
		p = o.Name
	case *kong.Route:
		p = o.Name
	case *kong.Consumer:
		p = o.Username
		if p == nil {
			p = o.CustomID
		}
	case *kong.Plugin:
		p = o.Name
	case *kong.ACLGroup:
		p = o.Group
	default:
		// Credentials are named by id only: their keys, usernames and
		// secrets never appear in messages.
		return e.ID
	}
	if p == nil {
		return ""
	}
	return *p
}

// Tags returns the entity's tags.
func (e Entity) Tags() []string {
	var tags []*string
	switch o := e.Obj.(type) {
	case *kong.Certificate:
		tags = o.Tags
	case *kong.SNI:
		tags = o.Tags
	case *kong.Upstream:
		tags = o.Tags
	case *kong.Target:
		tags = o.Tags
	case *kong.Service:
		tags = o.Tags
	case *kong.Route:
		tags = o.Tags
	case *kong.Consumer:
		tags = o.Tags
	case *kong.KeyAuth:
		tags = o.Tags
	case *kong.BasicAuth:
		tags = o.Tags
	case *kong.JWTAuth:
		tags = o.Tags
	case *kong.ACLGroup:
		tags = o.Tags
	case *kong.HMACAuth:
		tags = o.Tags
	case *kong.Plugin:
		tags = o.Tags
	}
	return derefAll(tags)
}

// Set holds entities by kind and id.
type Set [numKinds]map[string]Entity

// NewSet returns an empty Set.
func NewSet() *Set {
	var s Set
	for i := range s {
		s[i] = map[string]Entity{}
	}
	return &s
}

// Add puts e in s, replacing an entity of the same kind and id.
func (s *Set) Add(e Entity) { s[e.Kind][e.ID] = e }

// Len counts the entities in s.
func (s *Set) Len() int {
	n := 0
	for _, m := range s {
		n += len(m)
	}
	return n
}

// DesiredSet flattens a declarative configuration into entities, giving
// every child a reference to its parent. The configuration is not modified:
// children are shallow copies. It fails, naming the entity and field, when
// an id is missing or two entities of one kind share an id.
func DesiredSet(cfg *declarative.Config) (*Set, error) {
	s := NewSet()
	if cfg == nil {
		return s, nil
	}
	add := func(kind Kind, id *string, name, parent string, obj any) error {
		if id == nil || *id == "" {
			return fmt.Errorf("desired %s %q: field id: missing (konductor writes entities by id)", kind, name)
		}
		if _, dup := s[kind][*id]; dup {
			return fmt.Errorf("desired %s %q: field id: %s is used twice", kind, name, *id)
		}
		s.Add(Entity{Kind: kind, ID: *id, Parent: parent, Obj: obj})
		return nil
	}
	for i, c := range cfg.Certificates {
		if c == nil {
			return nil, fmt.Errorf("desired certificates[%d]: nil", i)
		}
		cert := c.Certificate
		// SNIs are managed as entities of their own; a certificate's
		// list of names would replace them with untagged ones.
		cert.SNIs = nil
		if err := add(KindCertificate, cert.ID, fmt.Sprintf("certificates[%d]", i), "", &cert); err != nil {
			return nil, err
		}
		for j, sni := range c.SNIs {
			if sni == nil {
				return nil, fmt.Errorf("desired certificates[%d].snis[%d]: nil", i, j)
			}
			child := *sni
			child.Certificate = &kong.Certificate{ID: cert.ID}
			if err := add(KindSNI, child.ID, deref(child.Name), *cert.ID, &child); err != nil {
				return nil, err
			}
		}
	}
	for i, u := range cfg.Upstreams {
		if u == nil {
			return nil, fmt.Errorf("desired upstreams[%d]: nil", i)
		}
		up := u.Upstream
		if err := add(KindUpstream, up.ID, deref(up.Name), "", &up); err != nil {
			return nil, err
		}
		for j, t := range u.Targets {
			if t == nil {
				return nil, fmt.Errorf("desired upstream %q targets[%d]: nil", deref(up.Name), j)
			}
			child := *t
			child.Upstream = &kong.Upstream{ID: up.ID}
			if err := add(KindTarget, child.ID, deref(up.Name)+"/"+deref(child.Target), *up.ID, &child); err != nil {
				return nil, err
			}
		}
	}
	for i, sv := range cfg.Services {
		if sv == nil {
			return nil, fmt.Errorf("desired services[%d]: nil", i)
		}
		svc := sv.Service
		if err := add(KindService, svc.ID, deref(svc.Name), "", &svc); err != nil {
			return nil, err
		}
		for j, r := range sv.Routes {
			if r == nil {
				return nil, fmt.Errorf("desired service %q routes[%d]: nil", deref(svc.Name), j)
			}
			child := *r
			child.Service = &kong.Service{ID: svc.ID}
			if err := add(KindRoute, child.ID, deref(child.Name), *svc.ID, &child); err != nil {
				return nil, err
			}
		}
	}
	for i, c := range cfg.Consumers {
		if c == nil {
			return nil, fmt.Errorf("desired consumers[%d]: nil", i)
		}
		kc := &kong.Consumer{ID: c.ID, Username: c.Username, CustomID: c.CustomID, Tags: c.Tags}
		name := deref(c.Username)
		if name == "" {
			name = deref(c.CustomID)
		}
		if err := add(KindConsumer, c.ID, name, "", kc); err != nil {
			return nil, err
		}
		owner := &kong.Consumer{ID: c.ID}
		for _, list := range []struct {
			kind  Kind
			creds []*declarative.Credential
		}{
			{KindKeyAuth, c.KeyAuthCredentials}, {KindBasicAuth, c.BasicAuthCredentials}, {KindJWT, c.JWTSecrets},
			{KindACL, c.ACLs}, {KindHMACAuth, c.HMACAuthCredentials},
		} {
			for j, cr := range list.creds {
				// Messages name a credential by its index, never by
				// what it holds.
				label := fmt.Sprintf("%s[%d] of consumer %q", list.kind, j, name)
				if cr == nil {
					return nil, fmt.Errorf("desired %s: nil", label)
				}
				if err := add(list.kind, cr.ID, label, *c.ID, credentialObject(list.kind, cr, owner)); err != nil {
					return nil, err
				}
			}
		}
	}
	for i, p := range cfg.Plugins {
		if p == nil {
			return nil, fmt.Errorf("desired plugins[%d]: nil", i)
		}
		kp, err := pluginObject(p)
		if err != nil {
			return nil, fmt.Errorf("desired plugin %q (%s): field config: %w", deref(p.Name), deref(p.ID), err)
		}
		if err := add(KindPlugin, p.ID, deref(p.Name), pluginParent(kp), kp); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// credentialObject turns a declarative credential into go-kong's type for
// kind, owned by consumer.
func credentialObject(kind Kind, c *declarative.Credential, consumer *kong.Consumer) any {
	switch kind {
	case KindKeyAuth:
		return &kong.KeyAuth{ID: c.ID, Key: c.Key, Consumer: consumer, Tags: c.Tags}
	case KindBasicAuth:
		return &kong.BasicAuth{ID: c.ID, Username: c.Username, Password: c.Password, Consumer: consumer, Tags: c.Tags}
	case KindJWT:
		return &kong.JWTAuth{ID: c.ID, Key: c.Key, Algorithm: c.Algorithm, Secret: c.Secret, RSAPublicKey: c.RSAPublicKey, Consumer: consumer, Tags: c.Tags}
	case KindACL:
		return &kong.ACLGroup{ID: c.ID, Group: c.Group, Consumer: consumer, Tags: c.Tags}
	case KindHMACAuth:
		return &kong.HMACAuth{ID: c.ID, Username: c.Username, Secret: c.Secret, Consumer: consumer, Tags: c.Tags}
	}
	return nil
}

// pluginObject turns a declarative plugin into go-kong's type. The config,
// rendered once as JSON by the translator, is decoded into the map go-kong
// sends; it is decoded per sync of a new configuration only.
func pluginObject(p *declarative.Plugin) (*kong.Plugin, error) {
	kp := &kong.Plugin{ID: p.ID, Name: p.Name, InstanceName: p.InstanceName, Enabled: p.Enabled, Protocols: p.Protocols, Tags: p.Tags}
	if p.Config != nil && len(p.Config.Bytes()) > 0 {
		if err := json.Unmarshal(p.Config.Bytes(), &kp.Config); err != nil {
			return nil, err
		}
	}
	if p.Route != nil {
		kp.Route = &kong.Route{ID: p.Route}
	}
	if p.Service != nil {
		kp.Service = &kong.Service{ID: p.Service}
	}
	if p.Consumer != nil {
		kp.Consumer = &kong.Consumer{ID: p.Consumer}
	}
	return kp, nil
}

// pluginParent is the first entity a plugin names: route, service, consumer.
func pluginParent(p *kong.Plugin) string {
	switch {
	case p.Route != nil && p.Route.ID != nil:
		return *p.Route.ID
	case p.Service != nil && p.Service.ID != nil:
		return *p.Service.ID
	case p.Consumer != nil && p.Consumer.ID != nil:
		return *p.Consumer.ID
	}
	return ""
}

// existing wraps an entity read from Kong. It reports false when the entity
// has no id, which Kong never sends.
func existing(kind Kind, obj any) (Entity, bool) {
	e := Entity{Kind: kind, Obj: obj}
	var id *string
	switch o := obj.(type) {
	case *kong.Certificate:
		id = o.ID
	case *kong.SNI:
		id = o.ID
		if o.Certificate != nil {
			e.Parent = deref(o.Certificate.ID)
		}
	case *kong.Upstream:
		id = o.ID
	case *kong.Target:
		id = o.ID
		if o.Upstream != nil {
			e.Parent = deref(o.Upstream.ID)
		}
	case *kong.Service:
		id = o.ID
	case *kong.Route:
		id = o.ID
		if o.Service != nil {
			e.Parent = deref(o.Service.ID)
		}
	case *kong.Consumer:
		id = o.ID
	case *kong.KeyAuth:
		id, e.Parent = o.ID, consumerID(o.Consumer)
	case *kong.BasicAuth:
		id, e.Parent = o.ID, consumerID(o.Consumer)
	case *kong.JWTAuth:
		id, e.Parent = o.ID, consumerID(o.Consumer)
	case *kong.ACLGroup:
		id, e.Parent = o.ID, consumerID(o.Consumer)
	case *kong.HMACAuth:
		id, e.Parent = o.ID, consumerID(o.Consumer)
	case *kong.Plugin:
		id, e.Parent = o.ID, pluginParent(o)
	}
	if id == nil || *id == "" {
		return Entity{}, false
	}
	e.ID = *id
	return e, true
}

func consumerID(c *kong.Consumer) string {
	if c == nil {
		return ""
	}
	return deref(c.ID)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefAll(ps []*string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}
