package journal

import (
	"net"
	"slices"
	"time"
)

// Causes of a request that got no answer (or of a connect failure the
// probe retried), set against the Kongs the faults killed.
const (
	// CauseInFlight: the request was sent before the Kong behind its
	// endpoint was killed, or while its process, SIGKILLed, had not yet
	// exited (the kernel still accepts connections for it and resets them
	// as it exits), and failed after the kill: it was in flight at the
	// kill.
	CauseInFlight = "in flight at the kill"
	// CauseSentToDead: the request was sent after the killed Kong had
	// exited but before its endpoint left the rotation (the API server had
	// not yet reported it not ready, or the watch had not yet delivered
	// that).
	CauseSentToDead = "sent to an endpoint already dead"
	// CauseOther: anything else — no Kong behind the endpoint was killed,
	// or the request was sent after the endpoint left the rotation or came
	// back into it.
	CauseOther = "other"
)

// Causes lists the causes in the order reports show them.
var Causes = []string{CauseInFlight, CauseSentToDead, CauseOther}

// Attribution is why one request failed.
type Attribution struct {
	Cause string
	// Kill is the kill of the Kong behind the request's endpoint that the
	// cause refers to (zero for CauseOther when no kill applies).
	Kill Kill
	// Gap (CauseSentToDead) is from the kill to when the request was sent.
	Gap time.Duration
}

// Kill is one Kong killed by a fault, and when its endpoint left the
// traffic probe's rotation afterwards.
type Kill struct {
	Endpoint string
	Pod      string
	Action   string
	At       time.Time
	// Alive is the last moment the killed process was seen running (zero:
	// not observed; then the kill's time is taken): a request sent before
	// it went to a Kong not yet dead. Exited is the first moment it was
	// seen exited (zero: not observed); it died in between.
	Alive, Exited time.Time
	// Left is when the endpoint left the rotation after the kill (zero:
	// not before the journal ends, or the journal has no rotation, as with
	// a fixed proxy URL).
	Left time.Time
	// Why is the reason the watch gave for it leaving.
	Why string
	// PodNotReady is when the watch on pods first showed the killed pod
	// not ready (or terminating, or gone) after the kill: what the node
	// agent reported (zero: not seen).
	PodNotReady time.Time
}

// ToPodNotReady is the time from the kill until the pod was seen not
// ready, or -1 when it was not.
func (k Kill) ToPodNotReady() time.Duration {
	if k.PodNotReady.IsZero() {
		return -1
	}
	return k.PodNotReady.Sub(k.At)
}

// dead is from when the Kong no longer ran, as far as was seen.
func (k Kill) dead() time.Time {
	if k.Alive.After(k.At) {
		return k.Alive
	}
	return k.At
}

// ToDead is the time from the kill until the process was last seen
// running (0 when not observed or already gone at the first look).
func (k Kill) ToDead() time.Duration { return k.dead().Sub(k.At) }

// ToExited is the time from the kill until the process was first seen
// exited, or -1 when not observed.
func (k Kill) ToExited() time.Duration {
	if k.Exited.IsZero() {
		return -1
	}
	return k.Exited.Sub(k.At)
}

// ToLeave is the time from the kill until the endpoint left the rotation,
// or -1 when it did not.
func (k Kill) ToLeave() time.Duration {
	if k.Left.IsZero() {
		return -1
	}
	return k.Left.Sub(k.At)
}

// death is a kong-dead record: last seen running, and when it was seen
// exited counted from the kill (0: not recorded).
type death struct {
	alive           time.Time
	exitedAfterKill time.Duration
}

type move struct {
	at  time.Time
	in  bool
	why string
}

// Attributor sets failed requests against the kills and the rotation
// changes of a journal. Feed it every record (in any order) with Observe,
// then ask; it is not safe for concurrent use.
type Attributor struct {
	kills  map[string][]Kill // by host
	deaths map[string][]death
	moves  map[string][]move // by host
	phases map[string][]move // pod readiness by pod name (in: Ready)
	sorted bool
}

// NewAttributor returns an empty Attributor.
func NewAttributor() *Attributor {
	return &Attributor{kills: map[string][]Kill{}, deaths: map[string][]death{}, moves: map[string][]move{}, phases: map[string][]move{}}
}

// Observe takes note of kills and rotation changes; other records are
// ignored.
func (a *Attributor) Observe(r Record) {
	if r.Kind != KindEvent {
		return
	}
	h := host(r.Subject)
	switch r.Event {
	case EventKongKilled:
		a.kills[h] = append(a.kills[h], Kill{Endpoint: r.Subject, Pod: r.Value, Action: r.Action, At: r.T})
	case EventKongDead:
		a.deaths[h] = append(a.deaths[h], death{alive: r.T, exitedAfterKill: time.Duration(r.Seconds * float64(time.Second))})
	case EventEndpointIn, EventEndpointOut:
		a.moves[h] = append(a.moves[h], move{at: r.T, in: r.Event == EventEndpointIn, why: r.Value})
	case EventPodPhase:
		a.phases[r.Subject] = append(a.phases[r.Subject], move{at: r.T, in: r.Value == "Ready", why: r.Value})
	default:
		return
	}
	a.sorted = false
}

func (a *Attributor) sort() {
	if a.sorted {
		return
	}
	for _, ms := range a.moves {
		slices.SortStableFunc(ms, func(x, y move) int { return x.at.Compare(y.at) })
	}
	for _, ms := range a.phases {
		slices.SortStableFunc(ms, func(x, y move) int { return x.at.Compare(y.at) })
	}
	for h, ks := range a.kills {
		slices.SortStableFunc(ks, func(x, y Kill) int { return x.At.Compare(y.At) })
		for i := range ks {
			// A death belongs to the last kill before it.
			for _, d := range a.deaths[h] {
				if !d.alive.Before(ks[i].At) && (i+1 == len(ks) || d.alive.Before(ks[i+1].At)) {
					ks[i].Alive = d.alive
					if d.exitedAfterKill > 0 {
						ks[i].Exited = ks[i].At.Add(d.exitedAfterKill)
					}
				}
			}
			ks[i].Left, ks[i].Why = a.leftAfter(h, ks[i].At)
			for _, m := range a.phases[ks[i].Pod] {
				if !m.in && !m.at.Before(ks[i].At) {
					ks[i].PodNotReady = m.at
					break
				}
			}
		}
	}
	a.sorted = true
}

// leftAfter is when the endpoint at host left the rotation at or after t
// (t itself when it was already out at t).
func (a *Attributor) leftAfter(h string, t time.Time) (time.Time, string) {
	ms := a.moves[h] // sorted
	inAtT, known, why := false, false, ""
	for _, m := range ms {
		if m.at.After(t) {
			if known && !inAtT {
				return t, why
			}
			if !m.in {
				return m.at, m.why
			}
			continue
		}
		inAtT, known, why = m.in, true, m.why
	}
	if known && !inAtT {
		return t, why
	}
	return time.Time{}, ""
}

// Kills lists every kill with when its endpoint left the rotation.
func (a *Attributor) Kills() []Kill {
	a.sort()
	var out []Kill
	for _, ks := range a.kills {
		out = append(out, ks...)
	}
	slices.SortStableFunc(out, func(x, y Kill) int { return x.At.Compare(y.At) })
	return out
}

// Classify says why a request to endpoint, sent at sent and failed at
// ended, got no answer. The kill that counts is the last one of the Kong
// behind the endpoint before the request ended.
func (a *Attributor) Classify(endpoint string, sent, ended time.Time) Attribution {
	a.sort()
	h := host(endpoint)
	var k *Kill
	for i, c := range a.kills[h] {
		if c.At.After(ended) {
			break
		}
		k = &a.kills[h][i]
	}
	if k == nil {
		return Attribution{Cause: CauseOther}
	}
	if sent.Before(k.dead()) {
		return Attribution{Cause: CauseInFlight, Kill: *k}
	}
	if k.Left.IsZero() || sent.Before(k.Left) {
		return Attribution{Cause: CauseSentToDead, Kill: *k, Gap: sent.Sub(k.At)}
	}
	// Sent after the endpoint left the rotation: the probe had no serving
	// endpoint left and kept the last ones known, or the endpoint came
	// back and failed anew.
	return Attribution{Cause: CauseOther, Kill: *k}
}

// ClassifyRequest classifies a failed request record by its endpoint,
// send time and latency.
func (a *Attributor) ClassifyRequest(r Record) Attribution {
	return a.Classify(r.Subject, r.T, r.T.Add(time.Duration(r.LatencyMS*float64(time.Millisecond))))
}

// ClassifyRetry classifies the connect failure a request was retried
// after: it was sent to r.RetriedFrom at r.T and failed before the
// request ended (a connection refused at once, or one not made in time).
func (a *Attributor) ClassifyRetry(r Record) Attribution {
	return a.Classify(r.RetriedFrom, r.T, r.T.Add(time.Duration(r.LatencyMS*float64(time.Millisecond))))
}

func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
