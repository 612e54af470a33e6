package translate

import (
	"strings"
	"testing"
)

func TestHostValidation(t *testing.T) {
	long := strings.Repeat("l", 64)
	tests := []struct {
		host       string
		hostOK     bool
		sniOK      bool
		wantInText string
	}{
		{host: "example.com", hostOK: true, sniOK: true},
		{host: "*.example.com", hostOK: true, sniOK: true},
		{host: strings.Repeat("l", 63) + ".example.com", hostOK: true, sniOK: true},
		{host: long + ".example.com", wantInText: "longer than 63"},
		{host: "a." + long, wantInText: "longer than 63"},
		{host: "192.0.2.1", hostOK: true, wantInText: "IP address"},
		{host: "Example.com", wantInText: "invalid"},
		{host: "exa mple.com", wantInText: "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			if err := validateHost(tc.host); (err == nil) != tc.hostOK {
				t.Errorf("validateHost(%q) = %v, want ok=%v", tc.host, err, tc.hostOK)
			}
			err := validateSNI(tc.host)
			if (err == nil) != tc.sniOK {
				t.Fatalf("validateSNI(%q) = %v, want ok=%v", tc.host, err, tc.sniOK)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantInText) {
				t.Errorf("validateSNI(%q) = %q, want it to mention %q", tc.host, err, tc.wantInText)
			}
		})
	}
}

func TestIsPlainHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	long253 := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61) // 253 characters
	tests := []struct {
		host string
		want bool
	}{
		{"example.com", true}, {"a", true}, {"a-b.c-d", true}, {"0.1.2.3", true},
		{"*.example.com", true}, {label63 + ".com", true}, {long253, true},
		{"", false}, {"*", false}, {"*.", false}, {"*.*.a", false}, {"a.*.b", false},
		{label63 + "a.com", false}, {long253 + "b", false}, {"*." + long253[2:] + "c", false},
		{"-a.com", false}, {"a-.com", false}, {"a..b", false}, {".a", false}, {"a.", false},
		{"Example.com", false}, {"a_b.com", false}, {"a b", false}, {"ü.com", false},
	}
	for _, tt := range tests {
		if got := isPlainHost(tt.host); got != tt.want {
			t.Errorf("isPlainHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
		if tt.want {
			if err := checkHost(tt.host); err != nil {
				t.Errorf("isPlainHost(%q) but the full check says %v", tt.host, err)
			}
		}
	}
}

// The fast path never accepts a host the full check refuses.
func FuzzIsPlainHost(f *testing.F) {
	for _, seed := range []string{"example.com", "*.a.b", "a-.b", strings.Repeat("x", 64) + ".com", "A.com", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if isPlainHost(host) {
			if err := checkHost(host); err != nil {
				t.Fatalf("isPlainHost(%q) but the full check says %v", host, err)
			}
		}
	})
}
