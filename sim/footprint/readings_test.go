package footprint

import (
	"context"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// reading is one look at the controller process's memory.
type reading struct {
	rss, peakRSS uint64 // VmRSS and VmHWM of /proc/<pid>/status
	// rssAnon and rssFile split VmRSS: anonymous memory (the Go heap,
	// stacks, runtime metadata) and mapped files (mostly the binary's own
	// pages, shared with any other process running it).
	rssAnon, rssFile uint64
	// From the process's own /metrics: no collection is forced, so heap
	// in use includes garbage not yet collected, as an operator sees it.
	heapInuse, heapAlloc, goSys uint64
	// nextGC is the heap size that triggers the next collection: with the
	// default GOGC=100, twice the heap that survived the last one.
	nextGC uint64
}

func (r reading) String() string {
	return fmt.Sprintf("VmRSS %.1f MiB (anon %.1f, file %.1f), VmHWM %.1f MiB, go_memstats_heap_inuse_bytes %.1f MiB, heap alloc %.1f MiB, next GC at %.1f MiB, Go sys %.1f MiB",
		mib(r.rss), mib(r.rssAnon), mib(r.rssFile), mib(r.peakRSS), mib(r.heapInuse), mib(r.heapAlloc), mib(r.nextGC), mib(r.goSys))
}

func mib(v uint64) float64 { return float64(v) / (1 << 20) }

// readMemory reads pid's resident set from /proc and its Go heap from the
// Prometheus text exposition at metricsURL.
func readMemory(ctx context.Context, pid int, metricsURL string) (reading, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return reading{}, fmt.Errorf("process %d: %w", pid, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return reading{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	r := reading{rss: st.VmRSS, peakRSS: st.VmHWM, rssAnon: st.RssAnon, rssFile: st.RssFile}
	gauges, err := metricGauges(ctx, metricsURL, "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_sys_bytes", "go_memstats_next_gc_bytes")
	if err != nil {
		return reading{}, err
	}
	r.heapInuse, r.heapAlloc, r.goSys, r.nextGC = uint64(gauges[0]), uint64(gauges[1]), uint64(gauges[2]), uint64(gauges[3])
	return r, nil
}

// gaugeValues returns the value of each named unlabelled gauge of a
// Prometheus text exposition, in the order asked.
// metricGauges reads unlabelled gauges from the exposition at metricsURL,
// in the order asked.
func metricGauges(ctx context.Context, metricsURL string, names ...string) ([]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
	}
	v, err := gaugeValues(resp.Body, names...)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", metricsURL, err)
	}
	return v, nil
}

func gaugeValues(in io.Reader, names ...string) ([]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(in)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	out := make([]float64, len(names))
	for i, name := range names {
		f, ok := families[name]
		if !ok {
			return nil, fmt.Errorf("metric %s is missing", name)
		}
		if f.GetType() != dto.MetricType_GAUGE || len(f.GetMetric()) != 1 {
			return nil, fmt.Errorf("metric %s: want one gauge, got %d of type %s", name, len(f.GetMetric()), f.GetType())
		}
		out[i] = f.GetMetric()[0].GetGauge().GetValue()
	}
	return out, nil
}
