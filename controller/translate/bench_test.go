package translate

import (
	"syscall"
	"testing"
	"time"

	"konductor.dev/controller/internal/synthetic"
)

// benchSnapshot is synthetic.Apps(n): object i of each kind belongs
// together, in that order.
func benchSnapshot(n int) Snapshot {
	var s Objects
	s.Ingresses, s.Services, s.EndpointSlices = synthetic.Apps(n)
	return s.Snapshot()
}

func benchmarkTranslate(b *testing.B, n int) {
	snap := benchSnapshot(n)
	b.ReportAllocs()
	b.ResetTimer()
	cpuBefore := processCPU()
	for b.Loop() {
		res := Translate(snap, Options{})
		if len(res.Translated) != n {
			b.Fatalf("translated %d of %d Ingresses: %v", len(res.Translated), n, res.Errors[:min(3, len(res.Errors))])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	// On a shared machine wall time mostly measures the neighbours; CPU time
	// (user+system, all threads including GC) is what the translation costs.
	b.ReportMetric(float64((processCPU()-cpuBefore).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkTranslate1k(b *testing.B)  { benchmarkTranslate(b, 1_000) }
func BenchmarkTranslate10k(b *testing.B) { benchmarkTranslate(b, 10_000) }

// BenchmarkMarshal10k isolates the encoder: the document of a 10k-Ingress
// snapshot rendered again and again.
func BenchmarkMarshal10k(b *testing.B) {
	cfg := Translate(benchSnapshot(10_000), Options{}).Config
	b.ReportAllocs()
	b.ResetTimer()
	cpuBefore := processCPU()
	var size int
	for b.Loop() {
		body, err := cfg.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	b.SetBytes(int64(size))
	b.ReportMetric(float64((processCPU()-cpuBefore).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
