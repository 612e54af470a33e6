package journal

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	j := NewWriter(&buf, nil)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j.SetClock(func() time.Time { return t0 })
	j.SetDrill("d1")
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.Add(Record{Kind: KindRequest, Status: 200 + i%2, LatencyMS: 1.5})
		}()
	}
	wg.Wait()
	j.Add(Record{Kind: KindFaultEnd, Fault: "kong-restart", Verified: Bool(false), Detail: "no restart"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 101 || j.Len() != 101 {
		t.Fatalf("%d records read, %d written, want 101", len(recs), j.Len())
	}
	last := recs[100]
	if last.Drill != "d1" || !last.T.Equal(t0) || last.Verified == nil || *last.Verified || last.Fault != "kong-restart" {
		t.Errorf("last record %+v", last)
	}
	if recs[0].Kind != KindRequest || recs[0].LatencyMS != 1.5 {
		t.Errorf("first record %+v", recs[0])
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	if _, err := Read(bytes.NewBufferString("{\"kind\":\"request\"}\nnot json\n{\"kind\":\"request\"}\n")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestReadIgnoresATruncatedLastLine(t *testing.T) {
	recs, err := Read(bytes.NewBufferString("{\"kind\":\"request\"}\n{\"kind\":\"requ"))
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
}
