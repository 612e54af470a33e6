package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"konductor.dev/chaos/journal"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("title: x\nmethod:\n- fault: leader-explode\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"check", bad}, &out, &errb); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if want := bad + ":3:10: method[0].fault: unknown fault kind \"leader-explode\""; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q lacks %q", errb.String(), want)
	}
	out.Reset()
	if code := Main([]string{"check", "../drills", "../drills/smoke"}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != "ok" {
		t.Errorf("shipped drills: exit %d, %s %s", code, out.String(), errb.String())
	}
}

func TestRunRefusesWithoutKubeconfig(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	var out, errb bytes.Buffer
	if code := Main([]string{"run", "../drills/smoke"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "no kubeconfig") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestReportRegenerates(t *testing.T) {
	dir := t.TempDir()
	jp := filepath.Join(dir, "journal.jsonl")
	j, err := journal.Create(jp)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	j.SetDrill("d")
	j.Add(journal.Record{T: t0, Kind: journal.KindDrillStart})
	j.Add(journal.Record{T: t0.Add(time.Second), Kind: journal.KindRequest, Status: 200})
	j.Add(journal.Record{T: t0.Add(2 * time.Second), Kind: journal.KindDrillEnd, Outcome: journal.OutcomeInterrupted, Detail: "signal"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"report", jp}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !strings.Contains(string(md), "| d | INTERRUPTED | 1 | 0 | 0 | 0 | 0 | 0 | 0 |") {
		t.Errorf("report.md: %v\n%s", err, md)
	}
}

func TestPoolMergesRuns(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var journals []string
	for run, outcome := range []string{journal.OutcomePassed, journal.OutcomeFailed} {
		jp := filepath.Join(dir, fmt.Sprintf("run-%d", run+1), "journal.jsonl")
		if err := os.MkdirAll(filepath.Dir(jp), 0o755); err != nil {
			t.Fatal(err)
		}
		j, err := journal.Create(jp)
		if err != nil {
			t.Fatal(err)
		}
		j.SetDrill("d")
		j.Add(journal.Record{T: t0, Kind: journal.KindDrillStart})
		for i := range run + 2 {
			j.Add(journal.Record{T: t0.Add(time.Duration(i) * time.Second), Kind: journal.KindRequest, Status: 200})
		}
		j.Add(journal.Record{T: t0.Add(5 * time.Second), Kind: journal.KindDrillEnd, Outcome: outcome, Detail: "why"})
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		journals = append(journals, jp)
	}
	out := filepath.Join(dir, "pooled.md")
	var stdout, errb bytes.Buffer
	if code := Main(append([]string{"pool", "-out", out}, journals...), &stdout, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	md, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(md), "| d | 1/2 | 2–3 | 0 |") || !strings.Contains(string(md), "run 2 failed: why") {
		t.Errorf("pooled.md: %v\n%s", err, md)
	}
	if code := Main([]string{"pool"}, &stdout, &errb); code != 2 || !strings.Contains(errb.String(), "journal files") {
		t.Errorf("pool without journals: exit %d, stderr %q", code, errb.String())
	}
}
