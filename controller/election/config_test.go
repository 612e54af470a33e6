package election

import (
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	return Config{
		Client:        newAPIServer().client("a"),
		Namespace:     "kong",
		Name:          LockName("", ""),
		Identity:      "pod-a_1",
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
	}
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring; empty means valid
	}{
		{name: "defaults are valid", mutate: func(*Config) {}},
		{name: "leases lock", mutate: func(c *Config) { c.LockType = LockTypeLeases }},
		{name: "missing client", mutate: func(c *Config) { c.Client = nil }, wantErr: "Config.Client"},
		{name: "missing namespace", mutate: func(c *Config) { c.Namespace = "" }, wantErr: "Config.Namespace"},
		{name: "bad namespace", mutate: func(c *Config) { c.Namespace = "Kong_NS" }, wantErr: `Config.Namespace "Kong_NS"`},
		{name: "missing name", mutate: func(c *Config) { c.Name = "" }, wantErr: "Config.Name"},
		{name: "bad name", mutate: func(c *Config) { c.Name = "Leader/Lock" }, wantErr: `Config.Name "Leader/Lock"`},
		{name: "unknown lock type", mutate: func(c *Config) { c.LockType = "endpoints" }, wantErr: `Config.LockType "endpoints"`},
		{name: "missing identity", mutate: func(c *Config) { c.Identity = "" }, wantErr: "Config.Identity"},
		{name: "zero retry", mutate: func(c *Config) { c.RetryPeriod = 0 }, wantErr: "Config.RetryPeriod must be positive"},
		{name: "negative retry", mutate: func(c *Config) { c.RetryPeriod = -time.Second }, wantErr: "Config.RetryPeriod must be positive"},
		{name: "renew equal to retry", mutate: func(c *Config) { c.RenewDeadline = c.RetryPeriod }, wantErr: "Config.RenewDeadline (2s) must be greater than RetryPeriod (2s)"},
		{name: "renew below retry", mutate: func(c *Config) { c.RenewDeadline = time.Second }, wantErr: "Config.RenewDeadline (1s) must be greater than RetryPeriod"},
		{name: "lease equal to renew", mutate: func(c *Config) { c.LeaseDuration = c.RenewDeadline }, wantErr: "Config.LeaseDuration (10s) must be greater than RenewDeadline (10s)"},
		{name: "zero lease", mutate: func(c *Config) { c.LeaseDuration = 0 }, wantErr: "Config.LeaseDuration (0s) must be greater than RenewDeadline"},
		{name: "fractional lease", mutate: func(c *Config) { c.LeaseDuration = 15500 * time.Millisecond }, wantErr: "whole number of seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			e, err := New(c)
			if tc.wantErr == "" {
				if err != nil || e == nil {
					t.Fatalf("New() = %v, %v; want an elector", e, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New() error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLockName(t *testing.T) {
	tests := []struct{ id, class, want string }{
		{"", "", "ingress-controller-leader-kong"},
		{"ingress-controller-leader", "kong", "ingress-controller-leader-kong"},
		{"my-election", "", "my-election-kong"},
		{"", "internal", "ingress-controller-leader-internal"},
		{"konductor", "public", "konductor-public"},
	}
	for _, tc := range tests {
		if got := LockName(tc.id, tc.class); got != tc.want {
			t.Errorf("LockName(%q, %q) = %q, want %q", tc.id, tc.class, got, tc.want)
		}
	}
}

func TestDefaultIdentityIsUniquePerCall(t *testing.T) {
	a, b := DefaultIdentity("konductor-0"), DefaultIdentity("konductor-0")
	if !strings.HasPrefix(a, "konductor-0_") || len(a) <= len("konductor-0_") {
		t.Fatalf("DefaultIdentity = %q, want pod name, underscore, suffix", a)
	}
	if a == b {
		t.Fatalf("two identities for the same pod are equal: %q", a)
	}
	if h := DefaultIdentity(""); strings.HasPrefix(h, "_") {
		t.Fatalf("DefaultIdentity(\"\") = %q, want the host name first", h)
	}
}
