package hatest

import (
	"strings"
	"testing"
	"time"

	kongsim "konductor.dev/sim/kong"
)

// The oracle must catch what it exists for, or the specifications that
// rely on it prove nothing.
func TestSingleWriterOracle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	w := func(s int, writer string, epoch int64) kongsim.AuditEntry {
		return kongsim.AuditEntry{Time: at(s), Writer: writer, Epoch: epoch}
	}
	for _, tc := range []struct {
		name   string
		audits [][]kongsim.AuditEntry
		want   string // substring of the first violation; "" for none
		terms  int
	}{
		{"one term", [][]kongsim.AuditEntry{{w(1, "a", 1), w(2, "a", 1)}, {w(1, "a", 1)}}, "", 1},
		{"clean handover", [][]kongsim.AuditEntry{{w(1, "a", 1), w(5, "b", 2)}, {w(2, "a", 1), w(6, "b", 2)}}, "", 2},
		{"hand edits ignored", [][]kongsim.AuditEntry{{w(1, "a", 1), w(2, "", 0), w(3, "b", 2)}}, "", 2},
		{"old term after new on another node", [][]kongsim.AuditEntry{{w(1, "a", 1), w(5, "b", 2)}, {w(6, "a", 1)}}, "writes interleave", 2},
		{"same instant", [][]kongsim.AuditEntry{{w(1, "a", 1), w(5, "b", 2)}, {w(5, "a", 1)}}, "writes interleave", 2},
		{"epoch backwards on a node", [][]kongsim.AuditEntry{{w(1, "a", 2), w(2, "b", 1)}}, "epoch went backwards", 2},
		{"one epoch, two writers", [][]kongsim.AuditEntry{{w(1, "a", 1)}, {w(2, "b", 1)}}, "two identities", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			terms, vs := singleWriterViolations(tc.audits)
			if len(terms) != tc.terms {
				t.Errorf("%d terms, want %d: %+v", len(terms), tc.terms, terms)
			}
			switch {
			case tc.want == "" && len(vs) > 0:
				t.Errorf("violations %q, want none", vs)
			case tc.want != "" && (len(vs) == 0 || !strings.Contains(vs[0], tc.want)):
				t.Errorf("violations %q, want one about %q", vs, tc.want)
			}
		})
	}
}
