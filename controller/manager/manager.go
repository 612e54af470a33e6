// Package manager is konductor's main loop: it wires informers, translation,
// Kong synchronisation, leader election, Ingress status and Events.
//
// Every replica runs informers and translates (warm standbys); only writes
// are gated. Kong writes are gated by the elector in DB mode and with gateway
// discovery (or when --leader-elect=true); a DB-less sidecar writes its own
// Kong ungated. Ingress status and Events are written by the elected replica
// only, in every mode, so the elector runs even when Kong writes are not
// gated (unless --update-status=false and nothing else needs it). What
// status is written, and cleared, is status.Loop's business; the manager
// tells it of translations, terms and applied versions.
//
// The loop: informer events are debounced (--sync-debounce; a steady stream
// of events still syncs at least every maxDebounceFactor debounce periods)
// and translations are spaced by at least --proxy-sync-seconds. Nothing is
// handed to the Kong syncer before every cache has synced, because an
// empty cache translates to an empty configuration that would wipe Kong.
// A new configuration (a new hash) gets the next Version.
//
// With gateway discovery, discovery.Loop keeps the pusher's targets equal
// to the admin Service's endpoints, and one that flips between ready and
// not ready at the same address (a container restarted in place) makes the
// pusher look at that replica at once (kongsync.Syncer.Suspect); the
// pusher's own liveness poll (--kong-liveness-check-interval) covers
// sidecars and static URLs.
//
// The manager starts no network listener; the program's main serves the
// health handlers and metrics.
package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"konductor.dev/controller/discovery"
	"konductor.dev/controller/election"
	"konductor.dev/controller/eventreport"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/health"
	"konductor.dev/controller/kongclient"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/metrics"
	"konductor.dev/controller/options"
	"konductor.dev/controller/retry"
	"konductor.dev/controller/snapshot"
	"konductor.dev/controller/status"
	"konductor.dev/controller/translate"
)

// maxDebounceFactor bounds the debounce: changes arriving without pause
// still lead to a translation after this many debounce periods.
const maxDebounceFactor = 10

// EventSource is the component name on the Events konductor emits.
const EventSource = "konductor"

// Pusher applies desired configurations to a set of Kong targets. The
// DB-less kongsync.Syncer is one; a DB-mode pusher (entity diffs through
// the Admin API) plugs in through Config.NewDBPusher.
type Pusher interface {
	SetTargets([]kongsync.Target)
	SetDesired(kongsync.Desired)
	Resync()
	Run(ctx context.Context) error
	AllApplied(version uint64) bool
}

// configPusher is a Pusher that takes the translated configuration as it
// is (the DB-mode pusher, which would otherwise decode the body again on
// every change, on the path of each change to Kong).
type configPusher interface {
	SetDesiredConfig(kongsync.Desired, *translate.Config)
}

// Config is everything the manager needs; main builds it from Options.
type Config struct {
	Options *options.Options
	// Client reaches the Kubernetes API server.
	Client kubernetes.Interface
	// Dynamic, when set, reads the Kong custom resources (KongPlugin,
	// KongClusterPlugin) whose CRDs are installed; nil reads none.
	Dynamic dynamic.Interface
	// ElectionClient, when set, is used for the leader election lock
	// only. main gives it its own rate limiter so that lease renewals never
	// queue behind a burst of status writes or Events; nil means Client.
	ElectionClient kubernetes.Interface
	// HTTPClient reaches the Kong Admin APIs (TLS and token already set,
	// see kongclient.NewHTTPClient); tests pass an in-memory transport.
	HTTPClient *http.Client
	// Identity names this replica in the election and on Kong writes;
	// empty means election.DefaultIdentity(PodName).
	Identity string
	PodName  string
	// ElectionNamespace overrides Options.ElectionNamespace when that is
	// empty (main resolves the kubeconfig's namespace); "default" at last.
	ElectionNamespace string
	// Self is this process in its Pod (election.ThisProcess), published
	// beside the lock while leading so that standbys can take over as soon
	// as the kubelet reports it terminated; nil publishes nothing.
	Self       *election.Self
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// NewDBPusher builds the pusher for Kong with a database. nil: DB mode
	// is refused with ErrDBModeUnsupported.
	NewDBPusher func(kongsync.Options) (Pusher, error)
	// ProbeBackoffMax caps the wait between two probes of a Kong that does
	// not answer yet; default 10s.
	ProbeBackoffMax time.Duration
	// Rand gives the Kong pushers their jitter streams (see
	// kongsync.Options.Rand); nil, as in production, draws from the global
	// source. The simulator seeds it so that a seed replays its timings.
	Rand func(stream string) retry.Rand
	// OnConfigCompacted is kongsync.Options.OnCompacted: it runs once an
	// idle configuration was compressed and its raw bytes became garbage.
	// cmd/konductor returns the memory to the operating system there; nil
	// leaves it to the Go runtime.
	OnConfigCompacted func(rawBytes int)
}

// ErrDBModeUnsupported is returned by Run when a Kong uses a database and no
// DB-mode pusher is available.
var ErrDBModeUnsupported = errors.New("Kong runs with a database (DB mode); this konductor build only configures DB-less Kong (POST /config), so it refuses to run rather than silently configure nothing")

// Manager runs the controller. Create with New, then call Run once.
type Manager struct {
	cfg      Config
	o        *options.Options
	log      *slog.Logger
	identity string
	ns       string

	cache       *snapshot.Cache
	extra       []informers.SharedInformerFactory // admin Service slices, publish Service
	adminSlices cache.SharedIndexInformer
	publishSvc  cache.SharedIndexInformer
	extraSynced []cache.InformerSynced

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	reporter    *eventreport.Reporter
	status      *status.Loop
	metrics     *metrics.Translation

	// Set by Run once it has probed Kong, before started is set.
	pusher  Pusher
	elector *election.Elector
	gated   bool
	started atomic.Bool

	changes     chan struct{}
	targetsKick chan struct{}

	synced  atomic.Bool
	applied atomic.Bool
	// translated is closed by the first translation (markTranslated):
	// readiness reads it and openTerm waits on it.
	translated     chan struct{}
	translatedOnce sync.Once

	// openEpoch is the term whose first translation came from caches
	// confirmed current (openTerm); Kong writes wait for it. -1: none.
	openEpoch atomic.Int64
	// translating serialises translations: the loop's and openTerm's.
	translating sync.Mutex
	opening     sync.WaitGroup // openTerm calls; Run waits for them

	mu         sync.Mutex
	version    uint64
	lastHash   string
	lastErrors []translate.ObjectError

	// flavorMu guards the router flavor each Kong reported and the one
	// routes are translated for (see learnRouterFlavor).
	flavorMu sync.Mutex
	flavors  map[string]string
	flavor   string
}

// New validates cfg and builds the informers; nothing runs until Run.
func New(cfg Config) (*Manager, error) {
	if cfg.Options == nil {
		return nil, errors.New("manager: Config.Options is nil")
	}
	if err := cfg.Options.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client == nil {
		return nil, errors.New("manager: Config.Client is nil")
	}
	if cfg.HTTPClient == nil {
		return nil, errors.New("manager: Config.HTTPClient is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProbeBackoffMax <= 0 {
		cfg.ProbeBackoffMax = 10 * time.Second
	}
	o := cfg.Options
	m := &Manager{
		cfg:         cfg,
		o:           o,
		log:         cfg.Logger,
		identity:    cfg.Identity,
		changes:     make(chan struct{}, 1),
		targetsKick: make(chan struct{}, 1),
		translated:  make(chan struct{}),
	}
	m.openEpoch.Store(-1)
	if m.identity == "" {
		m.identity = election.DefaultIdentity(cfg.PodName)
	}
	m.ns = o.ElectionNamespace
	if m.ns == "" {
		m.ns = cfg.ElectionNamespace
	}
	if m.ns == "" {
		m.ns = metav1.NamespaceDefault
	}
	m.status = status.NewLoop(&status.Loop{
		Writer:       &status.Writer{Client: cfg.Client, Logger: m.log},
		IngressClass: o.IngressClass,
		Update:       o.UpdateStatus,
		Addresses: func() []networkingv1.IngressLoadBalancerIngress {
			return status.Addresses(m.publishService(), o.PublishStatusAddress)
		},
		// The loop runs only once Run has set the pusher.
		Applied: func(version uint64) bool { return m.pusher.AllApplied(version) },
		Reports: m.reports,
		OnNewTerm: func() {
			// Report what is broken now; what this replica reported in an
			// earlier term was forgotten when that term ended.
			m.mu.Lock()
			errs := m.lastErrors
			m.mu.Unlock()
			m.reporter.TranslationErrors(errs)
		},
		Logger: m.log,
	})
	var err error
	if m.metrics, err = metrics.NewTranslation(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("manager: registering metrics: %w", err)
	}
	m.cache, err = snapshot.New(snapshot.Config{
		Client:       cfg.Client,
		Dynamic:      cfg.Dynamic,
		Namespaces:   o.WatchNamespaces,
		IngressClass: o.IngressClass,
		OnChange:     m.changed,
	})
	if err != nil {
		return nil, err
	}
	if o.KongAdminSvc != "" {
		ns, name, _ := options.SplitNamespacedName(o.KongAdminSvc)
		f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
				lo.LabelSelector = labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}).String()
			}))
		m.adminSlices = f.Discovery().V1().EndpointSlices().Informer()
		if err := m.onEvent(m.adminSlices, func() { kick(m.targetsKick) }); err != nil {
			return nil, err
		}
		m.extra = append(m.extra, f)
	}
	if o.PublishService != "" && len(o.PublishStatusAddress) == 0 {
		ns, name, _ := options.SplitNamespacedName(o.PublishService)
		f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
				lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			}))
		m.publishSvc = f.Core().V1().Services().Informer()
		if err := m.onEvent(m.publishSvc, m.status.Kick); err != nil {
			return nil, err
		}
		m.extra = append(m.extra, f)
	}
	m.status.Cache = m.cache
	return m, nil
}

func (m *Manager) onEvent(inf cache.SharedIndexInformer, fn func()) error {
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { fn() },
		UpdateFunc: func(any, any) { fn() },
		DeleteFunc: func(any) { fn() },
	})
	if err != nil {
		return fmt.Errorf("manager: adding event handler: %w", err)
	}
	m.extraSynced = append(m.extraSynced, inf.HasSynced, reg.HasSynced)
	return nil
}

// kick wakes a loop waiting on ch without blocking.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (m *Manager) changed() { kick(m.changes) }

// Identity is the replica's identity in the election and on Kong writes.
func (m *Manager) Identity() string { return m.identity }

// Run runs the controller until ctx is done, then shuts down gracefully: the
// leader stops writing, waits for writes in flight and releases the lock.
// It returns nil after a graceful shutdown, or the error that stopped it.
func (m *Manager) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	informerCtx, stopInformers := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopInformers()
		m.cache.Shutdown()
		for _, f := range m.extra {
			f.Shutdown()
		}
	}()
	m.cache.Start(informerCtx)
	for _, f := range m.extra {
		f.StartWithContext(informerCtx)
	}
	m.broadcaster = record.NewBroadcaster(record.WithContext(informerCtx))
	m.recorder = m.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventSource})
	m.reporter = eventreport.New(m.recorder, m.log)
	sink := m.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.cfg.Client.CoreV1().Events("")})
	defer func() {
		sink.Stop()
		m.broadcaster.Shutdown()
	}()

	dbMode, err := m.probeKong(runCtx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	m.gated = m.o.LeaderElect == options.LeaderElectTrue ||
		(m.o.LeaderElect == options.LeaderElectAuto && (dbMode || m.o.KongAdminSvc != ""))
	needElector := m.gated || m.o.UpdateStatus

	// The pusher and status loop stop on stopWrites, not on ctx: on
	// shutdown the elector first stops granting, then BeforeRelease stops
	// them and waits, and only then is the lock released.
	writeCtx, stopWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWrites()
	pusherDone := make(chan struct{})
	statusDone := make(chan struct{})
	waitWrites := func(wctx context.Context) {
		stopWrites()
		for _, done := range []chan struct{}{pusherDone, statusDone} {
			select {
			case <-done:
			case <-wctx.Done():
				return
			}
		}
	}

	if needElector {
		electionClient := m.cfg.ElectionClient
		if electionClient == nil {
			electionClient = m.cfg.Client
		}
		m.elector, err = election.New(election.Config{
			Client:        electionClient,
			Namespace:     m.ns,
			Name:          election.LockName(m.o.ElectionID, m.o.IngressClass),
			LockType:      m.o.ElectionLock,
			Identity:      m.identity,
			LeaseDuration: m.o.ElectionLeaseDuration,
			RenewDeadline: m.o.ElectionRenewDeadline,
			RetryPeriod:   m.o.ElectionRetryPeriod,
			PodEvidence:   m.o.ElectionPodEvidence,
			Self:          m.cfg.Self,
			Registerer:    m.cfg.Registerer,
			Logger:        m.log.With("component", "election"),
			OnNewTerm: func(t fence.Term) {
				if m.gated {
					m.opening.Go(func() { m.openTerm(runCtx, t) })
				}
				m.status.NewTerm()
			},
			OnStoppedLeading: func() {
				// The next leader reports on its own; if we lead again we
				// report everything current again.
				m.reporter.Reset()
			},
			BeforeRelease: waitWrites,
		})
		if err != nil {
			return err
		}
	}
	var gate fence.WriteGate = fence.Always{Identity: m.identity}
	if m.gated {
		gate = currentGate{m}
	}
	if m.pusher, err = m.newPusher(dbMode, gate); err != nil {
		return err
	}
	m.started.Store(true)
	m.log.Info("starting", "identity", m.identity, "kongWritesGated", m.gated, "election", needElector,
		"lock", m.ns+"/"+election.LockName(m.o.ElectionID, m.o.IngressClass), "ingressClass", m.o.IngressClass)

	var wg sync.WaitGroup
	go func() {
		defer close(pusherDone)
		if err := m.pusher.Run(writeCtx); err != nil {
			cancel(fmt.Errorf("kong sync: %w", err))
		}
	}()
	go func() {
		defer close(statusDone)
		m.status.Run(writeCtx)
	}()
	electorDone := make(chan struct{})
	if m.elector != nil {
		go func() {
			defer close(electorDone)
			if err := m.elector.Run(runCtx); err != nil {
				m.log.Warn("leader election ended with an error", "err", err)
			}
		}()
	} else {
		close(electorDone)
	}
	if m.adminSlices != nil {
		_, svc, _ := options.SplitNamespacedName(m.o.KongAdminSvc)
		found := &discovery.Loop{
			Service:   svc,
			PortNames: m.o.KongAdminSvcPortNames,
			Slices:    m.listAdminSlices,
			Pusher:    m.pusher,
			Logger:    m.log,
		}
		wg.Go(func() { found.Run(runCtx, m.targetsKick, m.synced.Load) })
	}
	wg.Go(func() { m.loop(runCtx) })

	<-runCtx.Done()
	wg.Wait()
	<-electorDone // a leader has run BeforeRelease and released the lock
	m.opening.Wait()
	waitWrites(context.Background())
	m.log.Info("stopped")
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
		return cause
	}
	return nil
}

// newPusher returns the DB-less syncer, or the DB-mode pusher.
func (m *Manager) newPusher(dbMode bool, gate fence.WriteGate) (Pusher, error) {
	so := kongsync.Options{
		Client:        m.cfg.HTTPClient,
		Gate:          gate,
		Identity:      m.identity,
		PushTimeout:   m.o.KongAdminTimeout,
		DriftInterval: m.o.KongDriftCheckInterval,
		// 0 (off) on the flag is a negative value here: kongsync's zero
		// means its default.
		LivenessInterval: cmp.Or(m.o.KongLivenessCheckInterval, -1),
		Rand:             m.cfg.Rand,
		Registerer:       m.cfg.Registerer,
		Logger:           m.log.With("component", "kongsync"),
		OnCompacted:      m.cfg.OnConfigCompacted,
		OnApplied: func(kongsync.Target, kongsync.Desired) {
			m.applied.Store(true)
			m.status.Kick()
		},
		OnRejected: func(_ kongsync.Target, d kongsync.Desired, rs []kongsync.Rejection) {
			if m.reports() {
				m.reporter.Rejections(d.Hash, rs)
			}
		},
		// Discovered replicas were not probed at start: each is probed
		// before its first push, and one with a database is left alone.
		ProbeTargets:   m.o.KongAdminSvc != "",
		OnIncompatible: m.reportIncompatible,
		OnProbed: func(t kongsync.Target, root kongclient.Root) {
			m.learnRouterFlavor(t.Name, root.RouterFlavor)
		},
	}
	var p Pusher
	if dbMode {
		if m.cfg.NewDBPusher == nil {
			m.log.Error("refusing to run: DB mode is not supported by this build", "kongAdminURL", strings.Join(m.o.KongAdminURLs, ","))
			return nil, ErrDBModeUnsupported
		}
		var err error
		if p, err = m.cfg.NewDBPusher(so); err != nil {
			return nil, fmt.Errorf("DB-mode pusher: %w", err)
		}
	} else {
		p = kongsync.New(so)
	}
	if m.o.KongAdminSvc == "" {
		targets := make([]kongsync.Target, 0, len(m.o.KongAdminURLs))
		for _, u := range m.o.KongAdminURLs {
			targets = append(targets, kongsync.Target{Name: u, URL: strings.TrimRight(u, "/")})
		}
		p.SetTargets(targets)
	}
	return p, nil
}

// ReasonKongDatabaseMismatch is the Event reason, on the Kong admin Service,
// for a discovered Kong replica that runs with a database.
const ReasonKongDatabaseMismatch = "KongDatabaseMismatch"

// reportIncompatible puts a Warning Event on the admin Service: the object
// the operator pointed konductor at, where `kubectl describe` shows why one
// of its endpoints is not configured. kongsync also exports it as the
// konductor_kong_target_incompatible metric, for alerts.
func (m *Manager) reportIncompatible(t kongsync.Target, root kongclient.Root) {
	if !m.reports() {
		return
	}
	ns, name, _ := options.SplitNamespacedName(m.o.KongAdminSvc)
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Service", Namespace: ns, Name: name}
	m.recorder.Eventf(ref, corev1.EventTypeWarning, ReasonKongDatabaseMismatch,
		"Kong replica %s (%s) runs with database %q; konductor configures DB-less Kong (POST /config) and leaves it unconfigured", t.Name, t.URL, root.Database)
}

// probeKong asks every static Kong for its database mode, retrying with
// backoff until each answers. With gateway discovery the Kong replicas are
// not known yet; discovery is DB-less by design, and kongsync probes each
// discovered replica before its first push (Options.ProbeTargets).
func (m *Manager) probeKong(ctx context.Context) (dbMode bool, err error) {
	if m.o.KongAdminSvc != "" {
		return false, nil
	}
	roots := make([]kongclient.Root, len(m.o.KongAdminURLs))
	errs := make([]error, len(m.o.KongAdminURLs))
	var wg sync.WaitGroup
	for i, u := range m.o.KongAdminURLs {
		wg.Go(func() { roots[i], errs[i] = m.probeUntilUp(ctx, u) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	for i, r := range roots {
		m.learnRouterFlavor(m.o.KongAdminURLs[i], r.RouterFlavor)
		if !r.DBLess() {
			dbMode = true
			m.log.Info("Kong uses a database", "kongAdminURL", m.o.KongAdminURLs[i], "database", r.Database, "version", r.Version)
		}
	}
	if dbMode && slices.ContainsFunc(roots, kongclient.Root.DBLess) {
		return false, errors.New("--kong-admin-url: some Kong instances run DB-less and others with a database; configure one kind")
	}
	return dbMode, nil
}

// learnRouterFlavor records the router_flavor a Kong reported (GET /) and
// re-translates when the flavor the routes are made for changes. Routes
// are expression routes only when every Kong known runs the expressions
// flavor: traditional routes load in every flavor, expression routes only
// there. A replica that goes away keeps its entry, which can only hold
// the translation to traditional routes (safe everywhere) until restart.
func (m *Manager) learnRouterFlavor(target, flavor string) {
	m.flavorMu.Lock()
	if m.flavors == nil {
		m.flavors = map[string]string{}
	}
	m.flavors[target] = flavor
	next := translate.RouterFlavorExpressions
	mixed := false
	for _, f := range m.flavors {
		if f != translate.RouterFlavorExpressions {
			next = f
		}
		mixed = mixed || f != flavor
	}
	changed := next != m.flavor
	m.flavor = next
	m.flavorMu.Unlock()
	if mixed {
		m.log.Warn("Kong replicas run different router flavors; routes are made for traditional flavors, wildcard hosts match at any depth",
			"kongAdminURL", target, "routerFlavor", flavor)
	}
	if changed {
		m.log.Info("translating routes for Kong's router flavor", "routerFlavor", next)
		m.changed()
	}
}

// routerFlavor is the flavor routes are translated for.
func (m *Manager) routerFlavor() string {
	m.flavorMu.Lock()
	defer m.flavorMu.Unlock()
	return m.flavor
}

func (m *Manager) probeUntilUp(ctx context.Context, url string) (kongclient.Root, error) {
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		root, err := kongclient.Probe(ctx, m.cfg.HTTPClient, url)
		if err == nil {
			m.log.Info("Kong answered", "kongAdminURL", url, "version", root.Version, "database", root.Database, "routerFlavor", root.RouterFlavor)
			return root, nil
		}
		m.log.Warn("Kong Admin API not usable yet; retrying", "kongAdminURL", url, "attempt", attempt, "retryIn", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return kongclient.Root{}, fmt.Errorf("--kong-admin-url %s: gave up probing: %w", url, err)
		case <-t.C:
		}
		delay = min(2*delay, m.cfg.ProbeBackoffMax)
	}
}

// reports tells whether this replica emits Events and writes status: the
// elected one, or every replica when no election runs.
func (m *Manager) reports() bool {
	if m.elector == nil {
		return true
	}
	_, ok := m.elector.Permit()
	return ok
}

// loop turns informer events into translations.
func (m *Manager) loop(ctx context.Context) {
	if !m.cache.WaitForSync(ctx) || !cache.WaitForCacheSync(ctx.Done(), m.extraSynced...) {
		return
	}
	m.synced.Store(true)
	m.log.Info("caches synced")
	kick(m.targetsKick)
	debounce := m.o.SyncDebounce
	minInterval := m.o.ProxySyncInterval()
	var last time.Time
	pending := true // translate once after sync even if nothing exists
	for {
		if !pending {
			select {
			case <-ctx.Done():
				return
			case <-m.changes:
			}
		}
		pending = false
		if !m.settle(ctx, debounce, debounce*maxDebounceFactor) {
			return
		}
		if !last.IsZero() {
			if wait := time.Until(last.Add(minInterval)); wait > 0 && !retry.Sleep(ctx, wait) {
				return
			}
		}
		// Changes that arrived while settling are part of this snapshot.
		select {
		case <-m.changes:
		default:
		}
		last = time.Now()
		m.translate()
	}
}

// settle waits until no change arrived for quiet, or maxWait has passed.
func (m *Manager) settle(ctx context.Context, quiet, maxWait time.Duration) bool {
	if quiet <= 0 {
		return ctx.Err() == nil
	}
	deadline := time.Now().Add(maxWait)
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-m.changes:
			t.Reset(min(quiet, time.Until(deadline)))
		}
	}
}

// openTerm lets a new term write to Kong once this replica's caches are
// known to hold what the API server holds (snapshot.Cache.WaitCurrent) and
// a translation of them was handed to the pusher. A standby's informers
// may lag by up to a minute after an API-server outage (their reflectors
// back off) while still counting as synced; pushing what they held would
// take back what the previous leader had already applied.
func (m *Manager) openTerm(ctx context.Context, t fence.Term) {
	start := time.Now()
	// The loop's first translation comes after every informer (the admin
	// Service's too) synced and the debounce: until then a translation
	// here would run before discovery has told the pusher its targets.
	if !m.waitTranslated(ctx) {
		return
	}
	waitCtx, cancel := context.WithTimeout(ctx, openTermBound)
	err := m.cache.WaitCurrent(waitCtx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		// A watch that never comes back (a proxy that cuts every watch)
		// must not keep Kong from ever being configured in this term,
		// new Kong replicas included: write what the caches hold.
		m.log.Error("caches still lag the API server: writing what they hold", "epoch", t.Epoch, "waited", time.Since(start), "err", err)
	}
	if cur, ok := m.elector.Permit(); !ok || cur.Epoch != t.Epoch {
		return // the term ended while we waited
	}
	m.translate()
	m.openEpoch.Store(t.Epoch)
	m.log.Info("writing to Kong in this term", "epoch", t.Epoch, "cachesCurrent", err == nil, "waited", time.Since(start))
	m.pusher.Resync()
}

// openTermBound bounds openTerm's wait for current caches: twice the
// longest wait of a client-go reflector between two attempts (its 30s
// backoff cap, jittered up to 60s).
const openTermBound = 2 * time.Minute

// currentGate is the elector's WriteGate, closed in a term until openTerm
// has opened it.
type currentGate struct{ m *Manager }

// Permit implements fence.WriteGate.
func (g currentGate) Permit() (fence.Term, bool) {
	t, ok := g.m.elector.Permit()
	return t, ok && g.m.openEpoch.Load() == t.Epoch
}

// translate builds a snapshot, translates it and hands a changed
// configuration to the pusher.
func (m *Manager) translate() {
	m.translating.Lock()
	defer m.translating.Unlock()
	start := time.Now()
	res := translate.Translate(m.cache.Snapshot(), translate.Options{RouterFlavor: m.routerFlavor()})
	took := time.Since(start)
	broken := map[translate.ObjectRef]bool{}
	for _, e := range res.Errors {
		broken[e.Object] = true
	}
	m.metrics.Observe(took, time.Now(), len(broken), len(res.Errors))

	m.mu.Lock()
	m.lastErrors = res.Errors
	changed := res.Hash != m.lastHash
	if changed {
		m.version++
		m.lastHash = res.Hash
	}
	version := m.version
	m.mu.Unlock()
	m.status.Translated(version, changed, res.Translated)

	if m.reports() {
		m.reporter.TranslationErrors(res.Errors)
	}
	if changed {
		m.metrics.Version.Set(float64(version))
		m.log.Info("new configuration", "version", version, "hash", res.Hash, "ingresses", len(res.Translated), "objectErrors", len(res.Errors), "took", took)
		d := kongsync.Desired{Body: res.Body, Hash: res.Hash, Version: version}
		if cp, ok := m.pusher.(configPusher); ok {
			cp.SetDesiredConfig(d, res.Config)
		} else {
			m.pusher.SetDesired(d)
		}
	}
	m.markTranslated()
	m.status.Kick()
}

// markTranslated records that a configuration has been translated; only
// the first call closes m.translated.
func (m *Manager) markTranslated() {
	m.translatedOnce.Do(func() { close(m.translated) })
}

// isTranslated reports whether a configuration has been translated.
func (m *Manager) isTranslated() bool {
	select {
	case <-m.translated:
		return true
	default:
		return false
	}
}

// waitTranslated waits for the first translation, and reports false if
// ctx ended first.
func (m *Manager) waitTranslated(ctx context.Context) bool {
	select {
	case <-m.translated:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Manager) publishService() *corev1.Service {
	if m.publishSvc == nil {
		return nil
	}
	ns, name, _ := options.SplitNamespacedName(m.o.PublishService)
	obj, ok, err := m.publishSvc.GetStore().GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil
	}
	svc, _ := obj.(*corev1.Service)
	return svc
}

// listAdminSlices lists the admin Service's EndpointSlices the informer
// holds (gateway discovery).
func (m *Manager) listAdminSlices() []*discoveryv1.EndpointSlice {
	var found []*discoveryv1.EndpointSlice
	for _, obj := range m.adminSlices.GetStore().List() {
		if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
			found = append(found, es)
		}
	}
	return found
}

// ReadyChecks are the readiness conditions main mounts on /readyz:
//
//   - informers: every cache has synced;
//   - configuration: a configuration has been translated (a standby is
//     ready from here: it can take over at once);
//   - kong: while this replica may write to Kong (a sidecar always, a
//     leader while it leads), at least one Kong has accepted a push. A
//     Kong replica that is not configured yet keeps itself unready through
//     its own readiness probe, so the controller does not flap while Kong
//     scales.
func (m *Manager) ReadyChecks() []health.Check {
	return []health.Check{
		{Name: "informers", Func: func() error {
			if !m.synced.Load() {
				return errors.New("caches not synced")
			}
			return nil
		}},
		{Name: "configuration", Func: func() error {
			if !m.isTranslated() {
				return errors.New("no configuration translated yet")
			}
			return nil
		}},
		{Name: "kong", Func: func() error {
			if !m.started.Load() {
				return errors.New("waiting for the Kong Admin API to answer")
			}
			if m.writesKong() && !m.applied.Load() && !m.noTargets() {
				return errors.New("no configuration pushed to Kong yet")
			}
			return nil
		}},
	}
}

// writesKong tells whether this replica may write to Kong now.
func (m *Manager) writesKong() bool {
	if !m.gated {
		return true
	}
	_, ok := m.elector.Permit()
	return ok
}

// noTargets is true when discovery found no Kong: there is nothing to push
// to, and the controller itself is healthy.
func (m *Manager) noTargets() bool {
	m.mu.Lock()
	v := m.version
	m.mu.Unlock()
	return m.o.KongAdminSvc != "" && v > 0 && m.pusher.AllApplied(v)
}
