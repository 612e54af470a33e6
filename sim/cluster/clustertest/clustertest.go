// Package clustertest holds the preconditions of tests that start the local
// process cluster (see sim/internal/precond for how a missing one is
// reported).
package clustertest

import (
	"context"

	"konductor.dev/sim/cluster"
	"konductor.dev/sim/internal/precond"
)

// Binaries returns the cached control-plane binaries. It never builds them:
// without them it skips (fails under CI=true) naming the command that builds
// them.
func Binaries(t precond.T) string {
	t.Helper()
	dir, err := cluster.FindBinaries(context.Background())
	if err != nil {
		precond.Unavailable(t, "control-plane binaries unavailable (run hack/build-k8s.sh or set %s): %v", cluster.BinDirEnv, err)
	}
	return dir
}
