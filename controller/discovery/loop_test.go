package discovery

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/controller/kongsync"
)

// recorder is a Pusher and Suspecter that records its calls in order.
type recorder struct {
	mu    sync.Mutex
	calls []string
	seen  chan struct{}
}

func (r *recorder) SetTargets(ts []kongsync.Target) {
	r.record("targets " + describe(ts))
}

func (r *recorder) Suspect(name string) { r.record("suspect " + name) }

func (r *recorder) record(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
	r.seen <- struct{}{}
}

func TestLoopSetsTargetsAndSuspectsReadinessFlips(t *testing.T) {
	var mu sync.Mutex
	var current []*discoveryv1.EndpointSlice
	set := func(kong0Ready bool, extra ...ep) {
		eps := append([]ep{{addr: "10.0.0.7", pod: "kong-0", ready: ptr(kong0Ready)}}, extra...)
		es := slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptr("admin-tls"), Port: ptr(int32(8444))}}, eps...)
		es.ObjectMeta = metav1.ObjectMeta{Labels: map[string]string{discoveryv1.LabelServiceName: "kong-admin"}}
		other := slice(discoveryv1.AddressTypeIPv4, adminPorts, ep{addr: "10.9.9.9", pod: "not-kong"})
		other.ObjectMeta = metav1.ObjectMeta{Labels: map[string]string{discoveryv1.LabelServiceName: "other"}}
		mu.Lock()
		current = []*discoveryv1.EndpointSlice{es, other}
		mu.Unlock()
	}
	rec := &recorder{seen: make(chan struct{}, 16)}
	l := &Loop{
		Service:   "kong-admin",
		PortNames: []string{"admin", "admin-tls"},
		Slices: func() []*discoveryv1.EndpointSlice {
			mu.Lock()
			defer mu.Unlock()
			return current
		},
		Pusher: rec,
	}
	kicks := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, kicks, func() bool { return true }) }()
	defer func() { cancel(); <-done }()

	step := func(want ...string) {
		t.Helper()
		kicks <- struct{}{}
		kicks <- struct{}{} // the previous look is over once this one is taken
		for range want {
			select {
			case <-rec.seen:
			case <-time.After(10 * time.Second):
				t.Fatalf("calls %v, want %v", rec.calls, want)
			}
		}
	}
	set(true)
	step("targets kong-0=https://10.0.0.7:8444")
	set(false) // kong-0's container stopped
	step("suspect kong-0")
	set(false, ep{addr: "10.0.0.8", pod: "kong-1"})
	step("targets kong-0=https://10.0.0.7:8444,kong-1=https://10.0.0.8:8444")
	set(true, ep{addr: "10.0.0.8", pod: "kong-1"}) // kong-0 serves again
	step("suspect kong-0")

	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{
		"targets kong-0=https://10.0.0.7:8444",
		"suspect kong-0",
		"targets kong-0=https://10.0.0.7:8444,kong-1=https://10.0.0.8:8444",
		"suspect kong-0",
	}
	if !reflect.DeepEqual(rec.calls, want) {
		t.Fatalf("calls %v\nwant %v", rec.calls, want)
	}
}
