package world

import (
	"math/rand/v2"
	"time"
)

// Random is the nemesis: a fault schedule composed from the seed. Each
// fault comes with what exercises it (an input change inside a Kong
// reject or partition window, a restart inside a stale-read window), and
// faults follow one another without overlapping, so that none masks
// another and every one fires. Every fault heals by itself.
func Random(seed uint64, controllers, kongs int) []Step {
	r := rand.New(rand.NewPCG(seed, 0x6e656d65736973))
	n := 2 + r.IntN(4)
	var steps []Step
	at := 10 * time.Second
	for range n {
		at += time.Duration(r.Int64N(int64(10 * time.Second)))
		s := Step{At: at.Truncate(time.Millisecond)}
		dur := (5*time.Second + time.Duration(r.Int64N(int64(25*time.Second)))).Truncate(time.Millisecond)
		switch r.IntN(14) {
		case 0:
			s.Kind, s.Replica = FaultCrash, LeaderReplica
		case 1:
			s.Kind, s.Replica = FaultStop, LeaderReplica
		case 2:
			s.Kind, s.Replica, s.For = FaultPause, LeaderReplica, dur
		case 3:
			s.Kind, s.Kong = FaultKongRestart, r.IntN(kongs)
		case 4:
			// A stalled Kong is noticed when something is sent to it.
			s.Kind, s.Kong, s.For = FaultKongStall, r.IntN(kongs), max(dur, 12*time.Second)
			steps = append(steps, Step{At: s.At + time.Second, Kind: InputAddApp})
		case 5:
			// Kong only rejects what it is sent: change the inputs inside
			// the window so that a push happens.
			s.Kind, s.Kong, s.For = FaultKongReject, r.IntN(kongs), dur
			steps = append(steps, Step{At: s.At + time.Second, Kind: InputAddApp})
		case 6:
			s.Kind, s.Kong, s.Replica, s.For = FaultKongPartition, r.IntN(kongs), LeaderReplica, dur
			steps = append(steps, Step{At: s.At + time.Second, Kind: InputAddApp})
		case 7:
			s.Kind, s.For = FaultAPIOutage, dur
		case 8:
			s.Kind, s.For = FaultAPIErrors, max(dur, 12*time.Second)
			steps = append(steps, Step{At: s.At + time.Second, Kind: InputAddApp})
		case 9:
			// Only a (re)starting replica lists; a running one reads little.
			s.Kind, s.Replica, s.For = FaultStaleReads, r.IntN(controllers), dur
			steps = append(steps, Step{At: s.At + time.Second, Kind: FaultCrash, Replica: s.Replica, For: 2 * time.Second})
		case 10:
			s.Kind = FaultDropWatches
		case 11:
			// Alive but cut off with its node: only the lease may end
			// its term.
			s.Kind, s.Replica, s.For = FaultNodePartition, LeaderReplica, dur
		case 12:
			// Killed while its kubelet reports late: the evidence comes
			// late, after the lease, or together with the restart.
			s.Kind, s.Replica, s.For = FaultKubeletLate, LeaderReplica, (100*time.Millisecond + time.Duration(r.Int64N(int64(30*time.Second)))).Truncate(time.Millisecond)
		case 13:
			// Pod force-deleted while the process runs on for a while.
			s.Kind, s.Replica, s.For = FaultForceDelete, LeaderReplica, dur/2
			steps = append(steps, Step{At: s.At + time.Second, Kind: InputAddApp})
		}
		steps = append(steps, s)
		// The next fault starts after this one healed and the world had
		// time to recover (a lease, a drift check).
		at = s.At + max(s.For, 5*time.Second) + 30*time.Second
	}
	// An input change somewhere in the middle, so that lost or stale
	// events would show in the end state.
	steps = append(steps, Step{At: (10*time.Second + time.Duration(r.Int64N(int64(60*time.Second)))).Truncate(time.Millisecond), Kind: InputAddApp})
	return steps
}

// ReferenceSteps are the input changes of the Sieve-style plans: one new
// app while the controllers run. The reference run is these steps alone.
func ReferenceSteps() []Step {
	return []Step{{At: 20 * time.Second, Kind: InputAddApp}}
}

// Plan is one generated fault schedule.
type Plan struct {
	Name  string
	Steps []Step
}

// GeneratePlans derives the Sieve-style plans from a fault-free reference
// run of ReferenceSteps: one crash right after each controller write the
// reference made, stale reads for each replica, and dropped watch events
// right after the input change and at each second around it.
func GeneratePlans(ref *Result, controllers int) []Plan {
	base := ReferenceSteps()
	var plans []Plan
	with := func(extra ...Step) []Step { return append(append([]Step(nil), base...), extra...) }
	for n := 1; n <= ref.Writes; n++ {
		plans = append(plans, Plan{Name: "crash-after-write-" + itoa(n), Steps: with(Step{Kind: FaultCrashAfterWrite, N: n})})
	}
	for i := range controllers {
		plans = append(plans, Plan{Name: "stale-reads-replica-" + itoa(i), Steps: with(
			Step{At: 5 * time.Second, Kind: FaultStaleReads, Replica: i, For: 40 * time.Second},
			Step{At: 6 * time.Second, Kind: FaultCrash, Replica: i, For: 2 * time.Second},
			Step{At: 21 * time.Second, Kind: FaultCrash, Replica: i, For: 2 * time.Second},
		)})
	}
	for _, d := range []time.Duration{0, time.Millisecond, 100 * time.Millisecond, time.Second} {
		for _, in := range base {
			plans = append(plans, Plan{Name: "drop-watches-" + (in.At + d).String(), Steps: with(Step{At: in.At + d, Kind: FaultDropWatches})})
		}
	}
	return plans
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
