package apiserver

import (
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

// Faults are the misbehaviours of the API server towards one client. The
// zero value is a healthy server.
type Faults struct {
	// Latency: every request waits a uniform random time in [0, Latency).
	Latency time.Duration
	// ErrorRate is the fraction of requests (not watches) answered with an
	// error: 429 Too Many Requests, 500 Internal Error or, after blocking
	// for Timeout, 504 Timeout, chosen at random.
	ErrorRate float64
	// Timeout is how long a timed-out request blocks; default 5s.
	Timeout time.Duration
	// StaleRate is the fraction of Get and List requests answered from an
	// older revision, up to StaleBy revisions behind (default 5), as a
	// lagging watch cache would: only reads whose resourceVersion allows
	// it ("0", or not older than a given revision; see staleFloor). The
	// client's first such read is always stale.
	StaleRate float64
	StaleBy   int64
	// Partitioned: the client cannot reach the server at all; its
	// requests fail with "connection refused" and its watches end.
	Partitioned bool
}

// Fault kinds counted by Server.Fired.
const (
	FiredLatency      = "latency"
	FiredTooMany      = "429"
	FiredInternal     = "500"
	FiredTimeout      = "timeout"
	FiredStaleRead    = "stale-read"
	FiredPartition    = "partition"
	FiredDroppedWatch = "dropped-watch"
)

// Server is the fake API server: one store, many client views.
type Server struct {
	seed uint64

	mu      sync.Mutex
	st      *store
	faults  map[string]Faults // by client; "*" applies to clients without their own
	streams map[string]*rand.Rand
	fired   map[string]map[string]int // client → kind → count
	reads   map[string]int            // client → Get/List answered
	stale   []StaleRead

	// OnWrite, if set, is called after each write a client view made was
	// accepted, outside the server's lock, on the writer's goroutine: the
	// simulator crashes a replica right after one of its writes there.
	OnWrite func(client string, c Change)

	baseLatency time.Duration
}

// SetBaseLatency gives every request a seeded network delay in [0, d),
// fault or not. Requests sent at one virtual instant by different clients
// then reach the store in an order the seed decides rather than the
// goroutine scheduler.
func (s *Server) SetBaseLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.baseLatency = d
}

// New returns an empty server whose random choices derive from seed.
func New(seed uint64) *Server {
	return &Server{
		seed: seed, st: newStore(),
		faults:  map[string]Faults{},
		streams: map[string]*rand.Rand{},
		fired:   map[string]map[string]int{},
		reads:   map[string]int{},
	}
}

// Seed stores objects as an administrator would, before or during a run;
// they get resourceVersions like any write.
func (s *Server) Seed(objs ...runtime.Object) error {
	for _, o := range objs {
		gvr, err := resourceOf(o)
		if err != nil {
			return err
		}
		m, _ := meta.Accessor(o)
		s.mu.Lock()
		_, err = s.st.create("", gvr, m.GetNamespace(), o, func() string { return s.suffix("") })
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// Apply creates or replaces objects unconditionally (an administrator's
// kubectl apply), notifying watchers.
func (s *Server) Apply(objs ...runtime.Object) error {
	for _, o := range objs {
		gvr, err := resourceOf(o)
		if err != nil {
			return err
		}
		m, _ := meta.Accessor(o)
		s.mu.Lock()
		if _, exists := s.st.objects[objKey{gvr, m.GetNamespace(), m.GetName()}]; exists {
			c := o.DeepCopyObject()
			cm, _ := meta.Accessor(c)
			cm.SetResourceVersion("")
			_, err = s.st.update("", gvr, m.GetNamespace(), "", c)
		} else {
			_, err = s.st.create("", gvr, m.GetNamespace(), o, func() string { return s.suffix("") })
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// Delete removes an object as an administrator would.
func (s *Server) Delete(o runtime.Object) error {
	gvr, err := resourceOf(o)
	if err != nil {
		return err
	}
	m, _ := meta.Accessor(o)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.remove("", gvr, m.GetNamespace(), m.GetName())
}

// Get returns a copy of the current object, for oracles.
func (s *Server) Get(gvr schema.GroupVersionResource, namespace, name string) (runtime.Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.st.objects[objKey{gvr, namespace, name}]
	if !ok {
		return nil, false
	}
	return o.DeepCopyObject(), true
}

// Changes returns the change log, oldest first.
func (s *Server) Changes() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Change(nil), s.st.log...)
}

// Revision is the current global revision.
func (s *Server) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.rev
}

// SetFaults sets the faults of one client; client "*" sets the default for
// clients that have none of their own.
func (s *Server) SetFaults(client string, f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[client] = f
	if f.Partitioned {
		s.dropLocked(client, nil)
	}
}

// ClearFaults heals every client.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// DropWatches ends every watch of client ("*": of every client) with a
// 410 Gone error, as an API server does when its watch cache is reset: the
// informers must list again. It returns how many watches it ended.
func (s *Server) DropWatches(client string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := watch.Event{Type: watch.Error, Object: &apierrors.NewResourceExpired("too old resource version: watch dropped by the simulator").ErrStatus}
	// Relisting after the drop must not resume from the log.
	s.st.compacted = s.st.rev + 1
	return s.dropLocked(client, &gone)
}

func (s *Server) dropLocked(client string, ev *watch.Event) int {
	n := 0
	for w := range s.st.watchers {
		if client == "*" || w.client == client {
			w.end(ev)
			delete(s.st.watchers, w)
			n++
			s.countLocked(w.client, FiredDroppedWatch)
		}
	}
	return n
}

// StaleRead is one Get or List answered from an older revision.
type StaleRead struct {
	Time     time.Time
	Client   string
	Verb     string
	Resource string
	// Requested is the request's resourceVersion ("" or "0" or a revision).
	Requested string
	// Served is the revision answered; Current the newest one then.
	Served, Current int64
}

// StaleReads lists the stale reads served, oldest first.
func (s *Server) StaleReads() []StaleRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StaleRead(nil), s.stale...)
}

// Fired returns how often each kind of fault hit client ("*": all clients).
func (s *Server) Fired(client string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for c, m := range s.fired {
		if client == "*" || c == client {
			for k, v := range m {
				out[k] += v
			}
		}
	}
	return out
}

func (s *Server) countLocked(client, kind string) {
	if s.fired[client] == nil {
		s.fired[client] = map[string]int{}
	}
	s.fired[client][kind]++
}

func (s *Server) faultsLocked(client string) Faults {
	if f, ok := s.faults[client]; ok {
		return f
	}
	return s.faults["*"]
}

// stream returns the random stream of one kind of request of one client.
// Requests of one stream are issued one after another by one goroutine of
// the controller (one reflector, the elector), so the draws replay.
func (s *Server) stream(name string) *rand.Rand {
	r, ok := s.streams[name]
	if !ok {
		h := fnv.New64a()
		h.Write([]byte(name))
		r = rand.New(rand.NewPCG(s.seed, h.Sum64()))
		s.streams[name] = r
	}
	return r
}

const suffixChars = "bcdfghjklmnpqrstvwxz2456789"

func (s *Server) suffix(client string) string {
	r := s.stream(client + "/generateName")
	b := make([]byte, 5)
	for i := range b {
		b[i] = suffixChars[r.IntN(len(suffixChars))]
	}
	return string(b)
}

// errConnRefused is what a partitioned client sees, shaped like a dial
// error so that client-go's retry logic recognises it.
func errConnRefused() error {
	return &url.Error{Op: "Get", URL: "https://apiserver.sim", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
}

// admit applies the client's faults to one request: it may sleep, and it
// returns the error to answer with, or nil to serve the request. stale is
// the revision to read at (0: current).
func (s *Server) admit(client string, a k8stesting.Action) (stale int64, err error) {
	verb := a.GetVerb()
	s.mu.Lock()
	f := s.faultsLocked(client)
	name := client + "/" + verb + "/" + a.GetResource().Resource
	if (verb == "get" || verb == "list") && requestedVersion(a) == "" {
		// Consistent reads have their own stream: a controller issues
		// them from other goroutines than its reflectors' lists (which
		// ask for "0" or a revision), and sharing one stream would let
		// the scheduler decide who draws first.
		name += "/consistent"
	}
	r := s.stream(name)
	var wait time.Duration
	if s.baseLatency > 0 {
		wait = time.Duration(r.Int64N(int64(s.baseLatency)))
	}
	if f.Latency > 0 {
		wait += time.Duration(r.Int64N(int64(f.Latency)))
		s.countLocked(client, FiredLatency)
	}
	if f.Partitioned {
		s.countLocked(client, FiredPartition)
		s.mu.Unlock()
		return 0, errConnRefused()
	}
	var kind string
	if verb != "watch" && f.ErrorRate > 0 && r.Float64() < f.ErrorRate {
		kind = []string{FiredTooMany, FiredInternal, FiredTimeout}[r.IntN(3)]
		s.countLocked(client, kind)
	}
	if kind == "" && (verb == "get" || verb == "list") {
		s.reads[client]++
		// A client's first read that may lag always does: reads that may
		// lag are few (a reflector's lists), and a stale-read window that
		// served none would have tested nothing.
		floor, mayLag := staleFloor(requestedVersion(a))
		first := s.fired[client][FiredStaleRead] == 0
		if mayLag && f.StaleRate > 0 && (r.Float64() < f.StaleRate || first) && s.st.rev > 1 {
			by := f.StaleBy
			if by <= 0 {
				by = 5
			}
			stale = max(s.st.rev-1-r.Int64N(by), max(s.st.compacted, 1), floor)
			if stale < s.st.rev {
				s.countLocked(client, FiredStaleRead)
				s.stale = append(s.stale, StaleRead{Time: time.Now(), Client: client, Verb: verb, Resource: a.GetResource().Resource,
					Requested: requestedVersion(a), Served: stale, Current: s.st.rev})
			} else {
				stale = 0
			}
		}
	}
	timeout := f.Timeout
	s.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
	switch kind {
	case FiredTooMany:
		return 0, apierrors.NewTooManyRequests("the simulator throttles this client", 1)
	case FiredInternal:
		return 0, apierrors.NewInternalError(errors.New("the simulator failed this request"))
	case FiredTimeout:
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		time.Sleep(timeout)
		return 0, apierrors.NewTimeoutError("the simulator timed this request out after "+timeout.String(), 1)
	}
	return stale, nil
}

// staleFloor says how stale a read asking for resourceVersion rv may be
// answered, following the API server's contract for Get and List
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions,
// "Semantics for get and list"): rv unset asks for the most recent data, a
// consistent read that is never stale; "0" accepts any data, so a lagging
// watch cache may answer it from any older revision; any other value asks
// for data "not older than" it, so a lagging answer is still at least rv.
// A client-go reflector lists with "0" when it starts and with the last
// revision it saw when it lists again, so a stale relist never takes its
// cache back in time; the leader elector reads with rv unset.
func staleFloor(rv string) (floor int64, mayLag bool) {
	switch rv {
	case "":
		return 0, false
	case "0":
		return 0, true
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// requestedVersion is the resourceVersion a Get or List asked for.
func requestedVersion(a k8stesting.Action) string {
	switch act := a.(type) {
	case k8stesting.GetActionImpl:
		return act.GetOptions.ResourceVersion
	case k8stesting.ListActionImpl:
		return act.ListOptions.ResourceVersion
	}
	return ""
}

// react serves one non-watch request of client.
func (s *Server) react(client string, a k8stesting.Action) (bool, runtime.Object, error) {
	stale, err := s.admit(client, a)
	if err != nil {
		return true, nil, err
	}
	gvr := a.GetResource()
	ns := a.GetNamespace()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch a.GetVerb() {
	case "get":
		act := a.(k8stesting.GetAction)
		objs := s.st.objects
		if stale > 0 {
			objs = s.st.stateAt(gvr, stale)
		}
		o, ok := objs[objKey{gvr, ns, act.GetName()}]
		if !ok {
			return true, nil, apierrors.NewNotFound(gvr.GroupResource(), act.GetName())
		}
		return true, o.DeepCopyObject(), nil
	case "list":
		act := a.(k8stesting.ListActionImpl)
		list, err := newList(act.GetKind())
		if err != nil {
			return true, nil, apierrors.NewInternalError(err)
		}
		objs, rev := s.st.current(gvr), s.st.rev
		if stale > 0 {
			objs, rev = s.st.stateAt(gvr, stale), stale
		}
		lr := act.GetListRestrictions()
		items := sortedObjects(objs, filter{namespace: ns, labels: lr.Labels, fields: lr.Fields})
		if err := meta.SetList(list, items); err != nil {
			return true, nil, apierrors.NewInternalError(err)
		}
		lm, _ := meta.ListAccessor(list)
		lm.SetResourceVersion(strconv.FormatInt(rev, 10))
		return true, list, nil
	case "create":
		act := a.(k8stesting.CreateAction)
		o, err := s.st.create(client, gvr, ns, act.GetObject(), func() string { return s.suffix(client) })
		return true, o, err
	case "update":
		act := a.(k8stesting.UpdateAction)
		o, err := s.st.update(client, gvr, ns, act.GetSubresource(), act.GetObject())
		return true, o, err
	case "patch":
		act := a.(k8stesting.PatchAction)
		o, err := s.st.patch(client, gvr, ns, act.GetName(), act.GetPatchType(), act.GetPatch())
		return true, o, err
	case "delete":
		act := a.(k8stesting.DeleteAction)
		return true, nil, s.st.remove(client, gvr, ns, act.GetName())
	}
	return true, nil, apierrors.NewMethodNotSupported(gvr.GroupResource(), a.GetVerb())
}

// watch opens a watch for client.
func (s *Server) watch(client string, a k8stesting.WatchAction) (bool, watch.Interface, error) {
	if _, err := s.admit(client, a); err != nil {
		return true, nil, err
	}
	gvr := a.GetResource()
	wr := a.GetWatchRestrictions()
	f := filter{namespace: a.GetNamespace(), labels: wr.Labels, fields: wr.Fields}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := newWatcher(client, gvr, f)
	switch wr.ResourceVersion {
	case "", "0":
		for _, o := range sortedObjects(s.st.current(gvr), f) {
			w.send(watch.Event{Type: watch.Added, Object: o})
		}
	default:
		from, err := strconv.ParseInt(wr.ResourceVersion, 10, 64)
		if err != nil {
			w.Stop()
			return true, nil, apierrors.NewBadRequest("invalid resourceVersion " + strconv.Quote(wr.ResourceVersion))
		}
		if from < s.st.compacted-1 {
			w.Stop()
			return true, nil, apierrors.NewResourceExpired("too old resource version: " + wr.ResourceVersion)
		}
		for _, c := range s.st.log {
			if c.Revision > from && c.Resource == gvr && f.matches(c.Namespace, c.Name, c.Object) {
				w.send(watch.Event{Type: c.Type, Object: c.Object.DeepCopyObject()})
			}
		}
	}
	s.st.watchers[w] = struct{}{}
	return true, w, nil
}

// Reads returns how many Get and List requests client made ("*": all).
func (s *Server) Reads(client string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c, v := range s.reads {
		if client == "*" || c == client {
			n += v
		}
	}
	return n
}

// resourceOf maps a typed object to its resource through client-go's scheme.
func resourceOf(o runtime.Object) (schema.GroupVersionResource, error) {
	gvks, _, err := fakeScheme().ObjectKinds(o)
	if err != nil || len(gvks) == 0 {
		return schema.GroupVersionResource{}, errors.New("apiserver: unknown object type " + reflectName(o))
	}
	gvr, _ := meta.UnsafeGuessKindToResource(gvks[0])
	return gvr, nil
}

// lastChange is the newest change. Called right after a client's write, it
// is that write's change unless another write slipped in between, which
// only the crash-after-write hook looks at, and only for its Client.
func (s *Server) lastChange() Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.st.log) == 0 {
		return Change{}
	}
	return s.st.log[len(s.st.log)-1]
}
