package kong_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	sim "konductor.dev/sim/kong"
)

// BenchmarkPostConfig5000 loads 5,000 services with one route each through
// POST /config, alternating two versions so that every load is a change.
func BenchmarkPostConfig5000(b *testing.B) {
	docs := [2][]byte{bigConfig(5000, 80), bigConfig(5000, 81)}
	n, err := sim.NewNode(sim.Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	h := n.Admin()
	b.ReportAllocs()
	// The process CPU time per load is reported too: on a shared machine
	// wall time mostly measures the neighbours.
	cpu0 := processCPU()
	ops := 0
	defer func() {
		if ops > 0 {
			b.ReportMetric(float64((processCPU()-cpu0).Milliseconds())/float64(ops), "cpu-ms/op")
		}
	}()
	for i := 0; b.Loop(); i++ {
		ops++
		req := httptest.NewRequest(http.MethodPost, "/config?check_hash=1&flatten_errors=1", bytes.NewReader(docs[i%2]))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("POST /config = %d %s", rec.Code, rec.Body.String()[:200])
		}
	}
}

// BenchmarkPostConfigOneChange1k loads, through POST /config, a document
// shaped like the controller's for 1000 Ingresses (a service with one route
// and an upstream with one target each), alternating two versions in which
// one route's path differs: the usual update of a running cluster.
func BenchmarkPostConfigOneChange1k(b *testing.B) { benchOneChange(b, 1000, false) }

// BenchmarkPostConfigOneChange5k is BenchmarkPostConfigOneChange1k with
// 5000 apps: one replica's share of the controller's fan-out benchmark.
func BenchmarkPostConfigOneChange5k(b *testing.B) { benchOneChange(b, 5000, false) }

// BenchmarkPostConfigOneChangeNextSecond1k is BenchmarkPostConfigOneChange1k
// with the clock a second further at every load: every entity the documents
// leave without timestamps is stamped again, the costliest reuse.
func BenchmarkPostConfigOneChangeNextSecond1k(b *testing.B) { benchOneChange(b, 1000, true) }

func benchOneChange(b *testing.B, apps int, nextSecond bool) {
	docs := [2][]byte{appsConfig(apps, "/"), appsConfig(apps, "/v2")}
	now := time.Unix(1_700_000_000, 0)
	opts := sim.Options{Logger: quietLogger()}
	if nextSecond {
		opts.Now = func() time.Time { return now }
	}
	n, err := sim.NewNode(opts)
	if err != nil {
		b.Fatal(err)
	}
	// As a controller pushes: through the in-memory transport, reading
	// the whole answer.
	client := &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())}
	post := func(doc []byte) {
		resp, err := client.Post("http://kong:8001/config?check_hash=1&flatten_errors=1", "application/json", bytes.NewReader(doc))
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			b.Fatalf("POST /config = %d %v", resp.StatusCode, err)
		}
	}
	post(docs[1])
	b.ReportAllocs()
	cpu0 := processCPU()
	ops := 0
	defer func() {
		if ops > 0 {
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(ops), "cpu-ms/op")
		}
	}()
	for i := 0; b.Loop(); i++ {
		ops++
		now = now.Add(time.Second)
		post(docs[i%2])
	}
}

// appsConfig is a document like the controller's for n apps; the first
// app's route has path firstPath.
func appsConfig(n int, firstPath string) []byte {
	tags := func(name, kind string) []string {
		return []string{"k8s-name:" + name, "k8s-namespace:default", "k8s-kind:" + kind, "k8s-uid:" + kind + "-" + name, "managed-by-konductor"}
	}
	id := func(kind string, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, len(kind)) }
	var services, upstreams []any
	for i := 0; i < n; i++ {
		app := fmt.Sprintf("app-%d", i)
		path := "/"
		if i == 0 {
			path = firstPath
		}
		services = append(services, map[string]any{
			"id": id("service", i), "name": "default." + app + ".80", "host": app + ".default.80.svc", "port": 80,
			"protocol": "http", "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000, "retries": 5,
			"tags": tags(app, "Service"),
			"routes": []any{map[string]any{
				"id": id("route", i), "name": "default." + app + ".0.0", "hosts": []string{app + ".example.com"},
				"paths": []string{path}, "path_handling": "v0", "preserve_host": true, "protocols": []string{"http", "https"},
				"regex_priority": 0, "strip_path": false, "https_redirect_status_code": 426,
				"request_buffering": true, "response_buffering": true, "tags": tags(app, "Ingress"),
			}},
		})
		upstreams = append(upstreams, map[string]any{
			"id": id("upstream", i), "name": app + ".default.80.svc", "tags": tags(app, "Service"),
			"targets": []any{map[string]any{"id": id("target", i), "target": fmt.Sprintf("10.100.%d.%d:8080", i/256, i%256), "weight": 100, "tags": tags(app, "Service")}},
		})
	}
	b, _ := json.Marshal(map[string]any{"_format_version": "3.0", "services": services, "upstreams": upstreams})
	return b
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func bigConfig(services, port int) []byte {
	type route struct {
		Name  string   `json:"name"`
		Hosts []string `json:"hosts"`
		Paths []string `json:"paths"`
		Tags  []string `json:"tags"`
	}
	type service struct {
		Name   string  `json:"name"`
		Host   string  `json:"host"`
		Port   int     `json:"port"`
		Routes []route `json:"routes"`
	}
	doc := struct {
		Version  string    `json:"_format_version"`
		Services []service `json:"services"`
	}{Version: "3.0"}
	for i := 0; i < services; i++ {
		doc.Services = append(doc.Services, service{
			Name: fmt.Sprintf("ns.svc-%d.80", i), Host: fmt.Sprintf("svc-%d.ns.80.svc", i), Port: port,
			Routes: []route{{
				Name:  fmt.Sprintf("ns.ing-%d.host.0", i),
				Hosts: []string{fmt.Sprintf("h%d.example.com", i)},
				Paths: []string{"~/api$", "/api/"},
				Tags:  []string{"k8s-name:ing", "k8s-namespace:ns", "k8s-kind:Ingress"},
			}},
		})
	}
	b, _ := json.Marshal(doc)
	return b
}
