package drill

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// validate checks what the types alone cannot: required fields, values
// that need each other, and the load bound.
func (p *parser) validate(d *Drill) {
	if strings.TrimSpace(d.Title) == "" {
		p.errPath("title", "is required")
	}
	p.validateTarget(d.Target)
	p.validateProbes(d.Hypothesis.Probes)
	if len(d.Method) == 0 {
		p.errPath("method", "is required: a drill plants at least one fault")
	}
	for i, a := range d.Method {
		p.validateAction(fmt.Sprintf("method[%d]", i), a)
	}
	if needs := d.NeedsProvider(); needs != "" && len(d.Target.Providers) > 0 &&
		!slices.Contains(d.Target.Providers, needs) {
		p.errPath("target.providers", "the method has a fault that signals processes, which needs provider %q", needs)
	}
	s := d.Schedule
	switch {
	case s.Repeat < 0 || s.Repeat > MaxRepeat:
		p.errPath("schedule.repeat", "must be between 0 and %d", MaxRepeat)
	case s.Repeat > 1 && s.Interval == 0:
		p.errPath("schedule.interval", "is required when repeat > 1")
	}
	if s.Jitter > 0 && s.Jitter >= s.Interval {
		p.errPath("schedule.jitter", "must be less than schedule.interval (%s)", s.Interval)
	}
	for i, r := range d.Rollbacks {
		if r.Action == "" {
			p.errPath(fmt.Sprintf("rollbacks[%d].action", i), "is required (one of %s)", list(RollbackKinds))
		}
	}
	for _, f := range []struct {
		path string
		v    *int
	}{{"abort.max-non-2xx", d.Abort.MaxNon2xx}, {"abort.max-transport-errors", d.Abort.MaxTransportErrors}, {"abort.max-unverified-faults", d.Abort.MaxUnverified}} {
		if f.v != nil && *f.v < 0 {
			p.errPath(f.path, "must not be negative")
		}
	}
	// The load bound: rate × the longest the drill may run.
	planned := d.Planned()
	limit := d.Abort.MaxDuration.Or(DefaultTimeout)
	if planned > limit {
		p.errPath("abort.max-duration", "the schedule needs about %s, more than max-duration %s", planned.Round(time.Second), limit)
	}
	rate := 0
	for _, pr := range d.Hypothesis.Probes {
		if pr.Type == ProbeTraffic {
			rate += pr.Rate
		}
	}
	if n := float64(rate) * limit.Seconds(); n > MaxRequests {
		p.errPath("abort.max-duration", "traffic of %d/s for up to %s is %.0f requests, more than %d: lower the rate or max-duration", rate, limit, n, MaxRequests)
	}
}

// Planned is how long the schedule takes: warmup, every repetition's
// interval (and jitter), and settling.
func (d *Drill) Planned() time.Duration {
	s := d.Schedule
	return s.Warmup.D() + time.Duration(s.Repeats())*(s.Interval.D()+s.Jitter.D()) + s.Settle.D()
}

func (p *parser) validateTarget(t Target) {
	if t.Overlay == "" {
		p.errPath("target.overlay", "is required (one of %s)", strings.Join(Overlays, ", "))
	} else if !slices.Contains(Overlays, t.Overlay) {
		p.errPath("target.overlay", "unknown overlay %q (known: %s)", t.Overlay, strings.Join(Overlays, ", "))
	}
	for i, c := range t.Components {
		if !slices.Contains(Components, c) {
			p.errPath(fmt.Sprintf("target.components[%d]", i), "unknown component %q (known: %s)", c, strings.Join(Components, ", "))
		}
	}
	if t.KongReplicas < 0 {
		p.errPath("target.kong-replicas", "must not be negative")
	}
	if t.ControllerReplicas < 0 {
		p.errPath("target.controller-replicas", "must not be negative")
	}
}

func (p *parser) validateProbes(probes []Probe) {
	if len(probes) == 0 {
		p.errPath("steady-state-hypothesis.probes", "is required: a drill proves something")
	}
	names := map[string]bool{}
	for i, pr := range probes {
		at := fmt.Sprintf("steady-state-hypothesis.probes[%d]", i)
		if pr.Type == "" {
			p.errPath(at+".type", "is required (one of %s)", list(ProbeTypes))
			continue
		}
		if names[pr.Label()] {
			p.errPath(at+".name", "%q names two probes", pr.Label())
		}
		names[pr.Label()] = true
		if len(pr.When) == 0 {
			p.errPath(at+".when", "is required (any of %s)", list(Phases))
		}
		switch pr.Type {
		case ProbeTraffic:
			if pr.Rate <= 0 || pr.Rate > MaxRate {
				p.errPath(at+".rate", "must be between 1 and %d requests per second", MaxRate)
			}
			if len(pr.When) != 1 || pr.When[0] != PhaseContinuous {
				p.errPath(at+".when", "http-traffic runs only %q", PhaseContinuous)
			}
			if pr.Path != "" && !strings.HasPrefix(pr.Path, "/") {
				p.errPath(at+".path", "must start with /")
			}
		default:
			if pr.Rate != 0 {
				p.errPath(at+".rate", "applies only to http-traffic")
			}
			if pr.RetryConnectFailures {
				p.errPath(at+".retry-connect-failures", "applies only to http-traffic")
			}
			t := pr.Tolerance
			if t.MaxNon2xx != nil || t.MaxTransportErrors != nil || t.TransportErrorsOnlyOnKilledKong || t.MinRequests != 0 {
				p.errPath(at+".tolerance", "request counts apply only to http-traffic")
			}
		}
		if pr.Type == ProbePropagation && pr.Tolerance.Within == 0 {
			p.errPath(at+".tolerance.within", "is required for change-propagates")
		}
		if t := pr.Tolerance; (t.MaxNon2xx != nil && *t.MaxNon2xx < 0) || (t.MaxTransportErrors != nil && *t.MaxTransportErrors < 0) || t.MinRequests < 0 || t.MaxViolations < 0 {
			p.errPath(at+".tolerance", "counts must not be negative")
		}
	}
}

func (p *parser) validateAction(at string, a Action) {
	if a.Fault == "" {
		p.errPath(at+".fault", "is required (one of %s)", list(FaultKinds))
		return
	}
	s := a.Selector
	switch s.Mode {
	case "", ModeOne, ModeAll:
		if s.Value != 0 {
			p.errPath(at+".selector.value", "applies only to modes fixed and fixed-percent")
		}
	case ModeFixed:
		if s.Value < 1 {
			p.errPath(at+".selector.value", "mode fixed needs a value of at least 1")
		}
	case ModeFixedPercent:
		if s.Value < 1 || s.Value > 100 {
			p.errPath(at+".selector.value", "mode fixed-percent needs a value between 1 and 100")
		}
	}
	switch a.Fault {
	case FaultLeaderCrash, FaultLeaderDelete:
		if s.Mode != "" && s.Mode != ModeOne {
			p.errPath(at+".selector.mode", "there is one leader: only mode one applies to %s", a.Fault)
		}
	case FaultScaleKong, FaultScaleControllers:
		if a.Replicas < 1 {
			p.errPath(at+".replicas", "%s needs replicas of at least 1", a.Fault)
		}
	case FaultAPIServerPause:
		if a.Duration <= 0 || a.Duration.D() > MaxPause {
			p.errPath(at+".duration", "apiserver-pause needs a duration between 1ms and %s", MaxPause)
		}
	}
	if a.Replicas != 0 && a.Fault != FaultScaleKong && a.Fault != FaultScaleControllers {
		p.errPath(at+".replicas", "applies only to scale-kong and scale-controllers")
	}
	if a.Duration != 0 && a.Fault != FaultAPIServerPause {
		p.errPath(at+".duration", "applies only to apiserver-pause")
	}
}

func list[T ~string](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}
