package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkProxyThroughput sends b.N requests straight to a loopback upstream
// and b.N through the proxy to the same upstream, with the same client and
// concurrency, and reports both rates and their ratio (proxied/direct).
// Client, proxy and upstream share this process and its CPUs, so a proxied
// request pays for a second HTTP hop: the proxy's server side costs what the
// upstream's does, and its upstream client what the benchmark's client does.
// The ratio therefore sits just under 0.5 however lean the proxy's own code
// is; "cpu-ratio" is the same comparison in CPU time, steadier than wall
// time on a shared machine.
func BenchmarkProxyThroughput(b *testing.B) {
	const concurrency = 8
	payload := []byte(`{"status":"ok","items":[1,2,3,4,5,6,7,8,9,10]}`)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(payload)
	}))
	defer upstream.Close()
	host, port := hostPort(b, upstream)

	routes := []*Route{{Name: "bench", ServiceID: "s", Hosts: []string{"bench.test"}, Paths: []string{"~/api$", "/api/"}, StripPath: true}}
	for i := range 500 { // a realistic router behind the measured route
		routes = append(routes, &Route{Name: fmt.Sprint("other-", i), ServiceID: "s", Hosts: []string{fmt.Sprintf("svc%d.test", i)}, Paths: []string{"/"}})
	}
	p := New(Options{})
	defer p.Close()
	if err := p.Update(Config{Services: []*Service{{ID: "s", Host: host, Port: port, Retries: 5}}, Routes: routes}); err != nil {
		b.Fatal(err)
	}
	proxySrv := httptest.NewServer(p)
	defer proxySrv.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()

	// run sends n requests from concurrency goroutines and returns the time.
	run := func(n int, url, hostHeader string) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Value
		start := time.Now()
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Host = hostHeader
					resp, err := client.Do(req)
					if err != nil {
						failed.Store(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failed.Store(fmt.Errorf("%s: status %d", url, resp.StatusCode))
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	// Warm both paths' connection pools, then alternate direct and proxied
	// rounds so that load from elsewhere on the machine hits both alike.
	run(2*concurrency, upstream.URL+"/api/items", "")
	run(2*concurrency, proxySrv.URL+"/api/items", "bench.test")
	const rounds = 5
	var direct, proxied, directCPU, proxiedCPU time.Duration
	b.ResetTimer()
	for i := range rounds {
		n := b.N / rounds
		if i == 0 {
			n += b.N % rounds
		}
		cpu0 := processCPU(b)
		direct += run(n, upstream.URL+"/api/items", "")
		cpu1 := processCPU(b)
		proxied += run(n, proxySrv.URL+"/api/items", "bench.test")
		directCPU, proxiedCPU = directCPU+cpu1-cpu0, proxiedCPU+processCPU(b)-cpu1
	}
	b.StopTimer()
	// On a shared machine wall time swings with other load; CPU time spent
	// by this process (client, proxy and upstream all live here) per request
	// is the steadier measure of what a proxy hop costs.
	b.ReportMetric(float64(directCPU)/float64(proxiedCPU), "cpu-ratio")
	b.ReportMetric(float64(directCPU.Microseconds())/float64(b.N), "cpu-µs/direct")
	b.ReportMetric(float64(proxiedCPU.Microseconds())/float64(b.N), "cpu-µs/proxied")

	directRate := float64(b.N) / direct.Seconds()
	proxiedRate := float64(b.N) / proxied.Seconds()
	b.ReportMetric(directRate, "direct-req/s")
	b.ReportMetric(proxiedRate, "proxied-req/s")
	b.ReportMetric(proxiedRate/directRate, "ratio")
}

// processCPU returns the user plus system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
