package dbsync

import (
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
	KindSNI
	KindTarget
	KindRoute
	numKinds
)

// Kinds lists every managed kind, parents first.
var Kinds = []Kind{KindCertificate, KindUpstream, KindService, KindSNI, KindTarget, KindRoute}

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
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// child reports whether entities of k belong to a parent entity.
func (k Kind) child() bool { return k == KindSNI || k == KindTarget || k == KindRoute }

// Entity is one Kong entity: a *kong.Certificate, *kong.SNI, *kong.Upstream,
// *kong.Target, *kong.Service or *kong.Route whose ID is set, and whose
// parent reference (SNI.Certificate, Target.Upstream, Route.Service) is set
// to the parent's id.
type Entity struct {
	Kind Kind
	ID   string
	// Parent is the parent's id for SNIs, targets and routes.
	Parent string
	Obj    any
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
	return s, nil
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
	}
	if id == nil || *id == "" {
		return Entity{}, false
	}
	e.ID = *id
	return e, true
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
