// Package discovery turns the EndpointSlices of the Kong admin Service into
// the Kong replicas the controller must configure.
//
// Endpoints that are not Ready yet are included on purpose: a DB-less Kong
// only turns Ready once it holds a configuration, so it has to be configured
// first. Terminating endpoints are left out.
package discovery

import (
	"net"
	"slices"
	"strconv"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"

	"konductor.dev/controller/kongsync"
)

// DefaultScheme is used when Targets is given no scheme: the Kong admin
// listener is normally TLS.
const DefaultScheme = "https"

// Targets lists one target per Kong replica found in slices, using the port
// named portName ("" matches an unnamed port) and scheme (default https).
// A target is named after the endpoint's targetRef (the pod name), or its
// address when it has none; FQDN addresses work like IPs. Each replica appears once, even when dual-stack
// or overlapping slices list it twice (the lowest URL wins); the result is
// sorted by name.
func Targets(endpointSlices []*discoveryv1.EndpointSlice, portName string, scheme string) []kongsync.Target {
	if scheme == "" {
		scheme = DefaultScheme
	}
	byName := map[string]kongsync.Target{}
	for _, es := range endpointSlices {
		if es == nil {
			continue
		}
		port, ok := findPort(es.Ports, portName)
		if !ok {
			continue
		}
		for _, ep := range es.Endpoints {
			if len(ep.Addresses) == 0 || isTerminating(ep) {
				continue
			}
			// All addresses of an endpoint reach the same pod; one is enough.
			addr := ep.Addresses[0]
			name := addr
			if ep.TargetRef != nil && ep.TargetRef.Name != "" {
				name = ep.TargetRef.Name
			}
			t := kongsync.Target{
				Name: name,
				URL:  scheme + "://" + net.JoinHostPort(addr, strconv.Itoa(int(port))),
			}
			if prev, dup := byName[name]; !dup || t.URL < prev.URL {
				byName[name] = t
			}
		}
	}
	out := make([]kongsync.Target, 0, len(byName))
	for _, t := range byName {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b kongsync.Target) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func findPort(ports []discoveryv1.EndpointPort, name string) (int32, bool) {
	for _, p := range ports {
		pname := ""
		if p.Name != nil {
			pname = *p.Name
		}
		if pname == name && p.Port != nil && *p.Port > 0 {
			return *p.Port, true
		}
	}
	return 0, false
}

func isTerminating(ep discoveryv1.Endpoint) bool {
	return ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
}
