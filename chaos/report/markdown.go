package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// maxListed bounds the failures and faults listed one by one per drill.
const maxListed = 50

// Markdown writes the report of every drill: an overview table, then each
// drill's figures, probe verdicts, faults and failed requests.
func Markdown(w io.Writer, sums []*Summary) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "# Drill report\n\n")
	overview(b, sums)
	for _, s := range sums {
		drillSection(b, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func overview(b *strings.Builder, sums []*Summary) {
	b.WriteString("| drill | outcome | requests | non-2xx | transport errors (not to a killed Kong) | faults fired/verified | failover p50 / p99 / max | recovery p50 / p99 / max | propagation p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---|---|---:|\n")
	for _, s := range sums {
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d (%d) | %d/%d | %s | %s | %s |\n", cell(s.Title), outcomeWord(s.Outcome),
			s.Requests, s.Non2xx, s.Transport, s.Unattributed, len(s.Faults), s.Verified(), triple(s.Failover), triple(s.Recovery), secs(s.Propagate.Quantile(0.99)))
	}
	b.WriteString("\n")
}

func drillSection(b *strings.Builder, s *Summary) {
	fmt.Fprintf(b, "## %s\n\n", s.Title)
	fmt.Fprintf(b, "**%s**", outcomeWord(s.Outcome))
	if s.Why != "" {
		fmt.Fprintf(b, ": %s", s.Why)
	}
	b.WriteString("\n\n")
	if s.File != "" {
		fmt.Fprintf(b, "Drill file `%s`, provider `%s`, started %s, ran %s, %d repetitions.\n\n", s.File, s.Provider,
			s.Start.UTC().Format(time.RFC3339), s.End.Sub(s.Start).Round(100*time.Millisecond), s.Reps)
	}
	b.WriteString("| figure | value |\n|---|---:|\n")
	rows := [][2]string{
		{"requests", fmt.Sprint(s.Requests)},
		{"2xx", fmt.Sprint(s.OK)},
		{"non-2xx", fmt.Sprint(s.Non2xx)},
		{"transport errors", fmt.Sprint(s.Transport)},
		{"transport errors not to a killed Kong", fmt.Sprint(s.Unattributed)},
		{"faults fired / verified", fmt.Sprintf("%d / %d", len(s.Faults), s.Verified())},
		{fmt.Sprintf("failover p50 / p99 / max (n=%d)", s.Failover.N()), triple(s.Failover)},
		{fmt.Sprintf("recovery p50 / p99 / max (n=%d)", s.Recovery.N()), triple(s.Recovery)},
		{fmt.Sprintf("propagation p50 / p99 / max (n=%d)", s.Propagate.N()), triple(s.Propagate)},
	}
	if s.KongConfigured.N() > 0 {
		rows = append(rows, [2]string{fmt.Sprintf("Kong restarted in place: API answers → configured p50 / p99 / max (n=%d)", s.KongConfigured.N()), triple(s.KongConfigured)})
	}
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s |\n", r[0], r[1])
	}
	b.WriteString("\n")
	if len(s.Probes) > 0 {
		b.WriteString("### Probe verdicts\n\n| at | probe | phase | verdict | seconds | detail |\n|---:|---|---|---|---:|---|\n")
		for _, p := range s.Probes {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", at(p.At), cell(p.Name), p.Phase, probeVerdict(p), secs(p.Seconds), cell(p.Detail))
		}
		b.WriteString("\n")
	}
	if len(s.Faults) > 0 {
		b.WriteString("### Faults\n\n| at | rep | fault | target | verified | detail |\n|---:|---:|---|---|---|---|\n")
		for i, f := range s.Faults {
			if i == maxListed {
				fmt.Fprintf(b, "| | | … %d more | | | |\n", len(s.Faults)-maxListed)
				break
			}
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s |\n", at(f.At), f.Rep, f.Kind, cell(f.Subject), yesNo(f.Verified), cell(f.Detail))
		}
		b.WriteString("\n")
	}
	if len(s.Failures) > 0 {
		b.WriteString("### Failed requests\n\nNon-2xx answers and transport errors (no answer), with their time since the start and the fault that killed their Kong.\n\n| at | class | status | Kong | caused by | detail |\n|---:|---|---:|---|---|---|\n")
		for i, f := range s.Failures {
			if i == maxListed {
				fmt.Fprintf(b, "| | … %d more | | | | |\n", len(s.Failures)-maxListed)
				break
			}
			status := ""
			if f.Status != 0 {
				status = fmt.Sprint(f.Status)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", at(f.At), f.Class, status, cell(f.Subject), cell(f.Cause), cell(f.Detail))
		}
		b.WriteString("\n")
	}
	if len(s.Rollbacks) > 0 {
		b.WriteString("### Rollbacks\n\n")
		for _, r := range s.Rollbacks {
			fmt.Fprintf(b, "- %s: %s %s\n", r.Name, verdict(r.OK), r.Detail)
		}
		b.WriteString("\n")
	}
}

func outcomeWord(o string) string { return strings.ToUpper(o) }

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

func probeVerdict(p ProbeVerdict) string {
	if p.OK && strings.HasPrefix(p.Detail, "skipped:") {
		return "skipped"
	}
	return verdict(p.OK)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func at(d time.Duration) string { return fmt.Sprintf("+%.1fs", d.Seconds()) }

func secs(s float64) string {
	if math.IsNaN(s) {
		return "–"
	}
	if s == 0 {
		return "0"
	}
	if s < 10 {
		return fmt.Sprintf("%.3fs", s)
	}
	return fmt.Sprintf("%.1fs", s)
}

func triple(d Durations) string {
	if d.N() == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s", secs(d.Quantile(0.5)), secs(d.Quantile(0.99)), secs(d.Max()))
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
