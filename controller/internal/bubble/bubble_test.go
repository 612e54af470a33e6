package bubble

import (
	"testing"
	"time"
)

// TestVirtualTimeMoves: a bubble whose goroutines wait for virtual time
// runs to the end, its clock moving as synctest.Test's does.
func TestVirtualTimeMoves(t *testing.T) {
	Test(t, func(t *testing.T) {
		start := time.Now()
		time.Sleep(10 * time.Minute)
		if got := time.Since(start); got != 10*time.Minute {
			t.Errorf("slept %v of virtual time, want 10m", got)
		}
	})
}
