// Package world runs the real konductor controller (controller/manager),
// several replicas at once, against the fake API server (sim/apiserver) and
// fake Kong nodes (sim/kong) under testing/synctest virtual time, injects
// faults from a plan, and checks the invariants of design.md as oracles.
//
// One seed drives every random choice the world makes: the API server's
// fault draws (one stream per client, verb and resource), the nemesis
// (Random), and the controllers' retry and drift-check jitter (one stream
// per replica incarnation and Kong target, through manager.Config.Rand).
// So one seed replays the same trace, virtual times of Kong writes
// included (see Result.TraceHash). Database mode is the exception: dbsync
// draws seeded jitter too, but writes a phase's entities concurrently, so
// the order (and so the trace hash) of writes within a phase may differ
// between runs of one seed; its oracles judge end states, not order.
//
// API-server faults (outage, errors, partitions, dropped watches, stale
// reads) are the other exception. After one, every informer's client-go
// reflector retries with a backoff jittered by the process-wide math/rand
// source, which neither the seed nor manager.Config reaches (client-go's
// informers take no backoff of their own). Seeding that source would not
// be enough: the reflectors of all replicas wake at the same virtual
// instant and draw in the order the goroutine scheduler runs them. A
// replay of such a seed then moves the instant a replica's cache catches
// up (seconds apart), and everything after it. So a failure after an API
// fault is replayed by running its seed again until it fails:
// konductor-sim -seed N -repeat K -failfast -trace.
//
// Run must be called inside a synctest bubble (synctest.Test); it returns
// a Result with the trace, measurements and every oracle violation.
package world

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/election"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/manager"
	"konductor.dev/controller/options"
	"konductor.dev/sim/apiserver"
	"konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// Controller builds one controller replica: a runner over the given API
// client and Admin API client. Default runs the real manager.
type Controller func(env ReplicaEnv) (Runner, error)

// Runner is a running controller replica.
type Runner interface {
	Run(ctx context.Context) error
}

// ReplicaEnv is what a replica gets from the world.
type ReplicaEnv struct {
	Identity string
	Client   *apiserver.View
	HTTP     *http.Client
	Options  *options.Options
	// Targets lists the Kong Admin URLs currently in the admin Service
	// (for hand-built controllers that do no discovery of their own).
	Targets func() []string
	// Rand gives the replica's Kong pushers their jitter streams, derived
	// from the world's seed and this incarnation (manager.Config.Rand).
	Rand func(stream string) kongsync.Rand
	// Self is the replica's process in its Pod (manager.Config.Self).
	Self *election.Self
	// Dynamic reads the Kong custom resources (Config.KeyAuth); nil: none.
	Dynamic dynamic.Interface
	// Logger receives the replica's logs (see Config.LogDelay).
	Logger *slog.Logger
}

// Config describes one run.
type Config struct {
	Seed        uint64
	Controllers int // replicas; default 2
	Kongs       int // Kong pods at start; default 2
	Apps        int // apps (Service + Ingress) at start; default 3
	// Steps are the faults and input changes, in any order.
	Steps []Step
	// Settle bounds "eventually stable": after the last fault healed,
	// every Kong must serve the expected configuration within Settle;
	// default LeaseDuration + 30s + drift interval + 10s.
	Settle time.Duration
	// Stay is how long the configuration must then stay; default 20s.
	Stay time.Duration
	// RecoveryBound bounds a Kong restart's recovery; default
	// 2×drift interval + 5s.
	RecoveryBound time.Duration
	// Expected is the Kong configuration hash the run must end with
	// (from a reference run); empty: every Kong must end on the same one.
	Expected string
	// Controller builds replicas; nil: the real manager.
	Controller Controller
	// Options tweaks the controller options after the world's defaults.
	Options func(*options.Options)
	// Logger receives the controllers' logs; nil discards them.
	Logger *slog.Logger
	// Progress, if set, is told the virtual time as the run advances
	// (every probe tick): a watchdog outside the bubble uses it to tell a
	// run that stopped making progress from a slow one.
	Progress func(virtual time.Duration)
	// Database runs Kong with a database shared by every node (an
	// in-memory backend) and the controllers with static Admin URLs and
	// the DB-mode pusher; Kong cannot be scaled then.
	Database bool
	// AdminLatency delays every Kong Admin API request (a Kong on
	// PostgreSQL answers in milliseconds); 0: none.
	AdminLatency time.Duration
	// PathRouting adds an Ingress that sends paths of one host to apps
	// 0-2 (Prefix /, Prefix /foo, Exact /bar) and the routing oracle:
	// probes of paths at, below and beside those paths must reach the app
	// the Ingress rules pick. DB-less only (a database is written entity
	// by entity, so a Kong may serve part of an Ingress for a moment), and
	// it needs at least 3 apps.
	PathRouting bool
	// LogDelay is how long every log record a controller emits blocks the
	// goroutine that writes it: a log pipe under backpressure, or a
	// translation that takes time as on a big cluster (the manager logs
	// each new configuration before handing it on). 0: logs cost nothing.
	LogDelay time.Duration
	// KeyAuth protects app 0 with key-auth (a KongPlugin, a KongConsumer
	// and its credential Secret) and adds the "auth" oracle: once a Kong
	// refused an anonymous request to app 0 it never lets one through,
	// and the key is always accepted.
	KeyAuth bool
}

func (c *Config) defaults(o *options.Options) {
	if c.Controllers <= 0 {
		c.Controllers = 2
	}
	if c.Kongs < 0 {
		c.Kongs = 0
	} else if c.Kongs == 0 {
		c.Kongs = 2
	}
	if c.Apps <= 0 {
		c.Apps = 3
	}
	if c.Settle <= 0 {
		// A lease to elect, kongsync's 30s backoff cap after rejections,
		// a drift check, and slack.
		c.Settle = o.ElectionLeaseDuration + 30*time.Second + o.KongDriftCheckInterval + 10*time.Second
	}
	if c.Stay <= 0 {
		c.Stay = 20 * time.Second
	}
	if c.RecoveryBound <= 0 {
		c.RecoveryBound = 2*o.KongDriftCheckInterval + 5*time.Second
	}
	if c.Controller == nil {
		c.Controller = Manager
	}
}

// Manager is the real controller: controller/manager, with the DB-mode
// pusher as cmd/konductor wires it.
func Manager(env ReplicaEnv) (Runner, error) {
	return manager.New(manager.Config{
		Options: env.Options, Client: env.Client, HTTPClient: env.HTTP, Dynamic: env.Dynamic,
		Identity: env.Identity, PodName: env.Identity, ElectionNamespace: kongNamespace, Self: env.Self,
		Logger: cmp.Or(env.Logger, slog.New(slog.DiscardHandler)), Rand: env.Rand,
		NewDBPusher: func(o kongsync.Options) (manager.Pusher, error) {
			return dbsync.NewBodyPusher(o), nil
		},
	})
}

// defaultOptions are the controller flags of every replica: gateway
// discovery of the Kong admin Service, so Kong writes are gated by the
// election; default timings.
func defaultOptions() *options.Options {
	o := options.Default()
	o.KongAdminSvc = kongNamespace + "/" + adminService
	o.ElectionNamespace = kongNamespace
	o.PublishStatusAddress = []string{"203.0.113.10"}
	o.MetricsBindAddress, o.HealthProbeBindAddress = "", ""
	return o
}

// replica is one incarnation of a controller replica.
type replica struct {
	index    int
	name     string // stable (pod) name: konductor-<i>
	identity string // this incarnation
	gen      int
	cancel   context.CancelFunc
	done     chan struct{}
	dead     bool          // crashed: nothing it sends arrives anywhere
	paused   chan struct{} // non-nil while paused
	stopped  bool
	nodeLost bool // its node is cut off from the API server
}

// World is one simulation run.
type World struct {
	cfg   Config
	opts  *options.Options
	api   *apiserver.Server
	start time.Time
	ctx   context.Context

	mu         sync.Mutex
	replicas   []*replica
	slots      []*kongSlot
	served     []served
	trace      []Event
	firedKinds map[string]int
	writes     int
	crashAfter []int // controller write numbers after which the writer crashes
	violations []Violation
	traffic    TrafficStats
	// refused holds the Kong nodes (incarnations) that have refused an
	// anonymous request to app 0 (Config.KeyAuth).
	refused map[*kong.Node]bool
	// misrouted holds the wrong routing answers already reported.
	misrouted map[string]bool
	apps      int
	// appAt names the app each add-app step added, by the step's time.
	appAt      map[time.Duration]int
	wg         sync.WaitGroup
	faultStart map[string]time.Time
	failovers  []failover
	recoveries []time.Duration
	restarts   []kongRestart
	// outages are the API-server outages: no replica can hold a lease
	// during one, so a Kong's recovery is measured from its end.
	outages [][2]time.Time
	// replicaFaults are API faults aimed at a replica: they follow it
	// across restarts (each incarnation is its own API client).
	replicaFaults map[int]apiserver.Faults
	db            *store.Memory // database mode: shared by every node
	nodeStops     []context.CancelFunc
	endAt         time.Time
	stuck         int // replicas that never stopped
	// The controller Pods and their kubelets (pods.go).
	pods         []*podState
	deaths       deathLog
	podWrites    sync.Mutex
	podCtx       context.Context
	statusWrites []statusWrite
	// attempts are the Kong writes that left live replicas (volume.go).
	attempts []*attempt
	// killed records when each killed replica incarnation died (a crash,
	// not a graceful stop): nothing it sends reaches anything after that.
	killed map[string]time.Time
	// emptied are the windows in which every Ingress was deleted.
	emptied [][2]time.Time
	// lockRecords are the lock records decoded so far, by their JSON.
	lockRecordsMu sync.Mutex
	lockRecords   map[string]decodedLock
}

type failover struct {
	at       time.Time
	identity string
	kind     string // the fault that lost the leader
}

type kongRestart struct {
	at   time.Time
	slot int
	gen  int
}

// TrafficStats counts the probe requests sent through the Kong proxies.
type TrafficStats struct {
	Requests, Failures int
}

// Violation is one broken invariant.
type Violation struct {
	Oracle string
	At     time.Duration
	Detail string
}

func (v Violation) String() string { return fmt.Sprintf("[%s] at %v: %s", v.Oracle, v.At, v.Detail) }

// Lock object of the election (ConfigMap lock, default names).
var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func lockName() string { return election.LockName("", ingressClass) }

// Run runs one world to completion. It must run inside a synctest bubble.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	o := defaultOptions()
	if cfg.Options != nil {
		cfg.Options(o)
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("world: controller options: %w", err)
	}
	cfg.defaults(o)
	for i, s := range cfg.Steps {
		if err := s.validate(cfg); err != nil {
			return nil, fmt.Errorf("world: step %d (%s): %w", i, s.Kind, err)
		}
	}
	if cfg.Database {
		o.KongAdminSvc = ""
		o.KongAdminURLs = nil
		for j := range cfg.Kongs {
			o.KongAdminURLs = append(o.KongAdminURLs, fmt.Sprintf("http://%s:%d", kongIP(j), adminPort))
		}
		for _, s := range cfg.Steps {
			if s.Kind == FaultScaleKong {
				return nil, errors.New("world: Kong cannot be scaled in database mode (the controllers use static Admin URLs)")
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &World{
		cfg: cfg, opts: o, api: apiserver.New(cfg.Seed), start: time.Now(), ctx: ctx,
		firedKinds: map[string]int{}, apps: cfg.Apps, faultStart: map[string]time.Time{},
		replicaFaults: map[int]apiserver.Faults{}, killed: map[string]time.Time{},
	}
	for _, s := range cfg.Steps {
		if s.Kind == FaultCrashAfterWrite {
			w.crashAfter = append(w.crashAfter, s.N)
		}
	}
	w.api.OnWrite = w.apiWrote
	w.api.SetBaseLatency(2 * time.Millisecond)
	if cfg.Database {
		w.db = store.NewMemory()
	}
	objs := baseObjects(cfg.Apps)
	if cfg.KeyAuth {
		objs = withKeyAuth(objs)
	}
	if cfg.PathRouting {
		if cfg.Database || cfg.Apps < 3 {
			return nil, errors.New("world: PathRouting needs DB-less Kong and at least 3 apps")
		}
		objs = append(objs, routingIngress())
	}
	if err := w.api.Seed(objs...); err != nil {
		return nil, err
	}
	podCtx, stopPods := context.WithCancel(ctx)
	defer stopPods()
	w.podCtx = podCtx
	if err := w.startPods(podCtx); err != nil {
		return nil, err
	}
	for j := range cfg.Kongs {
		if err := w.addSlot(j); err != nil {
			return nil, err
		}
	}
	if err := w.publishSlots(); err != nil {
		return nil, err
	}
	// Replicas start a seeded moment apart, as pods do: started at one
	// virtual instant they would race for the lock and the winner would be
	// the goroutine scheduler's choice, not the seed's.
	stagger := rand.New(rand.NewPCG(cfg.Seed, 0x7374616767))
	for i := range cfg.Controllers {
		// Oracles and probes already running read w.replicas under w.mu.
		w.mu.Lock()
		w.replicas = append(w.replicas, &replica{index: i, name: fmt.Sprintf("konductor-%d", i)})
		w.mu.Unlock()
		if i > 0 {
			time.Sleep(50*time.Millisecond + time.Duration(stagger.Int64N(int64(400*time.Millisecond))))
		}
		if err := w.startReplica(i); err != nil {
			return nil, err
		}
	}
	probes, stopProbes := context.WithCancel(ctx)
	probesDone := make(chan struct{})
	go func() { defer close(probesDone); w.probeLoop(probes) }()

	quiet := w.runSteps(ctx)
	w.healAll()
	w.event("faults-stopped", "")
	// Eventually stable, then stays.
	time.Sleep(cfg.Settle - time.Since(quiet))
	stableAt := time.Now()
	want, err := w.expectedHash(ctx)
	if err != nil {
		w.violate("world", "computing the expected configuration: %v", err)
	}
	w.checkStable(want, cfg.Expected)
	time.Sleep(cfg.Stay)
	w.checkStayed(stableAt)
	stopProbes()
	<-probesDone
	// The trace ends here: the shutdown below (replicas stopping one by
	// one at one instant, handing the lock on) is not part of the run.
	w.mu.Lock()
	w.endAt = time.Now()
	w.mu.Unlock()

	for i := range w.replicas {
		w.stopReplica(i, true)
	}
	w.mu.Lock()
	for _, stop := range w.nodeStops {
		stop()
	}
	stuck := w.stuck
	w.mu.Unlock()
	stopPods()
	if stuck == 0 {
		w.wg.Wait()
	}
	cancel()
	return w.result(), nil
}

// now is the virtual time since the start.
func (w *World) now() time.Duration { return time.Since(w.start) }

func (w *World) violate(oracle, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, Violation{Oracle: oracle, At: w.now(), Detail: fmt.Sprintf(format, args...)})
}

// fired counts one occurrence of a fault; w.mu held.
func (w *World) fired(kind string) { w.firedKinds[kind]++ }

func (w *World) addSlot(j int) error {
	s := &kongSlot{index: j, up: true, cutFrom: map[string]bool{}}
	n, err := w.newNode(j, 0)
	if err != nil {
		return err
	}
	s.node = n
	w.slots = append(w.slots, s)
	return nil
}

// publishSlots writes the admin Service's EndpointSlice from the slots up.
func (w *World) publishSlots() error {
	w.mu.Lock()
	var up []int
	for _, s := range w.slots {
		if s.up {
			up = append(up, s.index)
		}
	}
	w.mu.Unlock()
	return w.api.Apply(adminSlice(up))
}

func (w *World) targets() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, s := range w.slots {
		if s.up {
			out = append(out, fmt.Sprintf("http://%s:%d", kongIP(s.index), adminPort))
		}
	}
	return out
}

// startReplica starts a new incarnation of replica i, with empty caches.
func (w *World) startReplica(i int) error {
	w.mu.Lock()
	r := w.replicas[i]
	r.gen++
	r.identity = fmt.Sprintf("%s-%d", r.name, r.gen)
	r.dead, r.stopped, r.paused = false, false, nil
	r.done = make(chan struct{})
	f, aimed := w.replicaFaults[i]
	w.mu.Unlock()
	if aimed {
		w.api.SetFaults(r.identity, f)
	}
	o := *w.opts
	started := time.Now()
	env := ReplicaEnv{
		Self:     w.self(i, started),
		Identity: r.identity,
		Client:   w.api.Client(r.identity),
		HTTP:     &http.Client{Transport: kongTransport{w: w, replica: r}},
		Options:  &o,
		Targets:  w.targets,
		Rand:     replicaRand(w.cfg.Seed, r.identity),
	}
	if w.cfg.LogDelay > 0 {
		env.Logger = slog.New(slowLog{delay: w.cfg.LogDelay})
	}
	if w.cfg.KeyAuth {
		env.Dynamic = kongResources(env.Client)
	}
	run, err := w.cfg.Controller(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(w.ctx)
	r.cancel = cancel
	done := r.done
	w.event("replica-start", r.identity)
	w.containerStarted(i, r.identity, started)
	w.wg.Go(func() {
		defer close(done)
		if err := run.Run(ctx); err != nil && ctx.Err() == nil {
			w.violate("controller-error", "%s stopped with an error: %v", env.Identity, err)
		}
	})
	return nil
}

// replicaRand derives a replica incarnation's jitter streams from the seed:
// one stream per identity and stream name, so that neither the order in
// which workers start nor another replica's draws shift them.
func replicaRand(seed uint64, identity string) func(stream string) kongsync.Rand {
	return func(stream string) kongsync.Rand {
		h := fnv.New64a()
		h.Write([]byte(identity))
		h.Write([]byte{0})
		h.Write([]byte(stream))
		return kongsync.SeededRand(seed, h.Sum64())
	}
}

// stopReplica stops replica i: gracefully (its context ends, it releases
// the lock) or as a crash (nothing it sends arrives any more, then its
// goroutines are ended).
func (w *World) stopReplica(i int, graceful bool) {
	w.mu.Lock()
	r := w.replicas[i]
	if r.stopped {
		w.mu.Unlock()
		return
	}
	r.stopped = true
	if !graceful {
		r.dead = true
	}
	if r.paused != nil {
		close(r.paused)
		r.paused = nil
	}
	id, done, cancel := r.identity, r.done, r.cancel
	w.mu.Unlock()
	if !graceful {
		w.api.SetFaults(id, apiserver.Faults{Partitioned: true})
		w.mu.Lock()
		w.killed[id] = time.Now()
		w.mu.Unlock()
	}
	cancel()
	select {
	case <-done:
	case <-time.After(stopBound):
		// Reported, not waited for: a replica that never stops would
		// otherwise keep the world (and virtual time) running forever.
		w.violate("controller-shutdown", "%s did not return within %v after its context ended", id, stopBound)
		w.mu.Lock()
		w.stuck++
		w.mu.Unlock()
	}
	w.containerEnded(i, id, graceful)
}

// stopBound bounds a replica's shutdown: BeforeRelease is bounded by the
// renew deadline (10s); anything beyond this is a hang.
const stopBound = 2 * time.Minute

// leader returns the replica holding the lock, or -1.
func (w *World) leader() int {
	holder := w.lockHolder()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, r := range w.replicas {
		if r.identity == holder && !r.stopped {
			return i
		}
	}
	return -1
}

func (w *World) lockHolder() string {
	obj, ok := w.api.Get(configMaps, kongNamespace, lockName())
	if !ok {
		return ""
	}
	rec, ok := w.lockRecord(obj.(*corev1.ConfigMap))
	if !ok {
		return ""
	}
	return rec.HolderIdentity
}

// lockRecord decodes the election record of a lock ConfigMap. The
// oracles read every version of the lock in the API server's history,
// several of them each: a record is decoded once per world.
func (w *World) lockRecord(cm *corev1.ConfigMap) (rl.LeaderElectionRecord, bool) {
	raw, ok := cm.Annotations[rl.LeaderElectionRecordAnnotationKey]
	if !ok {
		return rl.LeaderElectionRecord{}, false
	}
	w.lockRecordsMu.Lock()
	defer w.lockRecordsMu.Unlock()
	if d, seen := w.lockRecords[raw]; seen {
		return d.rec, d.ok
	}
	var d decodedLock
	d.ok = json.Unmarshal([]byte(raw), &d.rec) == nil
	if !d.ok {
		d.rec = rl.LeaderElectionRecord{}
	}
	if w.lockRecords == nil {
		w.lockRecords = map[string]decodedLock{}
	}
	w.lockRecords[raw] = d
	return d.rec, d.ok
}

// decodedLock is a lock record as lockRecord decoded it.
type decodedLock struct {
	rec rl.LeaderElectionRecord
	ok  bool
}

// apiWrote is the API server's write hook: crash-after-write plans.
func (w *World) apiWrote(client string, c apiserver.Change) {
	w.observeStatusWrite(client, c)
	if c.Resource.Resource == "events" {
		return // Events are best effort and batched; not a state write
	}
	w.mu.Lock()
	var r *replica
	for _, x := range w.replicas {
		if x.identity == client {
			r = x
		}
	}
	w.mu.Unlock()
	if r != nil {
		w.controllerWrote(r, "api "+c.Resource.Resource+" "+c.Namespace+"/"+c.Name)
	}
}

// controllerWrote counts a controller write and crashes its writer when a
// plan says so.
func (w *World) controllerWrote(r *replica, what string) {
	w.mu.Lock()
	w.writes++
	n := w.writes
	crash := slices.Contains(w.crashAfter, n) && !r.dead
	if crash {
		r.dead = true // nothing more it sends arrives, from this instant
		w.fired(FaultCrashAfterWrite)
	}
	id := r.identity
	w.mu.Unlock()
	if crash {
		w.api.SetFaults(id, apiserver.Faults{Partitioned: true})
		w.eventAt("crash-after-write", fmt.Sprintf("%s after write %d (%s)", id, n, what))
		// End the process and restart it later, off the writer's goroutine.
		go func() {
			w.stopReplica(r.index, false)
			w.markFailover(id, FaultCrashAfterWrite)
			time.Sleep(5 * time.Second)
			if w.ctx.Err() == nil {
				_ = w.startReplica(r.index)
			}
		}()
	}
}

func (w *World) markFailover(identity, kind string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failovers = append(w.failovers, failover{at: time.Now(), identity: identity, kind: kind})
}

// probeLoop sends traffic through every ready Kong every 500ms: each app
// that existed from the start must answer from its own backend.
func (w *World) probeLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.cfg.Progress != nil {
			w.cfg.Progress(w.now())
		}
		w.mu.Lock()
		var nodes []*kongSlot
		for _, s := range w.slots {
			if s.up && s.stalled == nil {
				nodes = append(nodes, s)
			}
		}
		apps := w.cfg.Apps
		w.mu.Unlock()
		for _, s := range nodes {
			w.mu.Lock()
			n := s.node
			w.mu.Unlock()
			if ok, _ := n.Ready(ctx); !ok {
				continue // a Service sends no traffic to an unready pod
			}
			if w.db != nil && n.Config().Empty() {
				// A DB-mode Kong is Ready once its router is built, even
				// from an empty database (Kong's behaviour); traffic
				// before the first push is the deployment's business.
				continue
			}
			if w.cfg.KeyAuth && !w.probeAnonymous(ctx, s, n) {
				return
			}
			if w.cfg.PathRouting {
				w.probeRouting(ctx, s, n)
			}
			for a := range apps {
				code, body := probe(ctx, n, a, w.cfg.KeyAuth && a == 0)
				if ctx.Err() != nil {
					return
				}
				w.mu.Lock()
				w.traffic.Requests++
				if code != http.StatusOK || body != appName(a) {
					w.traffic.Failures++
					w.mu.Unlock()
					w.violate("traffic", "%s (ready) answered %d %q for %s", kongPod(s.index), code, body, appHost(a))
					continue
				}
				w.mu.Unlock()
			}
		}
	}
}

// probeAnonymous sends app 0 a request without the key through n, the
// node in slot s, and checks the auth oracle: a DB-less Kong applies a
// configuration whole, so it never lets an anonymous request through; a
// Kong with a database may serve app 0's route in the instant before its
// plugin is written (the plugin refers to the route, so it comes second),
// so there the oracle starts once that Kong has refused once. It reports
// false when ctx ended.
func (w *World) probeAnonymous(ctx context.Context, s *kongSlot, n *kong.Node) bool {
	code, body := probe(ctx, n, 0, false)
	if ctx.Err() != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.traffic.Requests++
	if w.refused == nil {
		w.refused = map[*kong.Node]bool{}
	}
	switch {
	case code == http.StatusUnauthorized:
		w.refused[n] = true
	case w.db == nil || w.refused[n]:
		w.traffic.Failures++
		w.violations = append(w.violations, Violation{"auth", w.now(),
			fmt.Sprintf("%s (ready) answered %d %q to an anonymous request for %s, protected by key-auth", kongPod(s.index), code, body, appHost(0))})
	}
	return true
}

// checkStable checks that every Kong serves want, the configuration the
// final inputs call for, and reference, the configuration the fault-free
// reference run ended with (if given).
func (w *World) checkStable(want, reference string) {
	const oracle = "eventually-stable"
	w.mu.Lock()
	defer w.mu.Unlock()
	hashes := map[string][]string{}
	for _, s := range w.slots {
		if s.up {
			h := s.node.ConfigHash()
			hashes[h] = append(hashes[h], kongPod(s.index))
		}
	}
	if len(hashes) > 1 {
		w.violations = append(w.violations, Violation{oracle, w.now(), fmt.Sprintf("Kong replicas disagree after %v without faults: %v", w.cfg.Settle, hashes)})
	}
	for h, pods := range hashes {
		if want != "" && h != want {
			w.violations = append(w.violations, Violation{oracle, w.now(), fmt.Sprintf("%v serve %s after %v without faults; the inputs call for %s", pods, short(h), w.cfg.Settle, short(want))})
		}
		if reference != "" && h != reference {
			w.violations = append(w.violations, Violation{"differential", w.now(), fmt.Sprintf("%v serve %s, the fault-free reference run ends with %s", pods, short(h), short(reference))})
		}
	}
}

// checkStayed checks that no Kong changed configuration since at.
func (w *World) checkStayed(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.served {
		if s.At.After(at) {
			w.violations = append(w.violations, Violation{"stays-stable", s.At.Sub(w.start), fmt.Sprintf("%s changed configuration to %s after it was stable", kongPod(s.Slot), s.Hash)})
		}
	}
}

// allAudits returns every Kong write, of every node incarnation, by time.
func (w *World) allAudits() []auditRow {
	w.mu.Lock()
	defer w.mu.Unlock()
	var rows []auditRow
	for _, s := range w.slots {
		for _, a := range append(append([]kong.AuditEntry(nil), s.oldAudits...), s.node.Audit()...) {
			rows = append(rows, auditRow{slot: s.index, AuditEntry: a})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if !rows[i].Time.Equal(rows[j].Time) {
			return rows[i].Time.Before(rows[j].Time)
		}
		return rows[i].Epoch < rows[j].Epoch
	})
	return rows
}

type auditRow struct {
	slot int
	kong.AuditEntry
}
