package translate

import (
	"net/netip"
	"slices"

	"github.com/kong/go-kong/kong"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// targetWeight is Kong's default, written out so the document matches what
// Kong stores.
const targetWeight = 100

// targets lists ip:port for every ready endpoint of the Service port. An
// EndpointSlice names its ports after the Service ports, so the port is
// matched by name (empty for a single unnamed port). Endpoints that are not
// ready or are terminating get no traffic; a Service without any keeps its
// upstream with no targets, so Kong answers 503 rather than 404.
func (t *translator) targets(tags []*string, upstream string, rb resolvedBackend) []*kong.Target {
	var out []string
	for _, es := range t.endpoints[nsName{rb.svc.Namespace, rb.svc.Name}] {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port, ok := slicePort(es, rb.port.Name)
		if !ok {
			continue
		}
		for _, ep := range es.Endpoints {
			if !serving(ep.Conditions) {
				continue
			}
			for _, addr := range ep.Addresses {
				// EndpointSlice addresses are validated by the API server; a zoned
				// or unparsable one cannot be a Kong target and is skipped.
				ip, err := netip.ParseAddr(addr)
				if err != nil || ip.Zone() != "" {
					continue
				}
				out = append(out, netip.AddrPortFrom(ip, uint16(port)).String())
			}
		}
	}
	// The same address may be listed by two slices while endpoints move
	// between them.
	slices.Sort(out)
	out = slices.Compact(out)
	targets := make([]*kong.Target, len(out))
	for i, target := range out {
		targets[i] = t.target(tags, upstream, target)
	}
	return targets
}

func slicePort(es *discoveryv1.EndpointSlice, name string) (int32, bool) {
	for _, p := range es.Ports {
		pn := ""
		if p.Name != nil {
			pn = *p.Name
		}
		if pn == name && p.Port != nil && *p.Port > 0 && *p.Port <= 65535 {
			return *p.Port, true
		}
	}
	return 0, false
}

func serving(c discoveryv1.EndpointConditions) bool {
	ready := c.Ready == nil || *c.Ready
	terminating := c.Terminating != nil && *c.Terminating
	return ready && !terminating
}
