package dbsync

import (
	"testing"

	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate/declarative"
)

// TestSetDesiredConfigUsesTheConfigAsIs: the translator's configuration
// is handed on without decoding the body again; one of another format
// falls back to decoding the body (here undecodable: ignored).
func TestSetDesiredConfigUsesTheConfigAsIs(t *testing.T) {
	p := NewBodyPusher(kongsync.Options{})
	cfg := &declarative.Config{FormatVersion: declarative.FormatVersion}
	p.SetDesiredConfig(kongsync.Desired{Body: []byte("not json"), Hash: "h3", Version: 3}, cfg)
	if got := p.s.latest(); got == nil || got.Config != cfg || got.Version != 3 || got.Hash != "h3" {
		t.Fatalf("desired %+v, want version 3 with the given configuration", got)
	}
	p.SetDesiredConfig(kongsync.Desired{Body: []byte("not json"), Hash: "h4", Version: 4}, &declarative.Config{FormatVersion: "1.1"})
	if got := p.s.latest(); got.Version != 3 {
		t.Fatalf("desired version %d after an undecodable body of another format, want 3 kept", got.Version)
	}
}
