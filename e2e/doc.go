// Package e2e holds konductor's end-to-end suites built on
// sigs.k8s.io/e2e-framework: one suite, run on kind or on the local process
// cluster.
package e2e
