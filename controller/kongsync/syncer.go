// Package kongsync pushes one declarative configuration to every DB-less Kong
// replica and keeps each replica on it.
//
// Each replica (Target) gets its own worker goroutine with its own backoff,
// timeout and last-applied state, so a slow, failing or rejecting Kong never
// delays the others: workers share no lock held across a request, and the
// configuration bytes they push are shared read-only. Workers are event
// driven: they wake when the desired configuration changes, when Resync or
// Suspect is called, or when a target is added.
//
// A replica that restarts comes back empty (all-zero hash). It is
// configured again as soon as it answers, on any of these signs: the
// liveness poll (GET /status every LivenessInterval, 500ms by default, sent
// only while this Syncer may write) finds the empty hash, a request counter
// (server.total_requests) that went back, or an answer after a failed one;
// a push that got no answer is followed by polls at that rate, which
// release the push at once when the replica answers; and Suspect (called by
// gateway discovery when the replica's endpoint flips between ready and not
// ready) makes the worker look at once. The cost is one small GET /status
// per replica per LivenessInterval from the writer; standbys send none.
// GET / is not polled: Kong's node_id is no restart signal (Kong persists
// it under its prefix directory, so a restart that keeps that directory,
// e.g. on a pod volume, keeps the id), and the document is far larger.
//
// The drift check is the backstop: every DriftInterval (jittered) the
// reported hash is compared with the one that replica reported right after
// our last successful push, and any difference is repaired. That also heals
// a configuration replaced behind our back, which the liveness poll leaves
// to the drift check so that two writers never fight at its rate.
//
// Every push asks the WriteGate for a term first; without one (not the
// leader) nothing is written. The term travels in the request context and
// fence.Transport stamps writer and epoch on the request; the push is bounded
// by the term's ValidUntil as well as by PushTimeout.
//
// A configuration Kong rejects (400) is never replaced by something smaller:
// the replica keeps its last good configuration, the same Desired is retried
// only with exponential backoff, and a newer Desired is tried at once. If a
// replica loses its configuration while the current Desired is rejected, the
// worker restores the last configuration that replica accepted.
//
// Every configuration kept for pushing again (the current one, each
// replica's last good one) is compressed once it has been idle for a moment:
// every worker has dealt with the current version and no push of it is in
// flight. A push that needs it later inflates it for as long as it lasts.
// The first push of a new version always goes out from the raw bytes.
package kongsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongclient"
)

// Desired is one declarative configuration to apply everywhere.
type Desired struct {
	// Body is the declarative configuration as JSON. It is shared by all
	// workers and must not be modified after SetDesired. Once no push of it
	// is in flight, the Syncer keeps a large Body compressed and drops its
	// reference to these bytes, so a caller that keeps none either lets
	// them be collected.
	Body []byte
	// Hash is our sha256 of Body. Kong computes its own, different hash.
	Hash string
	// Version grows with every new Desired.
	Version uint64
}

// NewDesired returns the Desired for a declarative JSON body, its Hash being
// the hex sha256 of body.
func NewDesired(body []byte, version uint64) Desired {
	sum := sha256.Sum256(body)
	return Desired{Body: body, Hash: hex.EncodeToString(sum[:]), Version: version}
}

// Target is one Kong Admin API.
type Target struct {
	// Name identifies the replica (its pod name, or its URL); it is the
	// metrics label and must be unique among current targets.
	Name string
	// URL is the Admin API base URL, e.g. https://10.0.0.7:8444.
	URL string
}

// Rejection is one entity error Kong reported for a configuration it refused
// (from the flattened_errors of a 400 answer).
type Rejection struct {
	EntityType, EntityName, EntityID string
	Tags                             []string
	// Field is the offending field ("paths.1"); empty for an entity-level
	// error.
	Field, Message string
}

// TargetStatus is what a worker knows about its replica.
type TargetStatus struct {
	Target Target
	// AppliedVersion is the version of the last Desired this replica
	// accepted and still serves: 0 before the first push, and again from
	// the moment a drift check finds it serving something else (restarted
	// empty, edited) until a push repairs it.
	AppliedVersion uint64
	// ReportedHash is the configuration hash the replica last reported.
	ReportedHash string
	// LastError describes the last failed exchange; empty after a success.
	LastError string
	// LastApplied is when the replica last accepted (or confirmed) a push.
	LastApplied time.Time
	// Healthy is true when the last exchange with the replica succeeded:
	// it answered, and did not reject or throttle our configuration.
	Healthy bool
	// Database is the database mode the replica's GET / reported ("off"
	// for DB-less); empty unless Options.ProbeTargets probed it.
	Database string
}

// Incompatible reports whether the replica was probed and runs with a
// database: it is never configured (and never counts as applied).
func (st TargetStatus) Incompatible() bool { return st.Database != "" && st.Database != "off" }

// Options configure a Syncer. Zero values get defaults.
type Options struct {
	// Client is the base client for the Admin API (TLS and token from
	// kongclient). Its transport is wrapped in fence.Transport. nil means
	// http.DefaultClient's settings.
	Client *http.Client
	// Gate grants the term for each push; nil means fence.Always{Identity}.
	Gate     fence.WriteGate
	Identity string

	PushTimeout   time.Duration // per request; default 10s
	BackoffMin    time.Duration // first retry delay; default 250ms
	BackoffMax    time.Duration // retry delay cap; default 30s
	DriftInterval time.Duration // between hash checks; default 10s
	// LivenessInterval is the period of the liveness poll: one GET
	// /status per replica, sent only while this Syncer may write, that
	// notices a restarted replica within one period of its answering
	// again. Default 500ms; negative turns the poll off (the drift check
	// alone then notices restarts).
	LivenessInterval time.Duration

	// Rand returns the jitter stream of one worker, named by its target;
	// each stream is used by one goroutine only. nil means the global
	// math/rand/v2 source for every worker (production).
	Rand func(target string) Rand

	// Registerer receives the metrics; nil means no metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// OnApplied runs on the worker's goroutine after a replica accepted d
	// (or confirmed it already had it). Keep it quick.
	OnApplied func(t Target, d Desired)
	// OnCompacted runs on the compactor's goroutine after idle retained
	// configurations were compressed, with the number of raw bytes that
	// became garbage. The burst that produced them (a translation, the
	// pushes) is over by then, so it is the moment a process may hand the
	// memory back to the operating system; cmd/konductor does. nil: nothing.
	OnCompacted func(rawBytes int)
	// OnRejected runs on the worker's goroutine when a replica answered
	// 400 to d. Keep it quick.
	OnRejected func(t Target, d Desired, rs []Rejection)

	// ProbeTargets reads each target's GET / before its first push and
	// pushes only to a DB-less Kong that kongclient.Probe accepts. Gateway
	// discovery sets it: discovered replicas were never probed at start.
	ProbeTargets bool
	// OnIncompatible runs on the worker's goroutine when a probe finds a
	// replica running with a database (once, until it is found DB-less).
	OnIncompatible func(t Target, root kongclient.Root)
	// OnProbed runs on the worker's goroutine when a probe finds a
	// DB-less Kong it will configure, before the first push to it; the
	// manager learns the replica's router flavor from it.
	OnProbed func(t Target, root kongclient.Root)
}

// Default timings.
const (
	DefaultPushTimeout   = 10 * time.Second
	DefaultBackoffMin    = 250 * time.Millisecond
	DefaultBackoffMax    = 30 * time.Second
	DefaultDriftInterval = 10 * time.Second
	// DefaultLivenessInterval: two cheap GET /status a second per Kong
	// from the writing controller only.
	DefaultLivenessInterval = 500 * time.Millisecond
)

// Syncer fans a Desired configuration out to its targets.
type Syncer struct {
	o       Options
	client  *http.Client
	metrics *metrics

	// compactKick wakes the compactor: a push ended or a worker went idle.
	compactKick chan struct{}

	mu      sync.Mutex
	desired *retained
	targets map[string]Target  // by Name
	badURL  map[string]string  // by Name: why no worker could be built
	workers map[string]*worker // by Name; only while running
	runCtx  context.Context    // nil unless Run is active
	ran     bool
	wg      sync.WaitGroup
}

// New returns a Syncer; call Run to start it.
func New(o Options) *Syncer {
	if o.PushTimeout <= 0 {
		o.PushTimeout = DefaultPushTimeout
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.DriftInterval <= 0 {
		o.DriftInterval = DefaultDriftInterval
	}
	if o.LivenessInterval == 0 {
		o.LivenessInterval = DefaultLivenessInterval
	}
	if o.Gate == nil {
		o.Gate = fence.Always{Identity: o.Identity}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Rand == nil {
		o.Rand = func(string) Rand { return nil }
	}
	base := o.Client
	if base == nil {
		base = http.DefaultClient
	}
	// A copy, so the caller's client keeps its own transport.
	client := *base
	client.Transport = &fence.Transport{Base: base.Transport}

	s := &Syncer{
		o:       o,
		client:  &client,
		targets: map[string]Target{},
		badURL:  map[string]string{},
		workers: map[string]*worker{},

		compactKick: make(chan struct{}, 1),
	}
	s.metrics = newMetrics(s, o.Registerer, o.Logger)
	return s
}

// SetTargets replaces the set of replicas. New targets are pushed to at once;
// removed ones stop (after any push in flight) and lose their metrics. A
// target whose URL changed is treated as removed and added again.
func (s *Syncer) SetTargets(ts []Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]Target, len(ts))
	for _, t := range ts {
		if _, dup := next[t.Name]; dup {
			s.o.Logger.Warn("duplicate Kong target name; keeping the first", "target", t.Name, "url", t.URL)
			continue
		}
		next[t.Name] = t
	}
	for name, old := range s.targets {
		if t, ok := next[name]; !ok || t.URL != old.URL {
			s.removeLocked(name)
		}
	}
	for name, t := range next {
		if _, ok := s.targets[name]; !ok {
			s.targets[name] = t
			if s.runCtx != nil {
				s.startLocked(t)
			}
		}
	}
}

// SetDesired makes d the configuration to apply and wakes every worker.
// A Desired older than the current one is ignored.
func (s *Syncer) SetDesired(d Desired) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired != nil && d.Version < s.desired.version {
		s.o.Logger.Warn("ignoring older desired configuration", "version", d.Version, "current", s.desired.version)
		return
	}
	s.desired = newRetained(d)
	for _, w := range s.workers {
		w.poke(false)
	}
}

// Resync makes every worker push the current Desired once more, ignoring
// backoff (e.g. right after winning leadership).
func (s *Syncer) Resync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.workers {
		w.poke(true)
	}
}

// Suspect tells the worker of the named target that its replica may have
// restarted (gateway discovery calls it when the replica's endpoint flips
// between ready and not ready): the worker reads the replica's GET /status
// at once, pushes at once if the replica does not hold our configuration,
// and otherwise forgets any backoff left from errors. Unknown names are
// ignored.
func (s *Syncer) Suspect(name string) {
	s.mu.Lock()
	w := s.workers[name]
	s.mu.Unlock()
	if w != nil {
		w.markSuspect()
	}
}

// Run starts the workers and blocks until ctx is done and every worker has
// stopped. A push in flight at that moment finishes or times out first.
// Run may be called once.
func (s *Syncer) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("kongsync: Run called twice")
	}
	s.ran = true
	s.runCtx = ctx
	for _, t := range s.targets {
		s.startLocked(t)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.compactLoop(ctx)
	}()
	s.mu.Unlock()

	<-ctx.Done()

	s.mu.Lock()
	s.runCtx = nil
	for _, w := range s.workers {
		w.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Status returns one entry per current target, sorted by name.
func (s *Syncer) Status() []TargetStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TargetStatus, 0, len(s.targets))
	for name, t := range s.targets {
		if w, ok := s.workers[name]; ok {
			out = append(out, w.snapshot())
		} else {
			out = append(out, TargetStatus{Target: t, LastError: s.badURL[name]})
		}
	}
	slices.SortFunc(out, func(a, b TargetStatus) int {
		switch {
		case a.Target.Name < b.Target.Name:
			return -1
		case a.Target.Name > b.Target.Name:
			return 1
		}
		return 0
	})
	return out
}

// AllApplied reports whether every current target has applied version or a
// later one. It is true when there are no targets.
func (s *Syncer) AllApplied(version uint64) bool {
	for _, st := range s.Status() {
		if st.AppliedVersion < version {
			return false
		}
	}
	return true
}

// current returns the configuration to apply (nil before the first
// SetDesired).
func (s *Syncer) current() *retained {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired
}

// record runs fn (a metrics update) only while w is still the worker for
// its target, so a removed target's series are not recreated by a push that
// was in flight when it was removed.
func (s *Syncer) record(w *worker, fn func(m *metrics)) {
	if s.metrics == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workers[w.target.Name] == w {
		fn(s.metrics)
	}
}

func (s *Syncer) startLocked(t Target) {
	w, err := newWorker(s, t)
	if err != nil {
		// Only a malformed URL gets here: keep the target visible, never
		// applied, with the reason.
		s.badURL[t.Name] = fmt.Sprintf("target %s: Admin API URL %q: %v", t.Name, t.URL, err)
		s.o.Logger.Error("cannot build Admin API client", "target", t.Name, "url", t.URL, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(s.runCtx)
	w.cancel = cancel
	s.workers[t.Name] = w
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		w.run(ctx)
	}()
}

func (s *Syncer) removeLocked(name string) {
	delete(s.targets, name)
	delete(s.badURL, name)
	if w, ok := s.workers[name]; ok {
		w.cancel()
		delete(s.workers, name)
	}
	if s.metrics != nil {
		s.metrics.forget(name)
	}
}
