package kongsync

import (
	"syscall"
	"testing"
	"time"

	"konductor.dev/controller/internal/synthetic"
	"konductor.dev/controller/translate"
)

// translatedBody is the declarative body for n Ingresses, each with its own
// Service and an EndpointSlice of three ready endpoints: what the
// controller retains at that scale.
func translatedBody(b *testing.B, n int) []byte {
	b.Helper()
	var s translate.Objects
	s.Ingresses, s.Services, s.EndpointSlices = synthetic.Apps(n)
	res := translate.Translate(s.Snapshot(), translate.Options{})
	if len(res.Translated) != n {
		b.Fatalf("translated %d of %d Ingresses", len(res.Translated), n)
	}
	return res.Body
}

// BenchmarkRetained10k measures keeping the 10k-Ingress body compressed:
// compact is the idle-time cost after each new version, inflate the cost of
// each push that needs it again (drift repair, a new replica, a retry).
// retained-bytes is what stays in memory between pushes.
func BenchmarkRetained10k(b *testing.B) {
	body := translatedBody(b, 10_000)
	d := NewDesired(body, 1)
	b.Run("compact", func(b *testing.B) {
		var kept int
		b.SetBytes(int64(len(body)))
		measureCPU(b, func() {
			r := newRetained(d)
			if _, err := r.compact(); err != nil {
				b.Fatal(err)
			}
			kept = r.bytes()
		})
		b.ReportMetric(float64(len(body)), "raw-bytes")
		b.ReportMetric(float64(kept), "retained-bytes")
	})
	b.Run("inflate", func(b *testing.B) {
		r := newRetained(d)
		if _, err := r.compact(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(body)))
		measureCPU(b, func() {
			if _, err := r.acquire(); err != nil {
				b.Fatal(err)
			}
			r.release()
			// Drop the inflated copy so each round inflates again.
			if _, err := r.compact(); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// measureCPU runs fn b.N times and reports the process CPU (user+system,
// all threads including GC) per run: on a shared machine wall time mostly
// measures the neighbours.
func measureCPU(b *testing.B, fn func()) {
	b.ReportAllocs()
	before := processCPU()
	for b.Loop() {
		fn()
	}
	b.ReportMetric(float64((processCPU()-before).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
