// Package metrics defines the controller loop's own Prometheus metrics
// (translation and configuration versions). Each component registers its
// metrics on the Registerer it is given, so a test or a simulated world can
// run several controllers in one process with separate registries.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Translation is the set of metrics about translating Kubernetes objects.
type Translation struct {
	Duration      prometheus.Histogram
	BrokenObjects prometheus.Gauge
	ObjectErrors  prometheus.Gauge
	LastTimestamp prometheus.Gauge
	Version       prometheus.Gauge
	Translations  prometheus.Counter
}

// NewTranslation creates the metrics and registers them on reg (nil: not
// registered, e.g. in tests that do not look at them).
func NewTranslation(reg prometheus.Registerer) (*Translation, error) {
	m := &Translation{
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "konductor_translation_duration_seconds",
			Help:    "Time to build a snapshot and translate it into a Kong configuration.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
		}),
		BrokenObjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "konductor_translation_broken_objects",
			Help: "Kubernetes objects with at least one translation error in the last translation.",
		}),
		ObjectErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "konductor_translation_object_errors",
			Help: "Translation errors in the last translation.",
		}),
		LastTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "konductor_translation_last_timestamp_seconds",
			Help: "Unix time of the last translation.",
		}),
		Version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "konductor_config_version",
			Help: "Version of the newest configuration handed to the Kong syncer (grows with every new hash).",
		}),
		Translations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "konductor_translations_total",
			Help: "Translations run.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Duration, m.BrokenObjects, m.ObjectErrors, m.LastTimestamp, m.Version, m.Translations} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Observe records one translation.
func (m *Translation) Observe(took time.Duration, at time.Time, brokenObjects, objectErrors int) {
	m.Duration.Observe(took.Seconds())
	m.LastTimestamp.Set(float64(at.UnixNano()) / 1e9)
	m.BrokenObjects.Set(float64(brokenObjects))
	m.ObjectErrors.Set(float64(objectErrors))
	m.Translations.Inc()
}
