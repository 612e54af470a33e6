package dbsync

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kong/go-kong/kong"

	"konductor.dev/controller/translate/declarative"
)

// benchConfig builds n services, each with one route, and n upstreams,
// each with one target: 4n entities.
func benchConfig(n int) *declarative.Config {
	cfg := declarative.New()
	tags := kong.StringSlice("k8s-name:app", "k8s-namespace:default", "k8s-kind:Ingress", "managed-by-konductor")
	for i := range n {
		name := fmt.Sprintf("app-%05d", i)
		cfg.Services = append(cfg.Services, &declarative.Service{
			Service: kong.Service{ID: kong.String("s-" + name), Name: kong.String(name), Host: kong.String(name + ".svc"),
				Port: kong.Int(80), Protocol: kong.String("http"), Tags: tags},
			Routes: []*kong.Route{{ID: kong.String("r-" + name), Name: kong.String(name), Hosts: kong.StringSlice(name + ".example.com"),
				Paths: kong.StringSlice("~/api$", "/api/"), StripPath: kong.Bool(false), PreserveHost: kong.Bool(true), Tags: tags}},
		})
		cfg.Upstreams = append(cfg.Upstreams, &declarative.Upstream{
			Upstream: kong.Upstream{ID: kong.String("u-" + name), Name: kong.String(name + ".svc"), Tags: tags},
			Targets:  []*kong.Target{{ID: kong.String("t-" + name), Target: kong.String("10.0.0.1:8080"), Weight: kong.Int(100), Tags: tags}},
		})
	}
	return cfg
}

// BenchmarkDiff measures the comparison of a configuration with what Kong
// holds (all equal, the drift check's common case); listing is not included.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{1500, 5000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			cfg := benchConfig(n)
			want, err := DesiredSet(cfg)
			if err != nil {
				b.Fatal(err)
			}
			have := asKongStores(b, want)
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if p := Diff(want, have); len(p.Ops) != 0 {
					b.Fatalf("%d ops for an unchanged configuration", len(p.Ops))
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// reportCPU adds the process CPU time per op since start: on a shared
// machine wall time mostly measures the neighbours.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((processCPU()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
