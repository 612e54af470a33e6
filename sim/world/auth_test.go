package world

import (
	"strings"
	"testing"
	"time"
)

// forgetsPluginsAfterFailover is the real manager, except that every
// replica incarnation but the first one started reads no Kong custom
// resources: after the first failover the leader pushes app 0 without its
// key-auth plugin.
func forgetsPluginsAfterFailover(env ReplicaEnv) (Runner, error) {
	if env.Identity != "konductor-0-1" {
		env.Dynamic = nil
	}
	return Manager(env)
}

// The auth oracle passes the real manager through a leader crash and Kong
// restarts, and catches a controller that drops the plugin after a
// failover, with and without a database.
func TestAuthOracle(t *testing.T) {
	steps := []Step{
		{At: 20 * time.Second, Kind: FaultCrash, Replica: LeaderReplica, For: 10 * time.Second},
		{At: 40 * time.Second, Kind: FaultKongRestart, Kong: 0},
	}
	for _, tc := range []struct {
		name       string
		database   bool
		controller Controller
		wantCaught bool
	}{
		{"real manager, DB-less", false, Manager, false},
		{"real manager, database", true, Manager, false},
		{"plugin forgotten, DB-less", false, forgetsPluginsAfterFailover, true},
		{"plugin forgotten, database", true, forgetsPluginsAfterFailover, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, Config{Seed: 1, Controllers: 2, Kongs: 2, KeyAuth: true, Database: tc.database, Steps: steps, Controller: tc.controller})
			t.Log(res.Summary())
			caught := false
			for _, v := range res.Violations {
				t.Log(v)
				if v.Oracle == "auth" && strings.Contains(v.Detail, "anonymous request") {
					caught = true
				}
			}
			if caught != tc.wantCaught {
				t.Errorf("auth oracle fired: %v, want %v", caught, tc.wantCaught)
			}
			if !tc.wantCaught && res.Failed() {
				t.Errorf("correct controller failed: %v", res.Violations)
			}
		})
	}
}
