package world

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
)

// OracleWriteVolume: retry storms and duplicate writes are caught. The
// world's time is cut into trigger-free windows: a window ends at every
// step, heal, replica start and lock change, the only things that give a
// controller a reason to write again. Within one window, the requests one
// replica incarnation sends to one Kong at one Admin API route (each
// POST /config; each DB-mode entity write and listing, a sync's reads
// being where a database-mode retry storm shows when Kong cannot be
// reached) must stay within writeBudget, and the status writes one
// replica makes to one Ingress within statusBudget. The polls whose period
// is fixed by design (GET /status, GET /) are not counted.
const OracleWriteVolume = "write-volume"

// attempt is one Kong Admin API request that left a live replica: its
// start, when the transport returned (it landed, was refused, or was
// abandoned by its context), and for a write the term it was sent under.
type attempt struct {
	start, end time.Time
	reached    time.Time // when it reached Kong; zero: it never did
	writer     string    // replica incarnation
	write      bool
	epoch      int64 // X-Konductor-Epoch; 0 without one
	slot       int
	route      string // method and path
	// failed: Kong answered with an error (5xx), or did not answer
	// before the request's deadline or at all; a request its sender
	// cancelled itself is not a failure.
	failed bool
	// ok: Kong answered below 500; code is its status (0: no answer).
	ok   bool
	code int
}

// polled reports whether a is one of the polls whose period is fixed by
// design: the liveness poll and drift check (GET /status), the probe (GET /).
func (a attempt) polled() bool {
	return !a.write && (a.route == "GET /status" || a.route == "GET /")
}

// attemptStartedLocked records a request leaving replica r for slot; w.mu held.
func (w *World) attemptStartedLocked(r *replica, slot int, req *http.Request, write bool) *attempt {
	epoch, _ := strconv.ParseInt(req.Header.Get(fence.HeaderEpoch), 10, 64)
	a := &attempt{start: time.Now(), writer: r.identity, write: write, epoch: epoch, slot: slot, route: req.Method + " " + req.URL.Path}
	w.attempts = append(w.attempts, a)
	return a
}

// attemptReached records that a reached Kong's Admin API.
func (w *World) attemptReached(a *attempt) {
	if a == nil {
		return
	}
	w.mu.Lock()
	a.reached = time.Now()
	w.mu.Unlock()
}

// attemptEnded records that the transport returned for a, and how.
func (w *World) attemptEnded(a *attempt, resp *http.Response, err error) {
	w.mu.Lock()
	a.end = time.Now()
	a.failed = err != nil && !errors.Is(err, context.Canceled) || resp != nil && resp.StatusCode >= 500
	a.ok = err == nil && resp != nil && resp.StatusCode < 500
	if err == nil && resp != nil {
		a.code = resp.StatusCode
	}
	w.mu.Unlock()
}

// retriesWithin is how many retries the pushers' backoff (kongsync's and
// dbsync's: lo doubled per retry up to hi, jitter only lengthening it) can
// fit into d.
func retriesWithin(d, lo, hi time.Duration) int {
	n := 0
	next := lo
	for spent := next; spent <= d; spent += next {
		n++
		next = min(2*next, hi)
	}
	return n
}

// writeBudget bounds the writes of one kind (one writer, one target, one
// path) within a trigger-free window of length d, derived from how the
// pushers decide to write rather than from what runs measured. Inside the
// window at most two write sequences are under way: the one the window's
// own trigger starts, and the tail of one an earlier trigger started (a
// debounced change, a backoff in progress). Each is one write followed by
// retries spaced by the backoff, which lasts at least as long as a fresh
// one: 1 + retriesWithin(d). A success ends a sequence, and nothing inside
// the window restarts it.
func writeBudget(d, lo, hi time.Duration) int {
	return 2 * (1 + retriesWithin(d, lo, hi))
}

// triggerTimes are the instants that end a trigger-free window: the
// world's own events (steps, heals, replica starts) and every change of
// the lock's holder or term; sorted, from the start to endAt.
func (w *World) triggerTimes() []time.Time {
	w.mu.Lock()
	ts := []time.Time{w.start}
	for _, e := range w.trace {
		ts = append(ts, w.start.Add(e.At))
	}
	endAt := w.endAt
	w.mu.Unlock()
	last := ""
	for _, c := range w.api.Changes() {
		if c.Resource != configMaps || c.Name != lockName() || c.Object == nil || c.Time.After(endAt) {
			continue
		}
		rec, ok := w.lockRecord(c.Object.(*corev1.ConfigMap))
		if !ok {
			continue
		}
		term := fmt.Sprintf("%s|%d", rec.HolderIdentity, rec.LeaderTransitions)
		if term != last {
			ts = append(ts, c.Time)
			last = term
		}
	}
	ts = append(ts, endAt)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return slices.CompactFunc(ts, func(a, b time.Time) bool { return a.Equal(b) })
}

// volumeKey names one kind of write: who, to where.
type volumeKey struct {
	writer string
	target string
}

// checkWriteVolume counts, per trigger-free window, the Kong writes per
// (replica incarnation, Kong, route) and the status writes per (replica
// incarnation, Ingress), against writeBudget. The status loop retries a
// failed pass after a fixed second (no doubling): its budget uses that
// period as both bounds. It returns the highest count/budget ratio seen.
func (w *World) checkWriteVolume() float64 {
	windows := w.triggerTimes()
	w.mu.Lock()
	attempts := make([]attempt, 0, len(w.attempts))
	for _, a := range w.attempts {
		attempts = append(attempts, *a)
	}
	endAt := w.endAt
	replicas := map[string]bool{}
	for _, r := range w.replicas {
		replicas[r.name] = true
	}
	w.mu.Unlock()
	type write struct {
		at  time.Time
		key volumeKey
	}
	var kong, status []write
	for _, a := range attempts {
		if !a.polled() {
			kong = append(kong, write{a.start, volumeKey{a.writer, fmt.Sprintf("%s %s", kongPod(a.slot), a.route)}})
		}
	}
	for _, c := range w.api.Changes() {
		if c.Resource.Resource != "ingresses" || !isReplicaOf(replicas, c.Client) || c.Time.After(endAt) {
			continue
		}
		status = append(status, write{c.Time, volumeKey{c.Client, "status of Ingress " + c.Namespace + "/" + c.Name}})
	}
	peak := 0.0
	judge := func(writes []write, what string, budgetOf func(time.Duration) int) {
		sort.SliceStable(writes, func(i, j int) bool { return writes[i].at.Before(writes[j].at) })
		k := 0
		for i := 0; i+1 < len(windows); i++ {
			from, to := windows[i], windows[i+1]
			counts := map[volumeKey]int{}
			for ; k < len(writes) && writes[k].at.Before(to); k++ {
				if !writes[k].at.Before(from) {
					counts[writes[k].key]++
				}
			}
			budget := budgetOf(to.Sub(from))
			for key, n := range counts {
				peak = max(peak, float64(n)/float64(budget))
				if n > budget {
					w.violateAt(OracleWriteVolume, to, "%s sent %d %s (%s) between %v and %v, with no new reason to; the budget for %v is %d",
						key.writer, n, what, key.target, from.Sub(w.start), to.Sub(w.start), to.Sub(from), budget)
				}
			}
		}
	}
	kongWrites := kong[:0]
	for _, x := range kong {
		if !x.at.After(endAt) {
			kongWrites = append(kongWrites, x)
		}
	}
	judge(kongWrites, "Kong requests", func(d time.Duration) int {
		return writeBudget(d, kongsync.DefaultBackoffMin, kongsync.DefaultBackoffMax)
	})
	judge(status, "status writes", func(time.Duration) int { return statusBudget })
	return peak
}

// statusBudget bounds the accepted status writes of one replica to one
// Ingress in a trigger-free window. The status writer writes only when
// the status differs from the addresses it publishes, and within such a
// window nothing but that writer changes it: one write completes the pass
// an earlier trigger started, and one the window's own, at most. Failed
// attempts (conflicts, API errors) are not accepted writes.
const statusBudget = 2

// isReplicaOf reports whether client is an incarnation ("<name>-<gen>") of
// one of the replicas.
func isReplicaOf(replicas map[string]bool, client string) bool {
	for i := len(client) - 1; i > 0; i-- {
		if client[i] == '-' {
			return replicas[client[:i]]
		}
	}
	return false
}
