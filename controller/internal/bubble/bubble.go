// Package bubble runs a test in a testing/synctest bubble that fails,
// rather than hangs, when the bubble's virtual time stops moving.
//
// synctest moves its clock only when every goroutine in the bubble is
// durably blocked. A goroutine that spins without ever blocking (a retry
// loop whose wait came out as zero), or one waiting on a sync.Mutex held
// across a wait for virtual time (which synctest does not count as
// durable), keeps the clock where it is forever. A test waiting for
// virtual time would then run until go test's timeout. Test panics
// instead, naming the test and printing every goroutine's stack.
package bubble

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// FrozenAfter is how long virtual time may stand still in wall time before
// Test gives up. A healthy bubble moves its clock within milliseconds of
// every goroutine waiting; a minute leaves room for a loaded machine.
const FrozenAfter = 60 * time.Second

// Test runs f in a synctest bubble, as synctest.Test does, and panics when
// the bubble's virtual time stands still for FrozenAfter of wall time.
func Test(t *testing.T, f func(*testing.T)) {
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
			} else if time.Since(movedAt) >= FrozenAfter {
				panic(fmt.Sprintf("%s: virtual time stood still for %v of wall time: a goroutine spins without blocking, or waits on a lock held across a wait for virtual time", name, FrozenAfter))
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
