// Package precond holds what tests need from their machine (root, network
// namespaces, PostgreSQL, control-plane binaries) and how a missing one is
// reported: a developer's run skips with the command that provides it, a run
// under CI=true fails, because CI must never go green by skipping.
package precond

import (
	"fmt"
	"os"
)

// T is the part of testing.TB (and of Ginkgo's GinkgoT()) the helpers use.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips t, or fails it under CI, saying why.
func Unavailable(t T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: a missing precondition fails the test)", msg)
		return
	}
	t.Skipf("%s", msg)
}

// Root requires root, which network and mount namespaces need.
func Root(t T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root: %s", why)
	}
}
