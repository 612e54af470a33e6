package kong

import (
	"context"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"konductor.dev/sim/kong/proxy"
)

// Kong 3.9's prometheus plugin buckets, in milliseconds.
var (
	kongLatencyBuckets     = []float64{1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000}
	upstreamLatencyBuckets = []float64{25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000}
)

// nodeMetrics is what GET /metrics on the Status API serves, under the
// names and labels of Kong's prometheus plugin: per-request series
// recorded by the requests a prometheus plugin instance applies to, and
// node series read when scraped.
type nodeMetrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	bandwidth       *prometheus.CounterVec
	requestLatency  *prometheus.HistogramVec
	upstreamLatency *prometheus.HistogramVec
	kongLatency     *prometheus.HistogramVec
}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kong_http_requests_total", Help: "HTTP status codes per consumer/service/route in Kong",
	}, []string{"service", "route", "code", "source", "workspace", "consumer"})
	m.bandwidth = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kong_bandwidth_bytes", Help: "Total bandwidth (ingress/egress) throughput in bytes",
	}, []string{"service", "route", "direction", "workspace", "consumer"})
	latency := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets},
			[]string{"service", "route", "workspace"})
	}
	m.requestLatency = latency("kong_request_latency_ms", "Total latency incurred during requests for each service/route in Kong", upstreamLatencyBuckets)
	m.upstreamLatency = latency("kong_upstream_latency_ms", "Latency added by upstream response for each service/route in Kong", upstreamLatencyBuckets)
	m.kongLatency = latency("kong_kong_latency_ms", "Latency added by Kong and enabled plugins for each service/route in Kong", kongLatencyBuckets)
	m.reg.MustRegister(m.requests, m.bandwidth, m.requestLatency, m.upstreamLatency, m.kongLatency, nodeCollector{n})
	return m
}

// observe records one request (the proxy's Options.Observe).
func (m *nodeMetrics) observe(o *proxy.Observation) {
	const workspace = "default"
	consumer := ""
	if o.Config.PerConsumer {
		consumer = o.Consumer
	}
	if o.Config.BandwidthMetrics {
		if o.RequestBytes > 0 {
			m.bandwidth.WithLabelValues(o.Service, o.Route, "ingress", workspace, consumer).Add(float64(o.RequestBytes))
		}
		if o.ResponseBytes > 0 {
			m.bandwidth.WithLabelValues(o.Service, o.Route, "egress", workspace, consumer).Add(float64(o.ResponseBytes))
		}
	}
	if o.Config.StatusCodeMetrics {
		source := "kong"
		if o.Proxied {
			source = "service"
		}
		m.requests.WithLabelValues(o.Service, o.Route, strconv.Itoa(o.Status), source, workspace, consumer).Inc()
	}
	if o.Config.LatencyMetrics {
		ms := func(d interface{ Milliseconds() int64 }) float64 { return float64(d.Milliseconds()) }
		m.requestLatency.WithLabelValues(o.Service, o.Route, workspace).Observe(ms(o.Latency))
		if o.Proxied {
			m.upstreamLatency.WithLabelValues(o.Service, o.Route, workspace).Observe(ms(o.Upstream))
		}
		m.kongLatency.WithLabelValues(o.Service, o.Route, workspace).Observe(ms(o.Kong))
	}
}

func (m *nodeMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// nodeCollector reads the node-wide series when scraped.
type nodeCollector struct{ n *Node }

var (
	descConnections = prometheus.NewDesc("kong_nginx_connections_total", "Number of connections by subsystem",
		[]string{"node_id", "subsystem", "state"}, nil)
	descNginxRequests = prometheus.NewDesc("kong_nginx_requests_total", "Number of requests total",
		[]string{"node_id", "subsystem"}, nil)
	descDatastore = prometheus.NewDesc("kong_datastore_reachable", "Datastore reachable from Kong, 0 is unreachable", nil, nil)
	descNodeInfo  = prometheus.NewDesc("kong_node_info", "Kong Node metadata information", []string{"node_id", "version"}, nil)
	descTarget    = prometheus.NewDesc("kong_upstream_target_health",
		"Health status of targets of upstream. States = healthchecks_off|healthy|unhealthy|dns_error, value is 1 when state is populated.",
		[]string{"upstream", "target", "address", "state", "subsystem"}, nil)
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descNginxRequests, descDatastore, descNodeInfo, descTarget} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	id := n.opts.NodeID
	total := float64(n.requests.Load() + n.proxy.Requests())
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range []struct {
		state string
		v     float64
	}{
		{"accepted", total}, {"handled", total}, {"total", total},
		{"active", 1}, {"reading", 0}, {"writing", 1}, {"waiting", 0},
	} {
		gauge(descConnections, s.v, id, "http", s.state)
	}
	gauge(descNginxRequests, total, id, "http")
	reachable := 1.0
	if !n.dbless && n.opts.Backend.Ping(context.Background()) != nil {
		reachable = 0
	}
	gauge(descDatastore, reachable)
	gauge(descNodeInfo, 1, id, n.opts.Version)

	// Targets' health, when a prometheus instance asks for it. kongsim runs
	// no health checks: every target reports healthchecks_off.
	st := n.Config()
	wanted := false
	for _, p := range st.list("plugins") {
		cfg, _ := p["config"].(map[string]any)
		wanted = wanted || asString(p["name"]) == "prometheus" && p["enabled"] != false && cfg["upstream_health_metrics"] == true
	}
	if !wanted {
		return
	}
	for _, u := range st.list("upstreams") {
		for _, t := range st.childrenOf("targets", "upstream", asString(u["id"])) {
			for _, state := range []string{"healthchecks_off", "healthy", "unhealthy", "dns_error"} {
				v := 0.0
				if state == "healthchecks_off" {
					v = 1
				}
				target := asString(t["target"])
				gauge(descTarget, v, asString(u["name"]), target, target, state, "http")
			}
		}
	}
}
