package world

import (
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/sim/apiserver"
)

// Fault and input-change kinds of a Step.
const (
	FaultCrash           = "crash"             // replica dies without releasing; restarted after For
	FaultStop            = "stop"              // graceful stop (lock released); restarted after For
	FaultPause           = "pause"             // replica frozen for For: nothing it sends arrives
	FaultCrashAfterWrite = "crash-after-write" // crash the writer right after controller write N
	FaultKongRestart     = "kong-restart"      // Kong pod restarts with an empty configuration
	FaultKongStall       = "kong-stall"        // Kong Admin API hangs for For
	FaultKongSlowWrites  = "kong-slow-writes"  // Kong holds every write for For while reads answer (a long router rebuild)
	FaultKongSlowApply   = "kong-slow-apply"   // for For, Kong applies each write it receives 4s later, even if its sender gave up
	FaultKongReject      = "kong-reject"       // Kong answers 400 to POST /config for For
	FaultKongReadErrors  = "kong-read-errors"  // Kong answers 500 to every entity read for For (a failed read-only database replica); writes go through
	FaultKongPartition   = "kong-partition"    // Kong unreachable from one replica for For
	FaultScaleKong       = "scale-kong"        // Kong Deployment scaled to N
	FaultAPIOutage       = "api-outage"        // API server unreachable for everyone for For
	FaultAPIErrors       = "api-errors"        // 429/500/timeouts and latency for everyone for For
	FaultStaleReads      = "stale-reads"       // one replica reads from a lagging cache for For
	FaultAPIPartition    = "api-partition"     // one replica cannot reach the API server for For
	FaultDropWatches     = "drop-watches"      // every watch ends with 410 Gone: informers relist
	FaultNodePartition   = "node-partition"    // replica's node cut off from the API server for For: no kubelet reports, Pod goes Unknown
	FaultKubeletLate     = "kubelet-late"      // replica's kubelet reports For late; the replica is killed and restarts 1s later
	FaultForceDelete     = "force-delete"      // replica's Pod deleted with grace 0 while it runs; its process is killed after For
	FaultDeleteLock      = "delete-lock"       // an administrator deletes the election lock under its holder
	InputAddApp          = "add-app"           // a new Service + Ingress appears (not a fault)
	InputRemoveApps      = "remove-apps"       // every Ingress is deleted for For, then created again (database mode)
	InputEditApp         = "edit-app"          // app 0's Ingress gets another host (a spec change: a new generation)
)

// LeaderReplica in Step.Replica means the replica holding the lock then.
const LeaderReplica = -1

// Step is one fault (or input change) at a virtual offset from the start.
type Step struct {
	At      time.Duration
	Kind    string
	Replica int // controller replica index, or LeaderReplica
	Kong    int // Kong slot index
	For     time.Duration
	N       int // FaultScaleKong: replicas; FaultCrashAfterWrite: write number
}

func (s Step) String() string {
	out := fmt.Sprintf("%v %s", s.At, s.Kind)
	switch s.Kind {
	case FaultCrash, FaultStop, FaultPause, FaultStaleReads, FaultAPIPartition, FaultNodePartition, FaultKubeletLate, FaultForceDelete:
		if s.Replica == LeaderReplica {
			out += " leader"
		} else {
			out += fmt.Sprintf(" replica %d", s.Replica)
		}
	case FaultKongRestart, FaultKongStall, FaultKongSlowWrites, FaultKongSlowApply, FaultKongReject, FaultKongReadErrors:
		out += fmt.Sprintf(" %s", kongPod(s.Kong))
	case FaultKongPartition:
		out += fmt.Sprintf(" %s from replica %d", kongPod(s.Kong), s.Replica)
	case FaultScaleKong, FaultCrashAfterWrite:
		out += fmt.Sprintf(" %d", s.N)
	}
	if s.For > 0 {
		out += " for " + s.For.String()
	}
	return out
}

func (s Step) validate(c Config) error {
	replicas := max(c.Controllers, 2)
	if c.Controllers > 0 {
		replicas = c.Controllers
	}
	switch s.Kind {
	case FaultCrash, FaultStop, FaultPause, FaultStaleReads, FaultAPIPartition, FaultKongPartition, FaultNodePartition, FaultKubeletLate, FaultForceDelete:
		if s.Replica != LeaderReplica && (s.Replica < 0 || s.Replica >= replicas) {
			return fmt.Errorf("field Replica: %d is not a replica (0..%d) or LeaderReplica", s.Replica, replicas-1)
		}
	case FaultKongRestart, FaultKongStall, FaultKongSlowWrites, FaultKongSlowApply, FaultKongReject, FaultKongReadErrors:
		if s.Kong < 0 {
			return fmt.Errorf("field Kong: %d is negative", s.Kong)
		}
	case FaultScaleKong:
		if s.N < 0 {
			return fmt.Errorf("field N: cannot scale Kong to %d", s.N)
		}
	case FaultCrashAfterWrite:
		if s.N < 1 {
			return fmt.Errorf("field N: write number %d must be at least 1", s.N)
		}
	case FaultAPIOutage, FaultAPIErrors, FaultDropWatches, FaultDeleteLock, InputAddApp, InputEditApp:
	case InputRemoveApps:
		// A DB-less Kong is legitimately emptied by an empty desired
		// state; with a database the pusher must refuse (AllowEmpty off).
		// Consumers would keep the desired state non-empty.
		if !c.Database || c.KeyAuth {
			return errors.New("field Kind: remove-apps needs Database and no KeyAuth")
		}
		if s.For <= 0 {
			return errors.New("field For: remove-apps needs how long the Ingresses stay deleted")
		}
	default:
		return errors.New("field Kind: unknown kind")
	}
	if s.At < 0 || s.For < 0 {
		return errors.New("fields At and For must not be negative")
	}
	return nil
}

// Event is one entry of the trace.
type Event struct {
	At     time.Duration
	Kind   string
	Detail string
}

func (w *World) event(kind, detail string) { w.eventAt(kind, detail) }

func (w *World) eventAt(kind, detail string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.trace = append(w.trace, Event{At: w.now(), Kind: kind, Detail: detail})
}

// runSteps applies the steps and their heals in time order, on this one
// goroutine: a heal and a new fault at the same instant happen heal first,
// in an order the plan fixes rather than the scheduler. It returns when the
// last fault has healed.
func (w *World) runSteps(ctx interface{ Err() error }) time.Time {
	type action struct {
		at    time.Duration
		heal  bool
		order int
		step  Step
		fn    func()
		// fired is the fault's count when it was injected; deferred is
		// how long its heal was put off (see demandDriven).
		fired    int
		deferred time.Duration
	}
	var queue []*action
	for k, s := range w.cfg.Steps {
		queue = append(queue, &action{at: s.At, order: k, step: s})
	}
	less := func(a, b *action) bool {
		if a.at != b.at {
			return a.at < b.at
		}
		if a.heal != b.heal {
			return a.heal
		}
		return a.order < b.order
	}
	for len(queue) > 0 && ctx.Err() == nil {
		sort.SliceStable(queue, func(i, j int) bool { return less(queue[i], queue[j]) })
		a := queue[0]
		queue = queue[1:]
		if d := a.at - w.now(); d > 0 {
			time.Sleep(d)
		}
		if a.heal {
			if demandDriven(a.step.Kind) && w.firedCount(a.step.Kind) == a.fired && a.deferred < maxHealDeferral {
				// Nothing was sent to the Kong during the window (a
				// controller's informer or backoff took longer than
				// planned): keep the fault on until it is exercised.
				if a.deferred == 0 {
					w.event("heal-deferred", a.step.String())
				}
				a.at += time.Second
				a.deferred += time.Second
				queue = append(queue, a)
				continue
			}
			w.event("heal", a.step.String())
			a.fn()
			continue
		}
		fired := w.firedCount(a.step.Kind)
		if heal, after := w.apply(a.step); heal != nil {
			queue = append(queue, &action{at: a.at + after, heal: true, order: a.order, step: a.step, fn: heal, fired: fired})
		}
	}
	// Crash-after-write restarts happen 5s after the crash.
	if len(w.crashAfter) > 0 {
		time.Sleep(10 * time.Second)
	}
	return time.Now()
}

// maxHealDeferral bounds how long a demand-driven fault stays on past its
// planned end while waiting to be exercised.
const maxHealDeferral = 20 * time.Second

// demandDriven faults fire only when a controller sends the Kong
// something: a window in which nothing was sent is not a fault that
// happened. Their heal waits (up to maxHealDeferral) until one fired.
func demandDriven(kind string) bool {
	switch kind {
	case FaultKongReject, FaultKongStall, FaultKongSlowWrites, FaultKongSlowApply, FaultKongPartition, FaultKongReadErrors:
		return true
	}
	return false
}

// firedCount is how often faults of kind fired so far.
func (w *World) firedCount(kind string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firedKinds[kind]
}

// apply injects one step and returns what heals it, and after how long,
// if anything.
func (w *World) apply(s Step) (heal func(), after time.Duration) {
	heal = w.inject(&s)
	return heal, s.For
}

// inject injects one step and returns what heals it after s.For (which it
// may set to a default).
func (w *World) inject(s *Step) (heal func()) {
	w.event("step", s.String())
	switch s.Kind {
	case FaultCrash, FaultStop:
		i := s.Replica
		wasLeader := w.leader()
		if i == LeaderReplica {
			i = max(wasLeader, 0)
		}
		graceful := s.Kind == FaultStop
		w.mu.Lock()
		id := w.replicas[i].identity
		w.fired(s.Kind)
		w.mu.Unlock()
		w.stopReplica(i, graceful)
		if i == wasLeader {
			w.markFailover(id, s.Kind)
		}
		restart := s.For
		if restart <= 0 {
			restart = 5 * time.Second
		}
		s.For = restart
		return func() { _ = w.startReplica(i) }
	case FaultPause:
		i := s.Replica
		wasLeader := w.leader()
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
		r.paused = make(chan struct{})
		w.fired(s.Kind)
		w.mu.Unlock()
		if i == wasLeader {
			w.markFailover(id, s.Kind)
		}
		w.api.SetFaults(id, apiserver.Faults{Partitioned: true})
		return func() {
			w.mu.Lock()
			if r.paused != nil && r.identity == id {
				close(r.paused)
				r.paused = nil
			}
			w.mu.Unlock()
			w.resetAPIFaults()
		}
	case FaultCrashAfterWrite:
		return nil // armed at Run's start
	case FaultKongRestart:
		w.restartKong(s.Kong)
		return nil
	case FaultKongStall:
		w.mu.Lock()
		slot := w.slotLocked(s.Kong)
		ch := make(chan struct{})
		if slot != nil {
			slot.stalled = ch
		}
		w.mu.Unlock()
		return func() {
			w.mu.Lock()
			if slot != nil && slot.stalled == ch {
				close(ch)
				slot.stalled = nil
			}
			w.mu.Unlock()
		}
	case FaultKongSlowWrites:
		w.mu.Lock()
		slot := w.slotLocked(s.Kong)
		ch := make(chan struct{})
		if slot != nil {
			slot.slowWrites = ch
		}
		w.mu.Unlock()
		return func() {
			w.mu.Lock()
			if slot != nil && slot.slowWrites == ch {
				close(ch)
				slot.slowWrites = nil
			}
			w.mu.Unlock()
		}
	case FaultKongSlowApply:
		w.mu.Lock()
		slot := w.slotLocked(s.Kong)
		if slot != nil {
			slot.slowApply = true
		}
		w.mu.Unlock()
		return func() {
			w.mu.Lock()
			if slot != nil {
				slot.slowApply = false
			}
			w.mu.Unlock()
		}
	case FaultKongReject:
		w.mu.Lock()
		slot := w.slotLocked(s.Kong)
		if slot != nil {
			slot.rejecting = true
		}
		w.mu.Unlock()
		return func() {
			w.mu.Lock()
			if slot != nil {
				slot.rejecting = false
			}
			w.mu.Unlock()
		}
	case FaultKongReadErrors:
		w.mu.Lock()
		slot := w.slotLocked(s.Kong)
		if slot != nil {
			slot.readErrors = true
		}
		w.mu.Unlock()
		return func() {
			w.mu.Lock()
			if slot != nil {
				slot.readErrors = false
			}
			w.mu.Unlock()
		}
	case FaultKongPartition:
		i := s.Replica
		if i == LeaderReplica {
			i = max(w.leader(), 0)
		}
		w.mu.Lock()
		slot := w.slotLocked(s.Kong)
		name := w.replicas[i].name
		if slot != nil {
			slot.cutFrom[name] = true
		}
		w.mu.Unlock()
		return func() {
			w.mu.Lock()
			if slot != nil {
				delete(slot.cutFrom, name)
			}
			w.mu.Unlock()
		}
	case FaultScaleKong:
		w.scaleKong(s.N)
		return nil
	case FaultAPIOutage:
		w.api.SetFaults("*", apiserver.Faults{Partitioned: true})
		began := time.Now()
		return func() {
			w.resetAPIFaults()
			w.mu.Lock()
			w.outages = append(w.outages, [2]time.Time{began, time.Now()})
			w.mu.Unlock()
		}
	case FaultAPIErrors:
		w.api.SetFaults("*", apiserver.Faults{ErrorRate: 0.5, Latency: 300 * time.Millisecond, Timeout: 3 * time.Second})
		return w.resetAPIFaults
	case FaultAPIPartition:
		i := s.Replica
		if i == LeaderReplica {
			i = max(w.leader(), 0)
		}
		w.mu.Lock()
		id := w.replicas[i].identity
		w.mu.Unlock()
		w.api.SetFaults(id, apiserver.Faults{Partitioned: true})
		return w.resetAPIFaults
	case FaultStaleReads:
		i := s.Replica
		if i == LeaderReplica {
			i = max(w.leader(), 0)
		}
		w.mu.Lock()
		// A replica that is down now cannot read; the next one up does.
		for k := range w.replicas {
			if r := w.replicas[(i+k)%len(w.replicas)]; !r.stopped {
				i = r.index
				break
			}
		}
		id := w.replicas[i].identity
		f := apiserver.Faults{StaleRate: 0.5, StaleBy: 8}
		w.replicaFaults[i] = f
		w.mu.Unlock()
		w.api.SetFaults(id, f)
		return w.resetAPIFaults
	case FaultDropWatches:
		w.api.DropWatches("*")
		return nil
	case FaultNodePartition, FaultKubeletLate, FaultForceDelete:
		return w.injectPodFault(s)
	case FaultDeleteLock:
		if err := w.api.Delete(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: lockName()}}); err != nil {
			w.violate("world", "deleting the lock: %v", err)
			return nil
		}
		w.mu.Lock()
		w.fired(s.Kind)
		w.mu.Unlock()
		return nil
	case InputRemoveApps:
		return w.removeApps()
	case InputEditApp:
		w.editApp()
		return nil
	case InputAddApp:
		w.mu.Lock()
		i := w.apps
		w.apps++
		if w.appAt == nil {
			w.appAt = map[time.Duration]int{}
		}
		w.appAt[s.At] = i
		w.mu.Unlock()
		if err := w.api.Apply(appObjects(i)...); err != nil {
			w.violate("world", "adding app %d: %v", i, err)
		}
		return nil
	}
	return nil
}

// resetAPIFaults heals the API server for every live replica; crashed
// incarnations stay cut off.
func (w *World) resetAPIFaults() {
	w.api.ClearFaults()
	w.mu.Lock()
	clear(w.replicaFaults)
	var dead []string
	for _, r := range w.replicas {
		if r.dead || r.paused != nil || r.nodeLost {
			dead = append(dead, r.identity)
		}
	}
	w.mu.Unlock()
	for _, id := range dead {
		w.api.SetFaults(id, apiserver.Faults{Partitioned: true})
	}
}

// healAll ends every lasting fault.
func (w *World) healAll() {
	w.resetAPIFaults()
	w.mu.Lock()
	for _, s := range w.slots {
		if s.stalled != nil {
			close(s.stalled)
			s.stalled = nil
		}
		if s.slowWrites != nil {
			close(s.slowWrites)
			s.slowWrites = nil
		}
		s.slowApply = false
		s.rejecting = false
		s.readErrors = false
		clear(s.cutFrom)
	}
	w.mu.Unlock()
}

func (w *World) slotLocked(j int) *kongSlot {
	for _, s := range w.slots {
		if s.index == j && s.up {
			return s
		}
	}
	return nil
}

// restartKong replaces slot j's node with an empty one at the same address.
func (w *World) restartKong(j int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.slotLocked(j)
	if s == nil {
		return
	}
	n, err := w.newNode(j, s.gen+1)
	if err != nil {
		w.violations = append(w.violations, Violation{"world", w.now(), err.Error()})
		return
	}
	s.oldAudits = append(s.oldAudits, s.node.Audit()...)
	s.node.Close()
	s.gen++
	s.node = n
	s.restartedAt = time.Now()
	w.restarts = append(w.restarts, kongRestart{at: s.restartedAt, slot: j, gen: s.gen})
	w.fired(FaultKongRestart)
}

// scaleKong brings slots 0..n-1 up (new pods start empty) and the rest down.
func (w *World) scaleKong(n int) {
	w.mu.Lock()
	for j := len(w.slots); j < n; j++ {
		w.slots = append(w.slots, &kongSlot{index: j, gen: -1, cutFrom: map[string]bool{}})
	}
	for _, s := range w.slots {
		switch {
		case s.index < n && !s.up:
			node, err := w.newNode(s.index, s.gen+1)
			if err != nil {
				w.violations = append(w.violations, Violation{"world", w.now(), err.Error()})
				continue
			}
			if s.node != nil {
				s.oldAudits = append(s.oldAudits, s.node.Audit()...)
			}
			s.gen++
			s.node, s.up = node, true
			s.restartedAt = time.Now()
			w.restarts = append(w.restarts, kongRestart{at: s.restartedAt, slot: s.index, gen: s.gen})
		case s.index >= n && s.up:
			s.up = false
		}
	}
	w.fired(FaultScaleKong)
	w.mu.Unlock()
	if err := w.publishSlots(); err != nil {
		w.violate("world", "publishing Kong endpoints: %v", err)
	}
}
