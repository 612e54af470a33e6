package kongsync

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are labelled by target name; a removed target's series are
// deleted, so cardinality follows the current replica count.
type metrics struct {
	pushes       *prometheus.CounterVec
	pushSeconds  *prometheus.HistogramVec
	driftRepairs *prometheus.CounterVec
	state        *stateCollector
}

func newMetrics(s *Syncer, reg prometheus.Registerer, log *slog.Logger) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "konductor_kong_config_pushes_total",
			Help: "POST /config attempts per Kong replica, by outcome (success, unchanged, rejected, throttled, error).",
		}, []string{"target", "outcome"}),
		pushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "konductor_kong_config_push_duration_seconds",
			Help:    "Duration of POST /config per Kong replica, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"target", "outcome"}),
		driftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "konductor_kong_config_drift_repairs_total",
			Help: "Pushes that restored a Kong replica whose reported configuration hash differed from the one expected (restart, edit behind our back).",
		}, []string{"target"}),
		state: &stateCollector{
			s: s,
			age: prometheus.NewDesc("konductor_kong_config_age_seconds",
				"Seconds since the Kong replica last accepted or confirmed a push; absent before the first.", []string{"target"}, nil),
			version: prometheus.NewDesc("konductor_kong_config_applied_version",
				"Version of the last desired configuration the Kong replica accepted (0: none).", []string{"target"}, nil),
			targets: prometheus.NewDesc("konductor_kong_targets",
				"Kong replicas currently configured by this controller.", nil, nil),
			retained: prometheus.NewDesc("konductor_kong_config_retained_bytes",
				"Bytes of declarative configuration kept for pushing again (the current one and each replica's last good one; compressed while no push of it is in flight).", nil, nil),
			incompatible: prometheus.NewDesc("konductor_kong_target_incompatible",
				"1 when the Kong replica reported a database mode this controller does not configure (it is not pushed to), else 0.", []string{"target", "database"}, nil),
		},
	}
	for _, c := range []prometheus.Collector{m.pushes, m.pushSeconds, m.driftRepairs, m.state} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				log.Error("kongsync metrics already registered; this Syncer's metrics are not exported", "err", err)
				continue
			}
			log.Error("registering kongsync metrics", "err", err)
		}
	}
	return m
}

func (m *metrics) observePush(target string, o outcome, d time.Duration) {
	m.pushes.WithLabelValues(target, string(o)).Inc()
	m.pushSeconds.WithLabelValues(target, string(o)).Observe(d.Seconds())
}

func (m *metrics) forget(target string) {
	l := prometheus.Labels{"target": target}
	m.pushes.DeletePartialMatch(l)
	m.pushSeconds.DeletePartialMatch(l)
	m.driftRepairs.DeletePartialMatch(l)
}

// stateCollector reads per-target state at scrape time, so the age is
// always current and removed targets vanish by themselves.
type stateCollector struct {
	s                                   *Syncer
	age, version, targets, incompatible *prometheus.Desc
	retained                            *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.version
	ch <- c.targets
	ch <- c.incompatible
	ch <- c.retained
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	sts := c.s.Status()
	now := time.Now()
	ch <- prometheus.MustNewConstMetric(c.targets, prometheus.GaugeValue, float64(len(sts)))
	ch <- prometheus.MustNewConstMetric(c.retained, prometheus.GaugeValue, float64(c.s.retainedBytes()))
	for _, st := range sts {
		name := st.Target.Name
		ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(st.AppliedVersion), name)
		incompatible := 0.0
		if st.Incompatible() {
			incompatible = 1
		}
		ch <- prometheus.MustNewConstMetric(c.incompatible, prometheus.GaugeValue, incompatible, name, st.Database)
		if !st.LastApplied.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(st.LastApplied).Seconds(), name)
		}
	}
}
