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
		rec, ok := lockRecord(cm)
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
