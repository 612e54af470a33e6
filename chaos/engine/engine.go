package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/journal"
)

// Engine runs drills against a target.
type Engine struct {
	Target Target
	// Log receives progress lines (may be nil).
	Log func(format string, args ...any)
	// Rand draws jitter; nil uses a random source.
	Rand *rand.Rand
	// CleanupTimeout bounds rollbacks and teardown after the drill's own
	// context ended (default 5m).
	CleanupTimeout time.Duration
}

// Result is a drill's outcome.
type Result struct {
	Outcome  string // journal.Outcome*
	Failures []string
}

func (r Result) String() string {
	if len(r.Failures) == 0 {
		return r.Outcome
	}
	return r.Outcome + ": " + strings.Join(r.Failures, "; ")
}

// errAborted is the cause when an abort threshold stops a drill.
var errAborted = errors.New("abort threshold crossed")

func (e *Engine) logf(format string, args ...any) {
	if e.Log != nil {
		e.Log(format, args...)
	}
}

// run is the state of one drill run.
type run struct {
	e   *Engine
	d   *drill.Drill
	j   *journal.Writer
	res Result

	mu        sync.Mutex
	requests  int
	non2xx    int
	transport []journal.Record
	retried   []journal.Record // requests retried after a connect failure
	kills     *journal.Attributor
	unverif   int
	abortWhy  string
}

func (r *run) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Failures = append(r.res.Failures, fmt.Sprintf(format, args...))
}

// tap keeps running counts of what the journal records, and the kills and
// rotation changes transport errors are set against.
func (r *run) tap(rec journal.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Kind == journal.KindEvent {
		r.kills.Observe(rec)
		return
	}
	if rec.Kind != journal.KindRequest {
		return
	}
	r.requests++
	if rec.RetriedFrom != "" {
		r.retried = append(r.retried, rec)
	}
	switch rec.ErrClass {
	case journal.ErrNone:
	case journal.ErrNon2xx:
		r.non2xx++
	default:
		r.transport = append(r.transport, rec)
	}
}

// Run runs one drill, journaling to j. ctx ending (Ctrl-C, SIGTERM) or the
// drill's max-duration passing interrupts it: the method stops, rollbacks
// and teardown still run, and the outcome is "interrupted".
func (e *Engine) Run(ctx context.Context, d *drill.Drill, j *journal.Writer) Result {
	r := &run{e: e, d: d, j: j, kills: journal.NewAttributor()}
	j.SetDrill(d.Title)
	j.Tap(r.tap)
	j.Add(journal.Record{Kind: journal.KindDrillStart, Detail: d.File, Value: string(e.Target.Provider())})
	e.logf("drill %q (%s) on %s", d.Title, d.File, e.Target.Provider())

	limit := d.Abort.MaxDuration.Or(drill.DefaultTimeout)
	runCtx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("max-duration %s passed", limit))
	defer cancel()

	outcome, why := r.execute(runCtx, ctx)
	if outcome == "" {
		outcome = journal.OutcomePassed
		if len(r.res.Failures) > 0 {
			outcome = journal.OutcomeFailed
		}
	}
	r.res.Outcome = outcome
	if why != "" {
		r.res.Failures = append([]string{why}, r.res.Failures...)
	}
	j.Add(journal.Record{Kind: journal.KindDrillEnd, Outcome: outcome, Detail: strings.Join(r.res.Failures, "; ")})
	if err := j.Flush(); err != nil {
		r.res.Failures = append(r.res.Failures, "journal: "+err.Error())
	}
	e.logf("drill %q: %s", d.Title, r.res)
	return r.res
}

// execute runs the phases; it returns a non-empty outcome only when the
// drill stopped early (interrupted, aborted, or refused).
func (r *run) execute(ctx, parent context.Context) (outcome, why string) {
	d, t := r.d, r.e.Target
	if need := d.NeedsProvider(); need != "" && t.Provider() != need {
		return journal.OutcomeFailed, fmt.Sprintf("the drill's faults need provider %q; this target is %q", need, t.Provider())
	}
	if len(d.Target.Providers) > 0 && !slices.Contains(d.Target.Providers, t.Provider()) && !slices.Contains(d.Target.Providers, drill.ProviderAny) {
		return journal.OutcomeFailed, fmt.Sprintf("the drill runs on %v; this target is %q", d.Target.Providers, t.Provider())
	}
	defer r.cleanup(ctx)

	if err := t.Setup(ctx, d, r.j); err != nil {
		if o, w := r.stopped(ctx, parent); o != "" {
			return o, w
		}
		return journal.OutcomeFailed, "setup: " + err.Error()
	}
	obsCtx, stopObs := context.WithCancel(ctx)
	var obsDone sync.WaitGroup
	obsDone.Go(func() { t.Observe(obsCtx, r.j) })
	defer func() { stopObs(); obsDone.Wait() }()

	// Before: the steady state must hold, or the method does not run.
	for _, p := range d.Hypothesis.Probes {
		if p.Runs(drill.PhaseBefore) && !r.check(ctx, p, drill.PhaseBefore) {
			if o, w := r.stopped(ctx, parent); o != "" {
				return o, w
			}
			return journal.OutcomeFailed, fmt.Sprintf("steady state not met before the method (probe %s)", p.Label())
		}
	}

	methodCtx, stopMethod := context.WithCancelCause(ctx)
	defer stopMethod(nil)
	contCtx, stopCont := context.WithCancel(ctx)
	var cont sync.WaitGroup
	streaks := make([]streak, len(d.Hypothesis.Probes))
	for i, p := range d.Hypothesis.Probes {
		if !p.Runs(drill.PhaseContinuous) {
			continue
		}
		if p.Type == drill.ProbeTraffic {
			cont.Go(func() {
				if err := t.Traffic(contCtx, p, r.j); err != nil && contCtx.Err() == nil {
					r.fail("probe %s: %v", p.Label(), err)
				}
			})
			continue
		}
		cont.Go(func() { streaks[i] = r.watch(contCtx, p) })

	}
	cont.Go(func() { r.watchAbort(contCtx, stopMethod) })

	r.method(methodCtx)
	if err := context.Cause(methodCtx); errors.Is(err, errAborted) {
		stopCont()
		cont.Wait()
		return journal.OutcomeAborted, r.abortWhy
	}
	if ctx.Err() == nil {
		Sleep(ctx, d.Schedule.Settle.D())
	}
	stopCont()
	cont.Wait()
	if o, w := r.stopped(ctx, parent); o != "" {
		return o, w
	}
	r.judgeContinuous(streaks)
	for _, p := range d.Hypothesis.Probes {
		if p.Runs(drill.PhaseAfter) && !r.check(ctx, p, drill.PhaseAfter) {
			r.fail("probe %s failed after the method", p.Label())
		}
	}
	if o, w := r.stopped(ctx, parent); o != "" {
		return o, w
	}
	return "", ""
}

// stopped says whether the run was interrupted, and why.
func (r *run) stopped(ctx, parent context.Context) (string, string) {
	switch {
	case parent.Err() != nil:
		return journal.OutcomeInterrupted, context.Cause(parent).Error()
	case ctx.Err() != nil:
		return journal.OutcomeInterrupted, context.Cause(ctx).Error()
	}
	return "", ""
}

// cleanup runs the rollbacks, then the undo every run gets, then teardown,
// on a context of its own: an interrupted drill still leaves the cluster as
// it found it.
func (r *run) cleanup(ctx context.Context) {
	timeout := r.e.CleanupTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	kinds := []drill.RollbackKind{}
	for _, rb := range r.d.Rollbacks {
		kinds = append(kinds, rb.Action)
	}
	// Resume and restore always: they are no-ops when nothing was changed.
	for _, k := range []drill.RollbackKind{drill.RollbackResumeProcesses, drill.RollbackRestoreReplicas, drill.RollbackRemoveProbeObjects} {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	for _, k := range kinds {
		err := r.e.Target.Rollback(cctx, k)
		rec := journal.Record{Kind: journal.KindRollback, Action: string(k), OK: journal.Bool(err == nil)}
		if err != nil {
			rec.Detail = err.Error()
			r.fail("rollback %s: %v", k, err)
		}
		r.j.Add(rec)
	}
	err := r.e.Target.Teardown(cctx)
	rec := journal.Record{Kind: journal.KindRollback, Action: "teardown", OK: journal.Bool(err == nil)}
	if err != nil {
		rec.Detail = err.Error()
		r.fail("teardown: %v", err)
	}
	r.j.Add(rec)
}

// check runs a probe and journals its verdict. A probe that does not hold
// is retried until its tolerance's within (default 30s): before and after
// the method the system may still be settling. change-propagates is
// bounded by within itself and runs once.
func (r *run) check(ctx context.Context, p drill.Probe, ph drill.Phase) bool {
	start := r.j.Now()
	within := p.Tolerance.Within.Or(30 * time.Second)
	var secs float64
	var err error
	for {
		secs, err = r.e.Target.Check(ctx, p, r.j)
		var skipped *SkippedError
		if err == nil || errors.As(err, &skipped) || p.Type == drill.ProbePropagation ||
			r.j.Now().Sub(start) >= within || !Sleep(ctx, 500*time.Millisecond) {
			break
		}
	}
	var skipped *SkippedError
	ok := err == nil || errors.As(err, &skipped)
	rec := journal.Record{Kind: journal.KindProbe, Probe: p.Label(), Phase: string(ph), Value: string(p.Type), OK: journal.Bool(ok), Seconds: secs}
	if err != nil {
		rec.Detail = err.Error()
	}
	if secs == 0 && p.Type != drill.ProbePropagation {
		rec.Seconds = r.j.Now().Sub(start).Seconds()
	}
	r.j.Add(rec)
	return ok
}

// streak is what watching a continuous probe found: its longest time
// false, or why it does not apply.
type streak struct {
	longest time.Duration
	skipped error
}

// watch runs a continuous non-traffic probe every interval and returns its
// longest failing streak; a streak is journaled when it ends.
func (r *run) watch(ctx context.Context, p drill.Probe) streak {
	every := p.Interval.Or(time.Second)
	var longest time.Duration
	var failingSince time.Time
	var lastErr error
	for {
		_, err := r.e.Target.Check(ctx, p, r.j)
		if ctx.Err() != nil {
			break
		}
		var skipped *SkippedError
		if errors.As(err, &skipped) {
			return streak{skipped: err} // journaled by judgeContinuous
		}
		now := r.j.Now()
		switch {
		case err != nil && failingSince.IsZero():
			failingSince, lastErr = now, err
		case err != nil:
			lastErr = err
		case !failingSince.IsZero():
			streak := now.Sub(failingSince)
			longest = max(longest, streak)
			r.j.Add(journal.Record{Kind: journal.KindProbe, Probe: p.Label(), Phase: string(drill.PhaseContinuous), Value: string(p.Type),
				OK: journal.Bool(streak <= p.Tolerance.Within.Or(30*time.Second)), Seconds: streak.Seconds(), Detail: "false for a while: " + lastErr.Error()})
			failingSince = time.Time{}
		}
		if !Sleep(ctx, every) {
			break
		}
	}
	if !failingSince.IsZero() {
		longest = max(longest, r.j.Now().Sub(failingSince))
	}
	return streak{longest: longest}
}

// watchAbort stops the method when an abort threshold is crossed.
func (r *run) watchAbort(ctx context.Context, stop context.CancelCauseFunc) {
	a := r.d.Abort
	if a.MaxNon2xx == nil && a.MaxTransportErrors == nil && a.MaxUnverified == nil {
		return
	}
	for Sleep(ctx, 200*time.Millisecond) {
		r.mu.Lock()
		why := ""
		switch {
		case a.MaxNon2xx != nil && r.non2xx > *a.MaxNon2xx:
			why = fmt.Sprintf("%d non-2xx answers, more than %d", r.non2xx, *a.MaxNon2xx)
		case a.MaxTransportErrors != nil && len(r.transport) > *a.MaxTransportErrors:
			why = fmt.Sprintf("%d transport errors, more than %d", len(r.transport), *a.MaxTransportErrors)
		case a.MaxUnverified != nil && r.unverif > *a.MaxUnverified:
			why = fmt.Sprintf("%d faults not verified, more than %d", r.unverif, *a.MaxUnverified)
		}
		if why != "" {
			r.abortWhy = why
		}
		r.mu.Unlock()
		if why != "" {
			stop(errAborted)
			return
		}
	}
}

// method runs the repetitions of the method on schedule.
func (r *run) method(ctx context.Context) {
	s := r.d.Schedule
	if !Sleep(ctx, s.Warmup.D()) {
		return
	}
	next := time.Now()
	// Background actions may outlive their repetition (a storm does not
	// wait for recovery); the method ends when the last one has.
	var bg sync.WaitGroup
	defer bg.Wait()
	for rep := 1; rep <= s.Repeats(); rep++ {
		if rep > 1 {
			next = next.Add(s.Interval.D())
			at := next
			if s.Jitter > 0 {
				at = at.Add(time.Duration(r.rand().Int64N(int64(s.Jitter))))
			}
			if !Sleep(ctx, time.Until(at)) {
				return
			}
		}
		r.j.Add(journal.Record{Kind: journal.KindRepetition, Rep: rep})
		r.e.logf("  repetition %d/%d", rep, s.Repeats())
		for _, a := range r.d.Method {
			if !Sleep(ctx, a.Pauses.Before.D()) {
				break
			}
			if a.Background {
				bg.Go(func() { r.inject(ctx, rep, a) })
			} else {
				r.inject(ctx, rep, a)
			}
			if !Sleep(ctx, a.Pauses.After.D()) {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
	if s.Repeats() == 1 && s.Interval > 0 {
		Sleep(ctx, time.Until(next.Add(s.Interval.D())))
	}
}

func (r *run) rand() *rand.Rand {
	if r.e.Rand != nil {
		return r.e.Rand
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

// inject plants one fault and journals its start, verification and
// recovery.
func (r *run) inject(ctx context.Context, rep int, a drill.Action) {
	called := r.j.Now()
	in := r.e.Target.Inject(ctx, a, r.j)
	start := in.At
	if start.IsZero() {
		start = called
	}
	// Journaled once planted, at the time it was planted: failover and
	// recovery count from there, not from waiting for a target.
	r.j.Add(journal.Record{T: start, Kind: journal.KindFaultStart, Rep: rep, Fault: string(a.Fault), Action: a.Label(), Subject: strings.Join(in.Subjects, ",")})
	if ctx.Err() != nil && !in.Verified {
		// Interrupted while planting: not a fault that failed to fire.
		in.Detail = "interrupted: " + in.Detail
	}
	r.j.Add(journal.Record{Kind: journal.KindFaultEnd, Rep: rep, Fault: string(a.Fault), Action: a.Label(),
		Subject: strings.Join(in.Subjects, ","), Value: strings.Join(in.Killed, ","), Verified: journal.Bool(in.Verified), Detail: in.Detail})
	if !in.Verified {
		r.mu.Lock()
		r.unverif++
		r.mu.Unlock()
		if ctx.Err() == nil {
			r.fail("rep %d: fault %s did not fire: %s", rep, a.Label(), in.Detail)
		}
		return
	}
	if in.RecoverErr == nil && in.Recovered > 0 {
		r.j.Add(journal.Record{Kind: journal.KindRecovered, Rep: rep, Fault: string(a.Fault), Action: a.Label(),
			Subject: strings.Join(in.Subjects, ","), Seconds: in.Recovered.Seconds()})
	}
	if in.RecoverErr != nil && ctx.Err() == nil {
		r.fail("rep %d: after fault %s: %v", rep, a.Label(), in.RecoverErr)
	}
}

// judgeContinuous applies the tolerances of the continuous probes.
func (r *run) judgeContinuous(streaks []streak) {
	r.mu.Lock()
	requests, non2xx := r.requests, r.non2xx
	transport := slices.Clone(r.transport)
	retried := slices.Clone(r.retried)
	tally := classify(r.kills, transport, retried)
	r.mu.Unlock()
	for i, p := range r.d.Hypothesis.Probes {
		if !p.Runs(drill.PhaseContinuous) {
			continue
		}
		if p.Type != drill.ProbeTraffic {
			if err := streaks[i].skipped; err != nil {
				r.j.Add(journal.Record{Kind: journal.KindProbe, Probe: p.Label(), Phase: string(drill.PhaseContinuous), Value: string(p.Type),
					OK: journal.Bool(true), Detail: err.Error()})
				continue
			}
			within := p.Tolerance.Within.Or(30 * time.Second)
			longest := streaks[i].longest
			ok := longest <= within
			r.j.Add(journal.Record{Kind: journal.KindProbe, Probe: p.Label(), Phase: string(drill.PhaseContinuous), Value: string(p.Type),
				OK: journal.Bool(ok), Seconds: longest.Seconds(), Detail: fmt.Sprintf("longest time false %s (tolerance %s)", longest.Round(time.Millisecond), within)})
			if !ok {
				r.fail("probe %s was false for %s, more than %s", p.Label(), longest.Round(time.Millisecond), within)
			}
			continue
		}
		var problems []string
		tol := p.Tolerance
		if requests < tol.MinRequests {
			problems = append(problems, fmt.Sprintf("%d requests, fewer than %d", requests, tol.MinRequests))
		}
		if maxN := deref(tol.MaxNon2xx); non2xx > maxN {
			problems = append(problems, fmt.Sprintf("%d non-2xx answers, more than %d", non2xx, maxN))
		}
		counted := len(transport) + tally.retried[journal.CauseOther]
		if tol.TransportErrorsOnlyOnKilledKong {
			counted -= tally.transport[journal.CauseInFlight]
		}
		if maxT := deref(tol.MaxTransportErrors); counted > maxT {
			what := "transport errors"
			if tol.TransportErrorsOnlyOnKilledKong {
				what = "transport errors not in flight at a Kong kill"
			}
			if n := tally.retried[journal.CauseOther]; n > 0 {
				what += fmt.Sprintf(" (with %d connect failures that no kill explains, retried)", n)
			}
			problems = append(problems, fmt.Sprintf("%d %s, more than %d", counted, what, maxT))
		}
		ok := len(problems) == 0
		detail := fmt.Sprintf("%d requests, %d non-2xx, %d transport errors (%s)", requests, non2xx, len(transport), tally.line(tally.transport))
		if p.RetryConnectFailures {
			detail += fmt.Sprintf("; %d connect failures retried on another endpoint (%s)", len(retried), tally.line(tally.retried))
		}
		if !ok {
			detail = strings.Join(problems, "; ") + " — " + detail
			r.fail("probe %s: %s", p.Label(), strings.Join(problems, "; "))
		}
		r.j.Add(journal.Record{Kind: journal.KindProbe, Probe: p.Label(), Phase: string(drill.PhaseContinuous), Value: string(p.Type),
			OK: journal.Bool(ok), Detail: detail})
	}
}

// tally counts transport errors and retried connect failures by cause.
type tally struct {
	transport, retried map[string]int
}

func classify(kills *journal.Attributor, transport, retried []journal.Record) tally {
	t := tally{transport: map[string]int{}, retried: map[string]int{}}
	for _, rec := range transport {
		t.transport[kills.ClassifyRequest(rec).Cause]++
	}
	for _, rec := range retried {
		t.retried[kills.ClassifyRetry(rec).Cause]++
	}
	return t
}

func (tally) line(by map[string]int) string {
	parts := make([]string, 0, len(journal.Causes))
	for _, c := range journal.Causes {
		parts = append(parts, fmt.Sprintf("%d %s", by[c], c))
	}
	return strings.Join(parts, ", ")
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Sleep waits d or until ctx ends; it reports whether ctx is still live.
// The engine paces drills with it, and targets their own polls.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
