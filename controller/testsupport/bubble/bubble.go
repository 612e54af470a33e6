// Package bubble runs code in testing/synctest bubbles that fail, rather
// than hang, when the bubble's virtual time stops moving.
//
// synctest moves its clock only when every goroutine in the bubble is
// durably blocked. A goroutine that spins without ever blocking (a retry
// loop whose wait came out as zero), or one waiting on a sync.Mutex held
// across a wait for virtual time (which synctest does not count as
// durable), keeps the clock where it is forever, and whatever waits for
// virtual time would wait until go test's timeout. Test wraps a test in a
// bubble with that check; Watch is the check alone, for a bubble run some
// other way (the simulator's worlds).
package bubble

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// FrozenAfter is how long virtual time may stand still in wall time before
// Test gives up. A healthy bubble moves its clock within milliseconds of
// every goroutine waiting; a minute leaves room for a loaded machine.
const FrozenAfter = 60 * time.Second

// Watchdog notices virtual time that stops moving. It runs outside the
// bubble, on the wall clock; only the virtual readings given to Moved cross
// over.
type Watchdog struct {
	virtual atomic.Int64
	done    chan struct{}
	stop    sync.Once
}

// Watch starts a watchdog that calls frozen, once and from its own
// goroutine, when the virtual time given to Moved has stood still for
// after of wall time. frozen is told the virtual time it stood at; it
// usually panics or exits, since the goroutines of a frozen bubble cannot
// be made to return.
func Watch(after time.Duration, frozen func(at time.Duration)) *Watchdog {
	w := &Watchdog{done: make(chan struct{})}
	w.virtual.Store(-1)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		seen, movedAt := int64(-2), time.Now()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			if v := w.virtual.Load(); v != seen {
				seen, movedAt = v, time.Now()
			} else if time.Since(movedAt) >= after {
				frozen(w.At())
				return
			}
		}
	}()
	return w
}

// Moved records the bubble's virtual time; call it from inside the bubble
// as time passes there.
func (w *Watchdog) Moved(virtual time.Duration) { w.virtual.Store(int64(virtual)) }

// At is the last virtual time given to Moved (0 before the first).
func (w *Watchdog) At() time.Duration { return time.Duration(max(w.virtual.Load(), 0)) }

// Stop ends the watch. It may be called more than once.
func (w *Watchdog) Stop() { w.stop.Do(func() { close(w.done) }) }

// Test runs f in a synctest bubble, as synctest.Test does, and panics when
// the bubble's virtual time stands still for FrozenAfter of wall time,
// naming the test; the panic prints every goroutine's stack.
func Test(t *testing.T, f func(*testing.T)) {
	t.Helper()
	name := t.Name()
	w := Watch(FrozenAfter, func(time.Duration) {
		panic(fmt.Sprintf("%s: virtual time stood still for %v of wall time: a goroutine spins without blocking, or waits on a lock held across a wait for virtual time", name, FrozenAfter))
	})
	defer w.Stop()
	synctest.Test(t, func(t *testing.T) {
		go func() {
			start := time.Now()
			for {
				w.Moved(time.Since(start))
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
