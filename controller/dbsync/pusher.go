package dbsync

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/retry"
	"konductor.dev/controller/translate/declarative"
)

// BodyPusher drives a Syncer through the API of the DB-less kongsync.Syncer
// (options, targets, and a Desired carrying the declarative JSON), so that
// code written for DB-less Kong can switch to DB mode by construction alone.
// Each Desired's body is decoded once, in SetDesired.
type BodyPusher struct {
	s *Syncer
	o kongsync.Options

	mu      sync.Mutex
	desired map[uint64]kongsync.Desired // the current one, by version
}

// NewBodyPusher maps kongsync options onto a Syncer's: PushTimeout becomes
// the per-request Timeout, and the callbacks receive the node in use and the
// kongsync.Desired that was applied or rejected.
func NewBodyPusher(o kongsync.Options) *BodyPusher {
	p := &BodyPusher{o: o, desired: map[uint64]kongsync.Desired{}}
	var jitter retry.Rand
	if o.Rand != nil {
		jitter = o.Rand("dbsync")
	}
	p.s = New(Options{
		Rand:   jitter,
		Client: o.Client, Gate: o.Gate, Identity: o.Identity,
		Timeout: o.PushTimeout, BackoffMin: o.BackoffMin, BackoffMax: o.BackoffMax,
		DriftInterval: o.DriftInterval,
		Registerer:    o.Registerer, Logger: o.Logger,
		OnApplied: func(version uint64) {
			if o.OnApplied == nil {
				return
			}
			if d, ok := p.lookup(version); ok {
				o.OnApplied(p.s.Status().Current, d)
			}
		},
		OnRejected: func(d Desired, rs []kongsync.Rejection) {
			if o.OnRejected == nil {
				return
			}
			if kd, ok := p.lookup(d.Version); ok {
				o.OnRejected(p.s.Status().Current, kd, rs)
			}
		},
	})
	return p
}

// Syncer returns the underlying Syncer (for Status).
func (p *BodyPusher) Syncer() *Syncer { return p.s }

// SetTargets implements the manager's Pusher.
func (p *BodyPusher) SetTargets(ts []kongsync.Target) { p.s.SetTargets(ts) }

// SetDesired decodes d's declarative JSON and makes it the configuration to
// apply. A body that does not decode is logged and ignored: Kong keeps the
// previous configuration.
func (p *BodyPusher) SetDesired(d kongsync.Desired) {
	cfg, err := DecodeConfig(d.Body)
	if err != nil {
		if p.o.Logger != nil {
			p.o.Logger.Error("ignoring desired configuration", "version", d.Version, "err", err)
		}
		return
	}
	p.setDesired(d, cfg)
}

func (p *BodyPusher) setDesired(d kongsync.Desired, cfg *declarative.Config) {
	p.mu.Lock()
	p.desired = map[uint64]kongsync.Desired{d.Version: d}
	p.mu.Unlock()
	p.s.SetDesired(Desired{Config: cfg, Hash: d.Hash, Version: d.Version})
}

// SetDesiredConfig is SetDesired for a caller that holds d's body decoded
// already (the translator's result): cfg is used as it is, and must not be
// modified afterwards.
func (p *BodyPusher) SetDesiredConfig(d kongsync.Desired, cfg *declarative.Config) {
	if cfg == nil || cfg.FormatVersion != declarative.FormatVersion {
		p.SetDesired(d)
		return
	}
	p.setDesired(d, cfg)
}

// Resync implements the manager's Pusher.
func (p *BodyPusher) Resync() { p.s.Resync() }

// Run implements the manager's Pusher.
func (p *BodyPusher) Run(ctx context.Context) error { return p.s.Run(ctx) }

// AllApplied implements the manager's Pusher.
func (p *BodyPusher) AllApplied(version uint64) bool { return p.s.AllApplied(version) }

func (p *BodyPusher) lookup(version uint64) (kongsync.Desired, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.desired[version]
	return d, ok
}

// DecodeConfig reads a declarative JSON document as produced by
// declarative.Config.Marshal.
func DecodeConfig(body []byte) (*declarative.Config, error) {
	var cfg declarative.Config
	if err := json.Unmarshal(body, &cfg); err != nil {
		return nil, fmt.Errorf("decoding declarative configuration: %w", err)
	}
	if cfg.FormatVersion != declarative.FormatVersion {
		return nil, fmt.Errorf("declarative configuration: field _format_version: %q, want %q", cfg.FormatVersion, declarative.FormatVersion)
	}
	return &cfg, nil
}
