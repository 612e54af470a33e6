package journal

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, event, subject, value string) Record {
		return Record{T: at(ms), Kind: KindEvent, Event: event, Subject: subject, Value: value}
	}
	const a, b, c = "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"
	// Kong a killed at 1000 ms, seen running until 1004 ms, out of the
	// rotation at 1080 ms, back at
	// 3000 ms, killed again at 5000 ms and never out before the end. Kong
	// b never killed. Kong c killed at 7000 ms while already out (not
	// ready since 6900 ms). Given out of order, as a journal may hold them.
	recs := []Record{
		ev(1080, EventEndpointOut, a, "not ready"),
		ev(0, EventEndpointIn, a, ""), ev(0, EventEndpointIn, b, ""), ev(0, EventEndpointIn, c, ""),
		ev(1000, EventKongKilled, a, "kong-a"),
		{T: at(1004), Kind: KindEvent, Event: EventKongDead, Subject: a, Value: "kong-a", Seconds: 0.005}, // exited 4-5 ms after the signal
		ev(3000, EventEndpointIn, a, ""),
		ev(5000, EventKongKilled, a, "kong-a"),
		ev(6900, EventEndpointOut, c, "terminating"),
		ev(7000, EventKongKilled, c, "kong-c"),
		{T: at(900), Kind: KindRequest, Subject: b}, // not an event: ignored
		ev(500, EventPodPhase, "kong-a", "Ready"), ev(1040, EventPodPhase, "kong-a", "NotReady"), ev(2900, EventPodPhase, "kong-a", "Ready"),
	}
	at_ := NewAttributor()
	for _, r := range recs {
		at_.Observe(r)
	}
	for _, tc := range []struct {
		name        string
		endpoint    string
		sent, ended int
		cause       string
		killAt      int
		gap         time.Duration
	}{
		{"before any kill", a, 100, 200, CauseOther, 0, 0},
		{"in flight at the kill", a, 990, 1010, CauseInFlight, 1000, 0},
		{"sent at the kill, still running", a, 1000, 1001, CauseInFlight, 1000, 0},
		{"sent as it exited", a, 1004, 1005, CauseSentToDead, 1000, 4 * time.Millisecond},
		{"sent at the second kill, death unseen", a, 5000, 5001, CauseSentToDead, 5000, 0},
		{"sent after, before out", a, 1050, 1052, CauseSentToDead, 1000, 50 * time.Millisecond},
		{"sent after out", a, 1100, 1101, CauseOther, 1000, 0},
		{"after coming back", a, 3500, 3501, CauseOther, 1000, 0},
		{"second kill, never out", a, 5200, 5201, CauseSentToDead, 5000, 200 * time.Millisecond},
		{"other Kong", b, 1050, 1052, CauseOther, 0, 0},
		{"killed while already out", c, 7010, 7011, CauseOther, 7000, 0},
		{"in flight on one already out", c, 6990, 7020, CauseInFlight, 7000, 0},
		{"host only: another port", "10.0.0.1:8443", 1050, 1052, CauseSentToDead, 1000, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := at_.Classify(tc.endpoint, at(tc.sent), at(tc.ended))
			if got.Cause != tc.cause || got.Gap != tc.gap {
				t.Errorf("cause %q gap %s, want %q gap %s", got.Cause, got.Gap, tc.cause, tc.gap)
			}
			if tc.killAt != 0 && !got.Kill.At.Equal(at(tc.killAt)) {
				t.Errorf("kill at %s, want %s", got.Kill.At, at(tc.killAt))
			}
		})
	}
	// A connect failure retried: sent just before the kill, the connection
	// not made in time (the pod's network went with it), retried after 1s.
	retry := Record{T: at(995), Kind: KindRequest, Subject: b, RetriedFrom: a, LatencyMS: 1003}
	if got := at_.ClassifyRetry(retry); got.Cause != CauseInFlight {
		t.Errorf("retried connect failure in flight at the kill: cause %q", got.Cause)
	}
	kills := at_.Kills()
	if len(kills) != 3 {
		t.Fatalf("%d kills, want 3", len(kills))
	}
	for i, want := range []time.Duration{80 * time.Millisecond, -1, 0} {
		if got := kills[i].ToLeave(); got != want {
			t.Errorf("kill %d (%s at %s): to leave %s, want %s", i, kills[i].Endpoint, kills[i].At, got, want)
		}
	}
	if kills[0].ToExited() != 5*time.Millisecond || kills[1].ToExited() != -1 {
		t.Errorf("to exited %s, %s; want 5ms, never seen", kills[0].ToExited(), kills[1].ToExited())
	}
	if kills[0].ToDead() != 4*time.Millisecond || kills[1].ToDead() != 0 {
		t.Errorf("to dead %s, %s; want 4ms, 0", kills[0].ToDead(), kills[1].ToDead())
	}
	if got := kills[0].ToPodNotReady(); got != 40*time.Millisecond {
		t.Errorf("kill 0: pod not ready after %s, want 40ms", got)
	}
	if got := kills[1].ToPodNotReady(); got != -1 {
		t.Errorf("kill 1: pod not ready after %s, want never", got)
	}
	if kills[0].Why != "not ready" || kills[2].Why != "terminating" {
		t.Errorf("why %q, %q", kills[0].Why, kills[2].Why)
	}
}
