package kube

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"konductor.dev/chaos/journal"
)

// TestWatchKongRestart: the watcher waits for the killed Kong's Admin API
// to go away, journals when it answers again, then when /status/ready says
// the Kong is configured, with the time between the two.
func TestWatchKongRestart(t *testing.T) {
	// The Admin API gives no answer while the Kong is down (the killed
	// process is gone, the new one not yet up): it drops each connection.
	var up atomic.Bool
	var dropped atomic.Int64
	admin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			dropped.Add(1)
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		}
	})}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go admin.Serve(adminLn)
	defer admin.Close()
	var ready atomic.Bool
	status := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status/ready" && !ready.Load() {
			http.Error(w, `{"message":"no configuration available"}`, http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	statusLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go status.Serve(statusLn)
	defer status.Close()

	var events atomic.Value // []journal.Record
	events.Store([]journal.Record(nil))
	j := journal.NewWriter(&bytes.Buffer{}, nil)
	j.Tap(func(r journal.Record) { events.Store(append(events.Load().([]journal.Record), r)) })
	tg := &Target{http: &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	tg.ports.admin = portOf(t, adminLn.Addr().String())
	tg.ports.status = portOf(t, statusLn.Addr().String())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tg.watchKongRestart(ctx, j, "kong-1", "127.0.0.1")
	}()
	waitFor := func(what string, cond func([]journal.Record) bool) {
		t.Helper()
		for !cond(events.Load().([]journal.Record)) {
			select {
			case <-ctx.Done():
				t.Fatalf("no %s within the bound: %+v", what, events.Load())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	// Nothing is journaled while the Admin API gives no answer.
	waitFor("a dropped Admin API request", func([]journal.Record) bool { return dropped.Load() >= 2 })
	if evs := events.Load().([]journal.Record); len(evs) != 0 {
		t.Fatalf("journaled before the restart: %+v", evs)
	}
	// The restarted Kong's Admin API answers.
	up.Store(true)
	waitFor("kong-api-up", func(rs []journal.Record) bool { return len(rs) >= 1 })
	evs := events.Load().([]journal.Record)
	if evs[0].Event != journal.EventKongAPIUp || evs[0].Subject != "kong-1" || len(evs) != 1 {
		t.Fatalf("want one kong-api-up of kong-1 while not ready, got %+v", evs)
	}
	ready.Store(true)
	<-done
	evs = events.Load().([]journal.Record)
	if len(evs) != 2 || evs[1].Event != journal.EventKongConfigured || evs[1].Subject != "kong-1" {
		t.Fatalf("want kong-api-up then kong-configured, got %+v", evs)
	}
	if got, want := evs[1].Seconds, evs[1].T.Sub(evs[0].T).Seconds(); got != want || got <= 0 {
		t.Errorf("configured after %vs, want the time since the API answered (%vs)", got, want)
	}
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}
