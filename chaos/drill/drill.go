// Package drill defines the drill file: a declarative HA experiment in the
// vocabulary of Chaos Toolkit (title, description, steady-state-hypothesis
// with probes and tolerances, method, rollbacks) with Chaos Mesh style
// selectors (mode one|all|fixed|fixed-percent, value), plus the topology to
// deploy, a repetition schedule and abort thresholds.
//
// Parse is strict: an unknown field, fault kind, probe type or selector mode
// is refused before anything runs, with file:line and the field's path.
package drill

import (
	"fmt"
	"time"
)

// Drill is one drill file.
type Drill struct {
	// File is where the drill was read from (set by Parse, not a YAML field).
	File string `yaml:"-"`

	Title       string   `yaml:"title"`
	Description string   `yaml:"description"`
	Tags        []string `yaml:"tags"`

	Target     Target     `yaml:"target"`
	Hypothesis Hypothesis `yaml:"steady-state-hypothesis"`
	Method     []Action   `yaml:"method"`
	Schedule   Schedule   `yaml:"schedule"`
	Abort      Abort      `yaml:"abort"`
	Rollbacks  []Rollback `yaml:"rollbacks"`
}

// Target is the topology a drill runs against.
type Target struct {
	// Overlay names a directory under deploy/overlays.
	Overlay string `yaml:"overlay"`
	// Components name directories under deploy/components.
	Components []string `yaml:"components"`
	// Namespace holds Kong and the controllers (default "kong").
	Namespace string `yaml:"namespace"`
	// Providers the drill can run on; empty means any. A drill whose faults
	// signal processes needs "local".
	Providers []Provider `yaml:"providers"`
	// KongReplicas and ControllerReplicas override the overlay's counts
	// (0: as rendered).
	KongReplicas       int `yaml:"kong-replicas"`
	ControllerReplicas int `yaml:"controller-replicas"`
}

// Provider is a kind of cluster.
type Provider string

const (
	ProviderLocal Provider = "local" // the local process cluster (sim/cluster)
	ProviderKind  Provider = "kind"
	ProviderAny   Provider = "any" // any cluster reachable by kubeconfig
)

// Hypothesis is Chaos Toolkit's steady-state hypothesis: probes, each with
// a tolerance, that must hold before, during and after the method.
type Hypothesis struct {
	Title  string  `yaml:"title"`
	Probes []Probe `yaml:"probes"`
}

// ProbeType says what a probe measures.
type ProbeType string

const (
	// ProbeTraffic sends open-loop HTTP requests at a fixed rate through the
	// Kong proxy; non-2xx answers and transport errors count separately.
	ProbeTraffic ProbeType = "http-traffic"
	// ProbePropagation creates an Ingress with a unique host and measures
	// how long until every Kong replica serves it.
	ProbePropagation ProbeType = "change-propagates"
	// ProbeConfigHash: every Kong replica reports the same configuration hash.
	ProbeConfigHash ProbeType = "config-hash-agrees"
	// ProbeSingleLeader: the election lock names exactly one live holder.
	ProbeSingleLeader ProbeType = "single-leader"
	// ProbeSingleWriter: kongsim's audit shows no two writers at once.
	ProbeSingleWriter ProbeType = "single-writer"
	// ProbeControllerReady: every controller pod is Ready.
	ProbeControllerReady ProbeType = "controller-ready"
)

// ProbeTypes lists the known probe types.
var ProbeTypes = []ProbeType{ProbeTraffic, ProbePropagation, ProbeConfigHash, ProbeSingleLeader, ProbeSingleWriter, ProbeControllerReady}

// Phase is when a probe runs.
type Phase string

const (
	PhaseBefore     Phase = "before"     // once, before the method; failing it aborts the drill
	PhaseContinuous Phase = "continuous" // all through the method
	PhaseAfter      Phase = "after"      // once, after the method and settling
)

// Phases lists the known phases.
var Phases = []Phase{PhaseBefore, PhaseContinuous, PhaseAfter}

// Probe is one steady-state probe.
type Probe struct {
	Name string    `yaml:"name"`
	Type ProbeType `yaml:"type"`
	// When lists the phases the probe runs in.
	When []Phase `yaml:"when"`
	// Rate is requests per second (http-traffic).
	Rate int `yaml:"rate"`
	// Path is the request path (http-traffic; default "/").
	Path string `yaml:"path"`
	// Timeout bounds one request (http-traffic) or one check.
	Timeout Duration `yaml:"timeout"`
	// Interval is how often a continuous check runs (default 1s).
	Interval Duration `yaml:"interval"`
	// RetryConnectFailures (http-traffic; default off) retries, once and
	// on another endpoint of the rotation, a request whose connection
	// could not be made (refused, unreachable, or not established within
	// half the timeout), before any byte was sent, and a GET or HEAD whose
	// connection was reset or closed before any answer (a kept-alive
	// connection to a Kong killed a moment earlier): what a load balancer
	// in front of Kong does with passive health checks (nginx
	// "proxy_next_upstream error", Envoy "retry_on: connect-failure,reset").
	// Retried requests are counted and reported in a column of their own,
	// each with its cause; the retry's outcome counts as the request's.
	RetryConnectFailures bool      `yaml:"retry-connect-failures"`
	Tolerance            Tolerance `yaml:"tolerance"`
}

// Tolerance is what a probe accepts.
type Tolerance struct {
	// MaxNon2xx bounds answers outside 2xx (http-traffic).
	MaxNon2xx *int `yaml:"max-non-2xx"`
	// MaxTransportErrors bounds requests that got no answer (http-traffic).
	MaxTransportErrors *int `yaml:"max-transport-errors"`
	// TransportErrorsOnlyOnKilledKong accepts a transport error only when
	// the request was in flight to a Kong at the moment a fault killed it
	// (sent before the kill, failed after). Requests sent to a Kong
	// already dead, before its endpoint left the rotation, and every other
	// transport error count against MaxTransportErrors (as do connect
	// failures retried under retry-connect-failures that no kill explains).
	TransportErrorsOnlyOnKilledKong bool `yaml:"transport-errors-only-on-killed-kong"`
	// MinRequests is the fewest requests the probe must have sent.
	MinRequests int `yaml:"min-requests"`
	// Within bounds the time for a change to propagate, or for a check to
	// come true (polling until then).
	Within Duration `yaml:"within"`
	// MaxViolations bounds single-writer violations (default 0).
	MaxViolations int `yaml:"max-violations"`
}

// FaultKind names a fault.
type FaultKind string

const (
	// FaultLeaderCrash SIGKILLs the leading controller's process.
	FaultLeaderCrash FaultKind = "leader-crash"
	// FaultLeaderDelete deletes the leading controller's pod gracefully.
	FaultLeaderDelete FaultKind = "leader-delete"
	// FaultKongKill SIGKILLs every process of Kong pods and force-deletes
	// them, as a node crash would; the Deployment makes new pods.
	FaultKongKill FaultKind = "kong-pod-kill"
	// FaultKongRestart SIGKILLs the Kong container of a pod; the kubelet
	// restarts it in place (same pod, same IP).
	FaultKongRestart FaultKind = "kong-restart"
	// FaultScaleKong and FaultScaleControllers set a Deployment's replicas.
	FaultScaleKong        FaultKind = "scale-kong"
	FaultScaleControllers FaultKind = "scale-controllers"
	// FaultAPIServerPause SIGSTOPs kube-apiserver for Duration (local).
	FaultAPIServerPause FaultKind = "apiserver-pause"
	// FaultControllerRollout restarts the controllers by a rolling update.
	FaultControllerRollout FaultKind = "controller-rollout"
)

// FaultKinds lists the known faults.
var FaultKinds = []FaultKind{FaultLeaderCrash, FaultLeaderDelete, FaultKongKill, FaultKongRestart,
	FaultScaleKong, FaultScaleControllers, FaultAPIServerPause, FaultControllerRollout}

// NeedsProcessAccess says whether a fault signals processes directly, which
// only the local provider can do.
func (k FaultKind) NeedsProcessAccess() bool {
	switch k {
	case FaultLeaderCrash, FaultKongKill, FaultKongRestart, FaultAPIServerPause:
		return true
	}
	return false
}

// Action is one step of the method: a fault.
type Action struct {
	Name     string    `yaml:"name"`
	Fault    FaultKind `yaml:"fault"`
	Selector Selector  `yaml:"selector"`
	// Replicas is the count to scale to (scale-*).
	Replicas int `yaml:"replicas"`
	// Duration is how long a pause lasts (apiserver-pause).
	Duration Duration `yaml:"duration"`
	// Verify bounds the time for the fault to be observed (default 30s); a
	// fault not observed in time fails the drill.
	Verify Duration `yaml:"verify-within"`
	// Recover bounds the time for the system to recover from the fault
	// (default 60s); recovery is measured, and a timeout fails the drill.
	Recover Duration `yaml:"recover-within"`
	// Background starts the action and goes on with the next one at once
	// (Chaos Toolkit's "background").
	Background bool `yaml:"background"`
	// Pauses wait before and after the action (Chaos Toolkit's "pauses").
	Pauses Pauses `yaml:"pauses"`
}

// Pauses are waits around an action.
type Pauses struct {
	Before Duration `yaml:"before"`
	After  Duration `yaml:"after"`
}

// SelectorMode is Chaos Mesh's mode: how many of the matching targets a
// fault hits.
type SelectorMode string

const (
	ModeOne          SelectorMode = "one"
	ModeAll          SelectorMode = "all"
	ModeFixed        SelectorMode = "fixed"         // Value targets
	ModeFixedPercent SelectorMode = "fixed-percent" // Value percent of the targets, at least one
)

// SelectorModes lists the known modes.
var SelectorModes = []SelectorMode{ModeOne, ModeAll, ModeFixed, ModeFixedPercent}

// Selector chooses the targets of a fault among its candidates (the
// leader for leader faults; Kong pods; controller pods).
type Selector struct {
	Mode  SelectorMode `yaml:"mode"`
	Value int          `yaml:"value"`
}

// Count is how many of n candidates the selector picks.
func (s Selector) Count(n int) int {
	if n <= 0 {
		return 0
	}
	switch s.Mode {
	case ModeAll:
		return n
	case ModeFixed:
		return min(s.Value, n)
	case ModeFixedPercent:
		return min(n, max(1, n*s.Value/100))
	}
	return 1
}

// Schedule repeats the method.
type Schedule struct {
	// Repeat is how many times the method runs (default 1).
	Repeat int `yaml:"repeat"`
	// Interval is the time between the starts of two repetitions.
	Interval Duration `yaml:"interval"`
	// Jitter adds a random delay in [0, Jitter) to each start.
	Jitter Duration `yaml:"jitter"`
	// Warmup runs the continuous probes this long before the first fault.
	Warmup Duration `yaml:"warmup"`
	// Settle waits this long after the last repetition before the "after"
	// probes.
	Settle Duration `yaml:"settle"`
}

// Abort stops a drill early (it then fails) when a threshold is crossed.
type Abort struct {
	MaxNon2xx          *int     `yaml:"max-non-2xx"`
	MaxTransportErrors *int     `yaml:"max-transport-errors"`
	MaxUnverified      *int     `yaml:"max-unverified-faults"`
	MaxDuration        Duration `yaml:"max-duration"`
}

// RollbackKind names a rollback action.
type RollbackKind string

const (
	// RollbackRestoreReplicas sets every Deployment back to the replicas it
	// had before the drill.
	RollbackRestoreReplicas RollbackKind = "restore-replicas"
	// RollbackResumeProcesses sends SIGCONT to every process a fault stopped.
	RollbackResumeProcesses RollbackKind = "resume-processes"
	// RollbackRemoveProbeObjects deletes the Ingresses probes created.
	RollbackRemoveProbeObjects RollbackKind = "remove-probe-objects"
)

// RollbackKinds lists the known rollback actions.
var RollbackKinds = []RollbackKind{RollbackRestoreReplicas, RollbackResumeProcesses, RollbackRemoveProbeObjects}

// Rollback is one rollback action; rollbacks run after the method, also
// when the drill is interrupted or aborted.
type Rollback struct {
	Name   string       `yaml:"name"`
	Action RollbackKind `yaml:"action"`
}

// Duration is a time.Duration written as "1.5s", "200ms", "2m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// Repeats is the number of repetitions (at least 1).
func (s Schedule) Repeats() int { return max(1, s.Repeat) }

// Runs reports whether the probe runs in phase ph.
func (p Probe) Runs(ph Phase) bool {
	for _, w := range p.When {
		if w == ph {
			return true
		}
	}
	return false
}

// Label is the probe's name, or its type when unnamed.
func (p Probe) Label() string {
	if p.Name != "" {
		return p.Name
	}
	return string(p.Type)
}

// Label is the action's name, or its fault when unnamed.
func (a Action) Label() string {
	if a.Name != "" {
		return a.Name
	}
	return string(a.Fault)
}

// NeedsProvider returns the provider the drill needs, or "" for any: a
// drill with a fault that signals processes needs the local provider.
func (d *Drill) NeedsProvider() Provider {
	for _, a := range d.Method {
		if a.Fault.NeedsProcessAccess() {
			return ProviderLocal
		}
	}
	return ""
}

// Position is where something was written in a drill file.
type Position struct {
	File   string
	Line   int
	Column int
}

func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}
