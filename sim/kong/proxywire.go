package kong

import (
	"cmp"
	"crypto/tls"
	"slices"
	"sort"
	"strings"
	"time"

	"konductor.dev/sim/kong/proxy"
)

// ProxyConfig converts the state into what the data plane routes with.
// Disabled services and their routes are left out, as Kong does; routes
// come in creation order, which breaks ties between equal routes.
func (s *State) ProxyConfig() proxy.Config {
	var c proxy.Config
	disabled := map[string]bool{}
	services := s.tables["services"]
	c.Services = make([]*proxy.Service, 0, services.rows.Len())
	services.rows.Ascend(func(r *row) bool {
		if r.wire.disabled {
			disabled[r.id] = true
		} else {
			c.Services = append(c.Services, &r.wire.service)
		}
		return true
	})
	routes := byCreation(s.rowsOf("routes"), s.stampAt)
	c.Routes = make([]*proxy.Route, 0, len(routes))
	for _, r := range routes {
		if !disabled[r.wire.parent] {
			c.Routes = append(c.Routes, &r.wire.route)
		}
	}
	c.Upstreams = s.proxyUpstreams()
	if certs := s.tables["certificates"]; certs.rows.Len() > 0 {
		snis := map[string][]string{}
		s.tables["snis"].rows.Ascend(func(r *row) bool {
			snis[r.wire.parent] = append(snis[r.wire.parent], r.wire.sni)
			return true
		})
		certs.rows.Ascend(func(r *row) bool {
			c.Certificates = append(c.Certificates, proxy.Certificate{ID: r.id, Cert: r.wire.cert, SNIs: snis[r.id]})
			return true
		})
	}
	plugins := s.tables["plugins"]
	if plugins.rows.Len() == 0 {
		// Nothing would use consumers or credentials.
		return c
	}
	plugins.rows.Ascend(func(r *row) bool {
		if !r.wire.disabled {
			c.Plugins = append(c.Plugins, r.wire.plugin)
		}
		return true
	})
	s.tables["consumers"].rows.Ascend(func(r *row) bool {
		c.Consumers = append(c.Consumers, r.wire.consumer)
		return true
	})
	cr := &c.Credentials
	for _, r := range s.rowsOf("keyauth_credentials") {
		cr.KeyAuth = append(cr.KeyAuth, r.wire.keyAuth)
	}
	for _, r := range s.rowsOf("basicauth_credentials") {
		cr.BasicAuth = append(cr.BasicAuth, r.wire.basicAuth)
	}
	// ACL groups in creation order, as Kong lists a consumer's groups.
	for _, r := range byCreation(s.rowsOf("acls"), s.stampAt) {
		cr.ACLs = append(cr.ACLs, r.wire.acl)
	}
	for _, r := range s.rowsOf("jwt_secrets") {
		cr.JWT = append(cr.JWT, r.wire.jwt)
	}
	for _, r := range s.rowsOf("hmacauth_credentials") {
		cr.HMAC = append(cr.HMAC, r.wire.hmac)
	}
	return c
}

// upstreamsMemo is a State's proxy upstreams, with what they were made
// from. Grouping thousands of targets under their upstreams takes a sort;
// a load that changes neither collection (most do not) hands the proxy the
// same upstreams again.
type upstreamsMemo struct {
	upstreams, targets *table // tables are immutable once in a State
	at                 int64  // the load time the targets were ordered at
	// atFree is set when that order does not depend on the load time:
	// all targets' created_at float with it, or none does.
	atFree bool
	list   []proxy.Upstream
}

// proxyUpstreams lists the upstreams in id order, each with its targets
// in creation order (id order among equals).
func (s *State) proxyUpstreams() []proxy.Upstream {
	upstreams, targetsTable := s.tables["upstreams"], s.tables["targets"]
	if m := s.upstreams.Load(); m != nil && m.upstreams == upstreams && m.targets == targetsTable && (m.atFree || m.at == s.stampAt) {
		return m.list
	}
	// Targets grouped by upstream, each group in creation order (id
	// order among equals), all in one array.
	// The order is sorted as indexes into the rows (listed in id order,
	// which breaks ties): moving pointers would cost write barriers
	// while the collector runs.
	byID := s.rowsOf("targets")
	order := make([]int32, len(byID))
	floating := 0
	for i, r := range byID {
		order[i] = int32(i)
		if r.restamp.created {
			floating++
		}
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := byID[i], byID[j]
		if c := strings.Compare(a.wire.parent, b.wire.parent); c != 0 {
			return c
		}
		if c := cmp.Compare(a.createdAt(s.stampAt), b.createdAt(s.stampAt)); c != 0 {
			return c
		}
		return cmp.Compare(i, j)
	})
	targets := make([]*row, len(order))
	all := make([]proxy.Target, len(order))
	for k, i := range order {
		targets[k], all[k] = byID[i], byID[i].wire.target
	}
	list := make([]proxy.Upstream, 0, upstreams.rows.Len())
	next := 0
	upstreams.rows.Ascend(func(r *row) bool {
		u := r.wire.upstream
		for next < len(targets) && targets[next].wire.parent < r.id {
			next++ // a target of no upstream: none in a valid state
		}
		start := next
		for next < len(targets) && targets[next].wire.parent == r.id {
			next++
		}
		if next > start {
			u.Targets = all[start:next:next]
		}
		list = append(list, u)
		return true
	})
	s.upstreams.Store(&upstreamsMemo{upstreams: upstreams, targets: targetsTable, at: s.stampAt,
		atFree: floating == 0 || floating == len(byID), list: list})
	return list
}

// wire is a row's share of the proxy configuration, converted once when
// the row is made: a load that keeps most rows converts only the others.
// It holds nothing from the timestamps, so a restamped row shares it.
type wire struct {
	service  proxy.Service
	route    proxy.Route
	upstream proxy.Upstream // without its targets
	target   proxy.Target
	parent   string // a route's service, a target's upstream
	disabled bool   // a disabled service or plugin

	// more holds what the other collections bring, apart so that the
	// many services, routes and targets stay small.
	*more
}

type more struct {
	cert      *tls.Certificate // nil when the pair does not load
	sni       string
	plugin    proxy.Plugin
	consumer  proxy.Consumer
	keyAuth   proxy.KeyAuthCredential
	basicAuth proxy.BasicAuthCredential
	acl       proxy.ACLGroup
	jwt       proxy.JWTSecret
	hmac      proxy.HMACCredential
}

// wireOf converts an entity of coll; nil for collections the proxy does
// not use.
func wireOf(coll string, e entity) *wire {
	w := &wire{}
	switch coll {
	case "services":
		w.disabled = e["enabled"] == false
		w.service = proxy.Service{
			ID: asString(e["id"]), Name: asString(e["name"]), Protocol: asString(e["protocol"]),
			Host: asString(e["host"]), Path: asString(e["path"]),
			Port: intOf(e["port"]), Retries: intOf(e["retries"]),
			ConnectTimeout: millis(e["connect_timeout"]),
			ReadTimeout:    millis(e["read_timeout"]),
			WriteTimeout:   millis(e["write_timeout"]),
		}
	case "routes":
		w.parent = foreignID(e, "service")
		var headers map[string][]string
		if h, ok := e["headers"].(map[string]any); ok && len(h) > 0 {
			headers = make(map[string][]string, len(h))
			for k, v := range h {
				headers[k] = stringList(v)
			}
		}
		w.route = proxy.Route{
			ID: asString(e["id"]), Name: asString(e["name"]), ServiceID: w.parent,
			Protocols: optionalList(e["protocols"]), Methods: optionalList(e["methods"]),
			Hosts: optionalList(e["hosts"]), Paths: optionalList(e["paths"]), SNIs: optionalList(e["snis"]),
			Headers: headers, RegexPriority: intOf(e["regex_priority"]),
			StripPath: e["strip_path"] == true, PreserveHost: e["preserve_host"] == true,
			PathHandling:            asString(e["path_handling"]),
			HTTPSRedirectStatusCode: intOf(e["https_redirect_status_code"]),
			Expression:              asString(e["expression"]),
			Priority:                uint64(max(0, intOf(e["priority"]))),
		}
	case "upstreams":
		w.upstream = proxy.Upstream{ID: asString(e["id"]), Name: asString(e["name"]), Algorithm: asString(e["algorithm"])}
	case "targets":
		w.parent = foreignID(e, "upstream")
		w.target = proxy.Target{Target: asString(e["target"]), Weight: intOf(e["weight"])}
	case "certificates", "snis", "plugins", "consumers", "keyauth_credentials", "basicauth_credentials",
		"acls", "jwt_secrets", "hmacauth_credentials":
		w.more = &more{}
	}
	switch coll {
	case "services", "routes", "upstreams", "targets":
	case "certificates":
		if c, err := tls.X509KeyPair([]byte(asString(e["cert"])), []byte(asString(e["key"]))); err == nil {
			w.cert = &c
		}
	case "snis":
		w.parent, w.sni = foreignID(e, "certificate"), asString(e["name"])
	case "plugins":
		w.disabled = e["enabled"] == false
		cfg, _ := e["config"].(map[string]any)
		w.plugin = proxy.Plugin{
			ID: asString(e["id"]), Name: asString(e["name"]),
			RouteID: foreignID(e, "route"), ServiceID: foreignID(e, "service"), ConsumerID: foreignID(e, "consumer"),
			Protocols: optionalList(e["protocols"]), Config: cfg,
		}
	case "consumers":
		w.consumer = proxy.Consumer{ID: asString(e["id"]), Username: asString(e["username"]), CustomID: asString(e["custom_id"])}
	case "keyauth_credentials":
		w.keyAuth = proxy.KeyAuthCredential{ID: asString(e["id"]), ConsumerID: foreignID(e, "consumer"), Key: asString(e["key"])}
	case "basicauth_credentials":
		w.basicAuth = proxy.BasicAuthCredential{ID: asString(e["id"]), ConsumerID: foreignID(e, "consumer"),
			Username: asString(e["username"]), PasswordHash: asString(e["password"])}
	case "acls":
		w.acl = proxy.ACLGroup{ConsumerID: foreignID(e, "consumer"), Group: asString(e["group"])}
	case "jwt_secrets":
		w.jwt = proxy.JWTSecret{ID: asString(e["id"]), ConsumerID: foreignID(e, "consumer"), Key: asString(e["key"]),
			Secret: asString(e["secret"]), RSAPublicKey: asString(e["rsa_public_key"]), Algorithm: asString(e["algorithm"])}
	case "hmacauth_credentials":
		w.hmac = proxy.HMACCredential{ID: asString(e["id"]), ConsumerID: foreignID(e, "consumer"),
			Username: asString(e["username"]), Secret: asString(e["secret"])}
	default:
		return nil
	}
	return w
}

// byCreation sorts rows listed in id order by created_at in a State of
// load time at, keeping id order among equals.
func byCreation(list []*row, at int64) []*row {
	less := func(a, b int) bool { return list[a].createdAt(at) < list[b].createdAt(at) }
	if !sort.SliceIsSorted(list, less) { // usually: one load stamped them all
		sort.SliceStable(list, less)
	}
	return list
}

func intOf(v any) int {
	f, _ := v.(float64)
	return int(f)
}

func millis(v any) time.Duration {
	f, _ := v.(float64)
	return time.Duration(f) * time.Millisecond
}

func optionalList(v any) []string {
	if v == nil {
		return nil
	}
	return stringList(v)
}
