package health

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(h http.Handler, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestProbes(t *testing.T) {
	var synced error = errors.New("caches not synced")
	mux := Mux(Check{"informers", func() error { return synced }}, Check{"kong", func() error { return nil }})

	if code, _ := get(mux, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	code, body := get(mux, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]informers: caches not synced") || !strings.Contains(body, "[+]kong ok") {
		t.Errorf("/readyz = %d %q", code, body)
	}
	synced = nil
	if code, body := get(mux, "/readyz"); code != http.StatusOK || !strings.Contains(body, "ready") {
		t.Errorf("/readyz after sync = %d %q", code, body)
	}
}
