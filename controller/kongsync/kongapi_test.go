package kongsync

import (
	"reflect"
	"testing"
	"time"
)

func TestParseRejection(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantMsg string
		want    []Rejection
	}{
		{
			name: "field and entity errors",
			raw: `{"code":14,"name":"invalid declarative configuration","message":"declarative config is invalid: {}",
			  "flattened_errors":[{"entity_type":"service","entity_name":"default.echo.80","entity_id":"1","entity_tags":["k8s-name:echo"],
			  "errors":[{"type":"field","field":"port","message":"value should be between 0 and 65535"}]},
			  {"entity_type":"route","entity_name":"r","entity_tags":{},"errors":[{"type":"entity","message":"must set one of 'methods', 'hosts', 'headers', 'paths'"}]}]}`,
			wantMsg: "declarative config is invalid: {}",
			want: []Rejection{
				{EntityType: "service", EntityName: "default.echo.80", EntityID: "1", Tags: []string{"k8s-name:echo"}, Field: "port", Message: "value should be between 0 and 65535"},
				{EntityType: "route", EntityName: "r", Message: "must set one of 'methods', 'hosts', 'headers', 'paths'"},
			},
		},
		{
			name:    "entity without error details",
			raw:     `{"message":"bad","flattened_errors":[{"entity_type":"upstream","entity_name":"u"}]}`,
			wantMsg: "bad",
			want:    []Rejection{{EntityType: "upstream", EntityName: "u"}},
		},
		{
			name:    "top-level error only",
			raw:     `{"code":14,"message":"expected a declarative configuration"}`,
			wantMsg: "expected a declarative configuration",
			want:    []Rejection{{Message: "expected a declarative configuration"}},
		},
		{
			name:    "not JSON",
			raw:     "  <html>bad gateway</html> ",
			wantMsg: "<html>bad gateway</html>",
			want:    []Rejection{{Message: "<html>bad gateway</html>"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, got := parseRejection([]byte(tc.raw))
			if msg != tc.wantMsg || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q %+v\nwant %q %+v", msg, got, tc.wantMsg, tc.want)
			}
		})
	}
}

func FuzzParseRejection(f *testing.F) {
	f.Add([]byte(`{"message":"m","flattened_errors":[{"entity_type":"route","errors":[{"field":"paths.1","message":"x"}]}]}`))
	f.Add([]byte(`{"flattened_errors":null}`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, rs := parseRejection(raw); len(rs) == 0 {
			t.Fatal("a 400 answer must yield at least one rejection to report")
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"", 0},
		{"-1", 0},
		{"soon", 0},
		{"Fri, 27 Nov 2026 13:00:05 GMT", 5 * time.Second},
		{"Fri, 27 Nov 2026 12:59:00 GMT", 0},
		{"999999999", 0},
	}
	for _, tc := range tests {
		if got := retryAfter(tc.header, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
