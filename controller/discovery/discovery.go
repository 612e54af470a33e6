// Package discovery turns the EndpointSlices of the Kong admin Service into
// the Kong replicas the controller must configure.
//
// Endpoints that are not Ready yet are included on purpose: a DB-less Kong
// only turns Ready once it holds a configuration, so it has to be configured
// first. Terminating endpoints are left out.
//
// Readiness is still worth watching: a Kong container that restarts in
// place keeps its pod and address, but its endpoint turns not ready when the
// container stops and ready again once the new one serves a configuration.
// ReadinessFlips names the replicas whose readiness changed between two
// discoveries; Loop, which keeps a pusher's targets up to date, has the
// syncer look at them at once (kongsync.Syncer.Suspect).
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
	rs := Replicas(endpointSlices, portName, scheme)
	out := make([]kongsync.Target, len(rs))
	for i, r := range rs {
		out[i] = r.Target
	}
	return out
}

// Replica is one discovered Kong replica and whether its endpoint is Ready.
type Replica struct {
	kongsync.Target
	// Ready is the endpoint's Ready condition; an unset condition counts
	// as ready, as the EndpointSlice API says consumers should.
	Ready bool
}

// Replicas is Targets with each replica's readiness. A replica listed
// twice is ready when any of its listings is.
func Replicas(endpointSlices []*discoveryv1.EndpointSlice, portName string, scheme string) []Replica {
	if scheme == "" {
		scheme = DefaultScheme
	}
	byName := map[string]Replica{}
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
			r := Replica{
				Target: kongsync.Target{
					Name: name,
					URL:  scheme + "://" + net.JoinHostPort(addr, strconv.Itoa(int(port))),
				},
				Ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready,
			}
			if prev, dup := byName[name]; dup {
				r.Ready = r.Ready || prev.Ready
				if prev.URL < r.URL {
					r.Target = prev.Target
				}
			}
			byName[name] = r
		}
	}
	out := make([]Replica, 0, len(byName))
	for _, r := range byName {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ReadinessFlips returns the names of the replicas present in both prev
// and next, at the same URL, whose readiness differs: each is a sign that
// the Kong behind it stopped or started (a restart in place), sorted by
// name.
func ReadinessFlips(prev, next []Replica) []string {
	was := make(map[string]Replica, len(prev))
	for _, r := range prev {
		was[r.Name] = r
	}
	var out []string
	for _, r := range next {
		if p, ok := was[r.Name]; ok && p.URL == r.URL && p.Ready != r.Ready {
			out = append(out, r.Name)
		}
	}
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
