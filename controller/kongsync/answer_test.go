package kongsync

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestBigAnswerIsNotRead: Kong's 201 to POST /config echoes the loaded
// configuration, as big as the push. This Kong announces 64 MiB, sends a
// part and then holds the connection until the client goes away: a push
// that read the whole answer would hang until PushTimeout; it must count
// as applied on the status line, without reading the rest.
func TestBigAnswerIsNotRead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/config":
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", strconv.Itoa(64<<20))
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(make([]byte, 256<<10))
			<-r.Context().Done()
		case r.Method == http.MethodGet && r.URL.Path == "/status":
			writeJSON(w, http.StatusOK, map[string]any{"configuration_hash": "00000000000000000000000000000000"})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"version": "3.9.1", "configuration": map[string]string{"database": "off"}})
		}
	}))
	defer srv.Close()
	applied := make(chan uint64, 4)
	s := New(Options{
		Client: srv.Client(), Identity: "konductor-0-abc", PushTimeout: time.Minute,
		OnApplied: func(_ Target, d Desired) { applied <- d.Version },
	})
	s.SetTargets([]Target{{Name: "kong", URL: srv.URL}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	s.SetDesired(desired(1, ""))
	select {
	case v := <-applied:
		if v != 1 {
			t.Fatalf("applied version %d, want 1", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the push was not counted applied within 10s: it waited for the rest of Kong's answer; status %+v", s.Status())
	}
}
