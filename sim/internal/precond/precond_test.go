package precond

import (
	"fmt"
	"testing"
)

type recorder struct{ fatal, skip string }

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skipf(format string, a ...any)  { r.skip = fmt.Sprintf(format, a...) }

func TestUnavailableFailsOnlyUnderCI(t *testing.T) {
	for _, tc := range []struct {
		ci                  string
		wantFatal, wantSkip bool
	}{
		{ci: "true", wantFatal: true},
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			var r recorder
			Unavailable(&r, "no %s here", "PostgreSQL")
			if (r.fatal != "") != tc.wantFatal || (r.skip != "") != tc.wantSkip {
				t.Fatalf("fatal=%q skip=%q, want fatal %v skip %v", r.fatal, r.skip, tc.wantFatal, tc.wantSkip)
			}
			if got := r.fatal + r.skip; got[:18] != "no PostgreSQL here" {
				t.Errorf("message %q does not start with the reason", got)
			}
		})
	}
}
