package world

import (
	"slices"
	"testing"
	"time"
)

// A Kong reject window in which nothing is sent to the Kong does not end
// unexercised: its heal waits until a push arrives (the input change
// comes 3s after the planned end), so the faults-fired oracle holds.
func TestDemandDrivenFaultWaitsToFire(t *testing.T) {
	res := run(t, Config{Seed: 3, Controllers: 2, Kongs: 2, Steps: []Step{
		{At: 20 * time.Second, Kind: FaultKongReject, Kong: 0, For: 5 * time.Second},
		{At: 28 * time.Second, Kind: InputAddApp},
	}})
	for _, v := range res.Violations {
		t.Error(v)
	}
	if res.Fired[FaultKongReject] == 0 {
		t.Errorf("the reject never fired: %s", res.Summary())
	}
	if !slices.ContainsFunc(res.Trace, func(e Event) bool { return e.Kind == "heal-deferred" }) {
		t.Error("no heal-deferred event in the trace")
	}
}

// The new oracles are named in every result.
func TestNewOraclesAreReported(t *testing.T) {
	for _, o := range []string{OracleStatusSingleWriter, OracleStatusNotAhead, OracleIndependentPushes, OracleNoEarlyTakeover, OracleWriteVolume, OracleEmptyRefused} {
		if !slices.Contains(Oracles, o) {
			t.Errorf("oracle %s not in Oracles", o)
		}
	}
}
