package world

import (
	"context"
	"log/slog"
	"time"
)

// slowLog is a log sink that takes delay (virtual time) to write each
// record and keeps nothing (Config.LogDelay): the writing goroutine blocks
// as it would on a log pipe under backpressure. It also stands for the
// time a translation takes on a big cluster: the manager logs each new
// configuration between reading the snapshot and handing the result on,
// so events that arrive meanwhile arrive during the translation.
type slowLog struct {
	delay time.Duration
}

// Enabled passes what a production binary logs: Info and above.
func (slowLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h slowLog) Handle(context.Context, slog.Record) error {
	time.Sleep(h.delay)
	return nil
}

// WithAttrs keeps the delay for the manager's own records only: the
// components (election, kongsync, ...) log under their locks, and a
// goroutine waiting on a sync.Mutex would freeze the synctest bubble.
func (h slowLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	for _, a := range attrs {
		if a.Key == "component" {
			return slog.DiscardHandler
		}
	}
	return h
}

func (h slowLog) WithGroup(string) slog.Handler { return h }
