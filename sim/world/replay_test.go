package world

import (
	"testing"
	"time"
)

// A seed replays its trace, Kong write times included: the controllers'
// retry and drift-check jitter comes from the seed. The plan makes jitter
// matter: a Kong restart healed by a jittered drift check, a rejection
// retried with jittered backoff, and a leader crash.
func TestSameSeedReplaysWriteTimes(t *testing.T) {
	cfg := func() Config {
		return Config{Seed: 7, Controllers: 2, Kongs: 2, Steps: []Step{
			{At: 10 * time.Second, Kind: FaultKongReject, Kong: 1, For: 15 * time.Second},
			{At: 11 * time.Second, Kind: InputAddApp},
			{At: 20 * time.Second, Kind: FaultKongRestart, Kong: 0},
			{At: 40 * time.Second, Kind: FaultCrash, Replica: LeaderReplica, For: 5 * time.Second},
		}}
	}
	first := run(t, cfg())
	for _, v := range first.Violations {
		t.Error(v)
	}
	writes := 0
	for _, e := range first.Trace {
		if e.Kind == "kong-write" {
			writes++
			if e.At <= 0 {
				t.Fatalf("Kong write without its virtual time: %+v", e)
			}
		}
	}
	if writes == 0 {
		t.Fatal("no Kong writes in the trace")
	}
	for range 3 {
		again := run(t, cfg())
		if again.TraceHash == first.TraceHash {
			continue
		}
		for i := range min(len(first.Trace), len(again.Trace)) {
			if first.Trace[i] != again.Trace[i] {
				t.Fatalf("trace %s then %s; first difference at event %d: %+v vs %+v", first.TraceHash, again.TraceHash, i, first.Trace[i], again.Trace[i])
			}
		}
		t.Fatalf("trace %s then %s: %d vs %d events", first.TraceHash, again.TraceHash, len(first.Trace), len(again.Trace))
	}
}
