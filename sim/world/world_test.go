package world

import (
	"testing"
	"testing/synctest"
	"time"
)

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	var res *Result
	synctest.Test(t, func(t *testing.T) {
		var err error
		res, err = Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
	})
	return res
}

func TestFaultFreeRunConverges(t *testing.T) {
	start := time.Now()
	res := run(t, Config{Seed: 1})
	t.Logf("%s (wall %v, virtual %v)", res.Summary(), time.Since(start), res.Virtual)
	for _, v := range res.Violations {
		t.Error(v)
	}
	if res.FinalHash == "" || res.Traffic.Requests == 0 {
		t.Errorf("final %q, traffic %+v", res.FinalHash, res.Traffic)
	}
}

func TestScenarioSmoke(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []Step
	}{
		{"leader crash", []Step{{At: 20 * time.Second, Kind: FaultCrash, Replica: LeaderReplica}}},
		{"graceful stop", []Step{{At: 20 * time.Second, Kind: FaultStop, Replica: LeaderReplica}}},
		{"kong restart", []Step{{At: 20 * time.Second, Kind: FaultKongRestart, Kong: 0}}},
		{"scale", []Step{{At: 10 * time.Second, Kind: FaultScaleKong, N: 5}, {At: 20 * time.Second, Kind: FaultScaleKong, N: 0}, {At: 30 * time.Second, Kind: FaultScaleKong, N: 2}}},
		{"api outage", []Step{{At: 20 * time.Second, Kind: FaultAPIOutage, For: 30 * time.Second}}},
		{"pause", []Step{{At: 20 * time.Second, Kind: FaultPause, Replica: LeaderReplica, For: 20 * time.Second}, {At: 30 * time.Second, Kind: FaultKongRestart, Kong: 1}}},
		{"crash after write", []Step{{Kind: FaultCrashAfterWrite, N: 3}}},
		{"stale + drop + add", []Step{{At: 5 * time.Second, Kind: FaultStaleReads, Replica: 1, For: 30 * time.Second}, {At: 10 * time.Second, Kind: InputAddApp}, {At: 10 * time.Second, Kind: FaultDropWatches}}},
		{"kong faults", []Step{{At: 5 * time.Second, Kind: FaultKongStall, Kong: 0, For: 20 * time.Second}, {At: 5 * time.Second, Kind: FaultKongReject, Kong: 1, For: 20 * time.Second}, {At: 6 * time.Second, Kind: InputAddApp}, {At: 30 * time.Second, Kind: FaultKongPartition, Kong: 1, Replica: LeaderReplica, For: 20 * time.Second}, {At: 35 * time.Second, Kind: FaultKongRestart, Kong: 1}}},
		{"api errors", []Step{{At: 5 * time.Second, Kind: FaultAPIErrors, For: 40 * time.Second}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, Config{Seed: 1, Steps: tc.steps})
			t.Logf("%s failovers %v recoveries %v", res.Summary(), res.Failovers, res.Recoveries)
			for _, v := range res.Violations {
				t.Error(v)
			}
		})
	}
}
