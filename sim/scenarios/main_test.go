package scenarios

import (
	"os"
	"testing"

	"konductor.dev/sim/world"
)

// TestMain runs the worlds with the simulator's garbage-collector setting
// (see world.TuneGC): the same seeds, much less CPU.
func TestMain(m *testing.M) {
	world.TuneGC()
	os.Exit(m.Run())
}
