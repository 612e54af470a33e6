// Package report turns a drill journal into figures and renders them as
// Markdown and as HTML with an inline SVG timeline. It reads nothing but
// the journal, so a report can be regenerated at any time.
package report

import (
	"math"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"konductor.dev/chaos/journal"
)

// Summary is the figures of one drill run.
type Summary struct {
	Title    string
	File     string
	Provider string
	Start    time.Time
	End      time.Time
	Outcome  string
	Why      string

	Requests, OK, Non2xx, Transport int
	// ByCause counts the transport errors by journal.Cause*: in flight at
	// a Kong kill, sent to a Kong already dead before its endpoint left
	// the rotation, other.
	ByCause map[string]int
	// Retried counts the requests retried on another endpoint after a
	// connect failure (retry-connect-failures); RetriedByCause sets those
	// failures against the kills as ByCause does.
	Retried        int
	RetriedByCause map[string]int
	// Failures lists the non-2xx answers and transport errors in order;
	// RetriedFailures the connect failures that were retried.
	Failures        []Failure
	RetriedFailures []Failure
	// Kills are the Kongs the faults killed, each with when its endpoint
	// left the traffic probe's rotation; ToLeave samples that time.
	Kills   []journal.Kill
	ToLeave Durations
	// ToPodNotReady samples the time from a kill until the pod was seen
	// not ready: the node agent's part of ToLeave.
	ToPodNotReady Durations

	Faults    []Fault
	Failover  Durations // fault → a new lock holder (leader faults)
	Recovery  Durations // fault → recovered, as the engine observed it
	Propagate Durations // change-propagates probes
	// KongConfigured: a Kong restarted in place, from its API answering
	// again to reporting ready (configured).
	KongConfigured Durations
	Probes         []ProbeVerdict
	Rollbacks      []ProbeVerdict
	Reps           int
	Timeline       Timeline
}

// Failure is one failed request.
type Failure struct {
	At      time.Duration // since the drill started
	Class   string
	Status  int
	Subject string
	Detail  string
	// Cause is the journal.Cause* of a transport error (or of a retried
	// connect failure); Kill is the kill it refers to, and Gap (sent to an
	// endpoint already dead) the time from the kill to the request.
	Cause string
	Kill  *journal.Kill
	Gap   time.Duration
	// RetriedOn is where a retried request went instead (Subject failed).
	RetriedOn string
	end       time.Duration
}

// Fault is one planted fault.
type Fault struct {
	At time.Duration
	// Killed are the proxy endpoints the fault took down, until Recovered
	// (0: not recovered).
	Killed    []string
	Recovered time.Duration
	Rep       int
	Kind      string
	Action    string
	Subject   string
	Verified  bool
	Detail    string
}

// ProbeVerdict is one probe result or rollback.
type ProbeVerdict struct {
	At      time.Duration
	Name    string
	Type    string // the probe's type (single-writer, change-propagates, …)
	Phase   string
	OK      bool
	Seconds float64
	Detail  string
}

// Durations are samples in seconds with their percentiles.
type Durations struct {
	Samples []float64
}

// N is the number of samples.
func (d Durations) N() int { return len(d.Samples) }

// Quantile returns the q-quantile (nearest rank), or NaN without samples.
func (d Durations) Quantile(q float64) float64 {
	if len(d.Samples) == 0 {
		return math.NaN()
	}
	s := slices.Clone(d.Samples)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Max is the largest sample, or NaN.
func (d Durations) Max() float64 { return d.Quantile(1) }

// Verified counts the faults that were observed to fire.
func (s *Summary) Verified() int {
	n := 0
	for _, f := range s.Faults {
		if f.Verified {
			n++
		}
	}
	return n
}

// Summarize groups a journal's records by drill (in order of first
// appearance) and computes each drill's figures.
func Summarize(recs []journal.Record) []*Summary {
	var order []string
	by := map[string][]journal.Record{}
	for _, r := range recs {
		if _, ok := by[r.Drill]; !ok {
			order = append(order, r.Drill)
		}
		by[r.Drill] = append(by[r.Drill], r)
	}
	out := make([]*Summary, 0, len(order))
	for _, title := range order {
		out = append(out, summarize(title, by[title]))
	}
	return out
}

func summarize(title string, recs []journal.Record) *Summary {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].T.Before(recs[j].T) })
	s := &Summary{Title: title, Outcome: journal.OutcomeInterrupted, Why: "the journal ends before the drill did"}
	if len(recs) > 0 {
		s.Start, s.End = recs[0].T, recs[len(recs)-1].T
	}
	since := func(t time.Time) time.Duration { return t.Sub(s.Start) }
	holder := ""                    // current lock holder
	var pendingFailover []time.Time // leader faults waiting for a new holder
	var holderAtFault []string      // the holder each waiting fault displaced
	faultIndex := map[string]int{}  // rep/action/fault → index in s.Faults
	// The kills and rotation changes come first: a request is set against
	// when its endpoint left the rotation, which the journal records later.
	attr := journal.NewAttributor()
	for _, r := range recs {
		attr.Observe(r)
	}
	s.ByCause, s.RetriedByCause = map[string]int{}, map[string]int{}
	key := func(r journal.Record) string {
		return strings.Join([]string{strconv.Itoa(r.Rep), r.Action, r.Fault}, "\x00")
	}
	for _, r := range recs {
		switch r.Kind {
		case journal.KindDrillStart:
			s.Start = r.T
			s.File = r.Detail
			s.Provider = r.Value
		case journal.KindDrillEnd:
			s.End = r.T
			s.Outcome, s.Why = r.Outcome, r.Detail
		case journal.KindRepetition:
			s.Reps = max(s.Reps, r.Rep)
		case journal.KindRequest:
			s.Requests++
			switch r.ErrClass {
			case journal.ErrNone:
				s.OK++
			case journal.ErrNon2xx:
				s.Non2xx++
			default:
				s.Transport++
			}
			if r.ErrClass != journal.ErrNone {
				f := Failure{At: since(r.T), Class: r.ErrClass, Status: r.Status, Subject: r.Subject, Detail: r.Detail,
					end: since(r.T) + time.Duration(r.LatencyMS*float64(time.Millisecond))}
				if r.ErrClass == journal.ErrTransport {
					f.attribute(attr.ClassifyRequest(r))
				}
				s.Failures = append(s.Failures, f)
			}
			if r.RetriedFrom != "" {
				s.Retried++
				f := Failure{At: since(r.T), Class: "connect failure", Subject: r.RetriedFrom, Detail: r.RetryError, RetriedOn: r.Subject, end: since(r.T)}
				f.attribute(attr.ClassifyRetry(r))
				s.RetriedFailures = append(s.RetriedFailures, f)
			}
		case journal.KindFaultStart:
			faultIndex[key(r)] = len(s.Faults)
			s.Faults = append(s.Faults, Fault{At: since(r.T), Rep: r.Rep, Kind: r.Fault, Action: r.Action, Subject: r.Subject})
			if strings.HasPrefix(r.Fault, "leader-") {
				// The leader faulted is the fault's subject (its identity);
				// the lock may not have shown it yet when it was killed.
				displaced := holder
				if r.Subject != "" {
					displaced = r.Subject
				}
				pendingFailover = append(pendingFailover, r.T)
				holderAtFault = append(holderAtFault, displaced)
			}
		case journal.KindFaultEnd:
			if i, ok := faultIndex[key(r)]; ok {
				f := &s.Faults[i]
				f.Verified = r.Verified != nil && *r.Verified
				f.Detail = r.Detail
				if r.Value != "" {
					f.Killed = strings.Split(r.Value, ",")
				}
				if r.Subject != "" {
					f.Subject = r.Subject
				}
			}
		case journal.KindRecovered:
			s.Recovery.Samples = append(s.Recovery.Samples, r.Seconds)
			if i, ok := faultIndex[key(r)]; ok {
				s.Faults[i].Recovered = s.Faults[i].At + time.Duration(r.Seconds*float64(time.Second))
			}
		case journal.KindEvent:
			if r.Event == journal.EventKongConfigured {
				s.KongConfigured.Samples = append(s.KongConfigured.Samples, r.Seconds)
			}
			if r.Event == journal.EventLockHolder {
				holder = r.Value
				if holder != "" {
					kept := pendingFailover[:0]
					keptHolders := holderAtFault[:0]
					for i, at := range pendingFailover {
						if holder != holderAtFault[i] {
							s.Failover.Samples = append(s.Failover.Samples, r.T.Sub(at).Seconds())
						} else {
							kept = append(kept, at)
							keptHolders = append(keptHolders, holderAtFault[i])
						}
					}
					pendingFailover, holderAtFault = kept, keptHolders
				}
			}
		case journal.KindProbe:
			v := ProbeVerdict{At: since(r.T), Name: r.Probe, Type: r.Value, Phase: r.Phase, OK: r.OK != nil && *r.OK, Seconds: r.Seconds, Detail: r.Detail}
			s.Probes = append(s.Probes, v)
			if r.Value == ProbeTypePropagation && v.OK {
				s.Propagate.Samples = append(s.Propagate.Samples, r.Seconds)
			}
		case journal.KindRollback:
			s.Rollbacks = append(s.Rollbacks, ProbeVerdict{At: since(r.T), Name: r.Action, OK: r.OK != nil && *r.OK, Detail: r.Detail})
		}
	}
	for _, f := range s.Failures {
		if f.Class == journal.ErrTransport {
			s.ByCause[f.Cause]++
		}
	}
	for _, f := range s.RetriedFailures {
		s.RetriedByCause[f.Cause]++
	}
	s.Kills = attr.Kills()
	for _, k := range s.Kills {
		if d := k.ToLeave(); d >= 0 {
			s.ToLeave.Samples = append(s.ToLeave.Samples, d.Seconds())
		}
		if d := k.ToPodNotReady(); d >= 0 {
			s.ToPodNotReady.Samples = append(s.ToPodNotReady.Samples, d.Seconds())
		}
	}
	s.Timeline = buildTimeline(s.Start, s.End, recs)
	return s
}

// ProbeTypePropagation is the Value of the probe records whose Seconds
// are propagation times.
const ProbeTypePropagation = "change-propagates"

func (f *Failure) attribute(a journal.Attribution) {
	f.Cause = a.Cause
	if !a.Kill.At.IsZero() {
		k := a.Kill
		f.Kill = &k
	}
	f.Gap = a.Gap
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
