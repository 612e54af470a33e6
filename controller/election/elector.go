package election

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/controller/fence"
)

// Elector campaigns for one lock and grants write terms while it leads.
// It is a fence.WriteGate.
type Elector struct {
	cfg          Config
	lock         lockObject
	log          *slog.Logger
	metrics      *metrics
	leaseSeconds int

	// pokes wakes the election loop when the watch saw the lock change.
	pokes   chan struct{}
	running atomic.Bool
	// lastWarned is the kind of the last candidate error logged as a
	// warning; only the election loop uses it.
	lastWarned string

	mu sync.Mutex
	// What we last read of the lock, and when (local monotonic clock).
	// observedAt changes only when the raw record changes: a lease expires
	// LeaseDurationSeconds after we first saw its current content.
	present     bool
	observed    rl.LeaderElectionRecord
	observedRaw []byte
	observedAt  time.Time
	// highest is the highest transition count ever observed, so that a
	// lock deleted and re-created does not restart epochs (in this process).
	highest int
	// watched counts the watch's observations, so that the loop can tell
	// that one arrived while it was reading the lock.
	watched uint64
	// deletedUntil is when the lease of a holder whose lock was deleted
	// runs out (zero if none).
	deletedUntil time.Time
	// leading is true from winning a term until it ends; term.ValidUntil
	// moves forward with each successful renewal.
	leading bool
	term    fence.Term
	// acquireTime is our term's AcquireTime, kept in renewals.
	acquireTime metav1.Time
	// writtenRaw is the record our term's ValidUntil was last based on.
	writtenRaw []byte

	// Pod evidence (Config.PodEvidence; see evidence.go).
	evidence evidenceState
}

var _ fence.WriteGate = (*Elector)(nil)

// New validates c and returns an Elector; call Run to campaign.
func New(c Config) (*Elector, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	e := &Elector{
		cfg:          c,
		lock:         newLockObject(&c),
		log:          c.Logger.With("lock", c.LockType+"/"+c.Namespace+"/"+c.Name, "identity", c.Identity),
		leaseSeconds: int(c.LeaseDuration / time.Second),
		pokes:        make(chan struct{}, 1),
	}
	e.evidence.targetChanged = make(chan struct{}, 1)
	m, err := newMetrics(c.Registerer, c.Namespace+"/"+c.Name, e.IsLeader)
	if err != nil {
		return nil, fmt.Errorf("election: registering metrics: %w", err)
	}
	e.metrics = m
	return e, nil
}

// Permit returns the current term while this replica leads and the term's
// ValidUntil (start of the last successful renewal + RenewDeadline) has not
// passed. It implements fence.WriteGate.
func (e *Elector) Permit() (fence.Term, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.leading || !time.Now().Before(e.term.ValidUntil) {
		return fence.Term{}, false
	}
	return e.term, true
}

// IsLeader reports whether Permit would grant now.
func (e *Elector) IsLeader() bool {
	_, ok := e.Permit()
	return ok
}

// Leader returns the lock's holder as last observed ("" when released or
// absent).
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.observed.HolderIdentity
}

// Epoch returns the lock's transition count as last observed; while we lead
// it is our term's epoch. Locks we create start at epoch 1, so 0 means no
// term seen yet (or the lock was created by client-go and not yet won).
func (e *Elector) Epoch() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int64(e.observed.LeaderTransitions)
}

// Run campaigns until ctx is done. Then, if leading, it stops granting,
// calls BeforeRelease, releases the lock and returns. It returns an error
// only when it could not release a lock it held (the others then wait for
// the lease to expire). Run may be called once.
func (e *Elector) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("election: Run called more than once on " + e.cfg.Identity)
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.watchLock(ctx) })
	if e.cfg.PodEvidence {
		wg.Go(func() { e.watchHolderPods(ctx) })
		if e.cfg.Self != nil {
			wg.Go(func() { e.resolveSelf(ctx) })
		}
	}
	e.campaign(ctx)
	err := e.shutdown(ctx)
	wg.Wait()
	return err
}

// campaign runs the election loop: an attempt (acquire or renew) whenever the
// previous attempt's schedule says so, or sooner when the watch reports a
// change that makes an attempt worthwhile.
func (e *Elector) campaign(ctx context.Context) {
	e.log.Info("campaigning")
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now()
	for {
		if wait := time.Until(next); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			case <-e.pokes:
				due, wakeBy := e.attemptDue(time.Now())
				if !due {
					next = earliest(next, wakeBy)
					continue
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if e.isLeading() {
			next = e.renew(ctx)
		} else {
			next = e.tryAcquire(ctx)
		}
	}
}

func (e *Elector) isLeading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// attemptDue decides whether a watch notification warrants an attempt before
// the scheduled one: for a candidate, when the lock is free or the lease
// expired; for the leader, when the record no longer shows our term. When
// not due, wakeBy is the latest time the next attempt should happen.
func (e *Elector) attemptDue(now time.Time) (due bool, wakeBy time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	never := now.Add(e.cfg.LeaseDuration)
	if e.leading {
		lost := !e.present || e.observed.HolderIdentity != e.cfg.Identity || int64(e.observed.LeaderTransitions) != e.term.Epoch
		return lost, never
	}
	free, expiry := e.freeLocked(now)
	if free {
		return true, now
	}
	return false, expiry
}

// freeLocked reports whether a candidate may take the lock as observed, and
// since when it has been free in our observation.
func (e *Elector) freeLocked(now time.Time) (bool, time.Time) {
	switch {
	case !e.present && now.Before(e.deletedUntil):
		return false, e.deletedUntil
	case !e.present && !e.deletedUntil.IsZero():
		return true, e.deletedUntil
	case !e.present:
		return true, e.observedAt
	case e.observed.HolderIdentity == "":
		return true, e.observedAt
	case e.observed.HolderIdentity == e.cfg.Identity:
		// Our own earlier term lapsed and nobody took over: the record is
		// still ours, and our update is conditional on it being unchanged.
		return true, time.Time{}
	case e.holderEndedLocked():
		// The kubelet reported the holder's own process terminated: it
		// cannot write any more (see the package documentation).
		return true, e.evidence.at
	}
	expiry := e.observedAt.Add(time.Duration(e.observed.LeaseDurationSeconds) * time.Second)
	return !now.Before(expiry), expiry
}

// observe records what we read of the lock at time at, with the holder's
// process annotation.
func (e *Elector) observe(rec *rl.LeaderElectionRecord, raw []byte, process string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.observeLocked(rec, raw, at)
	e.noteProcessLocked(rec, process)
}

// observeWatched records what the watch delivered at time at, with the
// holder's process annotation.
func (e *Elector) observeWatched(rec *rl.LeaderElectionRecord, raw []byte, process string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.watched++
	e.observeLocked(rec, raw, at)
	e.noteProcessLocked(rec, process)
}

func (e *Elector) observeLocked(rec *rl.LeaderElectionRecord, raw []byte, at time.Time) {
	if rec == nil {
		// The lock object does not exist. If it was deleted under a live
		// holder, that holder may still be writing until its lease runs
		// out as we measured it; the lock is only free after that.
		if e.present {
			if h := e.observed.HolderIdentity; h != "" && h != e.cfg.Identity {
				e.deletedUntil = e.observedAt.Add(time.Duration(e.observed.LeaseDurationSeconds) * time.Second)
			}
			e.present, e.observed, e.observedRaw, e.observedAt = false, rl.LeaderElectionRecord{}, nil, at
		}
		return
	}
	if e.present && bytes.Equal(raw, e.observedRaw) {
		return
	}
	e.present, e.observed, e.observedRaw, e.observedAt = true, *rec, raw, at
	e.highest = max(e.highest, rec.LeaderTransitions)
	e.metrics.setEpoch(rec.LeaderTransitions)
}

func (e *Elector) highestEpoch() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.highest
}

func (e *Elector) newRecord(now time.Time, transitions int) rl.LeaderElectionRecord {
	t := metav1.NewTime(now)
	return rl.LeaderElectionRecord{
		HolderIdentity:       e.cfg.Identity,
		LeaseDurationSeconds: e.leaseSeconds,
		AcquireTime:          t,
		RenewTime:            t,
		LeaderTransitions:    transitions,
	}
}

// tryAcquire makes one attempt to take the lock and returns when to try next.
func (e *Elector) tryAcquire(ctx context.Context) time.Time {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RenewDeadline)
	defer cancel()

	e.mu.Lock()
	seen := e.watched
	e.mu.Unlock()
	rec, raw, err := e.lock.Get(ctx)
	now := time.Now()
	if err == nil || apierrors.IsNotFound(err) {
		e.mu.Lock()
		raced := e.watched != seen
		e.mu.Unlock()
		if raced {
			// The watch saw a change while we were reading: our read may be
			// the older of the two, and taking it would hide a release
			// until the next poll. Read again.
			return now
		}
	}
	if apierrors.IsNotFound(err) {
		e.mu.Lock()
		e.observeLocked(nil, nil, now)
		e.noteProcessLocked(nil, "")
		free, freeSince := e.freeLocked(now)
		e.mu.Unlock()
		if !free {
			return earliest(now.Add(e.cfg.RetryPeriod), freeSince)
		}
		// Epochs start at 1, so that epoch 0 stays "never elected", and go
		// on from the highest we saw if the lock was deleted.
		want := e.newRecord(now, e.highestEpoch()+1)
		e.publish(want)
		start := time.Now()
		if err := e.lock.Create(ctx, want); err != nil {
			e.logAttemptError("creating the lock failed", err)
			return e.afterFailure(err, now)
		}
		e.startTerm(want, start, freeSince)
		return start.Add(e.cfg.RetryPeriod)
	}
	if err != nil {
		e.logAttemptError("reading the lock failed", err)
		return now.Add(e.cfg.RetryPeriod)
	}
	e.lastWarned = ""

	e.mu.Lock()
	e.observeLocked(rec, raw, now)
	e.noteProcessLocked(rec, e.lock.lastProcess())
	free, freeSince := e.freeLocked(now)
	byEvidence := free && e.holderEndedLocked()
	why := e.evidence.why
	e.mu.Unlock()
	if !free {
		// freeSince is the expiry we computed; wake up then at the latest.
		return earliest(now.Add(e.cfg.RetryPeriod), freeSince)
	}

	// A new term even when the record names us (our lapsed term): every term
	// gets a fresh epoch, so epochs strictly increase across terms.
	want := e.newRecord(now, rec.LeaderTransitions+1)
	e.publish(want)
	start := time.Now()
	if err := e.lock.Update(ctx, want); err != nil {
		e.logAttemptError("taking the lock failed", err, "holder", rec.HolderIdentity)
		return e.afterFailure(err, now)
	}
	if byEvidence {
		e.metrics.tookOverEarly()
		e.log.Info("took the lock before its lease ran out: the holder's process ended", "holder", rec.HolderIdentity, "epoch", rec.LeaderTransitions, "evidence", why)
	}
	e.startTerm(want, start, freeSince)
	return start.Add(e.cfg.RetryPeriod)
}

// logAttemptError logs a failed candidate attempt. Losing a race is normal
// and logged at debug level; other errors (RBAC, an unreachable API server)
// are warnings, once until the kind of error changes, so that a standby
// polling through an outage does not flood the log.
func (e *Elector) logAttemptError(msg string, err error, args ...any) {
	args = append(args, "err", err)
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		e.log.Debug(msg, args...)
		return
	}
	kind := msg + ": " + string(apierrors.ReasonForError(err))
	if kind == e.lastWarned {
		e.log.Debug(msg, args...)
		return
	}
	e.lastWarned = kind
	e.log.Warn(msg, args...)
}

// afterFailure schedules the next attempt: at once after losing a race (the
// winner's record is then read), else after RetryPeriod.
func (e *Elector) afterFailure(err error, now time.Time) time.Time {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return now
	}
	return now.Add(e.cfg.RetryPeriod)
}

// startTerm records a won term; start is when the winning request was sent.
func (e *Elector) startTerm(rec rl.LeaderElectionRecord, start, freeSince time.Time) {
	raw, _ := json.Marshal(rec)
	term := fence.Term{
		Identity:   e.cfg.Identity,
		Epoch:      int64(rec.LeaderTransitions),
		ValidUntil: start.Add(e.cfg.RenewDeadline),
	}
	e.mu.Lock()
	e.observeLocked(&rec, raw, time.Now())
	e.noteProcessLocked(&rec, "")
	e.leading, e.term, e.acquireTime, e.writtenRaw = true, term, rec.AcquireTime, raw
	e.mu.Unlock()

	e.metrics.transition(eventAcquired)
	if !freeSince.IsZero() {
		e.metrics.observeTakeover(time.Since(freeSince))
	}
	e.log.Info("became leader", "epoch", term.Epoch)
	if e.cfg.OnNewTerm != nil {
		e.cfg.OnNewTerm(term)
	}
}

// renew makes one attempt to extend our term and returns when to try next.
func (e *Elector) renew(ctx context.Context) time.Time {
	e.mu.Lock()
	term, acquired := e.term, e.acquireTime
	e.mu.Unlock()
	if !time.Now().Before(term.ValidUntil) {
		e.endTerm(eventLost, "renew deadline passed without a successful renewal")
		return time.Now()
	}
	// A renewal that completes after ValidUntil is of no use to this term.
	ctx, cancel := context.WithDeadline(ctx, term.ValidUntil)
	defer cancel()

	want := e.newRecord(time.Now(), int(term.Epoch))
	want.AcquireTime = acquired
	e.publish(want)
	// Fast path: update from the object cached by our last write.
	start := time.Now()
	err := e.lock.Update(ctx, want)
	if err != nil {
		// Slow path: read, check the term is still ours, update.
		rec, raw, getErr := e.lock.Get(ctx)
		if apierrors.IsNotFound(getErr) {
			// Someone deleted the lock: a candidate may create it at once.
			e.observe(nil, nil, "", time.Now())
			e.endTerm(eventLost, "lock deleted")
			return time.Now()
		}
		if getErr != nil {
			e.log.Warn("renewing failed", "epoch", term.Epoch, "err", err, "readErr", getErr)
			return e.retryRenewal(term)
		}
		e.observe(rec, raw, e.lock.lastProcess(), time.Now())
		if rec.HolderIdentity != e.cfg.Identity || int64(rec.LeaderTransitions) != term.Epoch {
			e.endTerm(eventLost, fmt.Sprintf("lock taken by %q in epoch %d", rec.HolderIdentity, rec.LeaderTransitions))
			return time.Now()
		}
		start = time.Now()
		if err = e.lock.Update(ctx, want); err != nil {
			e.log.Warn("renewing failed", "epoch", term.Epoch, "err", err)
			return e.retryRenewal(term)
		}
	}
	raw, _ := json.Marshal(want)
	e.mu.Lock()
	e.observeLocked(&want, raw, time.Now())
	// Others time our lease from when they first see the record change.
	// A renewal within the same second as the last one (the record's
	// times have second precision) changes nothing they can see, so it
	// must not extend our term either.
	if e.leading && e.term.Epoch == term.Epoch && !bytes.Equal(raw, e.writtenRaw) {
		e.term.ValidUntil = start.Add(e.cfg.RenewDeadline)
		e.writtenRaw = raw
	}
	e.mu.Unlock()
	return start.Add(e.cfg.RetryPeriod)
}

// retryRenewal schedules the next renewal after a failure: after RetryPeriod,
// or at the term's end so that the loss is noticed on time.
func (e *Elector) retryRenewal(term fence.Term) time.Time {
	return earliest(time.Now().Add(e.cfg.RetryPeriod), term.ValidUntil)
}

// endTerm stops granting and reports the end of our term, if we lead.
func (e *Elector) endTerm(event, reason string) {
	e.mu.Lock()
	was, epoch := e.leading, e.term.Epoch
	e.leading = false
	e.mu.Unlock()
	if !was {
		return
	}
	e.metrics.transition(event)
	e.log.Info("stopped leading", "epoch", epoch, "reason", reason)
	if e.cfg.OnStoppedLeading != nil {
		e.cfg.OnStoppedLeading()
	}
}

// shutdown ends a term of ours gracefully: stop granting, let BeforeRelease
// drain writes, release the lock so a standby takes over at once.
func (e *Elector) shutdown(ctx context.Context) error {
	e.mu.Lock()
	leading, term := e.leading, e.term
	e.leading = false // Permit refuses from here on
	e.mu.Unlock()
	if !leading {
		return nil
	}
	e.log.Info("stepping down", "epoch", term.Epoch)
	bg := context.WithoutCancel(ctx)

	if e.cfg.BeforeRelease != nil {
		drainCtx, cancel := context.WithTimeout(bg, e.cfg.RenewDeadline)
		e.cfg.BeforeRelease(drainCtx)
		overran := drainCtx.Err() != nil
		cancel()
		if overran {
			// Writes may still be in flight: releasing now could let the
			// next leader write while they land. Let the lease expire.
			e.metrics.transition(eventLost)
			e.notifyStopped()
			return fmt.Errorf("election: %s: BeforeRelease did not finish within %v; lock %s left to expire", e.cfg.Identity, e.cfg.RenewDeadline, e.lock.Describe())
		}
	}

	releaseCtx, cancel := context.WithTimeout(bg, e.cfg.RenewDeadline)
	defer cancel()
	err := e.release(releaseCtx, term)
	if err != nil {
		e.metrics.transition(eventLost)
		e.log.Warn("releasing the lock failed; standbys wait for the lease to expire", "epoch", term.Epoch, "err", err)
		err = fmt.Errorf("election: %s: releasing lock %s: %w", e.cfg.Identity, e.lock.Describe(), err)
	} else {
		e.metrics.transition(eventReleased)
		e.log.Info("released the lock", "epoch", term.Epoch)
	}
	e.notifyStopped()
	return err
}

func (e *Elector) notifyStopped() {
	if e.cfg.OnStoppedLeading != nil {
		e.cfg.OnStoppedLeading()
	}
}

// release writes the record client-go's ReleaseOnCancel writes: no holder, a
// one-second lease, the transition count unchanged. It only touches a record
// that still shows our term.
func (e *Elector) release(ctx context.Context, term fence.Term) error {
	now := metav1.NewTime(time.Now())
	want := rl.LeaderElectionRecord{
		LeaseDurationSeconds: 1,
		AcquireTime:          now,
		RenewTime:            now,
		LeaderTransitions:    int(term.Epoch),
	}
	// The released record names no holder, so no process either.
	if e.cfg.PodEvidence {
		e.lock.setProcess("")
	}
	// Fast path from the object cached by our last write; on any failure,
	// read, check the term is still ours, and retry while ctx allows.
	err := e.lock.Update(ctx, want)
	for err != nil {
		if ctx.Err() != nil {
			return err
		}
		rec, raw, getErr := e.lock.Get(ctx)
		if apierrors.IsNotFound(getErr) {
			return nil
		}
		if getErr != nil {
			return getErr
		}
		e.observe(rec, raw, e.lock.lastProcess(), time.Now())
		if rec.HolderIdentity != e.cfg.Identity || int64(rec.LeaderTransitions) != term.Epoch {
			return nil // not ours any more: nothing to release
		}
		err = e.lock.Update(ctx, want)
		if err != nil && !apierrors.IsConflict(err) {
			return err
		}
	}
	raw, _ := json.Marshal(want)
	e.observe(&want, raw, "", time.Now())
	return nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
