package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"konductor.dev/chaos/journal"
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
	b.WriteString("| drill | outcome | requests | non-2xx | transport errors | in flight at a kill | sent to an endpoint already dead | other | connect failures retried | kill → out of rotation p50 / max | faults fired/verified | failover p50 / p99 / max | recovery p50 / p99 / max | propagation p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|---:|\n")
	for _, s := range sums {
		fmt.Fprintf(b, "| %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %d/%d | %s | %s | %s |\n", cell(s.Title), outcomeWord(s.Outcome),
			s.Requests, s.Non2xx, s.Transport, s.ByCause[journal.CauseInFlight], s.ByCause[journal.CauseSentToDead], s.ByCause[journal.CauseOther],
			retriedCell(s), pair(s.ToLeave), len(s.Faults), s.Verified(), triple(s.Failover), triple(s.Recovery), secs(s.Propagate.Quantile(0.99)))
	}
	b.WriteString("\n")
}

// retriedCell is the count of retried connect failures with those no kill
// explains, or "–" when the probe did not retry (none journaled).
func retriedCell(s *Summary) string {
	if s.Retried == 0 {
		return "0"
	}
	if o := s.RetriedByCause[journal.CauseOther]; o > 0 {
		return fmt.Sprintf("%d (%d other)", s.Retried, o)
	}
	return fmt.Sprint(s.Retried)
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
		{"… in flight at a Kong kill (sent before the Kong had exited)", fmt.Sprint(s.ByCause[journal.CauseInFlight])},
		{"… sent to a Kong already dead, before its endpoint left the rotation", fmt.Sprint(s.ByCause[journal.CauseSentToDead])},
		{"… other", fmt.Sprint(s.ByCause[journal.CauseOther])},
		{"connect failures retried on another endpoint", fmt.Sprintf("%d (%d in flight, %d sent to dead, %d other)", s.Retried,
			s.RetriedByCause[journal.CauseInFlight], s.RetriedByCause[journal.CauseSentToDead], s.RetriedByCause[journal.CauseOther])},
		{fmt.Sprintf("Kong kill → pod seen not ready p50 / p99 / max (n=%d of %d kills)", s.ToPodNotReady.N(), len(s.Kills)), triple(s.ToPodNotReady)},
		{fmt.Sprintf("Kong kill → endpoint out of the rotation p50 / p99 / max (n=%d of %d kills)", s.ToLeave.N(), len(s.Kills)), triple(s.ToLeave)},
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
	if len(s.Kills) > 0 {
		b.WriteString("### Kong kills\n\nEach Kong a fault SIGKILLed: until when its process was seen running after the signal (requests sent until then were in flight at the kill), and when the watches saw its pod not ready and its endpoint leave the traffic probe's rotation.\n\n| at | endpoint | pod | fault | process seen running / exited (after the kill) | pod seen not ready after | out of rotation after | why |\n|---:|---|---|---|---:|---:|---:|---|\n")
		for i, k := range s.Kills {
			if i == maxListed {
				fmt.Fprintf(b, "| | … %d more | | | | | | |\n", len(s.Kills)-maxListed)
				break
			}
			after := func(d time.Duration) string {
				if d < 0 {
					return "never"
				}
				return secs(d.Seconds())
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", atMS(k.At.Sub(s.Start)), k.Endpoint, cell(k.Pod), cell(k.Action),
				runningExited(k), after(k.ToPodNotReady()), after(k.ToLeave()), cell(k.Why))
		}
		b.WriteString("\n")
	}
	var non2xx []Failure
	byCause := map[string][]Failure{}
	for _, f := range s.Failures {
		if f.Class == journal.ErrTransport {
			byCause[f.Cause] = append(byCause[f.Cause], f)
		} else {
			non2xx = append(non2xx, f)
		}
	}
	for _, c := range journal.Causes {
		if fs := byCause[c]; len(fs) > 0 {
			fmt.Fprintf(b, "### Transport errors: %s (%d)\n\n", c, len(fs))
			failureTable(b, s, fs)
		}
	}
	if len(s.RetriedFailures) > 0 {
		fmt.Fprintf(b, "### Connect failures retried on another endpoint (%d)\n\nThe probe retried these requests (retry-connect-failures); the request's own outcome is counted above. Kong is the endpoint that failed.\n\n", len(s.RetriedFailures))
		failureTable(b, s, s.RetriedFailures)
	}
	if len(non2xx) > 0 {
		fmt.Fprintf(b, "### Non-2xx answers (%d)\n\n", len(non2xx))
		failureTable(b, s, non2xx)
	}
	if len(s.Rollbacks) > 0 {
		b.WriteString("### Rollbacks\n\n")
		for _, r := range s.Rollbacks {
			fmt.Fprintf(b, "- %s: %s %s\n", r.Name, verdict(r.OK), r.Detail)
		}
		b.WriteString("\n")
	}
}

// failureTable lists failed requests with their send time (since the
// drill's start), endpoint and, for transport errors, the kill they are
// set against.
func failureTable(b *strings.Builder, s *Summary, fs []Failure) {
	b.WriteString("| sent at | status | Kong | cause | kill at | sent after the kill | retried on | detail |\n|---:|---:|---|---|---:|---:|---|---|\n")
	for i, f := range fs {
		if i == maxListed {
			fmt.Fprintf(b, "| | | … %d more (all are in the journal) | | | | | |\n", len(fs)-maxListed)
			break
		}
		status, killAt, gap := "", "", ""
		if f.Status != 0 {
			status = fmt.Sprint(f.Status)
		}
		if f.Kill != nil {
			killAt = fmt.Sprintf("%s (%s)", at(f.Kill.At.Sub(s.Start)), cell(f.Kill.Action))
		}
		if f.Cause == journal.CauseSentToDead {
			gap = secs(f.Gap.Seconds())
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", atMS(f.At), status, cell(f.Subject), f.Cause, killAt, gap, cell(f.RetriedOn), cell(f.Detail))
	}
	b.WriteString("\n")
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

// runningExited is "until / by" for a killed process: seen running until
// that long after the kill, seen exited by then.
func runningExited(k journal.Kill) string {
	exited := "?"
	if d := k.ToExited(); d >= 0 {
		exited = secs(d.Seconds())
	}
	return secs(k.ToDead().Seconds()) + " / " + exited
}

// atMS is a time since the start to the millisecond, for requests.
func atMS(d time.Duration) string { return fmt.Sprintf("+%.3fs", d.Seconds()) }

func pair(d Durations) string {
	if d.N() == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s", secs(d.Quantile(0.5)), secs(d.Max()))
}

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
