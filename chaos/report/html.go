package report

import (
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"math"
	"strings"
	"time"

	"konductor.dev/chaos/journal"
)

// HTML writes the report as one self-contained page: the Markdown figures
// as tables and, per drill, an inline SVG timeline.
func HTML(w io.Writer, sums []*Summary) error {
	b := &strings.Builder{}
	b.WriteString(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>Drill report</title><style>
body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}
td.n{text-align:right}.passed{color:#1a7f37}.failed,.aborted,.interrupted{color:#cf222e}
</style></head><body><h1>Drill report</h1>
`)
	b.WriteString("<table><tr><th>drill</th><th>outcome</th><th>requests</th><th>non-2xx</th><th>transport errors</th><th>in flight at a kill</th><th>sent to an endpoint already dead</th><th>other</th><th>connect failures retried</th><th>faults fired/verified</th><th>failover p50 / p99 / max</th><th>recovery p50 / p99 / max</th></tr>\n")
	for _, s := range sums {
		fmt.Fprintf(b, "<tr><td>%s</td><td class=%q>%s</td><td class=n>%d</td><td class=n>%d</td><td class=n>%d</td><td class=n>%d</td><td class=n>%d</td><td class=n>%d</td><td class=n>%s</td><td class=n>%d/%d</td><td>%s</td><td>%s</td></tr>\n",
			esc(s.Title), s.Outcome, outcomeWord(s.Outcome), s.Requests, s.Non2xx, s.Transport,
			s.ByCause[journal.CauseInFlight], s.ByCause[journal.CauseSentToDead], s.ByCause[journal.CauseOther], esc(retriedCell(s)), len(s.Faults), s.Verified(), triple(s.Failover), triple(s.Recovery))
	}
	b.WriteString("</table>\n")
	for _, s := range sums {
		fmt.Fprintf(b, "<h2>%s</h2><p class=%q><b>%s</b> %s</p>\n", esc(s.Title), s.Outcome, outcomeWord(s.Outcome), esc(s.Why))
		b.WriteString(SVG(s))
		b.WriteString("\n")
		if len(s.Probes) > 0 {
			b.WriteString("<table><tr><th>at</th><th>probe</th><th>phase</th><th>verdict</th><th>seconds</th><th>detail</th></tr>\n")
			for _, p := range s.Probes {
				fmt.Fprintf(b, "<tr><td class=n>%s</td><td>%s</td><td>%s</td><td>%s</td><td class=n>%s</td><td>%s</td></tr>\n",
					at(p.At), esc(p.Name), esc(p.Phase), probeVerdict(p), secs(p.Seconds), esc(p.Detail))
			}
			b.WriteString("</table>\n")
		}
		htmlFailures(b, s)
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string { return html.EscapeString(s) }

// htmlFailures lists the Kong kills and the transport errors by cause (and
// the connect failures retried), each request with its send time.
func htmlFailures(b *strings.Builder, s *Summary) {
	if len(s.Kills) > 0 {
		b.WriteString("<h3>Kong kills</h3><table><tr><th>at</th><th>endpoint</th><th>pod</th><th>process seen running / exited (after the kill)</th><th>pod seen not ready after</th><th>out of rotation after</th><th>why</th></tr>\n")
		for i, k := range s.Kills {
			if i == maxListed {
				break
			}
			after := func(d time.Duration) string {
				if d < 0 {
					return "never"
				}
				return secs(d.Seconds())
			}
			fmt.Fprintf(b, "<tr><td class=n>%s</td><td>%s</td><td>%s</td><td class=n>%s</td><td class=n>%s</td><td class=n>%s</td><td>%s</td></tr>\n",
				atMS(k.At.Sub(s.Start)), esc(k.Endpoint), esc(k.Pod), runningExited(k), after(k.ToPodNotReady()), after(k.ToLeave()), esc(k.Why))
		}
		b.WriteString("</table>\n")
	}
	byCause := map[string][]Failure{}
	for _, f := range s.Failures {
		if f.Class == journal.ErrTransport {
			byCause[f.Cause] = append(byCause[f.Cause], f)
		}
	}
	table := func(title string, fs []Failure) {
		if len(fs) == 0 {
			return
		}
		fmt.Fprintf(b, "<h3>%s (%d)</h3><table><tr><th>sent at</th><th>Kong</th><th>kill at</th><th>sent after the kill</th><th>retried on</th><th>detail</th></tr>\n", esc(title), len(fs))
		for i, f := range fs {
			if i == maxListed {
				fmt.Fprintf(b, "<tr><td colspan=6>… %d more (all are in the journal)</td></tr>\n", len(fs)-maxListed)
				break
			}
			killAt, gap := "", ""
			if f.Kill != nil {
				killAt = at(f.Kill.At.Sub(s.Start))
			}
			if f.Cause == journal.CauseSentToDead {
				gap = secs(f.Gap.Seconds())
			}
			fmt.Fprintf(b, "<tr><td class=n>%s</td><td>%s</td><td class=n>%s</td><td class=n>%s</td><td>%s</td><td>%s</td></tr>\n",
				atMS(f.At), esc(f.Subject), killAt, gap, esc(f.RetriedOn), esc(f.Detail))
		}
		b.WriteString("</table>\n")
	}
	for _, c := range journal.Causes {
		table("Transport errors: "+c, byCause[c])
	}
	table("Connect failures retried on another endpoint", s.RetriedFailures)
}

// Layout of the timeline.
const (
	svgWidth   = 1000
	marginL    = 150
	marginR    = 20
	chartTop   = 30
	chartH     = 160
	laneH      = 18
	laneGap    = 4
	axisH      = 24
	plotW      = svgWidth - marginL - marginR
	legendRowH = 18
)

// SVG draws a drill's timeline: requests per second (2xx, non-2xx,
// transport errors), fault markers, lock holder bands and each Kong's
// configuration hash over time.
func SVG(s *Summary) string {
	tl := s.Timeline
	lanes := 1 + len(tl.Kongs)
	height := chartTop + chartH + axisH + lanes*(laneH+laneGap) + legendRowH + 10
	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, svgWidth, height, svgWidth, height)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`, svgWidth, height)
	fmt.Fprintf(b, `<text x="%d" y="18" font-size="13" font-weight="bold">%s</text>`, marginL, esc(s.Title))

	length := max(tl.Length.Seconds(), 1)
	x := func(d time.Duration) float64 { return marginL + d.Seconds()/length*plotW }
	secs := len(tl.OK)
	peak := 1
	for i := range secs {
		peak = max(peak, tl.OK[i]+tl.Non2xx[i]+tl.Transport[i])
	}
	yScale := float64(chartH) / float64(niceCeil(peak))
	barW := math.Max(plotW/float64(max(secs, 1))-0.5, 0.5)
	base := float64(chartTop + chartH)
	// Axes and gridlines.
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="#333"/>`, marginL, chartTop, marginL, base)
	for _, frac := range []float64{0, 0.5, 1} {
		v := frac * float64(niceCeil(peak))
		y := base - v*yScale
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f/s</text>`,
			marginL, y, marginL+plotW, y, marginL-4, y+4, v)
	}
	// Request bars: 2xx at the bottom, then non-2xx, then transport errors.
	for i := range secs {
		x0 := x(time.Duration(i) * time.Second)
		y := base
		for _, part := range []struct {
			n     int
			color string
		}{{tl.OK[i], "#8fb8de"}, {tl.Non2xx[i], "#f0a030"}, {tl.Transport[i], "#d62728"}} {
			if part.n == 0 {
				continue
			}
			h := float64(part.n) * yScale
			// An error bar is at least 2px high, so single errors show.
			if part.color != "#8fb8de" {
				h = math.Max(h, 2)
			}
			y -= h
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x0, y, barW, h, part.color)
		}
	}
	// Time axis.
	step := niceStep(length)
	for t := 0.0; t <= length; t += step {
		xx := marginL + t/length*plotW
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/><text x="%.1f" y="%.1f" text-anchor="middle">%.0fs</text>`,
			xx, base, xx, base+4, xx, base+15, t)
	}
	// Lanes: lock holder, then one per Kong.
	laneY := int(base) + axisH
	drawLane := func(label string, bands []Band) {
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, marginL-4, laneY+13, esc(shorten(label, 24)))
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#f4f4f4"/>`, marginL, laneY, plotW, laneH)
		for _, band := range bands {
			if band.Value == "" {
				continue
			}
			x0, x1 := x(band.From), x(band.To)
			fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="white" stroke-width="0.5"><title>%s</title></rect>`,
				x0, laneY, math.Max(x1-x0, 1), laneH, colorOf(band.Value), esc(band.Value))
			if x1-x0 > 40 {
				fmt.Fprintf(b, `<text x="%.1f" y="%d" fill="white">%s</text>`, x0+3, laneY+13, esc(shorten(band.Value, int((x1-x0)/6))))
			}
		}
		laneY += laneH + laneGap
	}
	drawLane("lock holder", tl.Holders)
	for _, k := range tl.Kongs {
		drawLane("config "+shortPod(k.Subject), k.Bands)
	}
	// Fault markers over everything.
	for i, f := range tl.Faults {
		color := "#6a1b9a"
		if !f.Verified {
			color = "#d62728"
		}
		xx := x(f.At)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4,2"><title>%s</title></line>`,
			xx, chartTop, xx, laneY-laneGap, color, esc(f.Label))
		fmt.Fprintf(b, `<path d="M%.1f %d l-4 -7 h8 z" fill="%s"/>`, xx, chartTop, color)
		if len(tl.Faults) <= 12 { // labels stay legible
			// Alternate heights so that close faults' labels do not overlap.
			fmt.Fprintf(b, `<text x="%.1f" y="%d" fill="%s" font-size="10">%s</text>`, xx+5, chartTop+10+12*(i%2), color, esc(f.Label))
		}
	}
	// Legend.
	ly := laneY + 12
	lx := marginL
	for _, l := range []struct{ color, text string }{{"#8fb8de", "2xx/s"}, {"#f0a030", "non-2xx/s"}, {"#d62728", "transport errors/s"}, {"#6a1b9a", "fault (verified)"}, {"#d62728", "fault (NOT verified)"}} {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`, lx, ly-9, l.color, lx+14, ly, l.text)
		lx += 30 + 7*len(l.text)
	}
	b.WriteString("</svg>")
	return b.String()
}

func niceCeil(n int) int { return smallestNice(n) }

// smallestNice is the least of 1, 2, 5, 10, 20, 50, … at or above n.
func smallestNice(n int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}

// niceStep is a tick spacing giving 5–10 ticks over length seconds.
func niceStep(length float64) float64 {
	for p := 1.0; ; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if length/(m*p) <= 10 {
				return m * p
			}
		}
	}
}

// shortPod keeps what tells pods of one workload apart: the last part of
// the name ("kong-84cd595d79-lc9rl" → "kong …lc9rl").
func shortPod(name string) string {
	i := strings.LastIndexByte(name, '-')
	j := strings.IndexByte(name, '-')
	if i <= 0 || i == j {
		return name
	}
	return name[:j] + " …" + name[i+1:]
}

func shorten(s string, n int) string {
	if n < 2 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// colorOf gives each value a stable, distinct-looking colour.
func colorOf(v string) string {
	h := fnv.New32a()
	h.Write([]byte(v))
	return fmt.Sprintf("hsl(%d,55%%,45%%)", h.Sum32()%360)
}
