package world

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// OracleListedBeforeWrite: in database mode, a writer never writes from an
// incomplete picture of Kong. Once Kong failed one of its reads during its
// term (an error answer, or no answer before the deadline), and until it
// has read that collection successfully again, the writer may still write
// ahead of its next listing what its last complete listing (with its own
// writes since) says is missing, but it never writes the same entity
// twice: a diff of a failed listing reads what it did not see as missing,
// so it re-writes everything it manages, at every sync, and reports a
// configuration applied that may not be (nothing that should go is
// deleted). Reads sent before the term began, as a standby, do not count.
const OracleListedBeforeWrite = "listed-before-write"

// termStarts maps each (holder, epoch) to when the lock first named it.
func (w *World) termStarts() map[string]time.Time {
	w.mu.Lock()
	endAt := w.endAt
	w.mu.Unlock()
	out := map[string]time.Time{}
	for _, c := range w.api.Changes() {
		if c.Resource != configMaps || c.Name != lockName() || c.Object == nil || c.Time.After(endAt) {
			continue
		}
		rec, ok := w.lockRecord(c.Object.(*corev1.ConfigMap))
		if !ok || rec.HolderIdentity == "" {
			continue
		}
		key := fmt.Sprintf("%s@%d", rec.HolderIdentity, rec.LeaderTransitions)
		if _, seen := out[key]; !seen {
			out[key] = c.Time
		}
	}
	return out
}

func (w *World) checkListedBeforeWrite() {
	if w.db == nil {
		return
	}
	starts := w.termStarts()
	w.mu.Lock()
	attempts := make([]attempt, 0, len(w.attempts))
	for _, a := range w.attempts {
		if !a.end.IsZero() || a.write {
			attempts = append(attempts, *a)
		}
	}
	w.mu.Unlock()
	// The events of each writer in time order: a read's outcome when it
	// ended, a write when it started.
	type event struct {
		at    time.Time
		read  bool
		a     attempt
		order int
	}
	byWriter := map[string][]event{}
	for i, a := range attempts {
		switch {
		case a.write && a.epoch > 0:
			byWriter[a.writer] = append(byWriter[a.writer], event{at: a.start, a: a, order: i})
		case !a.write && strings.HasPrefix(a.route, "GET ") && entityRead(strings.TrimPrefix(a.route, "GET ")):
			byWriter[a.writer] = append(byWriter[a.writer], event{at: a.end, read: true, a: a, order: i})
		}
	}
	writers := make([]string, 0, len(byWriter))
	for k := range byWriter {
		writers = append(writers, k)
	}
	sort.Strings(writers)
writers:
	for _, writer := range writers {
		evs := byWriter[writer]
		sort.SliceStable(evs, func(i, j int) bool {
			if !evs[i].at.Equal(evs[j].at) {
				return evs[i].at.Before(evs[j].at)
			}
			return evs[i].read && !evs[j].read // a read ending at a write's instant came first
		})
		// collection → when its last failed read started and ended
		failedStart, failedAt := map[string]time.Time{}, map[string]time.Time{}
		// the writes accepted while blind, by term and route
		blindWrites := map[string]time.Duration{}
		for _, e := range evs {
			if e.read {
				path := strings.TrimPrefix(e.a.route, "GET ")
				switch {
				case e.a.failed:
					failedAt[path] = e.a.end
					failedStart[path] = e.a.start
				case e.a.ok && !e.a.start.Before(failedAt[path]):
					delete(failedAt, path)
					delete(failedStart, path)
					if len(failedAt) == 0 {
						clear(blindWrites)
					}
				}
				continue
			}
			start, ok := starts[fmt.Sprintf("%s@%d", writer, e.a.epoch)]
			if !ok || e.a.code < 200 || e.a.code > 299 {
				continue
			}
			for path, at := range failedAt {
				if !failedStart[path].After(start) {
					continue // a standby's read: the term had not begun when it was sent
				}
				key := fmt.Sprintf("%d %s", e.a.epoch, e.a.route)
				if first, again := blindWrites[key]; again {
					w.violateAt(OracleListedBeforeWrite, e.a.start, "%s sent %s to %s at %v in term %d a second time (first at %v) since Kong failed its read of %s at %v, with no read of it succeeding since",
						writer, e.a.route, kongPod(e.a.slot), e.a.start.Sub(w.start), e.a.epoch, first, path, at.Sub(w.start))
					continue writers // one is enough: the rest of the sync follows from it
				}
				blindWrites[key] = e.a.start.Sub(w.start)
				break
			}
		}
	}
}
