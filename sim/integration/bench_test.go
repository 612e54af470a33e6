package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/sim/internal/hashkong"
	"konductor.dev/sim/kong"
)

// newBenchClientset is the fake API server of the benchmarks: the plain
// object tracker. fake.NewClientset's field-managed tracker computes
// managed fields in this process on every write, about 30ms of CPU per
// Ingress status write here (a real API server does it in its own
// process), which would make the fake, not the controller, the thing
// measured: 10k status writes took over 20 minutes.
//
// The plain tracker's watches buffer watch.DefaultChanSize events and
// panic when full; the status loop writes faster than a busy machine
// drains 100 events, so the buffer is raised (each watch of the fake then
// holds 256 KiB, counted in the heap figures).
func newBenchClientset(objs ...k8sruntime.Object) *fake.Clientset {
	watch.DefaultChanSize = 8192
	return fake.NewSimpleClientset(objs...) //nolint:staticcheck // see above
}

// Flags of the benchmarks' controller: the manager's real debounce and
// minimum push interval, with small values.
var benchFlags = []string{"--sync-debounce=20ms", "--proxy-sync-seconds=0.05"}

func appObjects(apps []App) []k8sruntime.Object {
	objs := make([]k8sruntime.Object, 0, 3*len(apps))
	for _, a := range apps {
		objs = append(objs, a.Objects()...)
	}
	return objs
}

// BenchmarkChangeToApplied1k measures, with 1000 Ingresses synced on three
// in-process kongsim replicas, the time from an Ingress update written to
// the API server until all three replicas serve the new configuration.
// It reports p50, p99 and max over the iterations (target p99 < 250ms)
// and the process CPU time per change; use -benchtime=100x for a stable
// p99. kongsim's POST /config of a 1000-app document is most of it (see
// BenchmarkKongsimLoad1k): three replicas load it in this one process.
func BenchmarkChangeToApplied1k(b *testing.B) {
	kongs, err := NewKongs(replicas, KongsOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(kongs.Close)
	client := newBenchClientset(appObjects(Apps(1000))...)
	startController(b, client, kongs.AdminURLs(), kongs.Transport(), benchFlags...)
	want := expectedConfig(b, client).kongHash
	benchChangeToApplied(b, client, kongs.Hashes, kongs.Changed, want)
}

// BenchmarkChangeToApplied1kControllerOnly is the same measurement with
// Kong replicas that only hash what they receive: the controller's own
// share (informer event, debounce, translation, three pushes).
func BenchmarkChangeToApplied1kControllerOnly(b *testing.B) {
	ks := newHashKongs(replicas)
	client := newBenchClientset(appObjects(Apps(1000))...)
	startController(b, client, ks.urls(), ks, benchFlags...)
	want := sha256Hex(expectedTranslation(b, client).Body)
	benchChangeToApplied(b, client, ks.hashes, ks.changed, want)
}

// benchChangeToApplied waits until every replica serves want and every
// Ingress status is written (the steady state), then times changes.
func benchChangeToApplied(b *testing.B, client *fake.Clientset, hashes func() []string, changed func() <-chan struct{}, want string) {
	ctx := context.Background()
	waitFor := func(within time.Duration, cond func() bool) error {
		ctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		for {
			ch := changed()
			if cond() {
				return nil
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	allServe := func(h string) bool { return slices.Equal(hashes(), slices.Repeat([]string{h}, replicas)) }
	if err := waitFor(2*time.Minute, func() bool { return allServe(want) }); err != nil {
		b.Fatalf("1000 Ingresses not synced: %v (hashes %v, want %s)", err, hashes(), want)
	}
	eventually(b, 5*time.Minute, "status of every Ingress written", func() error {
		return statusesWritten(client)
	})

	var took []time.Duration
	cpu0 := processCPU()
	i := 0
	for b.Loop() {
		before := hashes()[0]
		name := "app-" + strconv.Itoa(i%1000)
		i++
		path := "/v" + strconv.Itoa(i)
		start := time.Now()
		updateIngress(b, client, "default", name, func(ing *networkingv1.Ingress) {
			ing.Spec.Rules[0].HTTP.Paths[0].Path = path
		})
		err := waitFor(time.Minute, func() bool {
			h := hashes()[0]
			return h != before && allServe(h)
		})
		if err != nil {
			b.Fatalf("change %d not applied everywhere: %v (hashes %v)", i, err, hashes())
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(ms(percentile(took, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(took, 99)), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	b.ReportMetric(ms(processCPU()-cpu0)/float64(len(took)), "cpu-ms/change")
}

// statusesWritten checks that every Ingress carries the published address.
func statusesWritten(client *fake.Clientset) error {
	list, err := client.NetworkingV1().Ingresses("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err
	}
	missing := 0
	for _, ing := range list.Items {
		if len(ing.Status.LoadBalancer.Ingress) == 0 {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d Ingresses without status", missing, len(list.Items))
	}
	return nil
}

// processCPU is the user+system CPU time this process used so far: on a
// shared machine, wall time mostly measures the neighbours.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func percentile(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)*p+99)/100-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// hashKongs routes kong-<i> to the i-th hash-only Kong (package hashkong):
// what is measured is the controller.
type hashKongs struct {
	kongs  []*hashkong.Kong
	signal *hashkong.Signal // fired at every accepted push to any of them
}

func newHashKongs(n int) *hashKongs {
	ks := &hashKongs{signal: hashkong.NewSignal()}
	for range n {
		ks.kongs = append(ks.kongs, hashkong.New(ks.signal))
	}
	return ks
}

func (ks *hashKongs) urls() []string {
	var urls []string
	for i := range ks.kongs {
		urls = append(urls, AdminURL(i))
	}
	return urls
}

// hashes returns the sha256 of what each replica last accepted.
func (ks *hashKongs) hashes() []string {
	hs := make([]string, len(ks.kongs))
	for i, k := range ks.kongs {
		hs[i] = k.Hash()
	}
	return hs
}

func (ks *hashKongs) changed() <-chan struct{} { return ks.signal.C() }

func (ks *hashKongs) RoundTrip(req *http.Request) (*http.Response, error) {
	i, _, ok := parseHost(req.URL.Host)
	if !ok || i >= len(ks.kongs) {
		return nil, refused(req)
	}
	return kong.NewInMemoryTransport(ks.kongs[i]).RoundTrip(req)
}

// TestHeap10k measures the controller's memory once 10k Ingresses, 10k
// Services and 10k EndpointSlices are synced to three Kong replicas and
// every Ingress status is written (target: < 100 MiB). It takes tens of
// seconds, so it runs only with KONDUCTOR_HEAP=1:
//
//	KONDUCTOR_HEAP=1 go test -count=1 -run TestHeap10k -v ./sim/integration/
//
// The figures are logged, not asserted: memory targets belong in
// benchmarks' reports. The fake API server's own copy of the objects lives
// in the same process; the baseline line separates it.
func TestHeap10k(t *testing.T) {
	if os.Getenv("KONDUCTOR_HEAP") != "1" {
		t.Skip("set KONDUCTOR_HEAP=1 to measure memory after syncing 10k Ingresses (takes tens of seconds)")
	}
	const n = 10000
	apps := Apps(n)
	client := newBenchClientset(appObjects(apps)...)
	expectedBody := sha256Hex(expectedTranslation(t, client).Body)
	base := memory(t)
	t.Logf("baseline (fake API server holding %d objects): %s", 3*n, base)

	ks := newHashKongs(replicas)
	start := time.Now()
	startController(t, client, ks.urls(), ks, benchFlags...)
	eventually(t, 5*time.Minute, "10k Ingresses pushed to three Kongs", func() error {
		if hs := ks.hashes(); !slices.Equal(hs, slices.Repeat([]string{expectedBody}, replicas)) {
			return fmt.Errorf("not every Kong has the full configuration: %v", hs)
		}
		return nil
	})
	synced := time.Since(start)
	eventually(t, 10*time.Minute, "status of 10k Ingresses written", func() error {
		return statusesWritten(client)
	})
	t.Logf("synced to 3 Kongs in %s, statuses written after %s", synced.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	after := memory(t)
	t.Logf("after sync: %s", after)
	t.Logf("controller's share (after - baseline): heap in use %.1f MiB, RSS %.1f MiB",
		mib(after.heapInuse-base.heapInuse), mib(after.rss-base.rss))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type memFigures struct {
	heapInuse, heapAlloc, sys, rss, peakRSS uint64
}

func (m memFigures) String() string {
	return fmt.Sprintf("heap in use %.1f MiB, heap alloc %.1f MiB, Go sys %.1f MiB, RSS %.1f MiB (peak so far %.1f MiB)",
		mib(m.heapInuse), mib(m.heapAlloc), mib(m.sys), mib(m.rss), mib(m.peakRSS))
}

func mib(v uint64) float64 { return float64(int64(v)) / (1 << 20) }

// memory forces a collection, returns freed memory to the OS (so that RSS
// is not inflated by garbage already collected) and reads the Go heap and
// the process RSS.
func memory(t testing.TB) memFigures {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f := memFigures{heapInuse: ms.HeapInuse, heapAlloc: ms.HeapAlloc, sys: ms.Sys}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		for field, dst := range map[string]*uint64{"VmRSS:": &f.rss, "VmHWM:": &f.peakRSS} {
			if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
				kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					t.Fatalf("/proc/self/status %s %q: %v", field, rest, err)
				}
				*dst = kb << 10
			}
		}
	}
	if f.rss == 0 {
		t.Fatal("/proc/self/status has no VmRSS")
	}
	return f
}
