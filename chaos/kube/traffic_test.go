package kube

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/journal"
)

// TestTrafficClassifies: vegeta's open-loop requests reach the proxy with
// the echo host, and each is journaled as 2xx, non-2xx or transport error.
func TestTrafficClassifies(t *testing.T) {
	var n, unavailable atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != EchoHost {
			http.Error(w, "wrong host "+r.Host, http.StatusNotFound)
			return
		}
		i := n.Add(1)
		switch {
		case i%10 == 3:
			unavailable.Add(1)
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case i >= 50 && i < 60: // no answer, even to a retry: the connection drops
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()

	var buf bytes.Buffer
	j := journal.NewWriter(&buf, nil)
	tg := &Target{o: Options{ProxyURL: srv.URL}}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := tg.Traffic(ctx, drill.Probe{Name: "t", Type: drill.ProbeTraffic, Rate: 100}, j); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := journal.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	counts := map[string]int{}
	for _, r := range recs {
		if r.Kind != journal.KindRequest || r.Subject != u.Host {
			t.Fatalf("record %+v", r)
		}
		counts[r.ErrClass]++
		if r.ErrClass == journal.ErrNon2xx && r.Status != 503 {
			t.Errorf("non-2xx with status %d: %+v", r.Status, r)
		}
	}
	// Go's transport retries an idempotent request once when a reused
	// connection drops before answering, so the server may see more
	// requests than were sent; every sent one is journaled once.
	if len(recs) < 100 || len(recs) > int(n.Load()) {
		t.Fatalf("%d requests journaled, %d served; want at least 100, at most what was served", len(recs), n.Load())
	}
	if got, want := counts[journal.ErrNon2xx], int(unavailable.Load()); got != want {
		t.Errorf("%d non-2xx journaled, %d answered 503", got, want)
	}
	if counts[journal.ErrTransport] == 0 || counts[journal.ErrNone] == 0 {
		t.Errorf("counts %v: want 2xx and transport errors too", counts)
	}
}
