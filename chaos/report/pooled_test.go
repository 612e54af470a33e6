package report

import (
	"bytes"
	"strings"
	"testing"

	"konductor.dev/chaos/journal"
)

// passedRun is the sample drill passing, with a clean single-writer audit
// and a second, skipped one (sidecars keep no shared audit).
func passedRun() []journal.Record {
	recs := sampleJournal()
	end := recs[len(recs)-1]
	recs = recs[:len(recs)-1]
	d := end.Drill
	recs = append(recs,
		journal.Record{T: ts(9.6), Kind: journal.KindProbe, Drill: d, Probe: "audit", Phase: "after", OK: journal.Bool(true), Value: ProbeTypeSingleWriter},
		journal.Record{T: ts(9.7), Kind: journal.KindProbe, Drill: d, Probe: "audit-sidecar", Phase: "after", OK: journal.Bool(true), Value: ProbeTypeSingleWriter, Detail: "skipped: no shared audit"},
		journal.Record{T: ts(10), Kind: journal.KindDrillEnd, Drill: d, Outcome: journal.OutcomePassed},
	)
	return recs
}

func TestPool(t *testing.T) {
	failed := sampleJournal()
	failed = append(failed[:len(failed)-1],
		journal.Record{T: ts(9.6), Kind: journal.KindProbe, Drill: "Leader crash", Probe: "audit", Phase: "after", OK: journal.Bool(false), Value: ProbeTypeSingleWriter, Detail: "1 single-writer violations"},
		failed[len(failed)-1])
	// A second drill appears in the second run only.
	other := []journal.Record{
		{T: ts(0), Kind: journal.KindDrillStart, Drill: "Scale Kong"},
		{T: ts(1), Kind: journal.KindRequest, Drill: "Scale Kong", Status: 200},
		{T: ts(2), Kind: journal.KindDrillEnd, Drill: "Scale Kong", Outcome: journal.OutcomePassed},
	}
	runs := [][]*Summary{Summarize(passedRun()), Summarize(append(failed, other...))}
	pooled := Pool(runs)
	if len(pooled) != 2 || pooled[0].Title != "Leader crash" || pooled[1].Title != "Scale Kong" {
		t.Fatalf("pooled drills %+v, want Leader crash then Scale Kong", pooled)
	}
	p := pooled[0]
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"runs", p.Runs, 2}, {"passed", p.Passed, 1}, {"not passed", len(p.NotPassed), 1},
		{"min requests", p.MinRequests, 100}, {"max requests", p.MaxRequests, 100},
		{"non-2xx", p.Non2xx, 2}, {"killed Kong", p.KilledKong, 4}, {"other", p.Other, 0},
		{"faults", p.Faults, 6}, {"verified", p.Verified, 4},
		{"failover samples", p.Failover.N(), 4}, {"recovery samples", p.Recovery.N(), 4},
		{"kong configured samples", p.KongConfigured.N(), 2}, {"propagation samples", p.Propagate.N(), 2},
		{"writer checks (skipped left out)", p.WriterChecks, 2}, {"writer failures", p.WriterFailures, 1},
		{"second drill runs", pooled[1].Runs, 1}, {"second drill requests", pooled[1].MaxRequests, 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	var b bytes.Buffer
	if err := PooledMarkdown(&b, pooled, len(runs)); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"over 2 runs",
		"| Leader crash | 1/2 | 100–100 | 2 | 4 / 0 | 6 / 4 | 1.500s / 2.000s / 2.000s | 1.000s / 2.500s / 2.500s | 0.300s / 0.300s / 0.300s | 0.400s | 1 / 2 |",
		"| Scale Kong | 1/1 | 1–1 | 0 | 0 / 0 | 0 / 0 | – | – | – | – | – |",
		"- Leader crash, run 2 failed: fault leader-crash (rep 3) not verified",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("pooled report lacks %q:\n%s", want, md)
		}
	}
}
