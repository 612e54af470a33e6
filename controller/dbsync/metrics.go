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
	takeovers    *prometheus.CounterVec
	warmListings prometheus.Counter
	listSeconds  prometheus.Histogram
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
	m.takeovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "konductor_kong_db_takeovers_total",
		Help: "First syncs of a new leadership term, by listing: warm (a recent listing let the changes be written before re-listing), stale (the listing held differed too much to use) or cold (none held, or nothing desired).",
	}, []string{"listing"})
	m.warmListings = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "konductor_kong_db_standby_listings_total",
		Help: "Complete listings a standby made to hold a recent listing for a takeover.",
	})
	m.listSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "konductor_kong_db_listing_duration_seconds",
		Help:    "Duration of a sync's complete listing of Kong's managed entities.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	applied := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "konductor_kong_db_applied_version",
		Help: "Version of the last desired configuration Kong's database fully holds (0: none).",
	}, func() float64 { return float64(s.Status().AppliedVersion) })
	for _, c := range []prometheus.Collector{m.syncs, m.syncSeconds, m.writes, m.driftRepairs, m.takeovers, m.warmListings, m.listSeconds, applied} {
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

// observeTakeover counts a takeover's first sync and keeps the last one's
// figures for Status.
func (s *Syncer) observeTakeover(listing string, prewrites int) {
	s.mu.Lock()
	s.status.Takeovers = append(s.status.Takeovers, Takeover{Listing: listing, Prewrites: prewrites, At: time.Now()})
	if len(s.status.Takeovers) > maxTakeovers {
		s.status.Takeovers = s.status.Takeovers[len(s.status.Takeovers)-maxTakeovers:]
	}
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.takeovers.WithLabelValues(listing).Inc()
	}
}
