package report

import (
	"bytes"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"konductor.dev/chaos/journal"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func ts(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// sampleJournal is a drill of two leader crashes under traffic, one Kong
// restart with two transport errors, and a change propagating.
func sampleJournal() []journal.Record {
	d := "Leader crash"
	recs := []journal.Record{
		{T: ts(0), Kind: journal.KindDrillStart, Drill: d, Detail: "chaos/drills/leader-crash.yaml", Value: "local"},
		{T: ts(0.1), Kind: journal.KindEvent, Drill: d, Event: journal.EventLockHolder, Value: "konductor-a_1"},
		{T: ts(0.2), Kind: journal.KindEvent, Drill: d, Event: journal.EventConfigHash, Subject: "kong-1", Value: "aaaa"},
		{T: ts(0.2), Kind: journal.KindEvent, Drill: d, Event: journal.EventConfigHash, Subject: "kong-2", Value: "aaaa"},
	}
	for i := range 100 { // 10 s of 10 requests per second
		r := journal.Record{T: t0.Add(time.Duration(i) * 100 * time.Millisecond), Kind: journal.KindRequest, Drill: d, Status: 200, LatencyMS: 2, Subject: "10.0.0.1:8000"}
		switch i {
		case 39: // in flight when Kong 1 is killed at +4s
			r.Status, r.ErrClass, r.Detail, r.LatencyMS = 0, journal.ErrTransport, "EOF", 200
		case 41: // sent after the kill, before the endpoint left the rotation at +4.15s
			r.Status, r.ErrClass, r.Detail = 0, journal.ErrTransport, "connection refused"
		case 40: // a connect failure at the kill, retried on Kong 2
			r.Subject, r.RetriedFrom, r.RetryError = "10.0.0.2:8000", "10.0.0.1:8000", "dial tcp 10.0.0.1:8000: connect: connection refused"
		case 77:
			r.Status, r.ErrClass = 503, journal.ErrNon2xx
		}
		recs = append(recs, r)
	}
	recs = append(recs,
		journal.Record{T: ts(1), Kind: journal.KindRepetition, Drill: d, Rep: 1},
		journal.Record{T: ts(1), Kind: journal.KindFaultStart, Drill: d, Rep: 1, Fault: "leader-crash", Action: "kill", Subject: "konductor-a"},
		journal.Record{T: ts(1.2), Kind: journal.KindFaultEnd, Drill: d, Rep: 1, Fault: "leader-crash", Action: "kill", Verified: journal.Bool(true), Detail: "restartCount 0→1"},
		journal.Record{T: ts(3), Kind: journal.KindEvent, Drill: d, Event: journal.EventLockHolder, Value: "konductor-b_2"},
		journal.Record{T: ts(3.5), Kind: journal.KindRecovered, Drill: d, Rep: 1, Fault: "leader-crash", Action: "kill", Seconds: 2.5},
		journal.Record{T: ts(0), Kind: journal.KindEvent, Drill: d, Event: journal.EventEndpointIn, Subject: "10.0.0.1:8000"},
		journal.Record{T: ts(4), Kind: journal.KindFaultStart, Drill: d, Rep: 2, Fault: "kong-restart", Action: "restart", Subject: "kong-1"},
		journal.Record{T: ts(4), Kind: journal.KindEvent, Drill: d, Event: journal.EventKongKilled, Subject: "10.0.0.1:8000", Value: "kong-1", Action: "restart"},
		journal.Record{T: ts(4.15), Kind: journal.KindEvent, Drill: d, Event: journal.EventEndpointOut, Subject: "10.0.0.1:8000", Value: "not ready"},
		journal.Record{T: ts(5), Kind: journal.KindEvent, Drill: d, Event: journal.EventEndpointIn, Subject: "10.0.0.1:8000"},
		journal.Record{T: ts(4.5), Kind: journal.KindFaultEnd, Drill: d, Rep: 2, Fault: "kong-restart", Action: "restart", Verified: journal.Bool(true), Value: "10.0.0.1:8000"},
		journal.Record{T: ts(4.6), Kind: journal.KindEvent, Drill: d, Event: journal.EventKongAPIUp, Subject: "kong-1"},
		journal.Record{T: ts(4.9), Kind: journal.KindEvent, Drill: d, Event: journal.EventKongConfigured, Subject: "kong-1", Seconds: 0.3},
		journal.Record{T: ts(5), Kind: journal.KindRecovered, Drill: d, Rep: 2, Fault: "kong-restart", Action: "restart", Seconds: 1},
		journal.Record{T: ts(5), Kind: journal.KindEvent, Drill: d, Event: journal.EventConfigHash, Subject: "kong-1", Value: "bbbb"},
		journal.Record{T: ts(5.2), Kind: journal.KindEvent, Drill: d, Event: journal.EventConfigHash, Subject: "kong-2", Value: "bbbb"},
		journal.Record{T: ts(6), Kind: journal.KindRepetition, Drill: d, Rep: 3},
		journal.Record{T: ts(6), Kind: journal.KindFaultStart, Drill: d, Rep: 3, Fault: "leader-crash", Action: "kill", Subject: "konductor-b_2"},
		journal.Record{T: ts(6), Kind: journal.KindFaultEnd, Drill: d, Rep: 3, Fault: "leader-crash", Action: "kill", Verified: journal.Bool(false), Detail: "the process did not die"},
		journal.Record{T: ts(7), Kind: journal.KindEvent, Drill: d, Event: journal.EventLockHolder, Value: ""},
		journal.Record{T: ts(7.5), Kind: journal.KindEvent, Drill: d, Event: journal.EventLockHolder, Value: "konductor-a_3"},
		journal.Record{T: ts(9), Kind: journal.KindProbe, Drill: d, Probe: "propagates", Phase: "after", OK: journal.Bool(true), Seconds: 0.4, Value: ProbeTypePropagation},
		journal.Record{T: ts(9.5), Kind: journal.KindRollback, Drill: d, Action: "restore-replicas", OK: journal.Bool(true)},
		journal.Record{T: ts(10), Kind: journal.KindDrillEnd, Drill: d, Outcome: journal.OutcomeFailed, Detail: "fault leader-crash (rep 3) not verified"},
	)
	return recs
}

func TestSummarize(t *testing.T) {
	sums := Summarize(sampleJournal())
	if len(sums) != 1 {
		t.Fatalf("%d summaries", len(sums))
	}
	s := sums[0]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"requests", s.Requests, 100}, {"ok", s.OK, 97}, {"non-2xx", s.Non2xx, 1}, {"transport", s.Transport, 2},
		{"in flight", s.ByCause[journal.CauseInFlight], 1}, {"sent to dead", s.ByCause[journal.CauseSentToDead], 1}, {"other", s.ByCause[journal.CauseOther], 0},
		{"retried", s.Retried, 1}, {"retried sent to dead", s.RetriedByCause[journal.CauseSentToDead], 1},
		{"kills", len(s.Kills), 1}, {"kill to out of rotation", s.ToLeave.Max(), 0.15},
		{"faults", len(s.Faults), 3}, {"verified", s.Verified(), 2}, {"reps", s.Reps, 3},
		{"outcome", s.Outcome, journal.OutcomeFailed}, {"provider", s.Provider, "local"},
		{"failover n", s.Failover.N(), 2}, {"failover max", s.Failover.Max(), 2.0}, {"failover p50", s.Failover.Quantile(0.5), 1.5},
		{"recovery max", s.Recovery.Max(), 2.5}, {"propagation", s.Propagate.Max(), 0.4},
		{"kong configured n", s.KongConfigured.N(), 1}, {"kong configured", s.KongConfigured.Max(), 0.3},
		{"first failure at", s.Failures[0].At, 3900 * time.Millisecond}, {"failure class", s.Failures[2].Class, journal.ErrNon2xx},
		{"timeline seconds", len(s.Timeline.OK), 11}, {"transport in second 3", s.Timeline.Transport[3], 1}, {"transport in second 4", s.Timeline.Transport[4], 1},
		{"holder bands", len(s.Timeline.Holders), 4}, {"kong lanes", len(s.Timeline.Kongs), 2},
		{"kong-1 bands", len(s.Timeline.Kongs[0].Bands), 2}, {"unverified marker", s.Timeline.Faults[2].Verified, false},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestSummarizeTruncatedJournalIsInterrupted(t *testing.T) {
	recs := sampleJournal()
	s := Summarize(recs[:len(recs)-1])[0]
	if s.Outcome != journal.OutcomeInterrupted {
		t.Errorf("outcome %q, want interrupted", s.Outcome)
	}
}

func TestDurations(t *testing.T) {
	var d Durations
	if !math.IsNaN(d.Quantile(0.5)) {
		t.Error("empty quantile not NaN")
	}
	for i := 1; i <= 100; i++ {
		d.Samples = append(d.Samples, float64(101-i))
	}
	if d.Quantile(0.5) != 50 || d.Quantile(0.99) != 99 || d.Max() != 100 {
		t.Errorf("p50 %v p99 %v max %v", d.Quantile(0.5), d.Quantile(0.99), d.Max())
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := Markdown(&b, Summarize(sampleJournal())); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| Leader crash | FAILED | 100 | 1 | 2 | 1 | 1 | 0 | 1 | 0.150s / 0.150s | 3/2 | 1.500s / 2.000s / 2.000s | 1.000s / 2.500s / 2.500s | 0.400s |",
		"| transport errors | 2 |",
		"| Kong restarted in place: API answers → configured p50 / p99 / max (n=1) | 0.300s / 0.300s / 0.300s |",
		"| +6.0s | 3 | leader-crash | konductor-b_2 | NO | the process did not die |",
		"**FAILED**: fault leader-crash (rep 3) not verified",
		"- restore-replicas: ok",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestHTMLHasWellFormedSVG(t *testing.T) {
	s := Summarize(sampleJournal())[0]
	svg := SVG(s)
	dec := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects < 20 {
		t.Errorf("%d rects in the SVG; want bars and bands", rects)
	}
	var b bytes.Buffer
	if err := HTML(&b, []*Summary{s}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "<svg") || !strings.Contains(b.String(), "konductor-b_2") {
		t.Error("HTML lacks the timeline")
	}
	for _, want := range []string{"<h3>Transport errors: in flight at the kill (1)</h3>", "<h3>Transport errors: sent to an endpoint already dead (1)</h3>",
		"<h3>Connect failures retried on another endpoint (1)</h3>", "<td class=n>+4.100s</td><td>10.0.0.1:8000</td><td class=n>+4.0s</td><td class=n>0.100s</td>"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	jp := filepath.Join(dir, "journal.jsonl")
	j, err := journal.Create(jp)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sampleJournal() {
		j.Add(r)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	files, sums, err := Generate(jp, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].Requests != 100 {
		t.Fatalf("summaries %+v", sums)
	}
	if os.Getenv("KONDUCTOR_REPORT_SAMPLE") != "" { // keep a sample to look at
		_ = os.WriteFile(os.Getenv("KONDUCTOR_REPORT_SAMPLE"), []byte(SVG(sums[0])), 0o644)
	}
	for _, f := range []string{files.Markdown, files.HTML} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestTransportErrorAfterComingBackIsOther: an error on an endpoint back
// in the rotation after its kill is not the kill's doing.
func TestTransportErrorAfterComingBackIsOther(t *testing.T) {
	recs := sampleJournal()
	for i := range recs {
		if recs[i].ErrClass == journal.ErrTransport && recs[i].Detail == "connection refused" {
			recs[i].T = recs[i].T.Add(3 * time.Second) // +7.1s: Kong 1 came back at +5s
			break
		}
	}
	s := Summarize(recs)[0]
	if s.ByCause[journal.CauseOther] != 1 || s.ByCause[journal.CauseInFlight] != 1 || s.ByCause[journal.CauseSentToDead] != 0 {
		t.Errorf("by cause %v, failures %+v", s.ByCause, s.Failures)
	}
}

// TestMarkdownShowsCauses: each cause has its own table, with the send
// time to the millisecond and the kill it is set against.
func TestMarkdownShowsCauses(t *testing.T) {
	var md bytes.Buffer
	if err := Markdown(&md, Summarize(sampleJournal())); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### Transport errors: in flight at the kill (1)",
		"| +3.900s |  | 10.0.0.1:8000 | in flight at the kill | +4.0s (restart) |  |",
		"### Transport errors: sent to an endpoint already dead (1)",
		"| +4.100s |  | 10.0.0.1:8000 | sent to an endpoint already dead | +4.0s (restart) | 0.100s |",
		"### Connect failures retried on another endpoint (1)",
		"| +4.000s |  | 10.0.0.1:8000 | sent to an endpoint already dead | +4.0s (restart) | 0 | 10.0.0.2:8000 |",
		"| +4.000s | 10.0.0.1:8000 | kong-1 | restart | 0 / ? | never | 0.150s | not ready |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
}
