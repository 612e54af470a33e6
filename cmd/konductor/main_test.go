package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad flag value names the flag", []string{"--election-lock=endpoints"}, 2, "--election-lock"},
		{"unknown flag", []string{"--no-such-flag"}, 2, "no-such-flag"},
		{"unreadable kubeconfig", []string{"--kubeconfig=" + filepath.Join(t.TempDir(), "missing"), "--metrics-bind-address=", "--health-probe-bind-address="}, 1, "--kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tt.args, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestProfilingIsServedOnlyWhenAsked(t *testing.T) {
	for _, profiling := range []bool{false, true} {
		rec := httptest.NewRecorder()
		metricsMux(prometheus.NewRegistry(), profiling).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil))
		if got := rec.Code == http.StatusOK; got != profiling {
			t.Errorf("--profiling=%v: GET /debug/pprof/heap = %d", profiling, rec.Code)
		}
	}
}
