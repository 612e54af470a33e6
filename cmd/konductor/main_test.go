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

func TestTranslateCommand(t *testing.T) {
	clean := filepath.Join("..", "..", "controller", "translate", "testdata", "basic.yaml")
	broken := filepath.Join("..", "..", "controller", "translate", "testdata", "plugins.yaml")
	tests := []struct {
		name               string
		args               []string
		stdin              string
		code               int
		wantOut, wantErr   string
		unwantOut, unwantE string
	}{
		{"yaml by default", []string{"-f", clean}, "", 0, "_format_version: \"3.0\"", "", "", "."},
		{"json", []string{"-f", clean, "-o", "json"}, "", 0, `"_format_version": "3.0"`, "", "", "."},
		{"per-object errors exit 1 after the document", []string{"-f", broken}, "", 1, "name: key-auth",
			"KongPlugin default/bogus: plugin: UnknownPlugin", "", "s3cr3t"},
		{"stdin", []string{"-f", "-"}, "kind: Service\napiVersion: v1\nmetadata: {name: a, namespace: b}\n", 0, "_format_version", "", "", "."},
		{"unknown kind", []string{"-f", "-"}, "kind: Pod\napiVersion: v1\n", 2, "", `kind "Pod"`, "_format_version", ""},
		{"missing file", []string{"-f", filepath.Join(t.TempDir(), "none.yaml")}, "", 2, "", "no such file", "", ""},
		{"no -f", nil, "", 2, "", "Usage: konductor translate", "", ""},
		{"bad -o", []string{"-f", clean, "-o", "xml"}, "", 2, "", "Usage", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runTranslate(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stdout %q / stderr %q lack %q / %q", stdout.String(), stderr.String(), tt.wantOut, tt.wantErr)
			}
			if tt.unwantOut != "" && strings.Contains(stdout.String(), tt.unwantOut) {
				t.Errorf("stdout has %q", tt.unwantOut)
			}
			if tt.unwantE != "." && tt.unwantE != "" && strings.Contains(stderr.String(), tt.unwantE) {
				t.Errorf("stderr has %q", tt.unwantE)
			}
			if tt.unwantE == "." && stderr.Len() > 0 {
				t.Errorf("stderr not empty: %s", stderr.String())
			}
		})
	}
}
