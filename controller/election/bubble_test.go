package election

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// frozenAfter is how long a bubble's virtual time may stand still in wall
// time before bubble gives up on it. A healthy bubble moves its clock
// within milliseconds whenever every goroutine waits; a goroutine that
// never blocks (a retry loop whose wait came out as zero) keeps synctest
// from ever moving it, and the test would otherwise spin until go test's
// timeout.
const frozenAfter = 60 * time.Second

// bubble runs f in a synctest bubble, as synctest.Test does, and panics
// with the test's name when the bubble's virtual time stands still for
// frozenAfter of wall time: a spinning elector fails its test quickly,
// with every goroutine's stack, instead of hanging it.
func bubble(t *testing.T, f func(*testing.T)) {
	t.Helper()
	var virtual atomic.Int64
	done := make(chan struct{})
	defer close(done)
	name := t.Name()
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		seen, movedAt := int64(-1), time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if v := virtual.Load(); v != seen {
				seen, movedAt = v, time.Now()
			} else if time.Since(movedAt) >= frozenAfter {
				panic(fmt.Sprintf("%s: virtual time stood still for %v of wall time: a goroutine spins without blocking", name, frozenAfter))
			}
		}
	}()
	synctest.Test(t, func(t *testing.T) {
		go func() {
			for {
				virtual.Store(time.Now().UnixNano())
				select {
				case <-t.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		f(t)
	})
}
