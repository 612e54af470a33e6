package world

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/watch"

	"konductor.dev/sim/apiserver"
	"konductor.dev/sim/kong/store"
)

// Oracles on what the controllers write to the API server, beside the Kong
// ones of result.go.
const (
	// OracleStatusSingleWriter: Ingress status and Events are written only
	// by the replica the lock names at that moment.
	OracleStatusSingleWriter = "status-single-writer"
	// OracleStatusNotAhead: an Ingress is given addresses only once every
	// configured Kong serves its routes (in database mode: once they are
	// in the database the nodes load them from).
	OracleStatusNotAhead = "status-not-ahead"
)

// statusWrite is one controller write of an Ingress's status, checked
// against the Kongs at the instant the API server accepted it.
type statusWrite struct {
	at      time.Time
	client  string
	ingress string
	missing []string // Kong pods that did not serve the Ingress's host
}

// observeStatusWrite is called from the API server's write hook: an
// Ingress changed by a controller replica is a status write.
func (w *World) observeStatusWrite(client string, c apiserver.Change) {
	if c.Resource.Resource != "ingresses" || client == "" || c.Object == nil {
		return
	}
	ing, ok := c.Object.(*networkingv1.Ingress)
	if !ok || len(ing.Status.LoadBalancer.Ingress) == 0 {
		return // cleared or untouched: nothing claimed
	}
	var hosts []string
	for _, r := range ing.Spec.Rules {
		if r.Host != "" {
			hosts = append(hosts, r.Host)
		}
	}
	w.mu.Lock()
	slots := append([]*kongSlot(nil), w.slots...)
	configured := map[[2]int]bool{}
	for _, s := range w.served {
		if s.Count > 0 {
			configured[[2]int{s.Slot, s.Gen}] = true
		}
	}
	w.mu.Unlock()
	sw := statusWrite{at: c.Time, client: client, ingress: ing.Namespace + "/" + ing.Name}
	if w.db != nil {
		// Database mode: applied means written to the database, which
		// the nodes then load on their next poll.
		recs, _, err := w.db.Load(context.Background())
		if err != nil {
			return // the database is down: nothing to judge by
		}
		for _, h := range hosts {
			if !slices.ContainsFunc(recs, func(r store.Record) bool {
				return r.Type == "routes" && bytes.Contains(r.Body, []byte(`"`+h+`"`))
			}) {
				sw.missing = append(sw.missing, "the database")
			}
		}
		w.mu.Lock()
		w.statusWrites = append(w.statusWrites, sw)
		w.mu.Unlock()
		return
	}
	for _, s := range slots {
		w.mu.Lock()
		up, node, idx, gen := s.up, s.node, s.index, s.gen
		w.mu.Unlock()
		// A Kong that restarted empty and was not configured since has
		// lost what it applied: the status was not ahead of it.
		if !up || node == nil || !configured[[2]int{idx, gen}] {
			continue
		}
		cfg := node.Config().ProxyConfig()
		for _, h := range hosts {
			found := false
			for _, r := range cfg.Routes {
				if slices.Contains(r.Hosts, h) {
					found = true
					break
				}
			}
			if !found {
				sw.missing = append(sw.missing, kongPod(idx))
			}
		}
	}
	w.mu.Lock()
	w.statusWrites = append(w.statusWrites, sw)
	w.mu.Unlock()
}

// checkStatus judges the status writes: each by the lock's holder at that
// revision, none ahead of the Kongs. Events count as status.
func (w *World) checkStatus() {
	w.mu.Lock()
	writes := append([]statusWrite(nil), w.statusWrites...)
	w.mu.Unlock()
	for _, sw := range writes {
		if len(sw.missing) > 0 {
			w.violateAt(OracleStatusNotAhead, sw.at, "%s published addresses on %s while %s did not serve it",
				sw.client, sw.ingress, strings.Join(sw.missing, ", "))
		}
	}
	holder := ""
	replicas := map[string]bool{}
	w.mu.Lock()
	for _, r := range w.replicas {
		replicas[r.name] = true
	}
	w.mu.Unlock()
	isReplica := func(client string) bool {
		i := strings.LastIndexByte(client, '-')
		return i > 0 && replicas[client[:i]]
	}
	for _, c := range w.api.Changes() {
		if c.Time.After(w.endAt) {
			break
		}
		switch c.Resource.Resource {
		case "configmaps":
			if c.Name != lockName() || c.Object == nil {
				continue
			}
			cm, ok := c.Object.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			if rec, ok := w.lockRecord(cm); ok {
				holder = rec.HolderIdentity
			}
			if c.Type == watch.Deleted {
				holder = ""
			}
		case "ingresses", "events":
			if !isReplica(c.Client) || c.Client == holder {
				continue
			}
			what := "the status of Ingress " + c.Namespace + "/" + c.Name
			if c.Resource.Resource == "events" {
				what = "Event " + c.Namespace + "/" + c.Name
			}
			w.violateAt(OracleStatusSingleWriter, c.Time, "%s wrote %s while the lock named %q", c.Client, what, holder)
		}
	}
}

// violateAt records a violation found after the fact, at its virtual time.
func (w *World) violateAt(oracle string, at time.Time, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, Violation{Oracle: oracle, At: at.Sub(w.start), Detail: fmt.Sprintf(format, args...)})
}

// OracleIndependentPushes: a stalled Kong (or one that holds writes) does
// not hold up the others. An input change inside such a window reaches
// every other Kong within
// IndependenceBound of virtual time, unless another fault touches it.
const OracleIndependentPushes = "independent-pushes"

// IndependenceBound is the time an input change may take to reach a
// healthy Kong while another Kong stalls: a debounce and a push, far less
// than the stalled push's timeout.
const IndependenceBound = 3 * time.Second

// ReflectorLag is how long after an API fault healed a controller's
// informers may still miss changes: a client-go reflector whose watch broke
// retries with a backoff capped at 30s and jittered by up to as much again
// (k8s.io/client-go/tools/cache, defaultBackoffMax and defaultBackoffJitter),
// and the backoff resets only after two minutes without a failure, so a
// watch dropped shortly after an outage waits that long before it lists
// again. Oracles that bound the time a change takes leave such windows out.
const ReflectorLag = 60 * time.Second

func (w *World) checkIndependent() {
	w.mu.Lock()
	served := append([]served(nil), w.served...)
	w.mu.Unlock()
	steps := w.cfg.Steps
	overlaps := func(s Step, from, to time.Duration) bool {
		end := s.At + max(s.For, time.Second)
		return s.At < to && end > from
	}
	for _, st := range steps {
		if st.Kind != FaultKongStall && st.Kind != FaultKongSlowWrites {
			continue
		}
		for _, in := range steps {
			if in.Kind != InputAddApp || in.At < st.At || in.At+IndependenceBound > st.At+st.For {
				continue
			}
			from, to := in.At, in.At+IndependenceBound
			// Leader changes and API faults delay every Kong alike. An
			// API fault that broke the informers' watches delays the
			// change until their reflectors list again: up to
			// ReflectorLag after it healed.
			disturbed := slices.ContainsFunc(steps, func(o Step) bool {
				switch o.Kind {
				case FaultKongStall, FaultKongSlowWrites, FaultKongSlowApply, FaultKongReject, FaultKongReadErrors, FaultKongPartition, FaultKongRestart, InputAddApp:
					return false
				case FaultAPIOutage, FaultAPIErrors, FaultAPIPartition, FaultDropWatches, FaultStaleReads, FaultNodePartition:
					return overlaps(o, from-ReflectorLag, to)
				}
				return overlaps(o, from-w.opts.ElectionLeaseDuration, to)
			})
			if disturbed {
				continue
			}
			t := w.start.Add(in.At)
			for slot := range w.cfg.Kongs {
				if slot == st.Kong || slices.ContainsFunc(steps, func(o Step) bool {
					return o.Kong == slot && o.Kind != InputAddApp && o.Kind != FaultCrash && o.Kind != FaultStop &&
						o.Kind != FaultPause && overlaps(o, from-5*time.Second, to)
				}) {
					continue
				}
				before, gen, grew, seen := 0, -1, false, false
				for _, s := range served {
					if s.Slot != slot {
						continue
					}
					if !s.At.After(t) {
						before, gen, seen = s.Count, s.Gen, true
						continue
					}
					if s.Gen == gen && s.Count > before && !s.At.After(t.Add(IndependenceBound)) {
						grew = true
						break
					}
				}
				if seen && before > 0 && !grew {
					w.violateAt(OracleIndependentPushes, t.Add(IndependenceBound),
						"%s did not get the change made at %v within %v while %s stalled", kongPod(slot), in.At, IndependenceBound, kongPod(st.Kong))
				}
			}
		}
	}
}
