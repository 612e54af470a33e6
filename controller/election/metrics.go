package election

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the election's Prometheus series, all labelled with the lock
// (namespace/name). A nil *metrics records nothing.
type metrics struct {
	isLeader    prometheus.GaugeFunc
	epoch       prometheus.Gauge
	transitions *prometheus.CounterVec
	takeover    prometheus.Histogram
	early       prometheus.Counter
}

// Values of the "event" label of konductor_election_transitions_total.
const (
	eventAcquired = "acquired" // we started a term
	eventLost     = "lost"     // our term ended without a release: lapsed or taken
	eventReleased = "released" // we released the lock on graceful shutdown
)

// newMetrics registers the series; isLeader is read at every scrape, so the
// gauge follows Permit even while the election loop is stuck in a request.
func newMetrics(reg prometheus.Registerer, lock string, isLeader func() bool) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	labels := prometheus.Labels{"lock": lock}
	m := &metrics{
		isLeader: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "konductor_election_is_leader",
			Help:        "1 while this replica holds a valid leadership term (Permit grants), else 0.",
			ConstLabels: labels,
		}, func() float64 {
			if isLeader() {
				return 1
			}
			return 0
		}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "konductor_election_epoch",
			Help:        "The lock's leader transition count as last observed: the current term's number.",
			ConstLabels: labels,
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "konductor_election_transitions_total",
			Help:        "Changes of this replica's leadership, by event: acquired, lost, released.",
			ConstLabels: labels,
		}, []string{"event"}),
		takeover: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "konductor_election_takeover_seconds",
			Help:        "Time from observing the lock free (released, deleted, or the previous holder's lease expired) to acquiring it.",
			ConstLabels: labels,
			Buckets:     []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
	}
	m.early = prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "konductor_election_early_takeovers_total",
		Help:        "Terms this replica took before the previous holder's lease ran out, because the kubelet reported the holder's process terminated.",
		ConstLabels: labels,
	})
	for _, c := range []prometheus.Collector{m.isLeader, m.epoch, m.transitions, m.takeover, m.early} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, ev := range []string{eventAcquired, eventLost, eventReleased} {
		m.transitions.WithLabelValues(ev)
	}
	return m, nil
}

func (m *metrics) setEpoch(epoch int) {
	if m != nil {
		m.epoch.Set(float64(epoch))
	}
}

func (m *metrics) transition(event string) {
	if m != nil {
		m.transitions.WithLabelValues(event).Inc()
	}
}

func (m *metrics) observeTakeover(d time.Duration) {
	if m != nil {
		m.takeover.Observe(d.Seconds())
	}
}

func (m *metrics) tookOverEarly() {
	if m != nil {
		m.early.Inc()
	}
}
