package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/journal"
	"konductor.dev/chaos/report"
)

// fakeTarget is a cluster of two Kongs and a leader, in memory: a
// kong-restart kills Kong 1 (the one request to it in flight fails), which
// stays in the rotation for 100ms (requests sent to it fail, or are
// retried on Kong 2 under retry-connect-failures), then leaves it for 2s.
type fakeTarget struct {
	provider     drill.Provider
	unverified   drill.FaultKind // this fault never fires
	non2xxDuring bool            // Kong 2 answers 503 while Kong 1 is down
	failBefore   bool            // the before probes fail
	interruptAt  int             // cancel after this many faults
	cancel       context.CancelFunc

	mu       sync.Mutex
	kong1    kongState
	killedAt time.Time
	inFlight bool // the request in flight at the kill is still to journal
	faults   int
	calls    []string
	leader   int
}

type kongState int

const (
	kongUp             kongState = iota
	kongDeadInRotation           // killed, not yet out of the rotation
	kongOut                      // out of the rotation
)

const kong1, kong2 = "10.0.0.1:8000", "10.0.0.2:8000"

func (f *fakeTarget) call(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeTarget) Provider() drill.Provider { return f.provider }

func (f *fakeTarget) Setup(ctx context.Context, d *drill.Drill, j *journal.Writer) error {
	f.call("setup")
	return nil
}

func (f *fakeTarget) Observe(ctx context.Context, j *journal.Writer) {
	last := -1
	for Sleep(ctx, 100*time.Millisecond) {
		f.mu.Lock()
		l := f.leader
		f.mu.Unlock()
		if l != last {
			j.Add(journal.Record{Kind: journal.KindEvent, Event: journal.EventLockHolder, Value: fmt.Sprintf("konductor-%d_x", l)})
			last = l
		}
	}
}

func (f *fakeTarget) Check(ctx context.Context, p drill.Probe, j *journal.Writer) (float64, error) {
	if f.failBefore {
		return 0, errors.New("no leader")
	}
	if p.Type == drill.ProbePropagation {
		time.Sleep(300 * time.Millisecond)
		return 0.3, nil
	}
	return 0, nil
}

func (f *fakeTarget) Traffic(ctx context.Context, p drill.Probe, j *journal.Writer) error {
	every := time.Second / time.Duration(p.Rate)
	for i := 0; Sleep(ctx, every); i++ {
		f.mu.Lock()
		state, killedAt, inFlight := f.kong1, f.killedAt, f.inFlight && i%2 == 0
		if inFlight {
			f.inFlight = false
		}
		f.mu.Unlock()
		rec := journal.Record{Kind: journal.KindRequest, Status: 200, LatencyMS: 1, Subject: kong2}
		if i%2 == 0 && state != kongOut {
			rec.Subject = kong1
			switch {
			case inFlight: // sent just before the kill, reset by it
				rec.T, rec.LatencyMS = killedAt.Add(-time.Millisecond), 2
				rec.Status, rec.ErrClass, rec.Detail = 0, journal.ErrTransport, "connection reset by peer"
			case state == kongDeadInRotation && p.RetryConnectFailures:
				rec.Subject, rec.RetriedFrom, rec.RetryError = kong2, kong1, "dial tcp "+kong1+": connect: connection refused"
			case state == kongDeadInRotation:
				rec.Status, rec.ErrClass, rec.Detail = 0, journal.ErrTransport, "dial tcp "+kong1+": connect: connection refused"
			}
		} else if state != kongUp && f.non2xxDuring {
			rec.Status, rec.ErrClass = 503, journal.ErrNon2xx
		}
		j.Add(rec)
	}
	return nil
}

func (f *fakeTarget) Inject(ctx context.Context, a drill.Action, j *journal.Writer) Injection {
	f.mu.Lock()
	f.faults++
	n := f.faults
	f.mu.Unlock()
	if f.interruptAt > 0 && n == f.interruptAt {
		f.cancel()
	}
	if a.Fault == f.unverified {
		time.Sleep(a.Verify.Or(time.Second))
		return Injection{Detail: "restartCount stayed 0"}
	}
	switch a.Fault {
	case drill.FaultKongRestart:
		at := time.Now()
		f.mu.Lock()
		f.kong1, f.killedAt, f.inFlight = kongDeadInRotation, at, true
		f.mu.Unlock()
		j.Add(journal.Record{T: at, Kind: journal.KindEvent, Event: journal.EventKongKilled, Subject: kong1, Value: "kong-1", Action: a.Label()})
		time.Sleep(100 * time.Millisecond)
		f.mu.Lock()
		f.kong1 = kongOut
		f.mu.Unlock()
		j.Add(journal.Record{Kind: journal.KindEvent, Event: journal.EventEndpointOut, Subject: kong1, Value: "not ready"})
		time.Sleep(1900 * time.Millisecond)
		f.mu.Lock()
		f.kong1 = kongUp
		f.mu.Unlock()
		j.Add(journal.Record{Kind: journal.KindEvent, Event: journal.EventEndpointIn, Subject: kong1})
		return Injection{At: at, Subjects: []string{"kong-1"}, Killed: []string{kong1}, Verified: true, Detail: "restartCount 0→1", Recovered: 2 * time.Second}
	default:
		time.Sleep(time.Second) // waiting for a live leader: not part of the failover
		at := time.Now()
		time.Sleep(500 * time.Millisecond)
		f.mu.Lock()
		f.leader++
		f.mu.Unlock()
		return Injection{At: at, Subjects: []string{"konductor-0"}, Verified: true, Recovered: 500 * time.Millisecond}
	}
}

func (f *fakeTarget) Rollback(ctx context.Context, r drill.RollbackKind) error {
	f.call("rollback " + string(r))
	return nil
}

func (f *fakeTarget) Teardown(ctx context.Context) error {
	f.call("teardown")
	return nil
}

const drillYAML = `title: Kong restart and leader crash
target: {overlay: dbless-gateway-discovery, components: [kongsim]}
steady-state-hypothesis:
  probes:
  - {name: traffic, type: http-traffic, when: continuous, rate: 100, retry-connect-failures: true, tolerance: {max-non-2xx: 0, max-transport-errors: 0, transport-errors-only-on-killed-kong: true, min-requests: 2000}}
  - {type: change-propagates, when: [before, after], tolerance: {within: 5s}}
  - {type: single-leader, when: [continuous]}
method:
- {fault: leader-crash, background: true}
- {fault: kong-restart, pauses: {before: 200ms}}
schedule: {repeat: 3, interval: 10s, warmup: 1s, settle: 2s}
abort: {max-non-2xx: 50}
rollbacks: [{action: restore-replicas}]
`

func parse(t *testing.T, src string) *drill.Drill {
	t.Helper()
	d, err := drill.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runDrill runs src against f in a synctest bubble and returns the result,
// the journal's report summary and the target's calls.
func runDrill(t *testing.T, src string, f *fakeTarget) (Result, *report.Summary) {
	t.Helper()
	d := parse(t, src)
	var buf bytes.Buffer
	var res Result
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.cancel = cancel
		j := journal.NewWriter(&buf, nil)
		res = (&Engine{Target: f}).Run(ctx, d, j)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	})
	recs, err := journal.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	sums := report.Summarize(recs)
	if len(sums) != 1 {
		t.Fatalf("%d drills in the journal", len(sums))
	}
	return res, sums[0]
}

func TestDrillPasses(t *testing.T) {
	f := &fakeTarget{provider: drill.ProviderLocal}
	res, s := runDrill(t, drillYAML, f)
	if res.Outcome != journal.OutcomePassed || s.Outcome != journal.OutcomePassed {
		t.Fatalf("result %s; journal says %s (%s)", res, s.Outcome, s.Why)
	}
	if s.Requests < 2400 || s.Non2xx != 0 {
		t.Errorf("requests %d, non-2xx %d", s.Requests, s.Non2xx)
	}
	// Per restart: one request in flight at the kill, and the others sent
	// to Kong 1 in the 100ms before it left the rotation, retried.
	if s.Transport != 3 || s.ByCause[journal.CauseInFlight] != 3 || s.Retried < 9 || s.RetriedByCause[journal.CauseSentToDead] != s.Retried ||
		len(s.Kills) != 3 || s.ToLeave.Max() != 0.1 {
		t.Errorf("transport %d by cause %v, retried %d by cause %v, kills %d, kill → out max %v",
			s.Transport, s.ByCause, s.Retried, s.RetriedByCause, len(s.Kills), s.ToLeave.Max())
	}
	if len(s.Faults) != 6 || s.Verified() != 6 || s.Failover.N() != 3 || s.Recovery.N() != 6 || s.Propagate.N() != 2 {
		t.Errorf("faults %d verified %d failovers %d recoveries %d propagations %d", len(s.Faults), s.Verified(), s.Failover.N(), s.Recovery.N(), s.Propagate.N())
	}
	if got := s.Failover.Max(); got < 0.5 || got > 0.7 {
		t.Errorf("failover max %.3fs, want about 0.5s (from the kill, not from the wait for a leader)", got)
	}
	want := "setup,rollback restore-replicas,rollback resume-processes,rollback remove-probe-objects,teardown"
	if got := strings.Join(f.calls, ","); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}

func TestDrillFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(string) string
		target  *fakeTarget
		outcome string
		want    string
	}{
		{"unverified fault", nil, &fakeTarget{unverified: drill.FaultKongRestart}, journal.OutcomeFailed, "fault kong-restart did not fire: restartCount stayed 0"},
		{"transport errors count without attribution", func(s string) string {
			return strings.Replace(s, ", transport-errors-only-on-killed-kong: true", "", 1)
		}, &fakeTarget{}, journal.OutcomeFailed, "transport errors, more than 0"},
		{"sent to a dead Kong without retries", func(s string) string {
			return strings.Replace(s, " retry-connect-failures: true,", "", 1)
		}, &fakeTarget{}, journal.OutcomeFailed, "transport errors not in flight at a Kong kill, more than 0"},
		{"too few requests", func(s string) string { return strings.Replace(s, "min-requests: 2000", "min-requests: 5000", 1) },
			&fakeTarget{}, journal.OutcomeFailed, "requests, fewer than 5000"},
		{"abort on non-2xx", nil, &fakeTarget{non2xxDuring: true}, journal.OutcomeAborted, "non-2xx answers, more than 50"},
		{"steady state not met", nil, &fakeTarget{failBefore: true}, journal.OutcomeFailed, "steady state not met before the method (probe change-propagates)"},
		{"interrupted", nil, &fakeTarget{interruptAt: 3}, journal.OutcomeInterrupted, "context canceled"},
		{"needs local", nil, &fakeTarget{provider: drill.ProviderKind}, journal.OutcomeFailed, `the drill's faults need provider "local"; this target is "kind"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := drillYAML
			if tc.edit != nil {
				src = tc.edit(src)
			}
			f := tc.target
			if f.provider == "" {
				f.provider = drill.ProviderLocal
			}
			res, s := runDrill(t, src, f)
			if res.Outcome != tc.outcome || s.Outcome != tc.outcome {
				t.Errorf("outcome %s (journal %s), want %s", res.Outcome, s.Outcome, tc.outcome)
			}
			if !strings.Contains(res.String(), tc.want) || !strings.Contains(s.Why, tc.want) {
				t.Errorf("result %q\njournal %q\nwant %q", res, s.Why, tc.want)
			}
			setUp := len(f.calls) > 0 && f.calls[0] == "setup"
			if setUp && f.calls[len(f.calls)-1] != "teardown" {
				t.Errorf("set up but not torn down: %v", f.calls)
			}
		})
	}
}

// TestInterruptedCleansUp: an interrupted drill still runs every rollback
// and teardown, and its report says so.
func TestInterruptedCleansUp(t *testing.T) {
	f := &fakeTarget{provider: drill.ProviderLocal, interruptAt: 2}
	_, s := runDrill(t, drillYAML, f)
	if s.Outcome != journal.OutcomeInterrupted || len(s.Rollbacks) != 4 {
		t.Fatalf("outcome %s, rollbacks %+v", s.Outcome, s.Rollbacks)
	}
	var md bytes.Buffer
	if err := report.Markdown(&md, []*report.Summary{s}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "**INTERRUPTED**") {
		t.Errorf("report does not say interrupted:\n%s", md.String())
	}
}
