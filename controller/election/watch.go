package election

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"

	"konductor.dev/controller/retry"
)

// watchLock follows the lock object and wakes the election loop on every
// change, so that a released or expiring lock is taken without waiting for
// the next poll. It is an accelerator only: when the watch is refused
// (RBAC without "watch") or keeps failing, the loop's polling every
// RetryPeriod still elects, only more slowly.
func (e *Elector) watchLock(ctx context.Context) {
	backoff := e.cfg.RetryPeriod
	warned := false
	for ctx.Err() == nil {
		w, err := e.lock.watch(ctx)
		if err != nil {
			if !warned {
				if apierrors.IsForbidden(err) {
					e.log.Warn("watching the lock is forbidden; polling every RetryPeriod instead (grant \"watch\" on the lock's name for fast handover)", "err", err)
				} else {
					e.log.Warn("watching the lock failed; polling until it works again", "err", err)
				}
				warned = true
			}
			if !retry.Sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, e.cfg.LeaseDuration)
			continue
		}
		if e.follow(ctx, w) {
			backoff, warned = e.cfg.RetryPeriod, false
			continue
		}
		// A watch that ends without delivering anything is not retried at
		// once, so that a server closing watches cannot make us spin.
		if !retry.Sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, e.cfg.LeaseDuration)
	}
}

// follow consumes one watch until it ends or ctx is done, and reports
// whether it delivered any event.
func (e *Elector) follow(ctx context.Context, w watch.Interface) (delivered bool) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return delivered
		case ev, ok := <-w.ResultChan():
			if !ok {
				return delivered
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				st, ok := e.lock.decode(ev.Object)
				if !ok || st.name != e.cfg.Name {
					continue
				}
				e.observeWatched(st.rec, st.raw, st.process, time.Now())
			case watch.Deleted:
				if st, ok := e.lock.decode(ev.Object); !ok || st.name != e.cfg.Name {
					continue
				}
				e.observeWatched(nil, nil, "", time.Now())
			case watch.Error:
				return delivered
			default: // bookmarks carry no record
				continue
			}
			delivered = true
			e.poke()
		}
	}
}

func (e *Elector) poke() {
	select {
	case e.pokes <- struct{}{}:
	default: // a wake-up is already pending
	}
}
