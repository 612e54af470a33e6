// Package scenarios names the simulator's fault scenarios and runs them:
// leader crash, graceful rollout, Kong restart, Kong scaling, API-server
// outage, the random nemesis and the Sieve-style generated plans. The
// scenarios_test.go specs and cmd/konductor-sim both use it.
//
// The specs are table-driven testing specs rather than Ginkgo: every world
// must run inside testing/synctest.Test, which needs the *testing.T of a
// plain test (GinkgoT() is not one), and a Ginkgo spec cannot open a
// synctest bubble around itself.
package scenarios

import (
	"time"

	"konductor.dev/sim/world"
)

// Scenario is one named world configuration.
type Scenario struct {
	Name string
	// About says what the scenario drills, in a sentence.
	About  string
	Config func(seed uint64) world.Config
}

const s = time.Second

// Named are the hand-written scenarios, in the order of the issue.
var Named = []Scenario{
	{"leader-crash", "the leader dies without releasing the lock; a standby takes over after the lease", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Steps: []world.Step{
			{At: 20 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 10 * s},
			{At: 60 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 10 * s},
		}}
	}},
	{"graceful-rollout", "every replica is stopped and restarted in turn, leader included, as a rolling update does", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Steps: []world.Step{
			{At: 20 * s, Kind: world.FaultStop, Replica: 0, For: 5 * s},
			{At: 30 * s, Kind: world.FaultStop, Replica: 1, For: 5 * s},
			{At: 40 * s, Kind: world.FaultStop, Replica: 2, For: 5 * s},
		}}
	}},
	{"kong-restart", "Kong pods restart with an empty configuration, one at a time; an Ingress is edited in between", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 2, Kongs: 3, Steps: []world.Step{
			{At: 20 * s, Kind: world.FaultKongRestart, Kong: 0},
			{At: 25 * s, Kind: world.InputEditApp},
			{At: 30 * s, Kind: world.FaultKongRestart, Kong: 1},
			{At: 31 * s, Kind: world.FaultKongRestart, Kong: 2},
		}}
	}},
	{"scale-kong", "Kong is scaled 1 → 5 → 0 → 2", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 2, Kongs: 1, Steps: []world.Step{
			{At: 15 * s, Kind: world.FaultScaleKong, N: 5},
			{At: 30 * s, Kind: world.FaultScaleKong, N: 0},
			{At: 45 * s, Kind: world.FaultScaleKong, N: 2},
		}}
	}},
	{"api-outage", "the API server is unreachable for 40s, then answers slowly and with errors", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 2, Kongs: 2, Steps: []world.Step{
			{At: 20 * s, Kind: world.FaultAPIOutage, For: 40 * s},
			{At: 30 * s, Kind: world.FaultKongRestart, Kong: 0},
			{At: 60 * s, Kind: world.FaultAPIErrors, For: 30 * s},
		}}
	}},
	{"kong-misbehaves", "a Kong stalls, another rejects the configuration, one is cut off from the leader", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 2, Kongs: 3, Steps: []world.Step{
			{At: 10 * s, Kind: world.FaultKongStall, Kong: 0, For: 20 * s},
			{At: 10 * s, Kind: world.FaultKongReject, Kong: 1, For: 20 * s},
			{At: 12 * s, Kind: world.InputAddApp},
			{At: 35 * s, Kind: world.FaultKongPartition, Kong: 2, Replica: world.LeaderReplica, For: 20 * s},
		}}
	}},
	{"key-auth-failover", "app 0 is behind key-auth; the leader crashes and Kong restarts, and anonymous requests stay refused while the key stays accepted", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 3, Kongs: 2, KeyAuth: true, Steps: keyAuthSteps()}
	}},
	{"key-auth-failover-db", "key-auth-failover with Kong on a database: plugins, the consumer and its key synced by diff", func(seed uint64) world.Config {
		return world.Config{Seed: seed, Controllers: 3, Kongs: 2, KeyAuth: true, Database: true, Steps: keyAuthSteps()}
	}},
}

// keyAuthSteps crash the leader, restart a Kong, then crash the new leader
// while the other Kong restarts.
func keyAuthSteps() []world.Step {
	return []world.Step{
		{At: 20 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 10 * s},
		{At: 40 * s, Kind: world.FaultKongRestart, Kong: 0},
		{At: 60 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 10 * s},
		{At: 61 * s, Kind: world.FaultKongRestart, Kong: 1},
	}
}

// FailoverStorm loses the leader 20 times: crashes and graceful stops in
// turn, 25s apart. It measures failover throughput.
func FailoverStorm(seed uint64) world.Config {
	var steps []world.Step
	for i := range 20 {
		kind := world.FaultCrash
		if i%2 == 1 {
			kind = world.FaultStop
		}
		steps = append(steps, world.Step{At: time.Duration(20+25*i) * s, Kind: kind, Replica: world.LeaderReplica, For: 5 * s})
	}
	return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Steps: steps}
}

func init() {
	Named = append(Named,
		Scenario{"failover-storm", "the leader is lost 20 times, crashed and stopped in turn, 25s apart", FailoverStorm},
		Scenario{"leader-sigkill", "the leader's process is killed 10 times with a change made at each kill; the kubelet reports it and a standby takes over early", LeaderKills},
		Scenario{"no-early-takeover", "the leader is cut off with its node (Pod Unknown), its kubelet reports late, its Pod is force-deleted while it runs, its lock is deleted: only the lease may end those terms", func(seed uint64) world.Config {
			return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Steps: []world.Step{
				{At: 20 * s, Kind: world.FaultNodePartition, Replica: world.LeaderReplica, For: 30 * s},
				{At: 80 * s, Kind: world.FaultKubeletLate, Replica: world.LeaderReplica, For: 25 * s},
				{At: 140 * s, Kind: world.FaultKubeletLate, Replica: world.LeaderReplica, For: 3 * s},
				{At: 180 * s, Kind: world.FaultForceDelete, Replica: world.LeaderReplica, For: 10 * s},
				{At: 181 * s, Kind: world.InputAddApp},
				// The lock deleted under its live holder: the others must
				// still wait for its lease.
				{At: 230 * s, Kind: world.FaultDeleteLock},
			}}
		}},
		Scenario{"slow-apply", "Kong applies writes 4s after receiving them (within the election's 5s margin), or holds them, while the leader is cut off from the API server: no write of an ended term may land after the next term began", SlowApply},
		Scenario{"stop-during-push", "the leader is stopped gracefully while its push to a Kong that holds writes is on the wire: the lock is released only after that push landed, or was abandoned at its deadline", StopDuringPush},
		Scenario{"database-empty", "Kong with a database; every Ingress is deleted for a while and the leader crashes meanwhile (the empty desired state must delete nothing), then the leader is cut off from both Kongs across a change (its retries must back off)", func(seed uint64) world.Config {
			return world.Config{Seed: seed, Controllers: 2, Kongs: 2, Database: true, Steps: []world.Step{
				{At: 20 * s, Kind: world.InputRemoveApps, For: 15 * s},
				{At: 25 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 5 * s},
				{At: 50 * s, Kind: world.FaultKongPartition, Kong: 0, Replica: world.LeaderReplica, For: 20 * s},
				{At: 50 * s, Kind: world.FaultKongPartition, Kong: 1, Replica: world.LeaderReplica, For: 20 * s},
				{At: 51 * s, Kind: world.InputAddApp},
			}}
		}},
		Scenario{"path-routing", "an Ingress routes one host's paths to three apps (Prefix /, Prefix /foo, Exact /bar); the leader crashes and a Kong restarts: every probe of a path at, below or beside them reaches the app the Ingress rules pick", func(seed uint64) world.Config {
			return world.Config{Seed: seed, Controllers: 2, Kongs: 2, PathRouting: true, Steps: []world.Step{
				{At: 20 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 5 * s},
				{At: 30 * s, Kind: world.FaultKongRestart, Kong: 1},
				{At: 31 * s, Kind: world.InputAddApp},
			}}
		}},
		Scenario{"changes-during-translation", "every log record takes 300ms to write (a log pipe under backpressure; the manager logs each new configuration while translating), and changes arrive while a translation is under way: none may be lost", ChangesDuringTranslation},
		Scenario{"database-read-errors", "Kong with a database whose reads fail (a read-only replica down) while writes go through, across a change and a leader crash: nothing is written on a failed listing", func(seed uint64) world.Config {
			return world.Config{Seed: seed, Controllers: 2, Kongs: 2, Database: true, Steps: []world.Step{
				{At: 20 * s, Kind: world.FaultKongReadErrors, Kong: 0, For: 15 * s},
				{At: 20 * s, Kind: world.FaultKongReadErrors, Kong: 1, For: 15 * s},
				{At: 21 * s, Kind: world.InputAddApp},
				{At: 27 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 5 * s},
			}}
		}},
		Scenario{"database-write-outlives-term", "Kong with a database holds writes while the leader, cut off from the API server, loses its term: its entity writes must be abandoned by the end of its term, before the next leader's term", func(seed uint64) world.Config {
			return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Database: true, Steps: []world.Step{
				{At: 20 * s, Kind: world.FaultKongSlowWrites, Kong: 0, For: 20 * s},
				{At: 20 * s, Kind: world.FaultKongSlowWrites, Kong: 1, For: 20 * s},
				{At: 20*s + 500*time.Millisecond, Kind: world.InputAddApp},
				{At: 21 * s, Kind: world.FaultAPIPartition, Replica: world.LeaderReplica, For: 25 * s},
			}}
		}},
		Scenario{"takeover-after-outage", "the standbys are cut off from the API server for 30s, so their reflectors back off; right after it heals an app is added and the leader stops (handing over at once): the new leader must not push from caches that still lack the app", func(seed uint64) world.Config {
			return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Steps: []world.Step{
				// Replicas 1 and 2 are cut off; a leader among them loses
				// its term to replica 0, so replica 0 leads at the heal.
				{At: 10 * s, Kind: world.FaultAPIPartition, Replica: 1, For: 30 * s},
				{At: 10 * s, Kind: world.FaultAPIPartition, Replica: 2, For: 30 * s},
				{At: 41 * s, Kind: world.InputAddApp},
				{At: 42 * s, Kind: world.FaultStop, Replica: world.LeaderReplica, For: 10 * s},
			}}
		}},
		Scenario{"leader-sigkill-db", "leader-sigkill with Kong on a database: each change made at a kill reaches the database through the new leader's takeover", func(seed uint64) world.Config {
			c := LeaderKills(seed)
			c.Controllers, c.Kongs, c.Database, c.Apps, c.AdminLatency = 3, 2, true, dbScenarioApps, dbAdminLatency
			return c
		}},
		Scenario{"graceful-handover-db", "the leader is stopped gracefully 10 times with Kong on a database, a change made at each stop", GracefulHandoversDB},
		Scenario{"database-mode", "Kong with a shared database, configured through one Admin API by the leader: leader crash, Kong restart, new app", func(seed uint64) world.Config {
			return world.Config{Seed: seed, Controllers: 2, Kongs: 2, Database: true, Steps: []world.Step{
				{At: 20 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 5 * s},
				{At: 30 * s, Kind: world.InputAddApp},
				{At: 40 * s, Kind: world.FaultKongRestart, Kong: 1},
				{At: 50 * s, Kind: world.FaultStop, Replica: world.LeaderReplica, For: 5 * s},
			}}
		}},
	)
}

// StopDuringPush stops the leader gracefully twice while its push to a
// Kong that holds writes is on the wire: once Kong answers before the
// push's deadline (the push lands, then the lock may go), once it outlasts
// it (the push is abandoned at the end of the term, then the lock may go).
// In between, a change made while another Kong holds writes must reach the
// rest at once (independent pushes).
func StopDuringPush(seed uint64) world.Config {
	return world.Config{Seed: seed, Controllers: 3, Kongs: 3, Steps: []world.Step{
		{At: 20 * s, Kind: world.FaultKongSlowWrites, Kong: 0, For: 4 * s},
		{At: 20*s + 500*time.Millisecond, Kind: world.InputAddApp},
		{At: 21*s + 500*time.Millisecond, Kind: world.FaultStop, Replica: world.LeaderReplica, For: 5 * s},
		{At: 50 * s, Kind: world.FaultKongSlowWrites, Kong: 1, For: 8 * s},
		{At: 50*s + 500*time.Millisecond, Kind: world.InputAddApp},
		{At: 80 * s, Kind: world.FaultKongSlowWrites, Kong: 2, For: 30 * s},
		{At: 80*s + 500*time.Millisecond, Kind: world.InputAddApp},
		{At: 81*s + 500*time.Millisecond, Kind: world.FaultStop, Replica: world.LeaderReplica, For: 5 * s},
	}}
}

// SlowApply cuts the leader off from the API server while a Kong applies
// each write 4s after receiving it, then restarts that Kong: a leader
// whose term already ended must not push to it, one whose term still runs
// (up to the renew deadline after its last renewal) may, and the margin
// to the lease keeps that write before the next term. The second time the
// leader is cut off right after winning its first term, before any
// renewal. The third time the restarted Kong holds writes until after the
// next term began: the cut-off leader's push must be abandoned at the end
// of its term.
func SlowApply(seed uint64) world.Config {
	return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Steps: []world.Step{
		{At: 20 * s, Kind: world.FaultKongSlowApply, Kong: 0, For: 30 * s},
		{At: 20 * s, Kind: world.FaultAPIPartition, Replica: world.LeaderReplica, For: 25 * s},
		{At: 31*s + 500*time.Millisecond, Kind: world.FaultKongRestart, Kong: 0},
		{At: 80 * s, Kind: world.FaultKongSlowApply, Kong: 1, For: 30 * s},
		{At: 80 * s, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 5 * s},
		{At: 81*s + 500*time.Millisecond, Kind: world.FaultAPIPartition, Replica: world.LeaderReplica, For: 25 * s},
		{At: 93 * s, Kind: world.FaultKongRestart, Kong: 1},
		// A push sent near the end of a cut-off leader's term to a Kong
		// that holds it past the next term's start: its deadline must
		// end it at the term's end.
		{At: 140 * s, Kind: world.FaultAPIPartition, Replica: world.LeaderReplica, For: 25 * s},
		{At: 147 * s, Kind: world.FaultKongSlowWrites, Kong: 0, For: 9 * s},
		{At: 147 * s, Kind: world.FaultKongRestart, Kong: 0},
	}}
}

// ChangesDuringTranslation makes every controller log record take 300ms,
// so a translation (which logs its new configuration between reading the
// snapshot and handing the result to the pusher) takes that long, and
// makes changes in pairs: the second of each pair arrives while the first
// one's translation is under way. The last pair's second change has no
// later change to carry it: if it is dropped, the end state lacks it.
func ChangesDuringTranslation(seed uint64) world.Config {
	var steps []world.Step
	// The first change's translation starts after the default
	// --sync-debounce (100ms) and logs until 300ms later.
	for i, after := range []time.Duration{150 * time.Millisecond, 250 * time.Millisecond, 350 * time.Millisecond} {
		at := time.Duration(20+15*i) * s
		steps = append(steps,
			world.Step{At: at, Kind: world.InputAddApp},
			world.Step{At: at + after, Kind: world.InputAddApp})
	}
	return world.Config{Seed: seed, Controllers: 2, Kongs: 2, LogDelay: 300 * time.Millisecond, Steps: steps}
}

// LeaderKills kills the leader's process 10 times, 25s apart, each time
// with an input change at the same instant: the kubelet stays alive and
// reports the container terminated, so a standby takes over without
// waiting for the lease, and the change reaches every Kong.
func LeaderKills(seed uint64) world.Config {
	var steps []world.Step
	for i := range 10 {
		at := time.Duration(20+25*i) * s
		steps = append(steps,
			world.Step{At: at, Kind: world.FaultCrash, Replica: world.LeaderReplica, For: 5 * s},
			world.Step{At: at, Kind: world.InputAddApp})
	}
	return world.Config{Seed: seed, Controllers: 3, Kongs: 3, Steps: steps}
}

// GracefulHandoversDB stops the leader gracefully 10 times, 25s apart, with
// Kong on a database (60 apps, see dbAdminLatency) and an input change at
// each stop: the stopping leader
// drains and releases the lock, a standby takes over at once, and the
// change reaches every Kong.
func GracefulHandoversDB(seed uint64) world.Config {
	var steps []world.Step
	for i := range 10 {
		at := time.Duration(20+25*i) * s
		steps = append(steps,
			world.Step{At: at, Kind: world.FaultStop, Replica: world.LeaderReplica, For: 5 * s},
			world.Step{At: at, Kind: world.InputAddApp})
	}
	return world.Config{Seed: seed, Controllers: 3, Kongs: 2, Database: true, Apps: dbScenarioApps, AdminLatency: dbAdminLatency, Steps: steps}
}

// The DB-mode handover scenarios run 60 apps (240 managed entities, 60
// upstreams to list targets below) on a Kong whose Admin API answers in
// 3ms, so that listing Kong takes the time it takes on PostgreSQL.
const (
	dbScenarioApps = 60
	dbAdminLatency = 3 * time.Millisecond
)

// TestSeeds is how many nemesis seeds, from seed 1, the scenarios' tests
// (and so make test) run; konductor-sim -soak runs the same ones.
const TestSeeds = 500

// Nemesis is the random scenario of one seed.
func Nemesis(seed uint64) world.Config {
	return world.Config{Seed: seed, Controllers: 3, Kongs: 3, Steps: world.Random(seed, 3, 3)}
}

// Find returns the named scenario.
func Find(name string) (Scenario, bool) {
	for _, sc := range Named {
		if sc.Name == name {
			return sc, true
		}
	}
	return Scenario{}, false
}
