package dbsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kong/go-kong/kong"
	"github.com/prometheus/client_golang/prometheus"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/retry"
	"konductor.dev/controller/translate"
	"konductor.dev/controller/translate/declarative"
)

// Desired is one configuration to hold in Kong's database.
type Desired struct {
	// Config is the declarative configuration; it must not be modified
	// after SetDesired.
	Config *declarative.Config
	// Hash identifies Config (the translator's sha256).
	Hash string
	// Version grows with every new Desired.
	Version uint64
}

// Options configure a Syncer. Zero values get defaults.
type Options struct {
	// Client is the base client for the Admin API (TLS and token from
	// kongclient). Its transport is wrapped in fence.Transport. nil means
	// http.DefaultClient's settings.
	Client *http.Client
	// Gate grants the term for each write; nil means fence.Always{Identity}.
	Gate     fence.WriteGate
	Identity string

	// Concurrency bounds the writes in flight; default 8.
	Concurrency int
	// ListConcurrency bounds the listing requests in flight (the kinds
	// side by side, one per upstream for targets); default 16.
	ListConcurrency int
	// WarmInterval is how often a standby (a Syncer its Gate does not let
	// write) lists Kong, so that it holds a recent listing when it takes
	// over; default 10s, negative: never. See the package doc.
	WarmInterval  time.Duration
	Timeout       time.Duration // per request; default 10s
	BackoffMin    time.Duration // first retry delay; default 250ms
	BackoffMax    time.Duration // retry delay cap; default 30s
	DriftInterval time.Duration // between full list+diff checks; default 30s
	// Rand draws the retry and check jitter; nil means the global source.
	// The simulator passes a seeded stream so that a seed replays.
	Rand retry.Rand

	// Tag selects the entities konductor owns; default translate.ManagedByTag.
	Tag string
	// AllowEmpty lets an empty desired configuration delete every managed
	// entity. Without it such a sync is refused: an empty configuration is
	// far more often a cache that is not synced than a real intent.
	AllowEmpty bool

	// Registerer receives the metrics; nil means no metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// OnApplied runs on the sync goroutine after Kong's database holds
	// version (or a drift check confirmed it). Keep it quick.
	OnApplied func(version uint64)
	// OnRejected runs on the sync goroutine when Kong refused entities of
	// d; the rest of d was applied. Keep it quick.
	OnRejected func(d Desired, rs []kongsync.Rejection)
}

// Default timings.
const (
	DefaultConcurrency     = 8
	DefaultListConcurrency = 16
	DefaultWarmInterval    = 10 * time.Second
	DefaultTimeout         = 10 * time.Second
	DefaultBackoffMin      = 250 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultDriftInterval   = 30 * time.Second
)

// TargetHealth is what the Syncer knows about one Kong node.
type TargetHealth struct {
	Target kongsync.Target
	// Healthy is false after the node failed to answer (or answered 5xx)
	// until it answers again.
	Healthy   bool
	LastError string
}

// Status describes the Syncer.
type Status struct {
	// Current is the node syncs go to (zero before there is one).
	Current kongsync.Target
	// AppliedVersion and AppliedHash name the last Desired the database
	// fully holds (0 and "" before the first).
	AppliedVersion uint64
	AppliedHash    string
	// LastSync is when the last sync or drift check succeeded.
	LastSync time.Time
	// LastError describes the last failed sync; empty after a success.
	LastError string
	// WarmListed is when the listing the Syncer holds (a standby's warm
	// listing, or the last sync's) began: it shows every write completed
	// before then. Zero before the first.
	WarmListed time.Time
	// Takeovers are the last (at most 16) first syncs of a new term.
	Takeovers []Takeover
	Targets   []TargetHealth
}

// Takeover is how the first sync of one term started.
type Takeover struct {
	// Listing is "warm" when a recent listing let the sync write the
	// changes before re-listing, "cold" when it had to list first.
	Listing string
	// Prewrites counts the entities written from the warm listing.
	Prewrites int
	At        time.Time
}

const maxTakeovers = 16

// Syncer keeps Kong's database on the desired configuration.
type Syncer struct {
	o       Options
	client  *http.Client
	metrics *metrics
	wake    chan struct{}

	mu      sync.Mutex
	desired *Desired
	force   bool
	targets []*node // sorted by name
	current int     // index into targets
	status  Status
	ran     bool

	// Owned by the Run goroutine.
	desiredSet  *Set
	desiredHash string
	setErr      error
	// warm is the last complete listing, with this Syncer's own writes
	// since then applied to it; nil before the first. It may be stale:
	// it is only ever used to write upserts at a takeover and to order
	// the next listing's requests, never to delete (package doc).
	warm *Set
	// synced is the term of the last sync that passed the gate; a sync
	// under another term is the first of a takeover.
	synced fence.Term
}

type node struct {
	target  kongsync.Target
	kong    *kong.Client
	err     error // building the client failed (malformed URL)
	healthy bool
	lastErr string
}

// New returns a Syncer; call Run to start it.
func New(o Options) *Syncer {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ListConcurrency <= 0 {
		o.ListConcurrency = DefaultListConcurrency
	}
	if o.WarmInterval == 0 {
		o.WarmInterval = DefaultWarmInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	if o.DriftInterval <= 0 {
		o.DriftInterval = DefaultDriftInterval
	}
	if o.Gate == nil {
		o.Gate = fence.Always{Identity: o.Identity}
	}
	if o.Tag == "" {
		o.Tag = translate.ManagedByTag
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	base := o.Client
	if base == nil {
		base = http.DefaultClient
	}
	client := *base
	client.Transport = &fence.Transport{Base: base.Transport}
	s := &Syncer{o: o, client: &client, wake: make(chan struct{}, 1)}
	s.metrics = newMetrics(s, o.Registerer, o.Logger)
	return s
}

// SetTargets replaces the Kong nodes the Syncer may talk to; any of them
// will do, as they share one database. The node in use stays in use while
// it is listed.
func (s *Syncer) SetTargets(ts []kongsync.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur string
	if s.current < len(s.targets) {
		cur = s.targets[s.current].target.Name
	}
	old := map[string]*node{}
	for _, n := range s.targets {
		old[n.target.Name] = n
	}
	var next []*node
	seen := map[string]bool{}
	for _, t := range ts {
		if seen[t.Name] {
			s.o.Logger.Warn("duplicate Kong target name; keeping the first", "target", t.Name, "url", t.URL)
			continue
		}
		seen[t.Name] = true
		if n, ok := old[t.Name]; ok && n.target.URL == t.URL {
			next = append(next, n)
			continue
		}
		n := &node{target: t, healthy: true}
		url := t.URL
		n.kong, n.err = kong.NewClient(&url, s.client)
		if n.err != nil {
			n.healthy, n.lastErr = false, fmt.Sprintf("target %s: Admin API URL %q: %v", t.Name, t.URL, n.err)
		}
		next = append(next, n)
	}
	slices.SortFunc(next, func(a, b *node) int { return strings.Compare(a.target.Name, b.target.Name) })
	if !slices.Equal(next, s.targets) {
		// A node just discovered may be the one that answers: do not
		// wait out the backoff earned by the old set.
		s.force = true
	}
	s.targets, s.current = next, 0
	for i, n := range next {
		if n.target.Name == cur {
			s.current = i
		}
	}
	s.pokeLocked()
}

// SetDesired makes d the configuration to apply. A Desired older than the
// current one is ignored.
func (s *Syncer) SetDesired(d Desired) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired != nil && d.Version < s.desired.Version {
		s.o.Logger.Warn("ignoring older desired configuration", "version", d.Version, "current", s.desired.Version)
		return
	}
	s.desired = &d
	s.pokeLocked()
}

// Resync makes the Syncer run a full sync now, ignoring backoff (e.g. right
// after winning leadership).
func (s *Syncer) Resync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.force = true
	s.pokeLocked()
}

func (s *Syncer) pokeLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// AllApplied reports whether Kong's database holds version or a later one.
func (s *Syncer) AllApplied(version uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.AppliedVersion >= version
}

// Status returns the Syncer's state.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Takeovers = slices.Clone(s.status.Takeovers)
	st.Targets = make([]TargetHealth, len(s.targets))
	for i, n := range s.targets {
		st.Targets[i] = TargetHealth{Target: n.target, Healthy: n.healthy, LastError: n.lastErr}
	}
	if s.current < len(s.targets) {
		st.Current = s.targets[s.current].target
	}
	return st
}

// Run syncs until ctx is done. It returns after the writes in flight when
// ctx ended have finished (each is bounded by Timeout and the term), so a
// caller releasing leadership afterwards knows nothing more is written.
// Run may be called once.
func (s *Syncer) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("dbsync: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		failures  int
		retryAt   time.Time // no sync before this (errors)
		checkAt   time.Time // next drift check; zero: none scheduled
		warmAt    time.Time // next standby listing
		warmHash  string    // the Desired's hash when the standby last listed
		needSync  = true
		appliedOK string // hash of the Desired last fully applied
		rejected  string // hash of the Desired Kong last refused entities of
		refused   string // hash of the Desired we refused to apply
	)
	for ctx.Err() == nil {
		s.mu.Lock()
		d := s.desired
		if s.force {
			s.force, needSync, retryAt = false, true, time.Time{}
		}
		s.mu.Unlock()

		now := time.Now()
		var wakeAt time.Time
		if d != nil && rejected != "" && d.Hash != rejected {
			// A new configuration may fix what Kong refused: try it at
			// once rather than after the refused one's backoff.
			rejected, retryAt = "", time.Time{}
		}
		if d != nil {
			stale := needSync || (appliedOK != d.Hash && refused != d.Hash)
			drift := !stale && !checkAt.IsZero() && !now.Before(checkAt)
			switch {
			case (stale && !now.Before(retryAt)) || drift:
				term, ok := s.o.Gate.Permit()
				if !ok {
					// Not the writer: wait for Resync, which the caller
					// sends after winning leadership. Meanwhile keep the
					// desired entities and a recent listing ready, so
					// that the first sync of a takeover neither builds
					// nor waits for them (package doc).
					needSync = true
					checkAt = time.Time{}
					_, _ = s.prepare(d)
					if s.o.WarmInterval > 0 {
						if d.Hash != warmHash && !warmAt.IsZero() {
							// The leader is writing this change now: list
							// again once it has, so that a takeover finds
							// it in the listing instead of rewriting it.
							warmAt = minTime(warmAt, now.Add(warmSettle))
						}
						if !now.Before(warmAt) {
							warmHash = d.Hash
							if s.refreshWarm(ctx) {
								warmAt = time.Now().Add(s.o.Rand.Jitter(s.o.WarmInterval))
							}
							now = time.Now()
						}
						wakeAt = warmAt
					}
					break
				}
				if !term.Valid(now) {
					// Lapsed before its renewal arrived; the renewal
					// sends no wake-up, so look again shortly.
					needSync = true
					wakeAt = now.Add(s.o.BackoffMin)
					break
				}
				res := s.syncOnce(ctx, d, appliedOK == d.Hash)
				if res.desired != nil {
					// The sync applied the newest Desired it had after
					// listing.
					d = res.desired
				}
				now = time.Now()
				switch res.outcome {
				case outcomeApplied, outcomeUnchanged:
					failures, retryAt, needSync, appliedOK, rejected, refused = 0, time.Time{}, false, d.Hash, "", ""
					checkAt = now.Add(s.o.Rand.Jitter(s.o.DriftInterval))
				case outcomeRefused:
					// Only a new Desired (or Resync) changes the answer.
					needSync, refused, checkAt = false, d.Hash, time.Time{}
				case outcomeNotWriter:
					needSync, checkAt = true, time.Time{}
				default:
					if ctx.Err() != nil {
						continue
					}
					if res.outcome == outcomeRejected {
						rejected = d.Hash
					}
					failures++
					needSync = true
					retryAt = now.Add(s.backoff(failures))
				}
				continue
			case stale:
				wakeAt = retryAt
			case !checkAt.IsZero():
				wakeAt = checkAt
			}
		}
		var fire <-chan time.Time
		if !wakeAt.IsZero() {
			timer.Reset(wakeAt.Sub(now))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-fire:
		}
		timer.Stop()
	}
	return nil
}

// warmSettle is how long after a new Desired a standby lists Kong again:
// about the time the leader takes to write the same change.
const warmSettle = time.Second

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *Syncer) backoff(n int) time.Duration {
	return s.o.Rand.Backoff(s.o.BackoffMin, s.o.BackoffMax, n)
}

// pick returns the node to use: the current one when healthy, else the
// next healthy one after it, else the next usable one (a node that failed
// may have recovered).
func (s *Syncer) pick() (*node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.targets)
	for i := range n {
		j := (s.current + i) % n
		if t := s.targets[j]; t.err == nil && t.healthy {
			s.current = j
			return t, true
		}
	}
	// None known healthy: nodeResult already moved current past the
	// node that failed last, so try from there.
	for i := range n {
		j := (s.current + i) % n
		if t := s.targets[j]; t.err == nil {
			s.current = j
			return t, true
		}
	}
	return nil, false
}

// nodeResult records how a node answered.
func (s *Syncer) nodeResult(n *node, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		n.healthy, n.lastErr = true, ""
		return
	}
	n.healthy, n.lastErr = false, err.Error()
	// Move on: another node of the same database may answer.
	for i, t := range s.targets {
		if t == n && len(s.targets) > 1 {
			s.current = (i + 1) % len(s.targets)
		}
	}
}
