package election

import (
	"context"
	"testing"
	"time"
)

// A drain that overruns its bound (RenewDeadline) may leave writes in
// flight: the stepping-down leader must not release the lock, Run says
// why, and a standby takes over only once the lease of the leader's last
// write has run out.
func TestOverrunDrainLeavesTheLockToExpire(t *testing.T) {
	electOnEachLock(t, 2, func(t *testing.T, c *cluster, _ []*node, first termEvent) {
		leader := c.node(first.id)
		// A write that never finishes: the drain waits out its bound.
		leader.beforeRelease = func(ctx context.Context) { <-ctx.Done() }
		stopAt := time.Now()
		if err := c.stop(leader); err == nil {
			t.Error("Run returned no error after an overrun drain")
		}
		if took := time.Since(stopAt); took < testRenew {
			t.Errorf("Run returned %v after the stop, before the drain's bound %v", took, testRenew)
		}
		if holder := c.recordHolder(t); holder != leader.id {
			t.Errorf("lock holder %q after an overrun drain, want still %q (left to expire)", holder, leader.id)
		}
		_, last := c.srv.writesBy(leader.id)
		ev := c.awaitTerm(testLease + testRetry)
		if ev.at.Before(last.Add(testLease)) {
			t.Errorf("%s took over %v after the stopped leader's last write, before its lease (%v) ran out", ev.id, ev.at.Sub(last), testLease)
		}
	})
}
