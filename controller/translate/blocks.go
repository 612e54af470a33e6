package translate

import (
	"github.com/kong/go-kong/kong"

	"konductor.dev/controller/translate/declarative"
)

// go-kong entities are all pointers: built naively, a route costs a dozen
// small allocations. Each entity below is one block holding the entity and
// the values its pointer fields point at, and blocks come from slabs (see
// alloc.go).

type routeBlock struct {
	route                               kong.Route
	id, name, pathHandling              string
	stripPath, preserveHost             bool
	requestBuffering, responseBuffering bool
	regexPriority, httpsRedirectCode    int
}

func (bd *builder) route(tags []*string, id, name string, hosts, paths []string, rs *routeSettings, regexPriority int) *kong.Route {
	b := bd.routeBlocks.one()
	*b = routeBlock{
		id: id, name: name, pathHandling: rs.pathHandling,
		stripPath: rs.stripPath, preserveHost: rs.preserveHost,
		requestBuffering: rs.requestBuffering, responseBuffering: rs.responseBuffering,
		regexPriority: regexPriority, httpsRedirectCode: rs.httpsRedirectCode,
	}
	r := &b.route
	r.ID, r.Name, r.PathHandling = &b.id, &b.name, &b.pathHandling
	r.Hosts, r.Paths = bd.stringList(hosts), bd.stringList(paths)
	r.Protocols, r.Methods = bd.stringList(rs.protocols), bd.stringList(rs.methods)
	r.StripPath, r.PreserveHost = &b.stripPath, &b.preserveHost
	r.RequestBuffering, r.ResponseBuffering = &b.requestBuffering, &b.responseBuffering
	r.RegexPriority, r.HTTPSRedirectStatusCode = &b.regexPriority, &b.httpsRedirectCode
	r.Tags = tags
	if len(rs.snis) > 0 {
		r.SNIs = bd.stringList(rs.snis)
	}
	// Header matches are rare; the map is shared by the routes of one
	// Ingress and must be treated as read-only, as the tags are.
	r.Headers = rs.headers
	return r
}

// exprPart holds the expression and priority of an expression route.
type exprPart struct {
	expression string
	priority   uint64
}

// expressionRoute makes the expression route (see expression.go) with the
// settings of the traditional route route would make.
func (bd *builder) expressionRoute(tags []*string, id, name string, hosts, paths []string, rs *routeSettings, regexPriority int) *kong.Route {
	r := bd.route(tags, id, name, nil, nil, rs, 0)
	r.Methods, r.SNIs, r.Headers, r.RegexPriority = nil, nil, nil, nil
	tb := &bd.text
	tb.reset()
	tb.buf = appendExpression(tb.buf, hosts, paths, rs)
	tb.end()
	x := bd.exprParts.one()
	x.expression = tb.cut().at(0)
	x.priority = expressionPriority(hosts, paths, rs, regexPriority)
	r.Expression, r.Priority = &x.expression, &x.priority
	return r
}

// stringList turns a string list into go-kong's []*string, a copy owned by
// one entity; an empty list stays nil (omitted from the JSON).
func (bd *builder) stringList(l []string) []*string {
	if len(l) == 0 {
		return nil
	}
	values := bd.strings.take(len(l))
	copy(values, l)
	ptrs := bd.stringPtrs.take(len(l))
	for i := range values {
		ptrs[i] = &values[i]
	}
	return ptrs
}

type serviceBlock struct {
	service                                         declarative.Service
	id, name, host, protocol, path                  string
	port, connectTimeout, readTimeout, writeTimeout int
	retries, tlsVerifyDepth                         int
	tlsVerify                                       bool
}

func (bd *builder) service(tags []*string, id, name, host string, port int, ss *serviceSettings) *declarative.Service {
	b := bd.serviceBlocks.one()
	*b = serviceBlock{
		id: id, name: name, host: host, protocol: ss.protocol, path: ss.path,
		port: port, connectTimeout: ss.connectTimeout, readTimeout: ss.readTimeout, writeTimeout: ss.writeTimeout,
		retries: ss.retries,
	}
	s := &b.service
	s.ID, s.Name, s.Host, s.Protocol, s.Port = &b.id, &b.name, &b.host, &b.protocol, &b.port
	if b.path != "" {
		s.Path = &b.path
	}
	s.ConnectTimeout, s.ReadTimeout, s.WriteTimeout, s.Retries = &b.connectTimeout, &b.readTimeout, &b.writeTimeout, &b.retries
	if ss.tlsVerify != nil {
		b.tlsVerify = *ss.tlsVerify
		s.TLSVerify = &b.tlsVerify
	}
	if ss.tlsVerifyDepth != nil {
		b.tlsVerifyDepth = *ss.tlsVerifyDepth
		s.TLSVerifyDepth = &b.tlsVerifyDepth
	}
	s.Tags = tags
	return s
}

type upstreamBlock struct {
	upstream             declarative.Upstream
	id, name, hostHeader string
}

func (bd *builder) upstream(tags []*string, id, name, hostHeader string) *declarative.Upstream {
	b := bd.upstreamBlocks.one()
	b.id, b.name, b.hostHeader = id, name, hostHeader
	b.upstream.ID, b.upstream.Name, b.upstream.Tags = &b.id, &b.name, tags
	if hostHeader != "" {
		b.upstream.HostHeader = &b.hostHeader
	}
	return &b.upstream
}

type targetBlock struct {
	target   kong.Target
	id, addr string
	weight   int
}

func (bd *builder) target(tags []*string, id, addr string) *kong.Target {
	b := bd.targetBlocks.one()
	b.id, b.addr, b.weight = id, addr, targetWeight
	b.target.ID, b.target.Target, b.target.Weight = &b.id, &b.addr, &b.weight
	b.target.Tags = tags
	return &b.target
}
