package world

import (
	"strings"
	"testing"
	"time"
)

// The oracles must catch a controller that keeps writing after it lost its
// lease: the partitioned leader's drift check restores its old
// configuration after the new leader pushed a newer one.
func TestOraclesCatchAGateThatNeverStepsDown(t *testing.T) {
	steps := []Step{
		{At: 10 * time.Second, Kind: FaultAPIPartition, Replica: LeaderReplica, For: 60 * time.Second},
		{At: 40 * time.Second, Kind: InputAddApp},
	}
	for _, tc := range []struct {
		name       string
		controller Controller
		wantCaught bool
	}{
		{"real manager", Manager, false},
		{"composed, correct gate", func(env ReplicaEnv) (Runner, error) { return &composed{env: env}, nil }, false},
		{"sticky gate", StickyGate, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, Config{Seed: 3, Steps: steps, Controller: tc.controller})
			t.Log(res.Summary())
			caught := false
			for _, v := range res.Violations {
				t.Log(v)
				if v.Oracle == "single-writer" && strings.Contains(v.Detail, "after epoch") {
					caught = true
				}
			}
			if caught != tc.wantCaught {
				t.Errorf("single-writer oracle fired: %v, want %v", caught, tc.wantCaught)
			}
			if !tc.wantCaught && res.Failed() {
				t.Errorf("correct controller failed: %v", res.Violations)
			}
		})
	}
}
