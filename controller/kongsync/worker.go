package kongsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kong/go-kong/kong"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongclient"
)

// worker keeps one replica on the desired configuration. Fields below mu are
// shared with the Syncer; the rest belong to the worker's goroutine.
type worker struct {
	s      *Syncer
	target Target
	kong   *kong.Client
	wake   chan struct{}
	cancel context.CancelFunc
	rand   Rand // used by the worker's goroutine only

	// settled is the version of the current configuration the worker last
	// saw while going idle (nothing to push now, or waiting out a backoff);
	// the compactor waits for every worker to settle on a version.
	settled atomic.Uint64

	mu      sync.Mutex
	force   bool
	suspect bool // Suspect was called: the replica may have restarted
	status  TargetStatus
	// lastGood is the last configuration this replica accepted. Only the
	// worker's goroutine writes it, under mu; it reads it without.
	lastGood *retained

	expectHash   string    // hash the replica reported after lastGood; "" unknown
	pushNeeded   bool      // new target, Resync, or drift found
	driftPending bool      // the next successful push repairs drift
	failures     int       // consecutive push errors
	retryAt      time.Time // no push before this (errors)
	unreachable  bool      // the last push error got no answer from Kong
	busyUntil    time.Time // no push before this (429 Retry-After)
	rejectedHash string    // the Desired this replica last rejected
	rejections   int       // consecutive rejections of rejectedHash
	rejectUntil  time.Time // rejectedHash is not retried before this
	// restoreUntil holds back the restore of lastGood (drift while the
	// desired one is refused) after Kong refused that too: a Kong that
	// refuses everything would otherwise get the two in turn, without pause.
	restoreUntil    time.Time
	restoreRefusals int
	checkAt         time.Time // next GET /status (liveness poll or drift check); zero: none
	driftAt         time.Time // from then on, any hash mismatch counts as drift
	checkErrors     int       // consecutive failed hash checks
	lapsed          bool      // the last GET /status failed
	suspected       bool      // Suspect arrived since the last answered GET /status
	requests        int       // server.total_requests at the last answered GET /status
	seenRequests    bool      // requests holds a reading
	probed          bool      // GET / showed a DB-less Kong (Options.ProbeTargets)
	probeAt         time.Time // no probe before this
	probeErrors     int       // consecutive failed probes
}

func newWorker(s *Syncer, t Target) (*worker, error) {
	url := t.URL
	kc, err := kong.NewClient(&url, s.client)
	if err != nil {
		return nil, err
	}
	return &worker{
		s:          s,
		target:     t,
		kong:       kc,
		wake:       make(chan struct{}, 1),
		status:     TargetStatus{Target: t},
		pushNeeded: true,
		rand:       s.o.Rand(t.Name),
	}, nil
}

// poke wakes the worker; force also asks for a push ignoring backoff.
func (w *worker) poke(force bool) {
	if force {
		w.mu.Lock()
		w.force = true
		w.mu.Unlock()
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// retainedGood returns the last configuration this replica accepted.
func (w *worker) retainedGood() *retained {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastGood
}

func (w *worker) snapshot() TargetStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *worker) setStatus(fn func(st *TargetStatus)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fn(&w.status)
}

func (w *worker) takeForce() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.force
	w.force = false
	return f
}

// markSuspect records a sign that the replica may have restarted and wakes
// the worker.
func (w *worker) markSuspect() {
	w.mu.Lock()
	w.suspect = true
	w.mu.Unlock()
	w.poke(false)
}

func (w *worker) takeSuspect() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.suspect
	w.suspect = false
	return f
}

func (w *worker) run(ctx context.Context) {
	log := w.s.o.Logger.With("target", w.target.Name)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		if w.takeForce() {
			w.pushNeeded = true
			w.retryAt, w.rejectUntil, w.probeAt, w.restoreUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		}
		now := time.Now()
		if w.takeSuspect() {
			// Look now rather than at the next poll or retry: a replica
			// that restarted is configured as soon as it answers.
			w.suspected = true
			w.failures, w.retryAt, w.probeAt = 0, time.Time{}, time.Time{}
			if w.lastGood != nil {
				w.checkAt = now
			}
		}
		var wakeAt time.Time
		if cand, at, ok := w.nextPush(w.s.current()); ok {
			if !now.Before(at) {
				term, permitted := w.s.o.Gate.Permit()
				if permitted && term.Valid(now) {
					if !w.s.o.ProbeTargets || w.probed {
						w.push(ctx, cand, term, log)
						continue
					}
					if !now.Before(w.probeAt) {
						w.probe(ctx, log)
						continue
					}
					wakeAt = w.probeAt
				} else if permitted {
					// The term lapsed before its renewal arrived; the
					// renewal sends no wake-up, so look again shortly.
					wakeAt = now.Add(w.s.o.BackoffMin)
				}
				// Not the writer: wait for SetDesired or Resync, which
				// the caller sends after winning leadership.
			} else {
				wakeAt = at
			}
		}
		if !w.checkAt.IsZero() {
			if !now.Before(w.checkAt) {
				w.check(ctx, log)
				continue
			}
			wakeAt = earliest(wakeAt, w.checkAt)
		}
		if d := w.s.current(); d != nil {
			w.settled.Store(d.version)
			w.s.kickCompactor()
		}
		var fire <-chan time.Time
		if !wakeAt.IsZero() {
			timer.Reset(wakeAt.Sub(now))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// nextPush decides what to push to this replica and from when.
func (w *worker) nextPush(d *retained) (cand *retained, at time.Time, ok bool) {
	if d == nil {
		// Nothing desired yet: never push (an empty push would wipe Kong).
		return nil, time.Time{}, false
	}
	applied := w.snapshot().AppliedVersion
	upToDate := w.lastGood != nil && w.lastGood.hash == d.hash && applied >= d.version
	if upToDate && !w.pushNeeded {
		return nil, time.Time{}, false
	}
	at = later(w.retryAt, w.busyUntil)
	if d.hash == w.rejectedHash {
		if w.driftPending && w.lastGood != nil && w.lastGood.hash != d.hash {
			// The replica lost its configuration while the current one is
			// refused: restore the last one it accepted.
			return w.lastGood, later(at, w.restoreUntil), true
		}
		at = later(at, w.rejectUntil)
	}
	return d, at, true
}

func (w *worker) push(ctx context.Context, r *retained, term fence.Term, log *slog.Logger) {
	body, err := r.acquire()
	if err != nil {
		// Only a corrupted compressed copy gets here; nothing was sent.
		now := time.Now()
		w.failures++
		w.retryAt = now.Add(w.backoff(w.failures))
		w.setStatus(func(st *TargetStatus) { st.LastError = err.Error() })
		log.Error("cannot push configuration", "version", r.version, "err", err, "retryIn", w.retryAt.Sub(now))
		return
	}
	defer w.s.kickCompactor()
	defer r.release()
	// The callbacks see the bytes pushed; they must not keep them.
	d := r.desired(body)
	start := time.Now()
	deadline := start.Add(w.s.o.PushTimeout)
	if !term.ValidUntil.IsZero() && term.ValidUntil.Before(deadline) {
		deadline = term.ValidUntil
	}
	// A push already sent is allowed to finish when the worker is stopped:
	// cancelling mid-flight would leave us not knowing what Kong holds.
	pctx, cancel := context.WithDeadline(fence.WithTerm(context.WithoutCancel(ctx), term), deadline)
	res := postConfig(pctx, w.kong, d.Body)
	cancel()
	elapsed := time.Since(start)
	now := time.Now()
	w.s.record(w, func(m *metrics) { m.observePush(w.target.Name, res.outcome, elapsed) })

	switch res.outcome {
	case outcomeSuccess, outcomeUnchanged:
		w.applied(ctx, r, body, now, log)
	case outcomeRejected:
		if cur := w.s.current(); r == w.lastGood && cur != nil && cur.hash != r.hash {
			// A restore of the last good configuration was refused: the
			// desired one keeps its own rejection state.
			w.restoreRefusals++
			w.restoreUntil = now.Add(w.backoff(w.restoreRefusals))
			log.Warn("Kong refused the last good configuration too", "version", d.Version, "retryIn", w.restoreUntil.Sub(now))
			return
		}
		if d.Hash != w.rejectedHash {
			w.rejections = 0
		}
		w.rejectedHash = d.Hash
		w.rejections++
		w.rejectUntil = now.Add(w.backoff(w.rejections))
		w.pushNeeded = false
		w.setStatus(func(st *TargetStatus) {
			st.Healthy = false
			st.LastError = res.err.Error()
		})
		log.Warn("Kong rejected configuration; keeping the last good one", "version", d.Version, "errors", len(res.rejections), "retryIn", w.rejectUntil.Sub(now))
		if cb := w.s.o.OnRejected; cb != nil {
			cb(w.target, d, res.rejections)
		}
	case outcomeThrottled:
		wait := min(max(res.retryAfter, w.s.o.BackoffMin), w.s.o.BackoffMax)
		w.busyUntil = now.Add(wait)
		w.setStatus(func(st *TargetStatus) {
			st.Healthy = false
			st.LastError = res.err.Error()
		})
	default:
		w.failures++
		w.retryAt = now.Add(w.backoff(w.failures))
		w.unreachable = !res.answered
		if w.unreachable {
			// Poll for the replica's return: the push goes again as soon
			// as it answers, not when the backoff has grown long.
			w.checkAt = earliest(w.checkAt, now.Add(w.pollRetry(1)))
		}
		var expired *fence.ErrTermExpired
		w.setStatus(func(st *TargetStatus) {
			// An ended term says nothing about the replica's health.
			if !errors.As(res.err, &expired) {
				st.Healthy = false
			}
			st.LastError = res.err.Error()
		})
		log.Warn("pushing configuration failed", "version", d.Version, "err", res.err, "retryIn", w.retryAt.Sub(now))
	}
}

// probe reads the replica's GET / before its first push: only a DB-less
// Kong of a version we drive is pushed to. A Kong with a database is
// reported once (log, status, OnIncompatible) and probed again every drift
// interval, in case it is redeployed DB-less at the same address.
func (w *worker) probe(ctx context.Context, log *slog.Logger) {
	pctx, cancel := context.WithTimeout(ctx, w.s.o.PushTimeout)
	root, err := kongclient.Probe(pctx, w.s.client, w.target.URL)
	cancel()
	now := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		w.probeErrors++
		w.probeAt = now.Add(w.backoff(w.probeErrors))
		w.setStatus(func(st *TargetStatus) {
			st.Healthy = false
			st.LastError = err.Error()
		})
		log.Warn("Kong not usable yet; not configuring it", "err", err, "retryIn", w.probeAt.Sub(now))
		return
	}
	w.probeErrors = 0
	wasIncompatible := w.snapshot().Incompatible()
	if !root.DBLess() {
		reason := fmt.Sprintf("target %s: Kong runs with database %q, but this controller configures DB-less Kong (POST /config); not configuring it", w.target.Name, root.Database)
		w.probeAt = now.Add(w.rand.Jitter(w.s.o.DriftInterval))
		w.setStatus(func(st *TargetStatus) {
			st.Database = root.Database
			st.Healthy = false
			st.LastError = reason
		})
		if !wasIncompatible {
			log.Error("Kong replica runs with a database; not configuring it", "url", w.target.URL, "database", root.Database, "version", root.Version)
			if cb := w.s.o.OnIncompatible; cb != nil {
				cb(w.target, root)
			}
		}
		return
	}
	w.probed = true
	w.setStatus(func(st *TargetStatus) { st.Database = root.Database })
	if cb := w.s.o.OnProbed; cb != nil {
		cb(w.target, root)
	}
	if wasIncompatible {
		log.Info("Kong replica now runs DB-less; configuring it", "url", w.target.URL)
	}
}

// applied records that the replica accepted d, then learns the hash it now
// reports, which later checks compare against.
func (w *worker) applied(ctx context.Context, r *retained, body []byte, now time.Time, log *slog.Logger) {
	d := r.desired(body)
	w.mu.Lock()
	w.lastGood = r
	w.mu.Unlock()
	w.failures, w.retryAt, w.unreachable, w.busyUntil = 0, time.Time{}, false, time.Time{}
	w.pushNeeded = false
	if d.Hash == w.rejectedHash {
		w.rejectedHash, w.rejections, w.rejectUntil = "", 0, time.Time{}
	}
	w.restoreUntil, w.restoreRefusals = time.Time{}, 0
	if w.driftPending {
		w.driftPending = false
		w.s.record(w, func(m *metrics) { m.driftRepairs.WithLabelValues(w.target.Name).Inc() })
		log.Info("repaired configuration drift", "version", d.Version)
	}
	w.setStatus(func(st *TargetStatus) {
		st.AppliedVersion = d.Version
		st.LastApplied = now
		st.LastError = ""
		st.Healthy = true
	})
	if cb := w.s.o.OnApplied; cb != nil {
		cb(w.target, d)
	}

	w.expectHash = ""
	st, err := w.readStatus(ctx)
	if err != nil {
		// Unknown expectation: the next check re-pushes (cheap with
		// check_hash) and learns it again.
		w.checkAt = time.Now().Add(w.s.o.BackoffMin)
		w.driftAt = w.checkAt
		return
	}
	w.expectHash = st.ConfigurationHash
	w.requests, w.seenRequests = st.Server.TotalRequests, true
	w.checkErrors, w.lapsed, w.suspected = 0, false, false
	now = time.Now()
	w.driftAt = now.Add(w.rand.Jitter(w.s.o.DriftInterval))
	w.scheduleCheck(now)
}

// scheduleCheck sets the next GET /status after an answered one: the next
// liveness poll while this replica may write, else the next drift check. A
// standby (no term) sends nothing more often than the drift interval.
func (w *worker) scheduleCheck(now time.Time) {
	w.checkAt = w.driftAt
	if iv := w.s.o.LivenessInterval; iv > 0 {
		if _, permitted := w.s.o.Gate.Permit(); permitted {
			w.checkAt = earliest(w.checkAt, now.Add(w.rand.Jitter(iv)))
		}
	}
}

// pollRetry is the delay before GET /status n (n >= 1) of a replica that
// does not answer: the usual backoff, but never longer than the liveness
// poll while this Syncer may write (else the drift check), so that a
// returning replica is noticed within one poll period.
func (w *worker) pollRetry(n int) time.Duration {
	limit := w.s.o.DriftInterval
	if iv := w.s.o.LivenessInterval; iv > 0 {
		if _, permitted := w.s.o.Gate.Permit(); permitted {
			limit = min(limit, iv)
		}
	}
	return min(w.backoff(n), limit)
}

// check reads the replica's GET /status: the liveness poll and the drift
// check are the same request. A reported hash other than the expected one
// is acted on at once when something says the replica restarted: it
// reports the empty configuration's hash, its request counter went back,
// the previous GET /status failed, or Suspect was called. Any other
// mismatch (a configuration replaced behind our back) is repaired once the
// drift interval has passed, so that two writers never fight at the poll's
// rate.
func (w *worker) check(ctx context.Context, log *slog.Logger) {
	st, err := w.readStatus(ctx)
	now := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		w.checkErrors++
		w.lapsed = true
		w.checkAt = now.Add(w.pollRetry(w.checkErrors))
		w.setStatus(func(st *TargetStatus) {
			st.Healthy = false
			st.LastError = err.Error()
		})
		return
	}
	hash := st.ConfigurationHash
	restarted := w.lapsed || w.suspected || hash == EmptyConfigHash ||
		(w.seenRequests && st.Server.TotalRequests < w.requests)
	w.requests, w.seenRequests = st.Server.TotalRequests, true
	w.checkErrors, w.lapsed, w.suspected = 0, false, false
	driftDue := !now.Before(w.driftAt)
	if driftDue {
		w.driftAt = now.Add(w.rand.Jitter(w.s.o.DriftInterval))
	}
	w.scheduleCheck(now)
	if w.unreachable {
		// The replica answers again: a push waiting out the backoff of a
		// connection error may go now.
		w.failures, w.retryAt, w.unreachable = 0, time.Time{}, false
	}
	if w.rejectedHash == "" {
		// A pending rejection stays reported until a push succeeds.
		w.setStatus(func(st *TargetStatus) { st.Healthy = true; st.LastError = "" })
	}
	if w.lastGood == nil || hash == w.expectHash {
		return
	}
	if !restarted && !driftDue {
		return // the drift check decides
	}
	if w.expectHash == "" {
		// We never learnt what this replica reports for our config:
		// re-push (a 304 if it holds it) and learn it then.
		w.pushNeeded = true
		return
	}
	if !w.driftPending {
		log.Info("configuration drift detected", "reported", hash, "expected", w.expectHash, "restarted", restarted)
		if restarted {
			// Configure it now, not after an old push error's backoff.
			w.failures, w.retryAt = 0, time.Time{}
		}
	}
	w.pushNeeded = true
	w.driftPending = true
	// The replica no longer serves what it accepted. Until the repair
	// lands it must not count as having applied any version: Ingress
	// status and readiness are decided from AppliedVersion.
	w.setStatus(func(st *TargetStatus) { st.AppliedVersion = 0 })
}

// EmptyConfigHash is the configuration hash a DB-less Kong reports while
// it holds no configuration, e.g. right after it (re)started.
const EmptyConfigHash = "00000000000000000000000000000000"

func (w *worker) readStatus(ctx context.Context) (*kong.Status, error) {
	cctx, cancel := context.WithTimeout(ctx, w.s.o.PushTimeout)
	defer cancel()
	st, err := w.kong.Status(cctx)
	if err != nil {
		return nil, err
	}
	w.setStatus(func(s *TargetStatus) { s.ReportedHash = st.ConfigurationHash })
	return st, nil
}

// backoff returns the delay before retry n with this syncer's bounds.
func (w *worker) backoff(n int) time.Duration {
	return w.rand.Backoff(w.s.o.BackoffMin, w.s.o.BackoffMax, n)
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
