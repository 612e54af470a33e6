package kongsync

import (
	"context"
	"time"
)

// kickCompactor asks the compactor to look for idle configurations; it
// never blocks.
func (s *Syncer) kickCompactor() {
	select {
	case s.compactKick <- struct{}{}:
	default:
	}
}

// compactLoop compresses idle retained configurations, off every worker's
// goroutine so that no push waits for it.
func (s *Syncer) compactLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.compactKick:
		case <-timer.C:
		}
		due, next := s.compactable(time.Now())
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		dropped := 0
		for _, r := range due {
			if ctx.Err() != nil {
				return
			}
			n, err := r.compact()
			if err != nil {
				// Only memory is lost: the raw body stays usable.
				s.o.Logger.Error("cannot compress retained configuration; keeping it raw", "version", r.version, "err", err)
			}
			dropped += n
		}
		if dropped > 0 && s.o.OnCompacted != nil {
			s.o.OnCompacted(dropped)
		}
	}
}

// compactable returns the retained configurations to compress now, and
// when the next one will be due. Nothing is, until every worker has gone
// idle since it first saw the current version: the first push of a new
// version to each replica then always uses the raw bytes, and a replica
// busy with an older push is not racing the compressor for the CPU. After
// that, each configuration that is large, still raw and not being pushed
// qualifies once it stayed so for compactDelay.
func (s *Syncer) compactable(now time.Time) (due []*retained, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired == nil {
		return nil, time.Time{}
	}
	for _, w := range s.workers {
		if w.settled.Load() < s.desired.version {
			return nil, time.Time{}
		}
	}
	for _, r := range s.retainedLocked() {
		at, ok := r.compactAt(now)
		switch {
		case !ok:
		case !at.After(now):
			due = append(due, r)
		default:
			next = earliest(next, at)
		}
	}
	return due, next
}

// retainedLocked returns each distinct configuration kept for re-pushing:
// the current one and every replica's last good one.
func (s *Syncer) retainedLocked() []*retained {
	var out []*retained
	seen := map[*retained]bool{}
	add := func(r *retained) {
		if r != nil && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	add(s.desired)
	for _, w := range s.workers {
		add(w.retainedGood())
	}
	return out
}

// retainedBytes is the memory the kept configurations occupy now.
func (s *Syncer) retainedBytes() int {
	s.mu.Lock()
	rs := s.retainedLocked()
	s.mu.Unlock()
	n := 0
	for _, r := range rs {
		n += r.bytes()
	}
	return n
}
