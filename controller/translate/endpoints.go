package translate

import (
	"bytes"
	"net/netip"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// targetWeight is Kong's default, written out so the document matches what
// Kong stores.
const targetWeight = 100

type span struct{ start, end int }

// targetAddrs lists ip:port for every ready endpoint of the Service port,
// sorted and without duplicates, as spans of bd.addrBuf. An EndpointSlice
// names its ports after the Service ports, so the port is matched by name
// (empty for a single unnamed port). Endpoints that are not ready or are
// terminating get no traffic; a Service without any keeps its upstream with
// no targets, so Kong answers 503 rather than 404.
func (bd *builder) targetAddrs(e *serviceEntry, portName string) []span {
	bd.addrBuf, bd.addrs = bd.addrBuf[:0], bd.addrs[:0]
	for _, es := range e.slices {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port, ok := slicePort(es, portName)
		if !ok {
			continue
		}
		for _, addr := range es.Serving {
			// EndpointSlice addresses are validated by the API server; a zoned
			// or unparsable one cannot be a Kong target and is skipped.
			ip, err := netip.ParseAddr(addr)
			if err != nil || ip.Zone() != "" {
				continue
			}
			start := len(bd.addrBuf)
			bd.addrBuf = netip.AddrPortFrom(ip, uint16(port)).AppendTo(bd.addrBuf)
			bd.addrs = append(bd.addrs, span{start, len(bd.addrBuf)})
		}
	}
	text := func(s span) []byte { return bd.addrBuf[s.start:s.end] }
	slices.SortFunc(bd.addrs, func(a, b span) int { return bytes.Compare(text(a), text(b)) })
	// The same address may be listed by two slices while endpoints move
	// between them.
	return slices.CompactFunc(bd.addrs, func(a, b span) bool { return bytes.Equal(text(a), text(b)) })
}

func slicePort(es *EndpointSlice, name string) (int32, bool) {
	for _, p := range es.Ports {
		if p.Name == name && p.Port > 0 && p.Port <= 65535 {
			return p.Port, true
		}
	}
	return 0, false
}
