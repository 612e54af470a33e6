// Package suite is konductor's end-to-end suite: e2e-framework features that
// deploy the kustomize overlays of deploy/ into a real cluster and check,
// through the Kong proxy, what users rely on — routing and Ingress status,
// leader failover without dropped traffic, and Kong restarts that never
// send traffic to an unconfigured Kong.
//
// The tests carry the "e2e" build tag; `make test` only compiles this
// package. Run them with `make e2e` (kind, needs Docker) or
// `make e2e-local` (the local process cluster). See e2e/README.md.
package suite
