package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate"
)

// fanOut is one kongsync.Syncer pushing to n in-process kongsim nodes.
type fanOut struct {
	kongs   *Kongs // nil with hash-only Kongs
	stall   *stallSwitch
	syncer  *kongsync.Syncer
	applied chan appliedAt // one per replica that accepted a version
	names   []string
}

// appliedAt is one replica's acceptance of a version.
type appliedAt struct {
	target  string
	version uint64
}

// newFanOut starts a Syncer over n kongsim nodes, or over n hash-only
// Kongs (package hashkong) when hashOnly is set; with stallFirst, every
// request to kong-0 hangs until the benchmark ends.
func newFanOut(tb testing.TB, n int, hashOnly, stallFirst bool) *fanOut {
	tb.Helper()
	f := &fanOut{applied: make(chan appliedAt, 4*n)}
	var rt http.RoundTripper
	if hashOnly {
		rt = newHashKongs(n)
	} else {
		kongs, err := NewKongs(n, KongsOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(kongs.Close)
		f.kongs, rt = kongs, kongs.Transport()
	}
	f.stall = &stallSwitch{next: rt, host: Host(0)}
	rt = f.stall
	if stallFirst {
		f.stall.set(true)
	}
	f.syncer = kongsync.New(kongsync.Options{
		Client:      &http.Client{Transport: rt},
		Identity:    "bench",
		PushTimeout: 30 * time.Second, // a stalled replica hangs for 30s per push
		OnApplied:   func(t kongsync.Target, d kongsync.Desired) { f.applied <- appliedAt{t.Name, d.Version} },
	})
	var targets []kongsync.Target
	for i := range n {
		targets = append(targets, kongsync.Target{Name: Host(i), URL: AdminURL(i)})
		f.names = append(f.names, Host(i))
	}
	f.syncer.SetTargets(targets)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.syncer.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	// Registered last, so run first: a stalled push ends at once
	// instead of holding the syncer's shutdown for its timeout.
	tb.Cleanup(func() { f.stall.set(false) })
	return f
}

// await waits until every replica but kong-0 accepted version v, and
// returns how long after start that was; with withFirst, it then waits
// for kong-0 too.
func (f *fanOut) await(tb testing.TB, v uint64, start time.Time, withFirst bool) time.Duration {
	tb.Helper()
	timeout := time.After(5 * time.Minute)
	others, first := 0, !withFirst
	var took time.Duration
	for others < len(f.names)-1 || !first {
		select {
		case a := <-f.applied:
			if a.version != v {
				continue
			}
			if a.target == Host(0) {
				first = true
				continue
			}
			if others++; others == len(f.names)-1 {
				took = time.Since(start)
			}
		case <-timeout:
			tb.Fatalf("version %d reached %d of the %d other replicas in 5 minutes (kong-0: %v)", v, others, len(f.names)-1, first)
		}
	}
	return took
}

// twoVersions5k translates 5,000 apps (one route each) twice, one path
// apart, so that every push is a change.
func twoVersions5k(tb testing.TB) [2][]byte {
	tb.Helper()
	snap := snapshotOf(Apps(5000))
	first := translate.Translate(snap, translate.Options{}).Body
	changed := *snap.Ingresses[0]
	changed.Spec = *changed.Spec.DeepCopy()
	changed.Spec.Rules[0].HTTP.Paths[0].Path = "/v2"
	snap.Ingresses = append([]*networkingv1.Ingress{&changed}, snap.Ingresses[1:]...)
	second := translate.Translate(snap, translate.Options{}).Body
	if n := countRoutes(tb, first); n != 5000 {
		tb.Fatalf("configuration has %d routes, want 5000", n)
	}
	return [2][]byte{first, second}
}

func countRoutes(tb testing.TB, body []byte) int {
	var doc struct {
		Services []struct {
			Routes []json.RawMessage `json:"routes"`
		} `json:"services"`
		Routes []json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		tb.Fatal(err)
	}
	n := len(doc.Routes)
	for _, s := range doc.Services {
		n += len(s.Routes)
	}
	return n
}

// BenchmarkFanOut5kRoutes50Kongs measures one push of a 5,000-route
// configuration to 50 in-process kongsim replicas: SetDesired until every
// replica accepted it. Each iteration is a change (two versions
// alternate). It reports wall time and the process CPU per push, nearly
// all of it the 50 kongsim loads (a real deployment spends that in 50
// Kong processes); ControllerOnly below is the controller's share.
// others-p50-ms is the time until the 49 replicas other than kong-0
// accepted it: the figure the OneStalled variants compare. Run it with
// -benchtime 20x or more: p99-ms and max-ms are then the slowest pushes,
// gc-cpu-ms/push the collector's share of cpu-ms/push, and live-heap-MiB
// what the 50 replicas hold.
func BenchmarkFanOut5kRoutes50Kongs(b *testing.B) { benchFanOut(b, false, false) }

// BenchmarkFanOut5kRoutes50KongsOneStalled is BenchmarkFanOut5kRoutes50Kongs
// with kong-0 hanging on every request (each push to it waits out the 30s
// timeout): its others-p50-ms minus the healthy run's is the delay a
// stalled replica causes the others.
func BenchmarkFanOut5kRoutes50KongsOneStalled(b *testing.B) { benchFanOut(b, false, true) }

// BenchmarkFanOut5kRoutes50KongsControllerOnly is the same fan-out to 50
// hash-only Kongs: what the controller spends pushing one configuration
// to 50 replicas.
func BenchmarkFanOut5kRoutes50KongsControllerOnly(b *testing.B) { benchFanOut(b, true, false) }

// BenchmarkFanOut5kRoutes50KongsControllerOnlyOneStalled is ControllerOnly
// with kong-0 hanging on every request. Its others-p50-ms minus
// ControllerOnly's is the delay a stalled replica causes the others, free
// of the 49 loads' CPU.
func BenchmarkFanOut5kRoutes50KongsControllerOnlyOneStalled(b *testing.B) {
	benchFanOut(b, true, true)
}

func benchFanOut(b *testing.B, hashOnly, stallFirst bool) {
	replicas := fanOutReplicas()
	bodies := twoVersions5k(b)
	f := newFanOut(b, replicas, hashOnly, stallFirst)
	// The first load of each replica is a fresh parse; warm up with both
	// versions so that iterations measure steady changes.
	for v := uint64(1); v <= 2; v++ {
		f.syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		f.await(b, v, time.Now(), !stallFirst)
	}
	v := uint64(2)
	settleHeap()
	b.ReportAllocs()
	stopProfile := profilePushes(b)
	defer stopProfile()
	cpu0, gc0 := processCPU(), gcCPU()
	var took, others []time.Duration
	for b.Loop() {
		v++
		start := time.Now()
		f.syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		others = append(others, f.await(b, v, start, !stallFirst))
		took = append(took, time.Since(start))
	}
	cpu, gc := processCPU()-cpu0, gcCPU()-gc0
	slices.Sort(took)
	slices.Sort(others)
	b.ReportMetric(ms(percentile(took, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(took, 99)), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	b.ReportMetric(ms(percentile(others, 50)), "others-p50-ms")
	b.ReportMetric(ms(cpu)/float64(len(took)), "cpu-ms/push")
	// The collector's share, apart: the 50 replicas share one heap here,
	// where 50 Kongs would each collect their own.
	b.ReportMetric(ms(gc)/float64(len(took)), "gc-cpu-ms/push")
	b.ReportMetric(liveHeapMiB(), "live-heap-MiB")
	b.ReportMetric(float64(len(bodies[0]))/(1<<20), "MiB/body")
}

// settleHeap collects, when KONDUCTOR_FANOUT_SETTLE is set, the garbage
// of the replicas' first loads before the measured pushes. The 50 replicas
// share one heap here: the collection the first loads set off marks GBs
// and, when it overlaps the first measured pushes, takes their CPU (see
// gc-cpu-ms/push) where 50 Kong processes would each collect their own
// small heap. Unset (the default), the pushes pay for whatever overlaps.
func settleHeap() {
	if os.Getenv("KONDUCTOR_FANOUT_SETTLE") != "" {
		runtime.GC()
	}
}

// gcCPU is the CPU time the garbage collector spent so far, as the
// runtime estimates it.
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// liveHeapMiB is the heap the last collection found live.
func liveHeapMiB() float64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(s[0].Value.Uint64()) / (1 << 20)
}

// profilePushes writes a CPU profile of the measured pushes alone (not
// the replicas' first loads) to the file KONDUCTOR_FANOUT_CPUPROFILE
// names, if set; call the function it returns when they are done.
func profilePushes(tb testing.TB) func() {
	path := os.Getenv("KONDUCTOR_FANOUT_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	}
}

// fanOutReplicas is 50, or KONDUCTOR_FANOUT_REPLICAS for a quicker look.
func fanOutReplicas() int {
	if n, err := strconv.Atoi(os.Getenv("KONDUCTOR_FANOUT_REPLICAS")); err == nil && n > 0 {
		return n
	}
	return 50
}

// stallSwitch holds every request to host while stalled, until it is
// switched off or the request's context ends, as a hung Kong would.
type stallSwitch struct {
	next http.RoundTripper
	host string

	mu      sync.Mutex
	release chan struct{} // non-nil while stalled
}

func (s *stallSwitch) set(stalled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case stalled && s.release == nil:
		s.release = make(chan struct{})
	case !stalled && s.release != nil:
		close(s.release)
		s.release = nil
	}
}

func (s *stallSwitch) RoundTrip(req *http.Request) (*http.Response, error) {
	if h, _, _ := strings.Cut(req.URL.Host, ":"); h == s.host {
		s.mu.Lock()
		release := s.release
		s.mu.Unlock()
		if release != nil {
			select {
			case <-release:
			case <-req.Context().Done():
				if req.Body != nil {
					req.Body.Close()
				}
				return nil, req.Context().Err()
			}
		}
	}
	return s.next.RoundTrip(req)
}

// BenchmarkFanOutStallDelay5kRoutes50Kongs measures, in pairs of pushes
// to 50 kongsim replicas, the time until the 49 replicas other than kong-0
// accepted a version with kong-0 healthy and with kong-0 hanging on every
// request; delay-p50-ms is the median of the pairs' differences (stalled
// minus healthy), the delay a stalled replica causes the others. Pairing
// the two runs cancels most of what the machine's load adds to either.
func BenchmarkFanOutStallDelay5kRoutes50Kongs(b *testing.B) { benchStallDelay(b, false) }

// BenchmarkFanOutStallDelay5kRoutes50KongsControllerOnly is the same with
// hash-only Kongs: the controller's share, free of the 49 loads' CPU.
func BenchmarkFanOutStallDelay5kRoutes50KongsControllerOnly(b *testing.B) {
	benchStallDelay(b, true)
}

func benchStallDelay(b *testing.B, hashOnly bool) {
	replicas := fanOutReplicas()
	bodies := twoVersions5k(b)
	f := newFanOut(b, replicas, hashOnly, false)
	for v := uint64(1); v <= 2; v++ {
		f.syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		f.await(b, v, time.Now(), true)
	}
	v := uint64(2)
	var healthy, stalled, delay []time.Duration
	for b.Loop() {
		v++
		start := time.Now()
		f.syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		h := f.await(b, v, start, true)

		v++
		f.stall.set(true)
		start = time.Now()
		f.syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		st := f.await(b, v, start, false)
		// kong-0 answers again and catches up before the next pair.
		f.stall.set(false)
		f.awaitFirst(b, v)

		healthy, stalled = append(healthy, h), append(stalled, st)
		delay = append(delay, st-h)
	}
	for _, d := range [][]time.Duration{healthy, stalled, delay} {
		slices.Sort(d)
	}
	b.ReportMetric(ms(percentile(healthy, 50)), "healthy-others-p50-ms")
	b.ReportMetric(ms(percentile(stalled, 50)), "stalled-others-p50-ms")
	b.ReportMetric(ms(percentile(delay, 50)), "delay-p50-ms")
	b.ReportMetric(ms(delay[len(delay)-1]), "delay-max-ms")
}

// awaitFirst waits until kong-0 accepted version v.
func (f *fanOut) awaitFirst(tb testing.TB, v uint64) {
	tb.Helper()
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case a := <-f.applied:
			if a.target == Host(0) && a.version == v {
				return
			}
		case <-timeout:
			tb.Fatalf("kong-0 did not accept version %d in 5 minutes", v)
		}
	}
}
