package discovery

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"konductor.dev/controller/kongsync"
)

func ptr[T any](v T) *T { return &v }

type ep struct {
	addr        string
	pod         string
	ready       *bool
	terminating *bool
}

func slice(addrType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{AddressType: addrType, Ports: ports}
	for _, e := range eps {
		out := discoveryv1.Endpoint{
			Addresses:  []string{e.addr},
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Terminating: e.terminating},
		}
		if e.pod != "" {
			out.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "kong", Name: e.pod}
		}
		es.Endpoints = append(es.Endpoints, out)
	}
	return es
}

var adminPorts = []discoveryv1.EndpointPort{
	{Name: ptr("proxy"), Port: ptr(int32(8000))},
	{Name: ptr("admin"), Port: ptr(int32(8444))},
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name     string
		slices   []*discoveryv1.EndpointSlice
		portName string
		scheme   string
		want     []kongsync.Target
	}{
		{
			name:     "ready, not-ready and unknown-readiness endpoints are all targets, sorted by pod",
			slices:   []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, adminPorts, ep{addr: "10.0.0.9", pod: "kong-2", ready: ptr(false)}, ep{addr: "10.0.0.7", pod: "kong-0", ready: ptr(true)}, ep{addr: "10.0.0.8", pod: "kong-1"})},
			portName: "admin",
			want: []kongsync.Target{
				{Name: "kong-0", URL: "https://10.0.0.7:8444"},
				{Name: "kong-1", URL: "https://10.0.0.8:8444"},
				{Name: "kong-2", URL: "https://10.0.0.9:8444"},
			},
		},
		{
			name:     "terminating endpoints are excluded, even while still ready",
			slices:   []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, adminPorts, ep{addr: "10.0.0.7", pod: "kong-0", ready: ptr(true), terminating: ptr(true)}, ep{addr: "10.0.0.8", pod: "kong-1", terminating: ptr(false)})},
			portName: "admin",
			want:     []kongsync.Target{{Name: "kong-1", URL: "https://10.0.0.8:8444"}},
		},
		{
			name:     "IPv6 addresses are bracketed; plain http when asked",
			slices:   []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv6, adminPorts, ep{addr: "fd00::7", pod: "kong-0"})},
			portName: "admin",
			scheme:   "http",
			want:     []kongsync.Target{{Name: "kong-0", URL: "http://[fd00::7]:8444"}},
		},
		{
			name:     "no targetRef: named by address",
			slices:   []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, adminPorts, ep{addr: "10.0.0.7"})},
			portName: "admin",
			want:     []kongsync.Target{{Name: "10.0.0.7", URL: "https://10.0.0.7:8444"}},
		},
		{
			name: "dual-stack and overlapping slices list a pod once",
			slices: []*discoveryv1.EndpointSlice{
				slice(discoveryv1.AddressTypeIPv6, adminPorts, ep{addr: "fd00::7", pod: "kong-0"}),
				slice(discoveryv1.AddressTypeIPv4, adminPorts, ep{addr: "10.0.0.7", pod: "kong-0"}, ep{addr: "10.0.0.8", pod: "kong-1"}),
				slice(discoveryv1.AddressTypeIPv4, adminPorts, ep{addr: "10.0.0.8", pod: "kong-1"}),
			},
			portName: "admin",
			want: []kongsync.Target{
				{Name: "kong-0", URL: "https://10.0.0.7:8444"},
				{Name: "kong-1", URL: "https://10.0.0.8:8444"},
			},
		},
		{
			name: "slices without the named port are ignored",
			slices: []*discoveryv1.EndpointSlice{
				slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptr("proxy"), Port: ptr(int32(8000))}}, ep{addr: "10.0.0.7", pod: "kong-0"}),
				slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptr("admin")}}, ep{addr: "10.0.0.8", pod: "kong-1"}),
			},
			portName: "admin",
			want:     []kongsync.Target{},
		},
		{
			name:     "empty port name matches the unnamed port",
			slices:   []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Port: ptr(int32(8001))}}, ep{addr: "10.0.0.7", pod: "kong-0"})},
			portName: "",
			want:     []kongsync.Target{{Name: "kong-0", URL: "https://10.0.0.7:8001"}},
		},
		{
			name:     "FQDN addresses",
			slices:   []*discoveryv1.EndpointSlice{slice(discoveryv1.AddressTypeFQDN, adminPorts, ep{addr: "kong-0.kong-admin.kong.svc"})},
			portName: "admin",
			want:     []kongsync.Target{{Name: "kong-0.kong-admin.kong.svc", URL: "https://kong-0.kong-admin.kong.svc:8444"}},
		},
		{
			name:     "nil slices, endpoints without addresses and scale to zero",
			slices:   []*discoveryv1.EndpointSlice{nil, {AddressType: discoveryv1.AddressTypeIPv4, Ports: adminPorts, Endpoints: []discoveryv1.Endpoint{{}}}},
			portName: "admin",
			want:     []kongsync.Target{},
		},
		{
			name:     "no slices at all",
			portName: "admin",
			want:     []kongsync.Target{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Targets(tc.slices, tc.portName, tc.scheme)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Targets() = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReplicasCarryReadiness(t *testing.T) {
	es := []*discoveryv1.EndpointSlice{
		slice(discoveryv1.AddressTypeIPv4, adminPorts,
			ep{addr: "10.0.0.7", pod: "kong-0", ready: ptr(true)},
			ep{addr: "10.0.0.8", pod: "kong-1", ready: ptr(false)},
			ep{addr: "10.0.0.9", pod: "kong-2"}),
		// kong-1 listed again, ready, in an overlapping slice.
		slice(discoveryv1.AddressTypeIPv4, adminPorts, ep{addr: "10.0.0.8", pod: "kong-1", ready: ptr(true)}),
	}
	got := Replicas(es, "admin", "")
	want := []Replica{
		{Target: kongsync.Target{Name: "kong-0", URL: "https://10.0.0.7:8444"}, Ready: true},
		{Target: kongsync.Target{Name: "kong-1", URL: "https://10.0.0.8:8444"}, Ready: true},
		{Target: kongsync.Target{Name: "kong-2", URL: "https://10.0.0.9:8444"}, Ready: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Replicas = %+v\nwant %+v", got, want)
	}
}

func TestReadinessFlips(t *testing.T) {
	r := func(name, url string, ready bool) Replica {
		return Replica{Target: kongsync.Target{Name: name, URL: url}, Ready: ready}
	}
	tests := []struct {
		name       string
		prev, next []Replica
		want       []string
	}{
		{name: "nothing changed", prev: []Replica{r("a", "u1", true)}, next: []Replica{r("a", "u1", true)}},
		{name: "ready to not ready (container stopped)", prev: []Replica{r("a", "u1", true), r("b", "u2", true)}, next: []Replica{r("a", "u1", false), r("b", "u2", true)}, want: []string{"a"}},
		{name: "not ready to ready (new container serves)", prev: []Replica{r("a", "u1", false)}, next: []Replica{r("a", "u1", true)}, want: []string{"a"}},
		{name: "new replica is no flip", prev: nil, next: []Replica{r("a", "u1", false)}},
		{name: "new address is a new target, no flip", prev: []Replica{r("a", "u1", true)}, next: []Replica{r("a", "u9", false)}},
		{name: "removed replica is no flip", prev: []Replica{r("a", "u1", true)}, next: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReadinessFlips(tc.prev, tc.next); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ReadinessFlips = %v, want %v", got, tc.want)
			}
		})
	}
}
