package report

import (
	"fmt"
	"io"
	"strings"

	"konductor.dev/chaos/journal"
)

// ProbeTypeSingleWriter is the Value of the single-writer probe's records.
const ProbeTypeSingleWriter = "single-writer"

// Pooled is one drill's figures over several runs of the same set: what a
// game day reports after running its drills more than once, since one run
// says little about a p99.
type Pooled struct {
	Title string
	// Runs counts the runs the drill appeared in; Passed those it passed.
	Runs, Passed int
	// Outcomes lists the outcome of each run that did not pass, with why.
	NotPassed []string
	// MinRequests and MaxRequests bound the traffic probe's requests per run.
	MinRequests, MaxRequests int
	Non2xx                   int
	// KilledKong counts the transport errors set against a Kong the drill
	// killed (in flight at the kill, or sent before its endpoint left the
	// rotation); Other those no kill explains.
	KilledKong, Other int
	Faults, Verified  int
	Failover          Durations
	Recovery          Durations
	KongConfigured    Durations
	Propagate         Durations
	// WriterChecks counts the single-writer audits that ran (not skipped);
	// WriterFailures those that found a violation.
	WriterChecks, WriterFailures int
}

// Pool merges the summaries of several runs (one slice per journal) by
// drill title, in order of first appearance.
func Pool(runs [][]*Summary) []*Pooled {
	var order []*Pooled
	byTitle := map[string]*Pooled{}
	for _, run := range runs {
		for _, s := range run {
			p := byTitle[s.Title]
			if p == nil {
				p = &Pooled{Title: s.Title, MinRequests: s.Requests, MaxRequests: s.Requests}
				byTitle[s.Title] = p
				order = append(order, p)
			}
			p.add(s)
		}
	}
	return order
}

func (p *Pooled) add(s *Summary) {
	p.Runs++
	if s.Outcome == journal.OutcomePassed {
		p.Passed++
	} else {
		p.NotPassed = append(p.NotPassed, fmt.Sprintf("run %d %s: %s", p.Runs, s.Outcome, s.Why))
	}
	p.MinRequests, p.MaxRequests = min(p.MinRequests, s.Requests), max(p.MaxRequests, s.Requests)
	p.Non2xx += s.Non2xx
	p.KilledKong += s.ByCause[journal.CauseInFlight] + s.ByCause[journal.CauseSentToDead]
	p.Other += s.ByCause[journal.CauseOther]
	p.Faults += len(s.Faults)
	p.Verified += s.Verified()
	p.Failover.Samples = append(p.Failover.Samples, s.Failover.Samples...)
	p.Recovery.Samples = append(p.Recovery.Samples, s.Recovery.Samples...)
	p.KongConfigured.Samples = append(p.KongConfigured.Samples, s.KongConfigured.Samples...)
	p.Propagate.Samples = append(p.Propagate.Samples, s.Propagate.Samples...)
	for _, v := range s.Probes {
		if v.Type != ProbeTypeSingleWriter {
			continue
		}
		if v.OK && strings.HasPrefix(v.Detail, "skipped: ") {
			continue
		}
		p.WriterChecks++
		if !v.OK {
			p.WriterFailures++
		}
	}
}

// PooledMarkdown writes the pooled table, figures in seconds, followed by
// the runs that did not pass.
func PooledMarkdown(w io.Writer, pooled []*Pooled, runs int) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "# Drill report over %d runs\n\n", runs)
	b.WriteString("| drill | runs passed | requests per run (min–max) | non-2xx | transport errors: killed Kong / other | faults fired / verified | failover p50 / p99 / max | recovery p50 / p99 / max | Kong restarted: Admin API answers → configured p50 / p99 / max | propagation p99 | single-writer audits failed / ran |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---|---|---|---:|---:|\n")
	for _, p := range pooled {
		writer := "–"
		if p.WriterChecks > 0 {
			writer = fmt.Sprintf("%d / %d", p.WriterFailures, p.WriterChecks)
		}
		fmt.Fprintf(b, "| %s | %d/%d | %d–%d | %d | %d / %d | %d / %d | %s | %s | %s | %s | %s |\n", cell(p.Title), p.Passed, p.Runs,
			p.MinRequests, p.MaxRequests, p.Non2xx, p.KilledKong, p.Other, p.Faults, p.Verified,
			triple(p.Failover), triple(p.Recovery), triple(p.KongConfigured), secs(p.Propagate.Quantile(0.99)), writer)
	}
	var failed []string
	for _, p := range pooled {
		for _, n := range p.NotPassed {
			failed = append(failed, fmt.Sprintf("- %s, %s", p.Title, n))
		}
	}
	if len(failed) > 0 {
		b.WriteString("\nNot passed:\n\n" + strings.Join(failed, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
