package kong_test

import (
	"bytes"
	"encoding/json"
	"fmt"
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
