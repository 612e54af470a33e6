package snapshot

import (
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/controller/internal/synthetic"
)

// BenchmarkWaitCurrent10k is a new term's check of the caches with 10k
// Ingresses, Services and EndpointSlices on the in-process fake API
// server: it measures the listings and their comparison with the caches,
// not an API server's encoding (sim/footprint's TestWaitCurrent10k does,
// on a real one).
func BenchmarkWaitCurrent10k(b *testing.B) {
	ingresses, services, slices := synthetic.Apps(10_000)
	var objs []runtime.Object
	for i := range ingresses {
		objs = append(objs, ingresses[i], services[i], slices[i])
	}
	c := start(b, Config{Client: fake.NewClientset(objs...), IngressClass: "kong"})
	b.ReportAllocs()
	cpuBefore := processCPU(b)
	for b.Loop() {
		if err := c.WaitCurrent(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	// The machine may be shared: CPU time per call says more than ns/op.
	b.ReportMetric(float64(processCPU(b)-cpuBefore)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
