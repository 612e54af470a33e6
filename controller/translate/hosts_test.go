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
