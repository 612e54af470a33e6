package kong

import (
	"sort"
	"time"

	"konductor.dev/sim/kong/proxy"
)

// ProxyConfig converts the state into what the data plane routes with.
// Disabled services and their routes are left out, as Kong does; routes
// come in creation order, which breaks ties between equal routes.
func (s *State) ProxyConfig() proxy.Config {
	var c proxy.Config
	disabled := map[string]bool{}
	for _, e := range s.list("services") {
		id := asString(e["id"])
		if e["enabled"] == false {
			disabled[id] = true
			continue
		}
		c.Services = append(c.Services, proxy.Service{
			ID: id, Name: asString(e["name"]), Protocol: asString(e["protocol"]),
			Host: asString(e["host"]), Path: asString(e["path"]),
			Port: intOf(e["port"]), Retries: intOf(e["retries"]),
			ConnectTimeout: millis(e["connect_timeout"]),
			ReadTimeout:    millis(e["read_timeout"]),
			WriteTimeout:   millis(e["write_timeout"]),
		})
	}
	routes := byCreation(s.list("routes"))
	for _, e := range routes {
		svc := foreignID(e, "service")
		if disabled[svc] {
			continue
		}
		var headers map[string][]string
		if h, ok := e["headers"].(map[string]any); ok && len(h) > 0 {
			headers = make(map[string][]string, len(h))
			for k, v := range h {
				headers[k] = stringList(v)
			}
		}
		c.Routes = append(c.Routes, proxy.Route{
			ID: asString(e["id"]), Name: asString(e["name"]), ServiceID: svc,
			Protocols: optionalList(e["protocols"]), Methods: optionalList(e["methods"]),
			Hosts: optionalList(e["hosts"]), Paths: optionalList(e["paths"]), SNIs: optionalList(e["snis"]),
			Headers: headers, RegexPriority: intOf(e["regex_priority"]),
			StripPath: e["strip_path"] == true, PreserveHost: e["preserve_host"] == true,
			PathHandling:            asString(e["path_handling"]),
			HTTPSRedirectStatusCode: intOf(e["https_redirect_status_code"]),
		})
	}
	targets := map[string][]entity{}
	for _, t := range s.list("targets") {
		u := foreignID(t, "upstream")
		targets[u] = append(targets[u], t)
	}
	for _, e := range s.list("upstreams") {
		id := asString(e["id"])
		ts := byCreation(targets[id])
		u := proxy.Upstream{ID: id, Name: asString(e["name"]), Algorithm: asString(e["algorithm"])}
		for _, t := range ts {
			u.Targets = append(u.Targets, proxy.Target{Target: asString(t["target"]), Weight: intOf(t["weight"])})
		}
		c.Upstreams = append(c.Upstreams, u)
	}
	return c
}

// byCreation sorts entities listed in id order by created_at, keeping id
// order among equals.
func byCreation(list []entity) []entity {
	created := make([]float64, len(list))
	idx := make([]int, len(list))
	for i, e := range list {
		created[i], _ = e["created_at"].(float64)
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return created[idx[a]] < created[idx[b]] })
	out := make([]entity, len(list))
	for i, j := range idx {
		out[i] = list[j]
	}
	return out
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
