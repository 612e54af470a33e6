package hatest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kongsim "konductor.dev/sim/kong"
)

// logRecord keeps the time of every log line at Info or above that the
// replicas wrote, so that a measurement can tell when a replica reached a
// step (such as translating a change) without a hook into the manager.
type logRecord struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	at       time.Time
	identity string
	msg      string
}

// logger returns the replica's logger: testLogger's, and the record when
// the cluster keeps one.
func (c *cluster) logger(identity string) *slog.Logger {
	l := testLogger(identity)
	if c.logs == nil {
		return l
	}
	return slog.New(&recordingHandler{next: l.Handler(), rec: c.logs, identity: identity})
}

// firstLog returns when identity first logged msg at or after from.
func (r *logRecord) firstLog(identity, msg string, from time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if l.identity == identity && l.msg == msg && !l.at.Before(from) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

type recordingHandler struct {
	next     slog.Handler
	rec      *logRecord
	identity string
}

func (h *recordingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		h.rec.mu.Lock()
		h.rec.lines = append(h.rec.lines, logLine{at: r.Time, identity: h.identity, msg: r.Message})
		h.rec.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordingHandler{next: h.next.WithAttrs(as), rec: h.rec, identity: h.identity}
}

func (h *recordingHandler) WithGroup(name string) slog.Handler {
	return &recordingHandler{next: h.next.WithGroup(name), rec: h.rec, identity: h.identity}
}

// machineUse is the test process's CPU time and the load average, to
// quote beside wall-clock figures measured on a shared machine.
type machineUse struct {
	at        time.Time
	user, sys time.Duration
	load      string
}

func nowUse() machineUse {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return machineUse{at: time.Now(), user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), load: load}
}

// since describes the CPU time used since u, against the wall time.
func (u machineUse) since() string {
	n := nowUse()
	return fmt.Sprintf("wall %v, test process CPU user %v sys %v, load average %s → %s",
		n.at.Sub(u.at).Round(time.Millisecond), (n.user - u.user).Round(time.Millisecond), (n.sys - u.sys).Round(time.Millisecond), u.load, n.load)
}

// handoverSteps splits measured handovers into their steps: the lock
// taken, the change translated on the new leader, from both (the later of
// the two) to the term's first write, on to the change's route written
// (the other entities of the change and their phases), and on to every
// node serving it (its poll of the database).
type handoverSteps struct {
	locked, translated, firstWrite, routeWritten, served []time.Duration
}

func (s *handoverSteps) add(c *cluster, changed, locked time.Time, route kongsim.AuditEntry, served time.Time) {
	c.t.Helper()
	translated, ok := c.logs.firstLog(route.Writer, "new configuration", changed)
	if !ok {
		c.t.Fatalf("%s wrote the change without logging its translation", route.Writer)
	}
	var first time.Time
	for _, e := range c.audit() {
		if e.Writer == route.Writer && !e.Time.Before(changed) {
			first = e.Time
			break
		}
	}
	ready := locked
	if translated.After(ready) {
		ready = translated
	}
	s.locked = append(s.locked, locked.Sub(changed))
	s.translated = append(s.translated, translated.Sub(changed))
	s.firstWrite = append(s.firstWrite, first.Sub(ready))
	s.routeWritten = append(s.routeWritten, route.Time.Sub(first))
	s.served = append(s.served, served.Sub(route.Time))
}

func (s *handoverSteps) log(t testing.TB, what string) {
	t.Helper()
	t.Log(summary(what+" step: change → lock taken by the new leader", s.locked))
	t.Log(summary(what+" step: change → translated on the new leader", s.translated))
	t.Log(summary(what+" step: lock and translation → the term's first write", s.firstWrite))
	t.Log(summary(what+" step: first write → the change's route written", s.routeWritten))
	t.Log(summary(what+" step: route written → served by every node", s.served))
}
