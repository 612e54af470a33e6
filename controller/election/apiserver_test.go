package election

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
)

// apiServer is a tiny shared API server for the lock objects. Each client
// gets its own fake clientset whose reactors act on the shared state, wrapped
// in a simulated network so that faults and latency apply per client and
// outside the fake clientset's internal lock. Unlike the fake clientset's
// own tracker it has real optimistic concurrency: every write bumps
// resourceVersion, an update carrying a stale one gets 409 Conflict, a
// second create gets AlreadyExists.
type apiServer struct {
	mu       sync.Mutex
	rv       int64
	objects  map[string]runtime.Object // key: resource/namespace/name
	watchers []*serverWatch
	net      map[string]netState
	stalls   map[string]chan struct{} // closed when a stalled client heals
	// watchForbidden refuses every watch, as RBAC without "watch" would.
	watchForbidden bool
	// podsForbidden refuses every request for pods, as RBAC without a
	// pods rule would.
	podsForbidden bool
	// latency, if set, returns the round-trip time of one request; half of
	// it passes before the server acts, half after (virtual time). The
	// reply is lost if the request's context ends meanwhile.
	latency func() time.Duration
	// writes counts accepted writes per client; lastWrite is when the
	// server accepted the latest one.
	writes    map[string]int
	lastWrite map[string]time.Time
}

type netState int

const (
	netUp      netState = iota
	netRefused          // requests fail at once; watches end
	netStalled          // requests hang, ignoring their context, until healed; watches go silent
)

type serverWatch struct {
	client, resource, namespace, name string
	silent                            bool
	w                                 *watch.RaceFreeFakeWatcher
}

var errConnectionRefused = errors.New("dial tcp 10.96.0.1:443: connect: connection refused")

func newAPIServer() *apiServer {
	return &apiServer{
		objects: map[string]runtime.Object{}, net: map[string]netState{}, stalls: map[string]chan struct{}{},
		writes: map[string]int{}, lastWrite: map[string]time.Time{},
	}
}

// client returns a clientset whose requests reach s as client id.
func (s *apiServer) client(id string) kubernetes.Interface {
	cs := fake.NewClientset()
	cs.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := s.act(id, a)
		return true, obj, err
	})
	cs.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := s.watch(id, a)
		return true, w, err
	})
	return netClient{Interface: cs, s: s, id: id}
}

// setDown cuts client id off (requests refused, watches ended) or heals it.
func (s *apiServer) setDown(id string, down bool) {
	if down {
		s.setNet(id, netRefused)
	} else {
		s.setNet(id, netUp)
	}
}

// stall makes client id's requests hang until heal.
func (s *apiServer) stall(id string) { s.setNet(id, netStalled) }

// heal restores client id's network.
func (s *apiServer) heal(id string) { s.setNet(id, netUp) }

func (s *apiServer) setNet(id string, state netState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.stalls[id]; ok && state != netStalled {
		close(ch)
		delete(s.stalls, id)
	}
	if _, ok := s.stalls[id]; !ok && state == netStalled {
		s.stalls[id] = make(chan struct{})
	}
	s.net[id] = state
	kept := s.watchers[:0]
	for _, sw := range s.watchers {
		switch {
		case sw.client != id:
		case state == netStalled:
			sw.silent = true
		case state == netRefused || sw.silent:
			// The broken connection is noticed: the watch ends.
			sw.w.Stop()
			continue
		}
		kept = append(kept, sw)
	}
	s.watchers = kept
}

func (s *apiServer) state(id string) (netState, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.net[id], s.stalls[id]
}

func (s *apiServer) writesBy(id string) (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes[id], s.lastWrite[id]
}

// roundTrip carries one request of client id to the server (send) and the
// reply back, with the client's network state and latency applied.
func (s *apiServer) roundTrip(ctx context.Context, id string, send func() error) error {
	switch state, stalled := s.state(id); state {
	case netRefused:
		return errConnectionRefused
	case netStalled:
		<-stalled
		return errConnectionRefused
	}
	if err := s.travel(ctx); err != nil {
		return err
	}
	err := send()
	if state, _ := s.state(id); state != netUp {
		return errConnectionRefused // the reply is lost, whatever the server did
	}
	if terr := s.travel(ctx); terr != nil {
		return terr
	}
	return err
}

// travel waits half a round trip, or until ctx ends.
func (s *apiServer) travel(ctx context.Context) error {
	s.mu.Lock()
	var d time.Duration
	if s.latency != nil {
		d = s.latency() / 2
	}
	s.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// reachable waits while client id is stalled (or ctx ends) and reports
// whether it can open a watch.
func (s *apiServer) reachable(ctx context.Context, id string) error {
	switch state, stalled := s.state(id); state {
	case netRefused:
		return errConnectionRefused
	case netStalled:
		select {
		case <-stalled:
		case <-ctx.Done():
			return ctx.Err()
		}
		return s.reachable(ctx, id)
	}
	return nil
}

// netClient puts the simulated network in front of a fake clientset, for the
// two lock resources.
type netClient struct {
	kubernetes.Interface
	s  *apiServer
	id string
}

func (c netClient) CoreV1() corev1client.CoreV1Interface {
	return netCore{CoreV1Interface: c.Interface.CoreV1(), c: c}
}

func (c netClient) CoordinationV1() coordinationv1client.CoordinationV1Interface {
	return netCoordination{CoordinationV1Interface: c.Interface.CoordinationV1(), c: c}
}

type netCore struct {
	corev1client.CoreV1Interface
	c netClient
}

func (n netCore) ConfigMaps(ns string) corev1client.ConfigMapInterface {
	return netConfigMaps{ConfigMapInterface: n.CoreV1Interface.ConfigMaps(ns), c: n.c}
}

type netConfigMaps struct {
	corev1client.ConfigMapInterface
	c netClient
}

func (m netConfigMaps) Get(ctx context.Context, name string, o metav1.GetOptions) (*corev1.ConfigMap, error) {
	return call(ctx, m.c, func() (*corev1.ConfigMap, error) { return m.ConfigMapInterface.Get(ctx, name, o) })
}

func (m netConfigMaps) Create(ctx context.Context, cm *corev1.ConfigMap, o metav1.CreateOptions) (*corev1.ConfigMap, error) {
	return call(ctx, m.c, func() (*corev1.ConfigMap, error) { return m.ConfigMapInterface.Create(ctx, cm, o) })
}

func (m netConfigMaps) Update(ctx context.Context, cm *corev1.ConfigMap, o metav1.UpdateOptions) (*corev1.ConfigMap, error) {
	return call(ctx, m.c, func() (*corev1.ConfigMap, error) { return m.ConfigMapInterface.Update(ctx, cm, o) })
}

func (m netConfigMaps) Delete(ctx context.Context, name string, o metav1.DeleteOptions) error {
	_, err := call(ctx, m.c, func() (struct{}, error) { return struct{}{}, m.ConfigMapInterface.Delete(ctx, name, o) })
	return err
}

func (m netConfigMaps) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	if err := m.c.s.reachable(ctx, m.c.id); err != nil {
		return nil, err
	}
	return m.ConfigMapInterface.Watch(ctx, o)
}

type netCoordination struct {
	coordinationv1client.CoordinationV1Interface
	c netClient
}

func (n netCoordination) Leases(ns string) coordinationv1client.LeaseInterface {
	return netLeases{LeaseInterface: n.CoordinationV1Interface.Leases(ns), c: n.c}
}

type netLeases struct {
	coordinationv1client.LeaseInterface
	c netClient
}

func (l netLeases) Get(ctx context.Context, name string, o metav1.GetOptions) (*coordinationv1.Lease, error) {
	return call(ctx, l.c, func() (*coordinationv1.Lease, error) { return l.LeaseInterface.Get(ctx, name, o) })
}

func (l netLeases) Create(ctx context.Context, lease *coordinationv1.Lease, o metav1.CreateOptions) (*coordinationv1.Lease, error) {
	return call(ctx, l.c, func() (*coordinationv1.Lease, error) { return l.LeaseInterface.Create(ctx, lease, o) })
}

func (l netLeases) Update(ctx context.Context, lease *coordinationv1.Lease, o metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	return call(ctx, l.c, func() (*coordinationv1.Lease, error) { return l.LeaseInterface.Update(ctx, lease, o) })
}

func (l netLeases) Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	if err := l.c.s.reachable(ctx, l.c.id); err != nil {
		return nil, err
	}
	return l.LeaseInterface.Watch(ctx, o)
}

func call[T any](ctx context.Context, c netClient, f func() (T, error)) (T, error) {
	var out T
	err := c.s.roundTrip(ctx, c.id, func() error {
		var err error
		out, err = f()
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

func (s *apiServer) act(id string, a k8stesting.Action) (runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := a.GetResource()
	gr := res.GroupResource()
	ns := a.GetNamespace()
	if s.podsForbidden && res.Resource == "pods" {
		return nil, apierrors.NewForbidden(gr, "", errors.New("RBAC: pods not granted"))
	}
	switch a.GetVerb() {
	case "get":
		act := a.(k8stesting.GetAction)
		obj, ok := s.objects[key(res, ns, act.GetName())]
		if !ok {
			return nil, apierrors.NewNotFound(gr, act.GetName())
		}
		return obj.DeepCopyObject(), nil
	case "create":
		act := a.(k8stesting.CreateAction)
		obj := act.GetObject().DeepCopyObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		k := key(res, ns, m.GetName())
		if _, ok := s.objects[k]; ok {
			return nil, apierrors.NewAlreadyExists(gr, m.GetName())
		}
		s.rv++
		m.SetNamespace(ns)
		m.SetResourceVersion(strconv.FormatInt(s.rv, 10))
		s.objects[k] = obj
		s.writes[id]++
		s.lastWrite[id] = time.Now()
		s.notify(res.Resource, ns, m.GetName(), watch.Added, obj)
		return obj.DeepCopyObject(), nil
	case "update":
		act := a.(k8stesting.UpdateAction)
		obj := act.GetObject().DeepCopyObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		k := key(res, ns, m.GetName())
		cur, ok := s.objects[k]
		if !ok {
			return nil, apierrors.NewNotFound(gr, m.GetName())
		}
		curMeta, _ := meta.Accessor(cur)
		if m.GetResourceVersion() != curMeta.GetResourceVersion() {
			return nil, apierrors.NewConflict(gr, m.GetName(), fmt.Errorf("resourceVersion %q is stale, current is %q", m.GetResourceVersion(), curMeta.GetResourceVersion()))
		}
		s.rv++
		m.SetResourceVersion(strconv.FormatInt(s.rv, 10))
		s.objects[k] = obj
		s.writes[id]++
		s.lastWrite[id] = time.Now()
		s.notify(res.Resource, ns, m.GetName(), watch.Modified, obj)
		return obj.DeepCopyObject(), nil
	case "delete":
		act := a.(k8stesting.DeleteAction)
		k := key(res, ns, act.GetName())
		cur, ok := s.objects[k]
		if !ok {
			return nil, apierrors.NewNotFound(gr, act.GetName())
		}
		delete(s.objects, k)
		s.rv++
		s.notify(res.Resource, ns, act.GetName(), watch.Deleted, cur)
		return cur.DeepCopyObject(), nil
	}
	return nil, apierrors.NewMethodNotSupported(gr, a.GetVerb())
}

func (s *apiServer) watch(id string, a k8stesting.Action) (watch.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := a.GetResource()
	if s.watchForbidden || (s.podsForbidden && res.Resource == "pods") {
		return nil, apierrors.NewForbidden(res.GroupResource(), "", errors.New("RBAC: watch not granted"))
	}
	wa, ok := a.(k8stesting.WatchActionImpl)
	if !ok {
		return nil, fmt.Errorf("unexpected watch action %T", a)
	}
	name := ""
	if f := wa.WatchRestrictions.Fields; f != nil {
		name, _ = f.RequiresExactMatch("metadata.name")
	}
	sw := &serverWatch{client: id, resource: res.Resource, namespace: a.GetNamespace(), name: name, w: watch.NewRaceFreeFake()}
	s.watchers = append(s.watchers, sw)
	// Like the API server for a watch without resourceVersion: the current
	// state first, as an ADDED event.
	for k, obj := range s.objects {
		m, _ := meta.Accessor(obj)
		if k == key(res, sw.namespace, m.GetName()) && (name == "" || name == m.GetName()) {
			sw.w.Add(obj.DeepCopyObject())
		}
	}
	return sw.w, nil
}

// notify sends an event to the matching watches; stopped ones are dropped.
func (s *apiServer) notify(resource, ns, name string, t watch.EventType, obj runtime.Object) {
	kept := s.watchers[:0]
	for _, sw := range s.watchers {
		if sw.w.IsStopped() {
			continue
		}
		kept = append(kept, sw)
		if sw.silent || sw.resource != resource || sw.namespace != ns || (sw.name != "" && sw.name != name) {
			continue
		}
		switch t {
		case watch.Added:
			sw.w.Add(obj.DeepCopyObject())
		case watch.Modified:
			sw.w.Modify(obj.DeepCopyObject())
		case watch.Deleted:
			sw.w.Delete(obj.DeepCopyObject())
		}
	}
	s.watchers = kept
}

func key(res schema.GroupVersionResource, ns, name string) string {
	return res.Resource + "/" + ns + "/" + name
}
