package world

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"konductor.dev/sim/apiserver"
	"konductor.dev/sim/kong"
)

// Result is what one run observed.
type Result struct {
	Seed  uint64
	Steps []Step
	// Trace is the world's events followed by the derived history (see
	// TraceHash).
	Trace []Event
	// TraceHash is sha256 over the trace: the world's own events with
	// their virtual times, then each Kong's sequence of accepted writes
	// with their virtual times (writer, epoch, method, path, resulting
	// hash), and the sequence of lock holders. The controllers' jitter is
	// seeded (see package doc), so write times replay too.
	TraceHash string
	// Violations are the broken invariants; empty means the run passed.
	Violations []Violation
	// Fired counts the faults that actually happened, by kind.
	Fired map[string]int
	// Failovers: from losing the leader (crash, stop, pause) to another
	// replica holding the lock. Recoveries: from a Kong starting empty to
	// it serving the final configuration.
	Failovers, Recoveries []time.Duration
	// FailoversByKind splits Failovers by the fault that lost the leader.
	FailoversByKind map[string][]time.Duration
	// ChangesApplied: from an input change made at the instant the leader
	// was killed to every Kong serving it.
	ChangesApplied []time.Duration
	// ChangesInDatabase (database mode): from the same changes to the
	// write of the change's route to the database, before any Kong node
	// polls it.
	ChangesInDatabase []time.Duration
	Traffic           TrafficStats
	// Writes counts controller writes (Kong writes and API writes other
	// than Events): the crash-after-write plans number them.
	Writes int
	// FinalHash is the configuration every Kong ended with ("" if they
	// disagree).
	FinalHash string
	// WriteVolumePeak is the highest share of its write-volume budget any
	// kind of write used in one window (1 is the budget).
	WriteVolumePeak float64
	// Oracles names the invariants checked.
	Oracles []string
	Virtual time.Duration
}

// Oracles checked by every run.
var Oracles = []string{
	"single-writer", "eventually-stable", "stays-stable", "stateless-recovery",
	"nothing-lost", "traffic", "differential", "faults-fired", "evidence-takeover",
	OracleStatusSingleWriter, OracleStatusNotAhead, OracleIndependentPushes,
	OracleNoEarlyTakeover, OracleWriteVolume, OracleEmptyRefused,
	OracleRouting, OracleListedBeforeWrite,
}

// Failed reports whether an invariant was broken.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

func (w *World) result() *Result {
	audits := w.allAudits()
	w.checkSingleWriter(audits)
	w.checkEvidenceTakeovers()
	w.checkNothingLost(audits)
	inDB := w.changesInDatabase(audits)
	final := w.finalHash()
	w.checkRecovery(final)
	w.checkFired()
	w.checkStatus()
	w.checkIndependent()
	w.checkNoEarlyTakeover()
	peak := w.checkWriteVolume()
	w.checkEmptyRefused()
	w.checkListedBeforeWrite()

	w.mu.Lock()
	defer w.mu.Unlock()
	res := &Result{
		Seed: w.cfg.Seed, Steps: w.cfg.Steps, Violations: w.violations, Fired: map[string]int{},
		Traffic: w.traffic, Writes: w.writes, FinalHash: final, Oracles: Oracles, Virtual: w.now(),
		Recoveries: w.recoveries, WriteVolumePeak: peak,
	}
	for k, v := range w.firedKinds {
		res.Fired[k] = v
	}
	for k, v := range w.api.Fired("*") {
		res.Fired["api/"+k] += v
	}
	res.Failovers, res.FailoversByKind = w.failoverTimes()
	res.ChangesApplied = w.changesAppliedLocked()
	res.ChangesInDatabase = inDB
	res.Trace = append(res.Trace, w.trace...)
	// Derived history: per Kong slot, its writes at their virtual times.
	// Writes to one Kong at one virtual instant are concurrent: the
	// configuration between them depends on the scheduler, the one after
	// all of them does not. Each carries the hash after the last.
	type instant struct {
		slot int
		at   time.Time
	}
	after := map[instant]string{}
	for _, a := range audits {
		after[instant{a.slot, a.Time}] = a.Hash
	}
	for _, a := range audits {
		if a.Time.After(w.endAt) {
			continue
		}
		line := fmt.Sprintf("%s %s@%d %s %s %s", kongPod(a.slot), a.Writer, a.Epoch, a.Method, a.Path, after[instant{a.slot, a.Time}])
		res.Trace = append(res.Trace, Event{At: a.Time.Sub(w.start), Kind: "kong-write", Detail: line})
	}
	// Per Kong, in time order; writes at one virtual instant are
	// concurrent (DB mode applies a phase's entities in parallel), so
	// their order is the goroutine scheduler's: sort them by content.
	sort.SliceStable(res.Trace[len(w.trace):], func(i, j int) bool {
		a, b := res.Trace[len(w.trace)+i], res.Trace[len(w.trace)+j]
		if a.Detail[:6] != b.Detail[:6] {
			return a.Detail[:6] < b.Detail[:6]
		}
		if a.At != b.At {
			return a.At < b.At
		}
		return a.Detail < b.Detail
	})
	for _, h := range w.holders() {
		res.Trace = append(res.Trace, Event{Kind: "lock-holder", Detail: h})
	}
	h := sha256.New()
	for _, e := range res.Trace {
		fmt.Fprintf(h, "%d|%s|%s\n", e.At, e.Kind, e.Detail)
	}
	res.TraceHash = hex.EncodeToString(h.Sum(nil))[:16]
	return res
}

// holders lists the lock's successive holders with their terms.
func (w *World) holders() []string {
	var out []string
	for _, c := range w.api.Changes() {
		if c.Resource != configMaps || c.Name != lockName() || c.Object == nil || c.Time.After(w.endAt) {
			continue
		}
		rec, ok := w.lockRecord(c.Object.(*corev1.ConfigMap))
		if !ok {
			continue
		}
		line := fmt.Sprintf("%s term %d", rec.HolderIdentity, rec.LeaderTransitions)
		if len(out) == 0 || out[len(out)-1] != line {
			out = append(out, line)
		}
	}
	return out
}

// failoverTimes measures each leader loss to the next other holder, also
// by the kind of fault; w.mu held.
func (w *World) failoverTimes() ([]time.Duration, map[string][]time.Duration) {
	changes := w.api.Changes()
	var out []time.Duration
	byKind := map[string][]time.Duration{}
	for _, f := range w.failovers {
		for _, c := range changes {
			if c.Resource != configMaps || c.Name != lockName() || c.Time.Before(f.at) {
				continue
			}
			rec, ok := w.lockRecord(c.Object.(*corev1.ConfigMap))
			if !ok || rec.HolderIdentity == "" {
				continue
			}
			// A paused leader that thaws in time renews its own lease:
			// no failover happened.
			if rec.HolderIdentity != f.identity {
				out = append(out, c.Time.Sub(f.at))
				byKind[f.kind] = append(byKind[f.kind], c.Time.Sub(f.at))
			}
			break
		}
	}
	return out, byKind
}

// checkSingleWriter: one writer per epoch, no epoch 0 (ungated) write, and
// no write of an older epoch after one of a newer epoch landed anywhere.
func (w *World) checkSingleWriter(rows []auditRow) {
	writerOf := map[int64]string{}
	var newest int64
	var newestAt time.Time
	for _, r := range rows {
		if r.Epoch == 0 {
			w.violate("single-writer", "%s accepted a write without a term from %q", kongPod(r.slot), r.Writer)
			continue
		}
		if prev, ok := writerOf[r.Epoch]; ok && prev != r.Writer {
			w.violate("single-writer", "epoch %d written by both %s and %s", r.Epoch, prev, r.Writer)
		}
		writerOf[r.Epoch] = r.Writer
		if r.Epoch < newest {
			w.violate("single-writer", "%s accepted a write of epoch %d from %s at %v, after epoch %d had written at %v",
				kongPod(r.slot), r.Epoch, r.Writer, r.Time.Sub(w.start), newest, newestAt.Sub(w.start))
		}
		if r.Epoch > newest {
			newest, newestAt = r.Epoch, r.Time
		}
	}
}

// checkNothingLost: inputs only grow, so no Kong incarnation may go from a
// configuration back to a smaller one, or to empty. A violation names the
// write that shrank the configuration (writer, term, virtual time) and the
// stale reads that writer was served, which is where a smaller desired
// state comes from.
func (w *World) checkNothingLost(rows []auditRow) {
	w.mu.Lock()
	served := append([]served(nil), w.served...)
	w.mu.Unlock()
	type inc struct{ slot, gen int }
	most := map[inc]int{}
	for _, s := range served {
		k := inc{s.Slot, s.Gen}
		if s.Count < most[k] {
			w.violate("nothing-lost", "%s went from %d entities to %d (hash %s) at %v%s", kongPod(s.Slot), most[k], s.Count, s.Hash,
				s.At.Sub(w.start), w.shrinkCause(rows, s))
		}
		most[k] = max(most[k], s.Count)
	}
}

// shrinkCause describes the Kong write that made s: who wrote it in which
// term, and what stale reads that writer had been served before.
func (w *World) shrinkCause(rows []auditRow, s served) string {
	var by *auditRow
	for i := range rows {
		r := &rows[i]
		if r.slot == s.Slot && !r.Time.After(s.At) && r.Hash == s.Hash {
			by = r
		}
	}
	if by == nil {
		return ""
	}
	out := fmt.Sprintf(", written by %s in term %d", by.Writer, by.Epoch)
	var stale []string
	for _, sr := range w.api.StaleReads() {
		if sr.Client == by.Writer && !sr.Time.After(s.At) {
			stale = append(stale, fmt.Sprintf("%s %s rv=%q at %v: served %d of %d", sr.Verb, sr.Resource, sr.Requested, sr.Time.Sub(w.start), sr.Served, sr.Current))
		}
	}
	if len(stale) > 0 {
		out += "; its stale reads: " + strings.Join(stale, "; ")
	}
	return out
}

// finalHash is the one configuration all live Kongs serve, or "".
func (w *World) finalHash() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	final := ""
	for _, s := range w.slots {
		if !s.up {
			continue
		}
		h := s.node.ConfigHash()
		if final != "" && h != final {
			return ""
		}
		final = h
	}
	return final
}

// checkRecovery: every Kong that came up empty served a full configuration
// within the bound (unless it was replaced again first).
func (w *World) checkRecovery(final string) {
	w.mu.Lock()
	restarts := append([]kongRestart(nil), w.restarts...)
	served := append([]served(nil), w.served...)
	w.mu.Unlock()
	for _, r := range restarts {
		var at time.Time
		for _, s := range served {
			if s.Slot == r.slot && s.Gen == r.gen && s.Count > 0 {
				at = s.At
				break
			}
		}
		replaced := slices.ContainsFunc(restarts, func(o kongRestart) bool {
			return o.slot == r.slot && o.gen > r.gen && o.at.Sub(r.at) < w.cfg.RecoveryBound
		})
		w.mu.Lock()
		down := false
		for _, s := range w.slots {
			if s.index == r.slot && (!s.up && s.gen == r.gen) {
				down = true
			}
		}
		w.mu.Unlock()
		if replaced || (at.IsZero() && down) {
			continue
		}
		if at.IsZero() {
			w.violate("stateless-recovery", "%s (restart at %v) was never configured again", kongPod(r.slot), r.at.Sub(w.start))
			continue
		}
		from := r.at
		w.mu.Lock()
		for _, o := range w.outages {
			if !from.Before(o[0]) && !from.After(o[1]) {
				from = o[1]
			}
		}
		w.mu.Unlock()
		d := at.Sub(from)
		w.mu.Lock()
		w.recoveries = append(w.recoveries, d)
		w.mu.Unlock()
		if d > w.cfg.RecoveryBound {
			w.violate("stateless-recovery", "%s took %v to be configured again after starting empty (bound %v)", kongPod(r.slot), d, w.cfg.RecoveryBound)
		}
	}
}

// checkFired: a planned fault that never happened makes the run fail.
func (w *World) checkFired() {
	api := w.api.Fired("*")
	w.mu.Lock()
	fired := map[string]int{}
	for k, v := range w.firedKinds {
		fired[k] = v
	}
	w.mu.Unlock()
	for _, s := range w.cfg.Steps {
		ok := true
		switch s.Kind {
		case FaultAPIOutage, FaultAPIPartition:
			ok = api[apiserver.FiredPartition] > 0
		case FaultAPIErrors:
			ok = api[apiserver.FiredTooMany]+api[apiserver.FiredInternal]+api[apiserver.FiredTimeout] > 0
		case FaultStaleReads:
			ok = api[apiserver.FiredStaleRead] > 0
		case FaultDropWatches:
			ok = api[apiserver.FiredDroppedWatch] > 0
		case FaultNodePartition:
			ok = fired[s.Kind] > 0 && api[apiserver.FiredPartition] > 0
		case InputAddApp, InputRemoveApps, InputEditApp:
		default:
			ok = fired[s.Kind] > 0
		}
		if !ok {
			w.violate("faults-fired", "planned fault never happened: %s", s)
		}
	}
}

// Summary is a one-line description of a result.
func (r *Result) Summary() string {
	status := "ok"
	if r.Failed() {
		status = fmt.Sprintf("%d violations", len(r.Violations))
	}
	keys := make([]string, 0, len(r.Fired))
	for k := range r.Fired {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var fired []string
	for _, k := range keys {
		fired = append(fired, fmt.Sprintf("%s=%d", k, r.Fired[k]))
	}
	return fmt.Sprintf("seed %d: %s, trace %s, %d writes, final %s, fired [%s]", r.Seed, status, r.TraceHash, r.Writes, short(r.FinalHash), strings.Join(fired, " "))
}

func short(h string) string {
	if h == kong.ZeroHash {
		return "empty"
	}
	if len(h) > 8 {
		return h[:8]
	}
	return h
}
