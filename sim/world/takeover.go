package world

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// injectPodFault injects the faults that test the pod-evidence takeover:
// none of them may let a standby take the lock before the lease runs out
// while the holder's process still runs.
func (w *World) injectPodFault(s *Step) (heal func()) {
	wasLeader := w.leader()
	i := s.Replica
	if i == LeaderReplica {
		i = max(wasLeader, 0)
	}
	w.mu.Lock()
	r := w.replicas[i]
	id := r.identity
	if r.stopped {
		w.mu.Unlock()
		return nil
	}
	w.fired(s.Kind)
	w.mu.Unlock()
	switch s.Kind {
	case FaultNodePartition:
		// The process runs on, cut off from the API server; its Pod goes
		// Unknown. Only the lease can end its term.
		if i == wasLeader {
			w.markFailover(id, s.Kind)
		}
		return w.loseNode(i, id)
	case FaultKubeletLate:
		// The kubelet reports every change For late; the replica is
		// killed now and its container restarted a second later, so the
		// late report shows the old container terminated and a new one
		// running at once, with a higher restartCount.
		w.mu.Lock()
		w.pods[i].late = s.For
		w.mu.Unlock()
		w.stopReplica(i, false)
		if i == wasLeader {
			w.markFailover(id, s.Kind)
		}
		w.wg.Go(func() {
			select {
			case <-w.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			_ = w.startReplica(i)
		})
		return func() {
			w.mu.Lock()
			w.pods[i].late = 0
			w.mu.Unlock()
		}
	case FaultForceDelete:
		return w.forceDelete(i)
	}
	return nil
}

// checkEvidenceTakeovers: a holder may lose the lock before its lease ran
// out (as its last record change let anyone measure it) only when its
// process had ended: the pod-evidence takeover must never act on a holder
// that is alive, be it partitioned, on an Unknown node, reported late, or
// in a force-deleted Pod.
func (w *World) checkEvidenceTakeovers() {
	lease := w.opts.ElectionLeaseDuration
	w.mu.Lock()
	deaths := make(map[string]time.Time, len(w.deaths))
	for k, v := range w.deaths {
		deaths[k] = v
	}
	endAt := w.endAt
	w.mu.Unlock()
	var holder, raw string
	var epoch int
	var since time.Time // when the current record's content first appeared
	for _, c := range w.api.Changes() {
		if c.Resource != configMaps || c.Name != lockName() || c.Time.After(endAt) {
			continue
		}
		if c.Type == watch.Deleted || c.Object == nil {
			holder, raw = "", ""
			continue
		}
		cm := c.Object.(*corev1.ConfigMap)
		rec, ok := w.lockRecord(cm)
		if !ok {
			continue
		}
		value := fmt.Sprintf("%s|%d|%v|%v", rec.HolderIdentity, rec.LeaderTransitions, rec.RenewTime.Unix(), rec.AcquireTime.Unix())
		if value == raw {
			continue
		}
		if holder != "" && rec.HolderIdentity != "" && rec.HolderIdentity != holder && rec.LeaderTransitions > epoch {
			expiry := since.Add(lease)
			died, dead := deaths[holder]
			if c.Time.Before(expiry) && (!dead || died.After(c.Time)) {
				w.violate("evidence-takeover", "%s took the lock (epoch %d) from %s at %v, %v before its lease ran out, while %s's process was running",
					rec.HolderIdentity, rec.LeaderTransitions, holder, c.Time.Sub(w.start), expiry.Sub(c.Time), holder)
			}
		}
		holder, epoch, raw, since = rec.HolderIdentity, rec.LeaderTransitions, value, c.Time
	}
}

// leaderLosses are the steps that take the leader's process away, or (a
// graceful stop) make it hand over.
var leaderLosses = []string{FaultCrash, FaultKubeletLate, FaultStop}

// changesAppliedLocked measures, for each input change made at the same
// instant as a leader-loss step (or a graceful stop), how long until every Kong up at the end
// served a configuration with more entities than it had at the change;
// changes during a Kong restart are not measured. w.mu held.
func (w *World) changesAppliedLocked() []time.Duration {
	var out []time.Duration
	for _, s := range w.cfg.Steps {
		if s.Kind != InputAddApp || !slices.ContainsFunc(w.cfg.Steps, func(o Step) bool {
			return o.At == s.At && slices.Contains(leaderLosses, o.Kind)
		}) {
			continue
		}
		at := w.start.Add(s.At)
		var worst time.Duration
		measured := true
		for _, slot := range w.slots {
			if !slot.up {
				continue
			}
			before, gen := -1, -1
			var applied time.Time
			for _, sv := range w.served {
				if sv.Slot != slot.index {
					continue
				}
				if !sv.At.After(at) {
					before, gen = sv.Count, sv.Gen
					continue
				}
				if sv.Gen != gen {
					break // restarted: not this change's latency
				}
				if sv.Count > before {
					applied = sv.At
					break
				}
			}
			if before < 0 || applied.IsZero() {
				measured = false
				break
			}
			worst = max(worst, applied.Sub(at))
		}
		if measured {
			out = append(out, worst)
		}
	}
	return out
}

// changesInDatabase measures, in database mode, for each input change made
// at the same instant as a leader-loss step, how long until the change's
// route was written to the database.
func (w *World) changesInDatabase(audits []auditRow) []time.Duration {
	if w.db == nil {
		return nil
	}
	recs, _, err := w.db.Load(context.Background())
	if err != nil {
		return nil
	}
	w.mu.Lock()
	appAt := maps.Clone(w.appAt)
	w.mu.Unlock()
	var out []time.Duration
	for _, s := range w.cfg.Steps {
		i, added := appAt[s.At]
		if s.Kind != InputAddApp || !added || !slices.ContainsFunc(w.cfg.Steps, func(o Step) bool {
			return o.At == s.At && slices.Contains(leaderLosses, o.Kind)
		}) {
			continue
		}
		at := w.start.Add(s.At)
		for _, r := range recs {
			if r.Type != "routes" || !bytes.Contains(r.Body, []byte(`"`+appHost(i)+`"`)) {
				continue
			}
			for _, a := range audits {
				if a.Method == http.MethodPut && a.Path == "/routes/"+r.ID && !a.Time.Before(at) {
					out = append(out, a.Time.Sub(at))
					break
				}
			}
		}
	}
	return out
}

// OracleNoEarlyTakeover: a term may not start while the previous holder
// could still write, given what the new holder could know. A holder's
// term ends when it releases the lock itself, when its lease has run out
// as measured from the first moment anyone could see its last record, or
// earlier only once the API server holds the kubelet's report that the
// holder's own container terminated (the evidence of
// controller/election's pod-evidence takeover). And when a term ends,
// every Kong write sent under it must be over: it reached Kong, or it was
// refused or abandoned by its deadline, or its sender was killed (a
// killed process sends nothing more; one that stopped gracefully may
// still have a request on the wire).
const OracleNoEarlyTakeover = "no-early-takeover"

// terminationReports maps each container instance to the first time the
// API server held a report of it terminated (as its state or last state).
func (w *World) terminationReports() map[string]time.Time {
	out := map[string]time.Time{}
	note := func(t *corev1.ContainerStateTerminated, at time.Time) {
		if t == nil || t.ContainerID == "" || t.Reason == "ContainerStatusUnknown" {
			return
		}
		if _, seen := out[t.ContainerID]; !seen {
			out[t.ContainerID] = at
		}
	}
	for _, c := range w.api.Changes() {
		if c.Resource != podsResource || c.Object == nil {
			continue
		}
		pod, ok := c.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		for _, st := range pod.Status.ContainerStatuses {
			note(st.State.Terminated, c.Time)
			note(st.LastTerminationState.Terminated, c.Time)
		}
	}
	return out
}

// checkNoEarlyTakeover walks the lock's history: at each end of a term it
// checks that the term could end then, and that the holder had no Kong
// write of that term still under way.
func (w *World) checkNoEarlyTakeover() {
	lease := w.opts.ElectionLeaseDuration
	reports := w.terminationReports()
	w.mu.Lock()
	endAt := w.endAt
	killed := make(map[string]time.Time, len(w.killed))
	for k, v := range w.killed {
		killed[k] = v
	}
	attempts := make([]attempt, 0, len(w.attempts))
	for _, a := range w.attempts {
		attempts = append(attempts, *a)
	}
	w.mu.Unlock()
	type term struct {
		holder string
		epoch  int
	}
	ended := map[term]time.Time{}
	var cur, deleted term
	var raw string
	var since, deletedSince time.Time
	for _, c := range w.api.Changes() {
		if c.Resource != configMaps || c.Name != lockName() || c.Time.After(endAt) {
			continue
		}
		if c.Type == watch.Deleted || c.Object == nil {
			// A lock deleted under its holder: the holder may write until
			// its lease runs out, so its term ends when the next one
			// begins, which must not be before that (see below).
			if cur.holder != "" {
				deleted, deletedSince = cur, since
			}
			cur, raw = term{}, ""
			continue
		}
		rec, ok := w.lockRecord(c.Object.(*corev1.ConfigMap))
		if !ok {
			continue
		}
		value := fmt.Sprintf("%s|%d|%v|%v", rec.HolderIdentity, rec.LeaderTransitions, rec.RenewTime.Unix(), rec.AcquireTime.Unix())
		if value == raw {
			continue
		}
		next := term{rec.HolderIdentity, rec.LeaderTransitions}
		if cur.holder == "" && deleted.holder != "" {
			// The first record after a deletion starts the next term.
			if next.holder != "" && next.holder != deleted.holder {
				cur, since = deleted, deletedSince
			} else if next.holder == deleted.holder {
				ended[deleted] = c.Time
			}
			deleted = term{}
		}
		if cur.holder != "" && next != cur {
			ended[cur] = c.Time
			at := c.Time.Sub(w.start)
			switch {
			case next.holder == "":
				if c.Client != cur.holder {
					w.violateAt(OracleNoEarlyTakeover, c.Time, "%s released the lock held by %s (epoch %d) at %v", c.Client, cur.holder, cur.epoch, at)
				}
			case next.holder != cur.holder:
				expiry := since.Add(lease)
				report, reported := reports["sim://"+cur.holder]
				if c.Time.Before(expiry) && (!reported || report.After(c.Time)) {
					w.violateAt(OracleNoEarlyTakeover, c.Time, "%s started term %d at %v, %v before %s's lease could have run out, with no report of %s's process terminated",
						next.holder, next.epoch, at, expiry.Sub(c.Time), cur.holder, cur.holder)
				}
			}
		}
		cur, raw, since = next, value, c.Time
	}
	for _, a := range attempts {
		end, ok := ended[term{a.writer, int(a.epoch)}]
		if !ok || !a.write || a.epoch == 0 {
			continue
		}
		over := a.end
		if !a.reached.IsZero() {
			over = a.reached
		} else if died, dead := killed[a.writer]; dead && (over.IsZero() || died.Before(over)) {
			over = died
		}
		if over.IsZero() || over.After(end) {
			w.violateAt(OracleNoEarlyTakeover, end, "%s's term %d ended at %v while its %s to %s (sent at %v) was still under way",
				a.writer, a.epoch, end.Sub(w.start), a.route, kongPod(a.slot), a.start.Sub(w.start))
		}
	}
}
