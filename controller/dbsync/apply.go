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
	// desired is the Desired the sync applied: the newest one the Syncer
	// held once the listing was complete.
	desired *Desired
}

// prepare returns d's entities, built once per Desired: a standby builds
// them ahead of a takeover.
func (s *Syncer) prepare(d *Desired) (*Set, error) {
	if s.desiredSet == nil && s.setErr == nil || s.desiredHash != d.Hash {
		s.desiredSet, s.setErr = DesiredSet(d.Config)
		s.desiredHash = d.Hash
	}
	return s.desiredSet, s.setErr
}

// latest returns the newest Desired given to SetDesired.
func (s *Syncer) latest() *Desired {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired
}

// syncOnce lists, diffs and applies d once. repair says that d was already
// applied, so any write restores drift. A sync that holds a listing (a
// standby's warm one at a takeover, or the previous sync's with this
// Syncer's writes applied) first writes, from it, the creates and updates d
// needs (never a delete); then, as every sync, it lists Kong completely and
// applies the difference to the newest Desired. See the package doc for why
// that is safe.
func (s *Syncer) syncOnce(ctx context.Context, d *Desired, repair bool) (res syncResult) {
	start := time.Now()
	log := s.o.Logger.With("version", d.Version)
	defer func() {
		res.desired = d
		s.finish(d, res, time.Since(start), log)
	}()

	term, ok := s.o.Gate.Permit()
	if !ok || !term.Valid(start) {
		return syncResult{outcome: outcomeNotWriter, err: errNotWriter}
	}
	set, err := s.prepare(d)
	if err != nil {
		return syncResult{outcome: outcomeRefused, err: fmt.Errorf("invalid desired configuration: %w", err)}
	}
	n, ok := s.pick()
	if !ok {
		return syncResult{outcome: outcomeError, err: errors.New("no usable Kong Admin API target")}
	}
	log = log.With("target", n.target.Name)

	takeover := term.Epoch != s.synced.Epoch || term.Identity != s.synced.Identity
	if takeover {
		s.synced = term
	}
	warm, res, stop := s.prewrite(ctx, n, term, set, takeover, log)
	if stop {
		return res
	}
	// ahead counts the writes made ahead of the listing, so that a sync
	// whose listing then shows nothing left to do still reports them.
	ahead := res.writes

	listStart := time.Now()
	var have *Set
	if !warm {
		have, err = listAll(ctx, n.kong, s.o.Tag, s.o.Timeout, s.o.ListConcurrency, s.warmUpstreams())
	} else {
		if have, res, stop, err = s.listWritingAhead(ctx, n, term, d.Version, log); stop {
			res.writes += ahead
			return res
		}
		ahead += res.writes
	}
	if err != nil {
		// Nothing more is written on an incomplete picture: a missing
		// listing would read as "delete everything of that kind".
		if ctx.Err() == nil {
			s.nodeResult(n, err)
		}
		return syncResult{outcome: outcomeError, err: err, writes: ahead}
	}
	s.nodeResult(n, nil)
	s.keepWarm(have, listStart)
	if s.metrics != nil {
		s.metrics.listSeconds.Observe(time.Since(listStart).Seconds())
	}
	// The listing is as good for any Desired: a change that arrived
	// while listing is applied now rather than after another listing.
	if nd := s.latest(); nd != nil && nd.Version > d.Version {
		d, repair = nd, false
		log = s.o.Logger.With("version", d.Version, "target", n.target.Name)
		if set, err = s.prepare(d); err != nil {
			return syncResult{outcome: outcomeRefused, err: fmt.Errorf("invalid desired configuration: %w", err)}
		}
	}

	plan := Diff(set, have)
	if set.Len() == 0 && have.Len() > 0 && !s.o.AllowEmpty {
		return syncResult{outcome: outcomeRefused, err: fmt.Errorf(
			"refusing to delete all %d managed entities: the desired configuration is empty (set AllowEmpty to allow it)", have.Len())}
	}
	if len(plan.Ops) == 0 {
		if ahead > 0 {
			return syncResult{outcome: outcomeApplied, writes: ahead}
		}
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
	s.wrote(a.ok)
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
	return syncResult{outcome: outcomeApplied, writes: ahead + a.done}
}

// minStalePrewrites is the number of writes a sync makes ahead of its
// listing however small the configuration; beyond it and a tenth of the
// configuration the change waits for the listing (at a takeover, the warm
// listing counts as stale).
const minStalePrewrites = 64

// prewrite starts a sync: it writes the creates and updates that the held
// listing says set needs, before the re-listing that every sync makes, so
// that a change reaches Kong without waiting for a listing. It writes
// nothing without a listing, with an empty set or when the listing looks
// stale, and never deletes. takeover says this is the first sync of a term
// (counted in the takeover figures). warm says it used the listing; stop
// says the sync must end with res: the term ended.
func (s *Syncer) prewrite(ctx context.Context, n *node, term fence.Term, set *Set, takeover bool, log *slog.Logger) (warm bool, res syncResult, stop bool) {
	if s.warm == nil || set.Len() == 0 {
		if takeover {
			s.observeTakeover("cold", 0)
		}
		return false, syncResult{}, false
	}
	ops, ok := aheadOps(set, s.warm)
	if !ok {
		// So much to write means either a big change, which the listing
		// must check first anyway, or (at a takeover) a listing that
		// predates a big change the previous leader has probably made
		// since: most of these writes would be redundant and would delay
		// the few that are not.
		if takeover {
			s.observeTakeover("stale", 0)
			log.Info("takeover: the recent listing differs too much from the desired configuration; re-listing first", "planned", len(ops))
		}
		return false, syncResult{}, false
	}
	a := s.applyProvisional(ctx, n, term, ops)
	if takeover {
		s.observeTakeover("warm", a.done)
	}
	if len(ops) > 0 {
		msg := "wrote the changes the held listing shows before re-listing"
		if takeover {
			msg = "takeover: wrote the changes a recent listing shows before re-listing"
		}
		log.Info(msg, "writes", a.done, "planned", len(ops), "err", a.err)
	}
	if errors.Is(a.err, errNotWriter) {
		return true, syncResult{outcome: outcomeNotWriter, err: a.err, writes: a.done}, true
	}
	return true, syncResult{writes: a.done}, false
}

// aheadOps are the upserts to write from the held listing have before
// listing Kong; ok is false when they are too many (see minStalePrewrites).
func aheadOps(set, have *Set) (ops []Op, ok bool) {
	ops = upserts(set, have)
	return ops, len(ops) <= max(minStalePrewrites, set.Len()/10)
}

// upserts are the creates and updates that turn have into set.
func upserts(set, have *Set) []Op {
	var ops []Op
	for _, op := range Diff(set, have).Ops {
		if op.Action != Delete {
			ops = append(ops, op)
		}
	}
	return ops
}

// applyProvisional writes ops that come from a listing that may be stale:
// Kong refusing one is not reported (the verified pass decides; a
// conflicting entity may be one it deletes first). The writes Kong took
// are applied to the warm listing.
func (s *Syncer) applyProvisional(ctx context.Context, n *node, term fence.Term, ops []Op) *applier {
	a := &applier{s: s, n: n, term: term, failed: map[string]bool{}, provisional: true}
	for _, phase := range (Plan{Ops: ops}).Phases() {
		a.run(ctx, phase)
		if a.err != nil {
			break
		}
	}
	s.wrote(a.ok)
	return a
}

// maxListRestarts bounds how often changes that arrive during a sync's
// listing restart it, so that a stream of changes cannot keep the sync
// from ever completing a listing.
const maxListRestarts = 3

// listWritingAhead lists Kong for a sync that holds a listing (see
// prewrite). A Desired newer than version that arrives meanwhile stops the
// listing, is written from the held listing at once (creates and updates
// only, as in prewrite), and the listing starts over, at most
// maxListRestarts times; later ones wait for the listing. So every write
// made from the held listing has completed before the listing the sync
// uses began, which therefore shows it. stop says the sync must end with
// res: the term ended.
func (s *Syncer) listWritingAhead(ctx context.Context, n *node, term fence.Term, version uint64, log *slog.Logger) (have *Set, res syncResult, stop bool, err error) {
	type listing struct {
		have *Set
		err  error
	}
	written := 0
	for restarts := 0; ; restarts++ {
		lctx, cancel := context.WithCancel(ctx)
		listed := make(chan listing, 1)
		hint := s.warmUpstreams()
		go func() {
			have, err := listAll(lctx, n.kong, s.o.Tag, s.o.Timeout, s.o.ListConcurrency, hint)
			listed <- listing{have, err}
		}()
		var (
			next *Desired
			ops  []Op
		)
		for next == nil && restarts < maxListRestarts {
			select {
			case l := <-listed:
				cancel()
				return l.have, syncResult{writes: written}, false, l.err
			case <-s.wake:
				nd := s.latest()
				if nd == nil || nd.Version <= version {
					continue
				}
				version = nd.Version
				// An invalid, empty or big change waits for the listing
				// (the sync refuses or checks it there).
				if set, serr := s.prepare(nd); serr == nil && set.Len() > 0 {
					if up, ok := aheadOps(set, s.warm); ok && len(up) > 0 {
						next, ops = nd, up
					}
				}
			}
		}
		if next == nil {
			l := <-listed
			cancel()
			return l.have, syncResult{writes: written}, false, l.err
		}
		// The change goes out at once; the abandoned listing's requests
		// (reads) end on their own meanwhile. Only the next listing must
		// begin after these writes, so that it shows them.
		cancel()
		a := s.applyProvisional(ctx, n, term, ops)
		written += a.done
		<-listed
		log.Info("wrote a change that arrived while listing; listing again", "version", next.Version, "writes", a.done, "err", a.err)
		if errors.Is(a.err, errNotWriter) {
			return nil, syncResult{outcome: outcomeNotWriter, err: a.err, writes: written}, true, nil
		}
	}
}

// warmUpstreams are the upstream ids of the warm listing, to list their
// targets without waiting for the upstream listing.
func (s *Syncer) warmUpstreams() map[string]bool {
	if s.warm == nil {
		return nil
	}
	ids := make(map[string]bool, len(s.warm[KindUpstream]))
	for id := range s.warm[KindUpstream] {
		ids[id] = true
	}
	return ids
}

// refreshWarm lists Kong as a standby: reads only, with no term. Any
// wake-up (above all the Resync of a takeover) aborts it, so that a
// takeover never waits for a standby listing; it reports whether the
// listing completed.
func (s *Syncer) refreshWarm(ctx context.Context) bool {
	n, ok := s.pick()
	if !ok {
		return true
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	began := time.Now()
	go func() {
		select {
		case <-s.wake:
			cancel()
			s.mu.Lock()
			s.pokeLocked() // for the Run loop, which this wake-up was for
			s.mu.Unlock()
		case <-done:
		}
	}()
	have, err := listAll(lctx, n.kong, s.o.Tag, s.o.Timeout, s.o.ListConcurrency, s.warmUpstreams())
	if lctx.Err() != nil {
		return false
	}
	if err != nil {
		s.nodeResult(n, err)
		s.o.Logger.Debug("standby listing failed; keeping the previous one", "target", n.target.Name, "err", err)
		return true
	}
	s.nodeResult(n, nil)
	s.keepWarm(have, began)
	if s.metrics != nil {
		s.metrics.warmListings.Inc()
	}
	return true
}

// keepWarm makes a complete listing, begun at began, the one the Syncer
// holds.
func (s *Syncer) keepWarm(have *Set, began time.Time) {
	s.warm = have
	s.mu.Lock()
	s.status.WarmListed = began
	s.mu.Unlock()
}

// wrote applies this Syncer's successful writes to its listing, so that
// it stays what Kong holds as far as we know.
func (s *Syncer) wrote(ops []Op) {
	if s.warm == nil {
		return
	}
	for _, op := range ops {
		if op.Action == Delete {
			delete(s.warm[op.Entity.Kind], op.Entity.ID)
		} else {
			s.warm.Add(op.Entity)
		}
	}
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

	// provisional writes come from a listing that may be stale: Kong
	// refusing one is left to the verified pass instead of reported.
	provisional bool

	mu         sync.Mutex
	ok         []Op            // the ops Kong accepted
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
		a.ok = append(a.ok, op)
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
		if a.provisional {
			return
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
