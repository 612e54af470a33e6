package integration

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"konductor.dev/controller/kongsync"
)

// BenchmarkFanOut5kRoutes50KongProcesses is BenchmarkFanOut5kRoutes50Kongs
// over loopback: one kongsim process per replica, its Admin API on its own
// address (127.0.0.<2+i>), pushed to by the controller's Syncer through a
// real HTTP client. Besides wall time it reports the Kongs' CPU per push
// (kong-cpu-ms/push, summed over the processes) and the benchmark
// process's (controller-cpu-ms/push). It starts 50 processes of a few
// hundred MiB each, so it runs only with KONDUCTOR_FANOUT_PROCESSES=1;
// KONDUCTOR_FANOUT_REPLICAS sets fewer:
//
//	KONDUCTOR_FANOUT_PROCESSES=1 go test -run '^$' -bench FanOut5kRoutes50KongProcesses -benchtime 3x ./sim/integration/
//
// The processes are stopped (SIGTERM) when the benchmark ends.
func BenchmarkFanOut5kRoutes50KongProcesses(b *testing.B) {
	if os.Getenv("KONDUCTOR_FANOUT_PROCESSES") != "1" {
		b.Skip("set KONDUCTOR_FANOUT_PROCESSES=1 to start one kongsim process per replica (50 by default)")
	}
	replicas := fanOutReplicas()
	bodies := twoVersions5k(b)
	bin := buildKongsim(b)
	procs := make([]*kongProcess, replicas)
	var targets []kongsync.Target
	for i := range procs {
		ip := "127.0." + strconv.Itoa((2+i)/256) + "." + strconv.Itoa((2+i)%256)
		procs[i] = startKongsim(b, bin, ip+":0", "off")
		targets = append(targets, kongsync.Target{Name: Host(i), URL: "http://" + procs[i].admin})
	}
	applied := make(chan appliedAt, 4*replicas)
	transport := &http.Transport{MaxIdleConnsPerHost: 2}
	b.Cleanup(transport.CloseIdleConnections)
	syncer := kongsync.New(kongsync.Options{
		Client:      &http.Client{Transport: transport},
		Identity:    "bench",
		PushTimeout: 30 * time.Second,
		OnApplied:   func(t kongsync.Target, d kongsync.Desired) { applied <- appliedAt{t.Name, d.Version} },
	})
	syncer.SetTargets(targets)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- syncer.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	await := func(v uint64) {
		timeout := time.After(5 * time.Minute)
		for n := 0; n < replicas; {
			select {
			case a := <-applied:
				if a.version == v {
					n++
				}
			case <-timeout:
				b.Fatalf("version %d reached %d of %d kongsim processes in 5 minutes", v, n, replicas)
			}
		}
	}
	kongCPU := func() time.Duration {
		var sum time.Duration
		for _, p := range procs {
			sum += childCPU(b, p.cmd.Process.Pid)
		}
		return sum
	}
	for v := uint64(1); v <= 2; v++ {
		syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		await(v)
	}
	v := uint64(2)
	stopProfile := profilePushes(b)
	defer stopProfile()
	cpu0, kong0 := processCPU(), kongCPU()
	var took []time.Duration
	for b.Loop() {
		v++
		start := time.Now()
		syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		await(v)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(ms(percentile(took, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(took, 99)), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	b.ReportMetric(ms(processCPU()-cpu0)/float64(len(took)), "controller-cpu-ms/push")
	b.ReportMetric(ms(kongCPU()-kong0)/float64(len(took)), "kong-cpu-ms/push")
}

// childCPU is the user and system time a process used so far, from
// /proc/<pid>/stat (clock ticks of 10ms).
func childCPU(tb testing.TB, pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatalf("reading the CPU time of kongsim process %d: %v", pid, err)
	}
	// The fields after the command name, which is in parentheses:
	// utime and stime are the 12th and 13th.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("kongsim process %d: unreadable /proc stat %q", pid, raw)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
