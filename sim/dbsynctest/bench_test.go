package dbsynctest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"syscall"
	"testing"
	"time"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	kongsim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// benchApps is n Ingresses with one route each, over n Services with one
// endpoint each: 4n entities (route, service, upstream, target).
func benchApps(n int) []app {
	out := make([]app, n)
	for i := range out {
		out[i] = app{name: fmt.Sprintf("app-%05d", i), endpoints: []string{fmt.Sprintf("10.%d.%d.1", i>>8&255, i&255)}}
	}
	return out
}

// benchSyncer starts a kongsim node in DB mode on a fresh in-memory
// database and a Syncer writing to it. applied receives every applied
// version.
func benchSyncer(b *testing.B) (s *dbsync.Syncer, applied chan uint64, stop func()) {
	node, err := kongsim.NewNode(kongsim.Options{
		Database: kongsim.DatabasePostgres, Backend: store.NewMemory(),
		UpdateFrequency: time.Hour, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	applied = make(chan uint64, 16)
	s = dbsync.New(dbsync.Options{
		Client: &http.Client{Transport: kongsim.NewInMemoryTransport(node.Admin())},
		Gate:   fence.Always{Identity: identity}, Identity: identity,
		Timeout: time.Minute, DriftInterval: time.Hour,
		OnApplied: func(v uint64) { applied <- v },
		OnRejected: func(_ dbsync.Desired, rs []kongsync.Rejection) {
			b.Errorf("rejected: %+v", rs[0])
		},
	})
	s.SetTargets([]kongsync.Target{{Name: "kong", URL: "http://kong:8001"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	return s, applied, func() { cancel(); <-done }
}

// BenchmarkInitialSync writes a whole configuration into an empty database
// (KIC issue 2440: 1,500 rules in DB mode timed out endlessly).
func BenchmarkInitialSync(b *testing.B) {
	for _, n := range []int{1500, 5000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			d := desired(b, benchApps(n), 1)
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				s, applied, stop := benchSyncer(b)
				b.StartTimer()
				start := processCPU()
				s.SetDesired(d)
				<-applied
				cpu += processCPU() - start
				b.StopTimer()
				stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(4*n), "entities")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkNoopResync lists and diffs a configuration the database already
// holds: the cost of every drift check and of a leader's first sync.
func BenchmarkNoopResync(b *testing.B) {
	for _, n := range []int{1500, 5000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			s, applied, stop := benchSyncer(b)
			defer stop()
			s.SetDesired(desired(b, benchApps(n), 1))
			<-applied
			start := processCPU()
			for b.Loop() {
				s.Resync()
				<-applied
			}
			b.ReportMetric(float64((processCPU()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the CPU time (user+system, all threads including GC) the
// process used so far; on a shared machine wall time mostly measures the
// neighbours. It includes kongsim's share, which in DB mode dominates.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
