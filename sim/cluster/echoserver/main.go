// Command echoserver is the test workload of the local process cluster (image
// konductor.dev/echo). It answers who it is on its main port, reports
// readiness on a status port like Kong's /status/ready, lets a test flip
// that readiness, and calls the API server with its pod's service-account
// token so tests can see RBAC applied to a pod.
//
//	GET  /                    {"pod":…, "namespace":…, "podIP":…, "path":…}
//	POST /ready?state=false   make /status/ready answer 503 (true: 200)
//	GET  /kube?path=/api/v1/… the API server's status code and body for
//	                          that GET, made with the in-cluster config
//	GET  /fetch?url=…         the status and body of a GET of url from
//	                          inside the pod (Service names, ClusterIPs)
//	GET  :STATUS_PORT/status/ready
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

func main() {
	port := flag.Int("port", envInt("PORT", 8080), "main HTTP port")
	statusPort := flag.Int("status-port", envInt("STATUS_PORT", 8100), "status port (/status/ready)")
	flag.Parse()

	var notReady atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"pod": os.Getenv("POD_NAME"), "namespace": os.Getenv("POD_NAMESPACE"),
			"podIP": os.Getenv("POD_IP"), "path": r.URL.Path,
		})
	})
	mux.HandleFunc("POST /ready", func(w http.ResponseWriter, r *http.Request) {
		state, err := strconv.ParseBool(r.URL.Query().Get("state"))
		if err != nil {
			http.Error(w, "query parameter state: want true or false", http.StatusBadRequest)
			return
		}
		notReady.Store(!state)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /kube", kube)
	mux.HandleFunc("GET /fetch", fetch)

	status := http.NewServeMux()
	status.HandleFunc("GET /status/ready", func(w http.ResponseWriter, _ *http.Request) {
		if notReady.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})

	servers := []*http.Server{
		{Addr: net.JoinHostPort("", strconv.Itoa(*port)), Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		{Addr: net.JoinHostPort("", strconv.Itoa(*statusPort)), Handler: status, ReadHeaderTimeout: 5 * time.Second},
	}
	errs := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errs <- s.ListenAndServe() }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-errs:
		log.Fatal(err)
	case s := <-sig:
		log.Printf("%s: shutting down", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}

// kube performs GET path against the API server as this pod's service
// account and relays the answer.
func kube(w http.ResponseWriter, r *http.Request) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		http.Error(w, "in-cluster config: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, cfg.Host+r.URL.Query().Get("path"), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		http.Error(w, "API server: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("X-Kube-Status", strconv.Itoa(resp.StatusCode))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, resp.Body)
}

// fetch relays a GET of the url query parameter, made from this pod.
func fetch(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL.Query().Get("url"), nil)
	if err != nil {
		http.Error(w, "query parameter url: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "fetch: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("X-Fetch-Status", strconv.Itoa(resp.StatusCode))
	_, _ = io.Copy(w, resp.Body)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
