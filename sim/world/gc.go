package world

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target the simulator's commands
// and tests run with. A world keeps a few megabytes live and allocates
// tens of megabytes of short-lived requests and responses a run; at Go's
// default of 100 the collector ran so often that it (and the preemptions
// it asks for) took about a third of a nemesis seed's CPU time. At 400 a
// seed costs about 30% less CPU for a heap of about 100 MB with two runs
// side by side.
const GCPercent = 400

// TuneGC sets GCPercent unless GOGC is set in the environment, which
// keeps the last word.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}
