package dbsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kong/go-kong/kong"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
)

// outcome labels a sync in metrics.
type outcome string

const (
	outcomeApplied   outcome = "applied"    // writes made; Kong holds the Desired
	outcomeUnchanged outcome = "unchanged"  // nothing to write
	outcomeRejected  outcome = "rejected"   // Kong refused some entities; the rest applied
	outcomeRefused   outcome = "refused"    // we refused: empty or invalid Desired
	outcomeNotWriter outcome = "not_writer" // the term ended or changed; writes stopped
	outcomeError     outcome = "error"      // Kong or its database failed; retried
)

// errNotWriter stops a sync whose term changed or ended.
var errNotWriter = errors.New("dbsync: no longer permitted to write (term ended or changed); writes stopped")

type syncResult struct {
	outcome outcome
	err     error
	writes  int
}

// syncOnce lists, diffs and applies d once. repair says that d was already
// applied, so any write restores drift.
func (s *Syncer) syncOnce(ctx context.Context, d *Desired, repair bool) (res syncResult) {
	start := time.Now()
	log := s.o.Logger.With("version", d.Version)
	defer func() {
		s.finish(d, res, time.Since(start), log)
	}()

	term, ok := s.o.Gate.Permit()
	if !ok || !term.Valid(start) {
		return syncResult{outcome: outcomeNotWriter, err: errNotWriter}
	}
	if s.desiredSet == nil || s.desiredHash != d.Hash {
		s.desiredSet, s.setErr = DesiredSet(d.Config)
		s.desiredHash = d.Hash
	}
	if s.setErr != nil {
		return syncResult{outcome: outcomeRefused, err: fmt.Errorf("invalid desired configuration: %w", s.setErr)}
	}
	n, ok := s.pick()
	if !ok {
		return syncResult{outcome: outcomeError, err: errors.New("no usable Kong Admin API target")}
	}
	log = log.With("target", n.target.Name)

	have := NewSet()
	for _, kind := range Kinds {
		if err := s.list(ctx, n, kind, have); err != nil {
			// Nothing is written on an incomplete picture: a missing
			// listing would read as "delete everything of that kind".
			if ctx.Err() == nil {
				s.nodeResult(n, err)
			}
			return syncResult{outcome: outcomeError, err: err}
		}
	}
	s.nodeResult(n, nil)

	plan := Diff(s.desiredSet, have)
	if s.desiredSet.Len() == 0 && have.Len() > 0 && !s.o.AllowEmpty {
		return syncResult{outcome: outcomeRefused, err: fmt.Errorf(
			"refusing to delete all %d managed entities: the desired configuration is empty (set AllowEmpty to allow it)", have.Len())}
	}
	if len(plan.Ops) == 0 {
		return syncResult{outcome: outcomeUnchanged}
	}
	log.Info("applying configuration changes", "create", plan.Count(Create), "update", plan.Count(Update), "delete", plan.Count(Delete), "repair", repair)

	a := &applier{s: s, n: n, term: term, failed: map[string]bool{}}
	for _, phase := range plan.Phases() {
		a.run(ctx, phase)
		if a.err != nil {
			break
		}
	}
	if repair && a.done > 0 {
		s.observeRepairs(a.doneByKind)
		log.Info("repaired configuration drift", "writes", a.done)
	}
	switch {
	case a.err != nil:
		if errors.Is(a.err, errNotWriter) {
			return syncResult{outcome: outcomeNotWriter, err: a.err, writes: a.done}
		}
		var expired *fence.ErrTermExpired
		if !errors.As(a.err, &expired) && ctx.Err() == nil {
			s.nodeResult(n, a.err)
		}
		return syncResult{outcome: outcomeError, err: a.err, writes: a.done}
	case len(a.rejections) > 0:
		if cb := s.o.OnRejected; cb != nil {
			cb(*d, a.rejections)
		}
		return syncResult{outcome: outcomeRejected, writes: a.done,
			err: fmt.Errorf("Kong rejected %d entities (first: %s %s: %s)", len(a.rejections),
				a.rejections[0].EntityType, a.rejections[0].EntityName, a.rejections[0].Message)}
	}
	return syncResult{outcome: outcomeApplied, writes: a.done}
}

// list reads one kind, each page bounded by Timeout. Targets are read
// below the upstreams already in into, so upstreams must be listed first.
func (s *Syncer) list(ctx context.Context, n *node, kind Kind, into *Set) error {
	if kind == KindTarget {
		ups := make([]string, 0, len(into[KindUpstream]))
		for id := range into[KindUpstream] {
			ups = append(ups, id)
		}
		return listManagedTargets(ctx, n.kong, ups, s.o.Tag, s.o.Timeout, s.o.Concurrency, into)
	}
	return listManaged(ctx, n.kong, kind, s.o.Tag, s.o.Timeout, into)
}

// finish records a sync's result in status and metrics.
func (s *Syncer) finish(d *Desired, res syncResult, took time.Duration, log *slog.Logger) {
	now := time.Now()
	s.mu.Lock()
	switch res.outcome {
	case outcomeApplied, outcomeUnchanged:
		s.status.AppliedVersion, s.status.AppliedHash = d.Version, d.Hash
		s.status.LastSync, s.status.LastError = now, ""
	default:
		s.status.LastError = res.err.Error()
	}
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.observeSync(res.outcome, took)
	}
	switch res.outcome {
	case outcomeApplied, outcomeUnchanged:
		if res.outcome == outcomeApplied {
			log.Info("configuration applied", "writes", res.writes, "took", took)
		}
		if cb := s.o.OnApplied; cb != nil {
			cb(d.Version)
		}
	case outcomeNotWriter:
		log.Info("sync stopped: not the writer", "writes", res.writes)
	case outcomeRefused:
		log.Error("sync refused", "err", res.err)
	default:
		log.Warn("sync failed; will retry", "outcome", string(res.outcome), "writes", res.writes, "err", res.err)
	}
}

// applier runs the ops of one sync, phase by phase.
type applier struct {
	s    *Syncer
	n    *node
	term fence.Term

	mu         sync.Mutex
	err        error           // first failure that stops the sync
	failed     map[string]bool // ids of parents Kong refused
	rejections []kongsync.Rejection
	done       int
	doneByKind [numKinds]int
}

// run applies the ops of one phase with at most Concurrency in flight. It
// stops starting ops after the first failure that is not a rejection, and
// returns when the ops in flight have finished.
func (a *applier) run(ctx context.Context, ops []Op) {
	sem := make(chan struct{}, a.s.o.Concurrency)
	var wg sync.WaitGroup
	for _, op := range ops {
		if ctx.Err() != nil {
			a.fail(ctx.Err())
		}
		a.mu.Lock()
		stop, skip := a.err != nil, op.Action != Delete && a.anyFailed(op.Entity.Parents())
		a.mu.Unlock()
		if stop {
			break
		}
		if skip {
			// Kong refused the parent; the child would only fail on the
			// missing foreign key and add noise to the report.
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			a.fail(ctx.Err())
			continue
		}
		term, ok := a.permit()
		if !ok {
			<-sem
			a.fail(errNotWriter)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a.one(ctx, op, term)
		}()
	}
	wg.Wait()
}

// permit returns the current term if it is still the sync's term and
// valid; a renewed term (same epoch, later ValidUntil) is fine.
func (a *applier) permit() (fence.Term, bool) {
	t, ok := a.s.o.Gate.Permit()
	if !ok || t.Epoch != a.term.Epoch || t.Identity != a.term.Identity || !t.Valid(time.Now()) {
		return fence.Term{}, false
	}
	return t, true
}

func (a *applier) one(ctx context.Context, op Op, term fence.Term) {
	deadline := time.Now().Add(a.s.o.Timeout)
	if !term.ValidUntil.IsZero() && term.ValidUntil.Before(deadline) {
		deadline = term.ValidUntil
	}
	// A write already sent finishes even when Run is stopped: cancelling
	// mid-flight would leave us not knowing what Kong holds.
	wctx, cancel := context.WithDeadline(fence.WithTerm(context.WithoutCancel(ctx), term), deadline)
	err := write(wctx, a.n.kong, op)
	cancel()
	e := op.Entity
	if err == nil {
		a.mu.Lock()
		a.done++
		a.doneByKind[e.Kind]++
		a.mu.Unlock()
		if m := a.s.metrics; m != nil {
			m.writes.WithLabelValues(e.Kind.String(), op.Action.String()).Inc()
		}
		return
	}
	if apiErr, ok := rejected(err); ok {
		a.mu.Lock()
		defer a.mu.Unlock()
		if op.Action != Delete && e.Kind.depth() < maxDepth {
			a.failed[e.ID] = true
		}
		a.rejections = append(a.rejections, kongsync.Rejection{
			EntityType: e.Kind.String(), EntityName: e.Name(), EntityID: e.ID, Tags: e.Tags(),
			Message: redact(fmt.Sprintf("%s: %s", op.Action, apiErr.Error()), e),
		})
		return
	}
	if secrets(e) != nil {
		// The error may quote the request; keep the kind (for retry
		// decisions) but not the text.
		err = errors.New(redact(err.Error(), e))
	}
	a.fail(fmt.Errorf("%s %s %s (%s): %w", op.Action, e.Kind, e.Name(), e.ID, err))
}

// secrets returns the values of a credential that must never appear in a
// log line or an error, Kong's stored form of a password included.
func secrets(e Entity) []string {
	var out []string
	add := func(p *string) {
		if p != nil && *p != "" {
			out = append(out, *p)
		}
	}
	switch o := e.Obj.(type) {
	case *kong.KeyAuth:
		add(o.Key)
	case *kong.BasicAuth:
		add(o.Password)
		if o.Password != nil {
			out = append(out, storedForm(*o.Password, consumerID(o.Consumer)))
		}
	case *kong.JWTAuth:
		add(o.Secret)
	case *kong.HMACAuth:
		add(o.Secret)
	}
	return out
}

// redact replaces every secret of e in msg.
func redact(msg string, e Entity) string {
	for _, s := range secrets(e) {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return msg
}

// anyFailed reports whether Kong refused any of ids; the caller holds a.mu.
func (a *applier) anyFailed(ids []string) bool {
	for _, id := range ids {
		if a.failed[id] {
			return true
		}
	}
	return false
}

func (a *applier) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil {
		a.err = err
	}
}
