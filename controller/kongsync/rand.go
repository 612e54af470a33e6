package kongsync

import "konductor.dev/controller/retry"

// Rand is the jitter source of one worker (Options.Rand); see package
// retry.
type Rand = retry.Rand

// SeededRand is retry.Seeded: the simulator's seeded jitter streams.
func SeededRand(seed, stream uint64) Rand { return retry.Seeded(seed, stream) }
