package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate"
)

// fanOut is one kongsync.Syncer pushing to n in-process kongsim nodes.
type fanOut struct {
	kongs   *Kongs // nil with hash-only Kongs
	syncer  *kongsync.Syncer
	applied chan kongsync.Desired // one per replica that accepted a version
	names   []string
}

// newFanOut starts a Syncer over n kongsim nodes, or over n hash-only
// Kongs (package hashkong) when hashOnly is set; with stallFirst, every
// request to kong-0 hangs until the benchmark ends.
func newFanOut(tb testing.TB, n int, hashOnly, stallFirst bool) *fanOut {
	tb.Helper()
	f := &fanOut{applied: make(chan kongsync.Desired, 4*n)}
	var rt http.RoundTripper
	if hashOnly {
		rt = newHashKongs(n)
		if stallFirst {
			release := make(chan struct{})
			tb.Cleanup(func() { close(release) })
			rt = stalling{next: rt, host: Host(0), release: release}
		}
	} else {
		kongs, err := NewKongs(n, KongsOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(kongs.Close)
		f.kongs, rt = kongs, kongs.Transport()
	}
	f.syncer = kongsync.New(kongsync.Options{
		Client:      &http.Client{Transport: rt},
		Identity:    "bench",
		PushTimeout: 30 * time.Second, // a stalled replica hangs for 30s per push
		OnApplied:   func(_ kongsync.Target, d kongsync.Desired) { f.applied <- d },
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
	return f
}

// await waits until want replicas accepted version v.
func (f *fanOut) await(tb testing.TB, v uint64, want int) {
	tb.Helper()
	timeout := time.After(5 * time.Minute)
	for n := 0; n < want; {
		select {
		case d := <-f.applied:
			if d.Version == v {
				n++
			}
		case <-timeout:
			tb.Fatalf("version %d reached %d of %d replicas in 5 minutes", v, n, want)
		}
	}
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
func BenchmarkFanOut5kRoutes50Kongs(b *testing.B) { benchFanOut(b, false, false) }

// BenchmarkFanOut5kRoutes50KongsControllerOnly is the same fan-out to 50
// hash-only Kongs: what the controller spends pushing one configuration
// to 50 replicas.
func BenchmarkFanOut5kRoutes50KongsControllerOnly(b *testing.B) { benchFanOut(b, true, false) }

// BenchmarkFanOut5kRoutes50KongsOneStalled is ControllerOnly with kong-0
// hanging on every request (each push to it waits out the 30s timeout):
// the time until the 49 others accepted each version. Its p50 minus
// ControllerOnly's is the delay a stalled replica causes the others.
func BenchmarkFanOut5kRoutes50KongsOneStalled(b *testing.B) { benchFanOut(b, true, true) }

func benchFanOut(b *testing.B, hashOnly, stallFirst bool) {
	replicas := fanOutReplicas()
	bodies := twoVersions5k(b)
	f := newFanOut(b, replicas, hashOnly, stallFirst)
	waitFor := replicas
	if stallFirst {
		waitFor--
	}
	// The first load of each replica is a fresh parse; warm up with both
	// versions so that iterations measure steady changes.
	for v := uint64(1); v <= 2; v++ {
		f.syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		f.await(b, v, waitFor)
	}
	v := uint64(2)
	cpu0 := processCPU()
	var took []time.Duration
	for b.Loop() {
		v++
		start := time.Now()
		f.syncer.SetDesired(kongsync.NewDesired(bodies[v%2], v))
		f.await(b, v, waitFor)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(ms(percentile(took, 50)), "p50-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	b.ReportMetric(ms(processCPU()-cpu0)/float64(len(took)), "cpu-ms/push")
	b.ReportMetric(float64(len(bodies[0]))/(1<<20), "MiB/body")
}

// fanOutReplicas is 50, or KONDUCTOR_FANOUT_REPLICAS for a quicker look.
func fanOutReplicas() int {
	if n, err := strconv.Atoi(os.Getenv("KONDUCTOR_FANOUT_REPLICAS")); err == nil && n > 0 {
		return n
	}
	return 50
}

// stalling holds every request to host until release is closed or the
// request's context ends, as a hung Kong would.
type stalling struct {
	next    http.RoundTripper
	host    string
	release chan struct{}
}

func (s stalling) RoundTrip(req *http.Request) (*http.Response, error) {
	if h, _, _ := strings.Cut(req.URL.Host, ":"); h == s.host {
		select {
		case <-s.release:
		case <-req.Context().Done():
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, req.Context().Err()
		}
	}
	return s.next.RoundTrip(req)
}
