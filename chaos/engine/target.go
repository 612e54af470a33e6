// Package engine runs drills: it deploys the target topology, checks the
// steady-state hypothesis before, during and after the method, plants the
// faults on schedule (each must be verified to have fired), enforces abort
// thresholds, always runs rollbacks and teardown (also when interrupted),
// and journals everything it sees. The CLI and the Ginkgo suite share it.
package engine

import (
	"context"
	"time"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/journal"
)

// Target is a cluster drills run against.
type Target interface {
	// Provider names the kind of cluster, for drills that need one.
	Provider() drill.Provider
	// Setup deploys the drill's topology and waits until it serves.
	Setup(ctx context.Context, d *drill.Drill, j *journal.Writer) error
	// Observe journals observed events (lock holder, per-Kong configuration
	// hash, pod phases) until ctx ends.
	Observe(ctx context.Context, j *journal.Writer)
	// Check runs one probe once (any type but http-traffic). It returns the
	// measured seconds where the probe measures a time (change-propagates)
	// and an error when the probe does not hold.
	Check(ctx context.Context, p drill.Probe, j *journal.Writer) (seconds float64, err error)
	// Traffic sends requests at p.Rate until ctx ends, journaling each one
	// (Subject: the Kong endpoint it went to).
	Traffic(ctx context.Context, p drill.Probe, j *journal.Writer) error
	// Inject plants a fault and reports whether it was observed to fire
	// within a.Verify and how long the system took to recover.
	Inject(ctx context.Context, a drill.Action, j *journal.Writer) Injection
	// Rollback undoes what faults changed (see drill.RollbackKind); it is
	// also called for the undo the engine always runs.
	Rollback(ctx context.Context, r drill.RollbackKind) error
	// Teardown removes what Setup deployed.
	Teardown(ctx context.Context) error
}

// Injection is the outcome of planting one fault.
type Injection struct {
	// At is when the fault was planted (zero: when Inject was called).
	// A fault may first wait for its target, e.g. for a live leader.
	At time.Time
	// Subjects are the targets hit (pod names, process ids).
	Subjects []string
	// Killed are the Kong proxy endpoints ("ip:port") the fault took down.
	// The target also journals each kill as it happens
	// (journal.EventKongKilled, at the signal): transport errors are set
	// against those records and the rotation changes the traffic probe
	// journals (see journal.Attributor).
	Killed []string
	// Verified says the fault was observed to fire; Detail says how, or
	// why not.
	Verified bool
	Detail   string
	// Recovered is the time from the fault (At) to recovery; RecoverErr is set
	// when the system did not recover within the action's bound.
	Recovered  time.Duration
	RecoverErr error
}

// SkippedError says a probe does not apply to this target, and why; the
// verdict is journaled as skipped, with the reason.
type SkippedError struct{ Reason string }

func (e *SkippedError) Error() string { return "skipped: " + e.Reason }

// Skipped returns a SkippedError.
func Skipped(reason string) error { return &SkippedError{Reason: reason} }
