package report

import (
	"strconv"
	"time"

	"konductor.dev/chaos/journal"
)

// Timeline is a drill's course second by second, for the SVG.
type Timeline struct {
	Length time.Duration
	// OK, Non2xx and Transport count requests per second since the start.
	OK, Non2xx, Transport []int
	Faults                []Marker
	// Holders are the lock holders over time ("" when released).
	Holders []Band
	// Kongs are the configuration hashes each Kong reported over time.
	Kongs []Lane
}

// Marker is a point in time with a label.
type Marker struct {
	At       time.Duration
	Label    string
	Verified bool
}

// Band is a value held from From to To.
type Band struct {
	From, To time.Duration
	Value    string
}

// Lane is one subject's bands.
type Lane struct {
	Subject string
	Bands   []Band
}

func buildTimeline(start, end time.Time, recs []journal.Record) Timeline {
	tl := Timeline{Length: end.Sub(start)}
	secs := int(tl.Length/time.Second) + 1
	tl.OK, tl.Non2xx, tl.Transport = make([]int, secs), make([]int, secs), make([]int, secs)
	lanes := map[string]int{}
	extend := func(bands []Band, at time.Duration, v string) []Band {
		if n := len(bands); n > 0 {
			if bands[n-1].Value == v {
				return bands
			}
			bands[n-1].To = at
		}
		return append(bands, Band{From: at, To: tl.Length, Value: v})
	}
	verified := map[int]bool{}
	faultAt := map[string]int{}
	for _, r := range recs {
		at := r.T.Sub(start)
		sec := min(max(0, int(at/time.Second)), secs-1)
		switch r.Kind {
		case journal.KindRequest:
			switch r.ErrClass {
			case journal.ErrNone:
				tl.OK[sec]++
			case journal.ErrNon2xx:
				tl.Non2xx[sec]++
			default:
				tl.Transport[sec]++
			}
		case journal.KindFaultStart:
			faultAt[r.Action+"\x00"+r.Fault+"\x00"+strconv.Itoa(r.Rep)] = len(tl.Faults)
			tl.Faults = append(tl.Faults, Marker{At: at, Label: r.Fault})
		case journal.KindFaultEnd:
			if i, ok := faultAt[r.Action+"\x00"+r.Fault+"\x00"+strconv.Itoa(r.Rep)]; ok && r.Verified != nil && *r.Verified {
				verified[i] = true
			}
		case journal.KindEvent:
			switch r.Event {
			case journal.EventLockHolder:
				tl.Holders = extend(tl.Holders, at, r.Value)
			case journal.EventConfigHash:
				i, ok := lanes[r.Subject]
				if !ok {
					i = len(tl.Kongs)
					lanes[r.Subject] = i
					tl.Kongs = append(tl.Kongs, Lane{Subject: r.Subject})
				}
				tl.Kongs[i].Bands = extend(tl.Kongs[i].Bands, at, r.Value)
			}
		}
	}
	for i := range tl.Faults {
		tl.Faults[i].Verified = verified[i]
	}
	return tl
}
