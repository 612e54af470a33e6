package cli

import (
	"bytes"
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
