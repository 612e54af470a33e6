// Package suite runs the standard drills (chaos/drills) as Ginkgo specs,
// through the same engine as konductor-chaos. It is built only with the tag
// "drills", so `make test` does not run it:
//
//	KONDUCTOR_DRILL_KUBECONFIG=$(bin/localcluster up) KONDUCTOR_DRILL_PROVIDER=local \
//	  go test -tags drills -timeout 90m ./chaos/suite/
//
// KONDUCTOR_DRILL_DIR chooses the drills (default chaos/drills);
// KONDUCTOR_DRILL_OUT where the journal and report go. Without a
// kubeconfig the specs are skipped, and under CI=true they fail.
package suite
