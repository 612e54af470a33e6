package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"konductor.dev/chaos/journal"
)

// ProxyService is the Service in front of the Kong proxies.
const ProxyService = "kong-proxy"

// Reasons an endpoint is out of the rotation (journal.EventEndpointOut).
const (
	outNotReady    = "not ready"
	outTerminating = "terminating"
	outRemoved     = "removed from the EndpointSlices"
)

// servingEndpoints picks, from a Service's EndpointSlices, the endpoints
// ("ip:port" of the port named port) traffic goes to, as kube-proxy does:
// every ready endpoint; when none is ready, the serving endpoints that are
// terminating (they may still finish their work). Conditions left unset
// mean ready, serving as ready, and not terminating (the API's rules). An
// endpoint listed by several slices (while the controller moves it) is
// ready when any slice says so. out gives, for every other endpoint the
// slices list, why it is not in.
func servingEndpoints(slices_ []*discoveryv1.EndpointSlice, port string) (in []string, out map[string]string) {
	type state struct{ ready, servingTerminating, terminating bool }
	seen := map[string]*state{}
	for _, s := range slices_ {
		num := int32(-1)
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == port && p.Port != nil {
				num = *p.Port
			}
		}
		if num < 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			c := ep.Conditions
			ready := c.Ready == nil || *c.Ready
			serving := ready
			if c.Serving != nil {
				serving = *c.Serving
			}
			terminating := c.Terminating != nil && *c.Terminating
			addr := hostPort(ep.Addresses[0], num)
			st := seen[addr]
			if st == nil {
				st = &state{}
				seen[addr] = st
			}
			st.ready = st.ready || ready
			st.servingTerminating = st.servingTerminating || (serving && terminating)
			st.terminating = st.terminating || terminating
		}
	}
	out = map[string]string{}
	for addr, st := range seen {
		if st.ready {
			in = append(in, addr)
		}
	}
	if len(in) == 0 {
		for addr, st := range seen {
			if st.servingTerminating {
				in = append(in, addr)
			}
		}
	}
	for addr, st := range seen {
		if slices.Contains(in, addr) {
			continue
		}
		if st.terminating {
			out[addr] = outTerminating
		} else {
			out[addr] = outNotReady
		}
	}
	slices.Sort(in)
	return in, out
}

// rotation is the set of proxy endpoints the traffic probe balances over,
// kept current by a watch on the proxy Service's EndpointSlices: an
// endpoint leaves as soon as the API server reports it not ready,
// terminating or gone. Every change is journaled (EventEndpointIn/Out)
// with the time the watch delivered it, so a failed request can be set
// against when its endpoint left.
type rotation struct {
	j    *journal.Writer
	port string

	// eps is what requests go to. When the slices list no serving endpoint
	// it keeps the last ones known: a request must go somewhere, and its
	// failure is then counted, not hidden.
	eps atomic.Pointer[[]string]

	mu      sync.Mutex
	current map[string]bool // endpoints in the rotation as journaled
}

func newRotation(j *journal.Writer, port string) *rotation {
	return &rotation{j: j, port: port, current: map[string]bool{}}
}

// update applies the slices' current state, journaling each endpoint that
// entered or left the rotation.
func (r *rotation) update(slices_ []*discoveryv1.EndpointSlice) {
	in, out := servingEndpoints(slices_, r.port)
	r.mu.Lock()
	defer r.mu.Unlock()
	// Requests see the change before it is journaled: vegeta stamps a
	// request before it chooses its endpoint, so a request stamped after
	// an endpoint's out-event cannot have been sent to it, and one sent to
	// it was stamped before the event (the classifier's "sent to an
	// endpoint already dead, before it left the rotation" relies on this).
	if len(in) > 0 {
		r.eps.Store(&in)
	}
	now := r.j.Now()
	for _, addr := range in {
		if !r.current[addr] {
			r.current[addr] = true
			r.j.Add(journal.Record{T: now, Kind: journal.KindEvent, Event: journal.EventEndpointIn, Subject: addr})
		}
	}
	var gone []string
	for addr := range r.current {
		if !slices.Contains(in, addr) {
			gone = append(gone, addr)
		}
	}
	slices.Sort(gone)
	for _, addr := range gone {
		delete(r.current, addr)
		why, listed := out[addr]
		if !listed {
			why = outRemoved
		}
		r.j.Add(journal.Record{T: now, Kind: journal.KindEvent, Event: journal.EventEndpointOut, Subject: addr, Value: why})
	}
}

// endpoints returns the endpoints requests go to (nil before the first
// serving endpoint was seen).
func (r *rotation) endpoints() []string {
	if p := r.eps.Load(); p != nil {
		return *p
	}
	return nil
}

// other returns an endpoint of the rotation other than not, or "".
func (r *rotation) other(not string, n uint64) string {
	eps := r.endpoints()
	var alt []string
	for _, e := range eps {
		if e != not {
			alt = append(alt, e)
		}
	}
	if len(alt) == 0 {
		return ""
	}
	return alt[n%uint64(len(alt))]
}

// watch keeps the rotation from the EndpointSlices of Service svc in
// namespace ns until ctx ends; it returns once the first list is in, or
// with an error if it is not within timeout.
func (r *rotation) watch(ctx context.Context, cs kubernetes.Interface, ns, svc string, timeout time.Duration) error {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + svc
		}))
	inf := factory.Discovery().V1().EndpointSlices().Informer()
	resync := func() {
		var list []*discoveryv1.EndpointSlice
		for _, obj := range inf.GetStore().List() {
			if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
				list = append(list, s)
			}
		}
		r.update(list)
	}
	// Handlers run one at a time, in the order the watch delivered.
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { resync() },
		UpdateFunc: func(_, _ any) { resync() },
		DeleteFunc: func(any) { resync() },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		factory.Shutdown()
	}()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the EndpointSlices of Service %s/%s did not list within %s", ns, svc, timeout)
	}
	resync() // an empty list calls no handler
	if len(r.endpoints()) == 0 {
		return errors.New("the " + svc + " Service has no ready endpoint")
	}
	return nil
}
