package dbsync

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	syncs        *prometheus.CounterVec
	syncSeconds  *prometheus.HistogramVec
	writes       *prometheus.CounterVec
	driftRepairs *prometheus.CounterVec
}

func newMetrics(s *Syncer, reg prometheus.Registerer, log *slog.Logger) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "konductor_kong_db_syncs_total",
			Help: "DB-mode syncs (list, diff, apply), by outcome (applied, unchanged, rejected, refused, not_writer, error).",
		}, []string{"outcome"}),
		syncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "konductor_kong_db_sync_duration_seconds",
			Help:    "Duration of DB-mode syncs, by outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"outcome"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "konductor_kong_db_entity_writes_total",
			Help: "Entities written to Kong's database, by kind (services, routes, ...) and operation (create, update, delete).",
		}, []string{"kind", "operation"}),
		driftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "konductor_kong_db_drift_repairs_total",
			Help: "Entities restored after they were changed or deleted behind konductor's back, by kind.",
		}, []string{"kind"}),
	}
	applied := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "konductor_kong_db_applied_version",
		Help: "Version of the last desired configuration Kong's database fully holds (0: none).",
	}, func() float64 { return float64(s.Status().AppliedVersion) })
	for _, c := range []prometheus.Collector{m.syncs, m.syncSeconds, m.writes, m.driftRepairs, applied} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				log.Error("dbsync metrics already registered; this Syncer's metrics are not exported", "err", err)
				continue
			}
			log.Error("registering dbsync metrics", "err", err)
		}
	}
	return m
}

func (m *metrics) observeSync(o outcome, d time.Duration) {
	m.syncs.WithLabelValues(string(o)).Inc()
	m.syncSeconds.WithLabelValues(string(o)).Observe(d.Seconds())
}

func (s *Syncer) observeRepairs(byKind [numKinds]int) {
	if s.metrics == nil {
		return
	}
	for k, n := range byKind {
		if n > 0 {
			s.metrics.driftRepairs.WithLabelValues(Kind(k).String()).Add(float64(n))
		}
	}
}
