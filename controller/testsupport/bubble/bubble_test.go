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

// TestWatchReportsFrozenTime: virtual time that stops moving is reported,
// with the reading it stopped at.
func TestWatchReportsFrozenTime(t *testing.T) {
	frozen := make(chan time.Duration, 1)
	w := Watch(2*time.Second, func(at time.Duration) { frozen <- at })
	defer w.Stop()
	w.Moved(5 * time.Second)
	w.Moved(7 * time.Second)
	select {
	case at := <-frozen:
		if at != 7*time.Second {
			t.Errorf("frozen at %v, want the last reading, 7s", at)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("virtual time stood still for 30s of wall time and the watchdog did not say so")
	}
}
