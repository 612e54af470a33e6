package translate

import (
	"github.com/kong/go-kong/kong"

	"konductor.dev/controller/translate/declarative"
)

// go-kong entities are all pointers: built naively, a route costs a dozen
// small allocations, and a 10k-Ingress snapshot makes close to a million,
// which the garbage collector then has to trace. Each entity below is
// allocated as one block holding the entity and the values its pointer
// fields point at. Apart from tag lists (see tagsFor), nothing is shared
// between entities, so a consumer may modify one entity without affecting
// another.

type routeBlock struct {
	route                               kong.Route
	id, name, pathHandling              string
	stripPath, preserveHost             bool
	requestBuffering, responseBuffering bool
	regexPriority, httpsRedirectCode    int
}

func (t *translator) route(tags []*string, name string, hosts, paths []string, rs routeSettings) *kong.Route {
	b := &routeBlock{
		id: t.entityID("routes", name), name: name, pathHandling: rs.pathHandling,
		stripPath: rs.stripPath, preserveHost: rs.preserveHost,
		requestBuffering: rs.requestBuffering, responseBuffering: rs.responseBuffering,
		regexPriority: rs.regexPriority, httpsRedirectCode: rs.httpsRedirectCode,
	}
	lists := stringPointers(hosts, paths, rs.protocols, rs.methods)
	r := &b.route
	r.ID, r.Name, r.PathHandling = &b.id, &b.name, &b.pathHandling
	r.Hosts, r.Paths, r.Protocols, r.Methods = lists[0], lists[1], lists[2], lists[3]
	r.StripPath, r.PreserveHost = &b.stripPath, &b.preserveHost
	r.RequestBuffering, r.ResponseBuffering = &b.requestBuffering, &b.responseBuffering
	r.RegexPriority, r.HTTPSRedirectStatusCode = &b.regexPriority, &b.httpsRedirectCode
	r.Tags = tags
	return r
}

// stringPointers turns string lists into go-kong's []*string with two
// allocations in all; an empty list stays nil (omitted from the JSON).
func stringPointers(lists ...[]string) [][]*string {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	values := make([]string, 0, n)
	ptrs := make([]*string, n)
	out := make([][]*string, len(lists))
	for i, l := range lists {
		if len(l) == 0 {
			continue
		}
		start := len(values)
		values = append(values, l...)
		for j := start; j < len(values); j++ {
			ptrs[j] = &values[j]
		}
		out[i] = ptrs[start:len(values):len(values)]
	}
	return out
}

type serviceBlock struct {
	service                                         declarative.Service
	id, name, host, protocol, path                  string
	port, connectTimeout, readTimeout, writeTimeout int
	retries                                         int
}

func (t *translator) service(tags []*string, name, host string, port int, ss serviceSettings) *declarative.Service {
	b := &serviceBlock{
		id: t.entityID("services", name), name: name, host: host, protocol: ss.protocol, path: ss.path,
		port: port, connectTimeout: ss.connectTimeout, readTimeout: ss.readTimeout, writeTimeout: ss.writeTimeout,
		retries: ss.retries,
	}
	s := &b.service
	s.ID, s.Name, s.Host, s.Protocol, s.Port = &b.id, &b.name, &b.host, &b.protocol, &b.port
	if b.path != "" {
		s.Path = &b.path
	}
	s.ConnectTimeout, s.ReadTimeout, s.WriteTimeout, s.Retries = &b.connectTimeout, &b.readTimeout, &b.writeTimeout, &b.retries
	s.Tags = tags
	return s
}

type targetBlock struct {
	target   kong.Target
	id, addr string
	weight   int
}

func (t *translator) target(tags []*string, upstream, addr string) *kong.Target {
	b := &targetBlock{id: t.entityID("targets", upstream+"/"+addr), addr: addr, weight: targetWeight}
	b.target.ID, b.target.Target, b.target.Weight = &b.id, &b.addr, &b.weight
	b.target.Tags = tags
	return &b.target
}
