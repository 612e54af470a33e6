package footprint

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestGaugeValues(t *testing.T) {
	const exposition = `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 4.2e+07
# TYPE go_memstats_sys_bytes gauge
go_memstats_sys_bytes 1024
# TYPE konductor_pushes_total counter
konductor_pushes_total{replica="a"} 3
# TYPE labelled gauge
labelled{a="1"} 1
labelled{a="2"} 2
`
	tests := []struct {
		name    string
		in      string
		ask     []string
		want    []float64
		wantErr string
	}{
		{name: "two gauges in the order asked", in: exposition, ask: []string{"go_memstats_sys_bytes", "go_memstats_heap_inuse_bytes"}, want: []float64{1024, 42e6}},
		{name: "missing metric", in: exposition, ask: []string{"go_memstats_heap_alloc_bytes"}, wantErr: "go_memstats_heap_alloc_bytes is missing"},
		{name: "a counter is not a gauge", in: exposition, ask: []string{"konductor_pushes_total"}, wantErr: "konductor_pushes_total: want one gauge"},
		{name: "a labelled family is ambiguous", in: exposition, ask: []string{"labelled"}, wantErr: "labelled: want one gauge, got 2"},
		{name: "not an exposition", in: "{\"json\": true}\n", ask: []string{"x"}, wantErr: "parsing metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gaugeValues(strings.NewReader(tt.in), tt.ask...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReadMemoryOfThisProcess reads this test process the way the
// measurement reads the controller: /proc and a /metrics endpoint served
// by the same Go collector the binary registers.
func TestReadMemoryOfThisProcess(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	r, err := readMemory(context.Background(), os.Getpid(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if r.rss == 0 || r.peakRSS < r.rss {
		t.Errorf("VmRSS %d, VmHWM %d: want 0 < VmRSS <= VmHWM", r.rss, r.peakRSS)
	}
	if r.heapInuse == 0 || r.goSys < r.heapInuse {
		t.Errorf("heap in use %d, Go sys %d: want 0 < heap in use <= sys", r.heapInuse, r.goSys)
	}

	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	if _, err := readMemory(context.Background(), os.Getpid(), notFound.URL); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("reading from a 404 endpoint: error %v, want one naming the status", err)
	}
}
