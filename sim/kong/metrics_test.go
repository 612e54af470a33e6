package kong_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const metricsConfig = `
_format_version: "3.0"
services:
- name: svc
  host: backend.svc
  routes:
  - name: open
    paths: ["/open"]
  - name: keyed
    paths: ["/keyed"]
    plugins:
    - name: key-auth
upstreams:
- name: backend.svc
  targets: [{target: "10.0.0.1:8080"}, {target: "10.0.0.2:8080"}]
plugins:
- name: prometheus
  config: {status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true, per_consumer: true, upstream_health_metrics: true}
consumers:
- username: alice
  keyauth_credentials: [{key: alice-key}]
`

// scrape reads the Status API's /metrics and parses it as Prometheus does.
func scrape(t *testing.T, pn *pluginNode) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	pn.node.Status().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, rec.Body.String())
	}
	return families
}

// find returns the metric of family name whose labels include want.
func find(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

func TestPrometheusMetrics(t *testing.T) {
	pn := newPluginNode(t, metricsConfig)
	pn.call("GET", "/open")
	pn.call("GET", "/open")
	pn.call("GET", "/keyed", "apikey", "alice-key")
	pn.call("GET", "/keyed")
	fams := scrape(t, pn)

	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"service": "svc", "route": "open", "code": "200", "source": "service", "consumer": "", "workspace": "default"}, 2},
		{map[string]string{"service": "svc", "route": "keyed", "code": "200", "source": "service", "consumer": "alice"}, 1},
		{map[string]string{"service": "svc", "route": "keyed", "code": "401", "source": "kong", "consumer": ""}, 1},
	} {
		m := find(fams, "kong_http_requests_total", tc.labels)
		if m == nil || m.GetCounter().GetValue() != tc.want {
			t.Errorf("kong_http_requests_total%v = %v, want %v", tc.labels, m, tc.want)
		}
	}
	for _, dir := range []string{"ingress", "egress"} {
		if m := find(fams, "kong_bandwidth_bytes", map[string]string{"service": "svc", "route": "open", "direction": dir}); m == nil || m.GetCounter().GetValue() <= 0 {
			t.Errorf("kong_bandwidth_bytes %s = %v", dir, m)
		}
	}
	for name, count := range map[string]uint64{"kong_request_latency_ms": 2, "kong_upstream_latency_ms": 2, "kong_kong_latency_ms": 2} {
		m := find(fams, name, map[string]string{"service": "svc", "route": "open", "workspace": "default"})
		if m == nil || m.GetHistogram().GetSampleCount() != count {
			t.Errorf("%s = %v, want %d samples", name, m, count)
		}
	}
	// Kong answered the 401 itself: no upstream latency for it.
	if m := find(fams, "kong_upstream_latency_ms", map[string]string{"route": "keyed"}); m.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("upstream latency of keyed = %v, want 1 sample", m)
	}
	if m := find(fams, "kong_nginx_requests_total", map[string]string{"subsystem": "http"}); m == nil || m.GetGauge().GetValue() < 4 {
		t.Errorf("kong_nginx_requests_total = %v", m)
	}
	if m := find(fams, "kong_nginx_connections_total", map[string]string{"state": "total"}); m == nil || m.GetGauge().GetValue() < 4 {
		t.Errorf("kong_nginx_connections_total = %v", m)
	}
	if m := find(fams, "kong_datastore_reachable", nil); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("kong_datastore_reachable = %v", m)
	}
	for _, target := range []string{"10.0.0.1:8080", "10.0.0.2:8080"} {
		m := find(fams, "kong_upstream_target_health", map[string]string{"upstream": "backend.svc", "target": target, "state": "healthchecks_off"})
		if m == nil || m.GetGauge().GetValue() != 1 {
			t.Errorf("target health of %s = %v", target, m)
		}
	}
}

func TestAdminAPIServesMetrics(t *testing.T) {
	pn := newPluginNode(t, metricsConfig)
	rec := httptest.NewRecorder()
	pn.node.Admin().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "kong_datastore_reachable 1") {
		t.Errorf("Admin GET /metrics = %d %s", rec.Code, rec.Body.String())
	}
}

func TestPrometheusMetricsNeedThePlugin(t *testing.T) {
	withoutPrometheus := strings.Replace(metricsConfig, "- name: prometheus\n  config: {status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true, per_consumer: true, upstream_health_metrics: true}",
		"- name: correlation-id", 1)
	if withoutPrometheus == metricsConfig {
		t.Fatal("the configuration kept its prometheus plugin")
	}
	pn := newPluginNode(t, withoutPrometheus)
	pn.call("GET", "/open")
	fams := scrape(t, pn)
	if f := fams["kong_http_requests_total"]; f != nil && len(f.Metric) > 0 {
		t.Errorf("requests recorded without a prometheus plugin: %v", f)
	}
	if fams["kong_upstream_target_health"] != nil {
		t.Error("target health exported without a prometheus plugin asking for it")
	}
	if fams["kong_datastore_reachable"] == nil {
		t.Error("node metrics missing")
	}
}
