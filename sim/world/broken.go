package world

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"konductor.dev/controller/election"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/snapshot"
	"konductor.dev/controller/translate"
)

// Deliberately broken controllers, built from the real controller pieces
// (snapshot cache, translate, election, kongsync) wired the way the manager
// wires them, with one safety removed from outside. They exist to prove
// that the oracles catch the bug each one carries; never use them otherwise.

// StickyGate is a controller whose write gate keeps granting its last term
// after the elector stopped granting it: it skips the step-down.
func StickyGate(env ReplicaEnv) (Runner, error) {
	return &composed{env: env, sticky: true}, nil
}

// composed is the manager's core loop rebuilt from its pieces; sticky
// swaps in the broken gate.
type composed struct {
	env    ReplicaEnv
	sticky bool
}

// stickyGate remembers the last term the elector granted and grants it
// forever, without its time limit.
type stickyGate struct {
	inner fence.WriteGate
	mu    sync.Mutex
	last  *fence.Term
}

func (g *stickyGate) Permit() (fence.Term, bool) {
	t, ok := g.inner.Permit()
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		t.ValidUntil = time.Time{}
		g.last = &t
		return t, true
	}
	if g.last != nil {
		return *g.last, true
	}
	return fence.Term{}, false
}

func (c *composed) Run(ctx context.Context) error {
	o := c.env.Options
	changes := make(chan struct{}, 1)
	kick := func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	cache, err := snapshot.New(snapshot.Config{Client: c.env.Client, IngressClass: o.IngressClass, OnChange: kick})
	if err != nil {
		return err
	}
	var syncer *kongsync.Syncer
	el, err := election.New(election.Config{
		Client: c.env.Client, Namespace: kongNamespace, Name: lockName(), LockType: o.ElectionLock,
		Identity: c.env.Identity, LeaseDuration: o.ElectionLeaseDuration, RenewDeadline: o.ElectionRenewDeadline,
		RetryPeriod: o.ElectionRetryPeriod, Logger: slog.New(slog.DiscardHandler),
		OnNewTerm: func(fence.Term) {
			if syncer != nil {
				syncer.Resync()
			}
		},
	})
	if err != nil {
		return err
	}
	var gate fence.WriteGate = el
	if c.sticky {
		gate = &stickyGate{inner: el}
	}
	syncer = kongsync.New(kongsync.Options{
		Client: c.env.HTTP, Gate: gate, Identity: c.env.Identity,
		DriftInterval: o.KongDriftCheckInterval, Logger: slog.New(slog.DiscardHandler),
	})
	infCtx, stopInf := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopInf(); cache.Shutdown() }()
	cache.Start(infCtx)

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = el.Run(ctx) })
	wg.Go(func() { _ = syncer.Run(ctx) })
	wg.Go(func() { // targets from the admin Service, polled
		var last []kongsync.Target
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			var ts []kongsync.Target
			for _, u := range c.env.Targets() {
				ts = append(ts, kongsync.Target{Name: u, URL: u})
			}
			if !slices.Equal(ts, last) {
				syncer.SetTargets(ts)
				last = ts
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if !cache.WaitForSync(ctx) {
		return nil
	}
	var version uint64
	lastHash := ""
	for {
		res := translate.Translate(cache.Snapshot(), translate.Options{})
		if res.Hash != lastHash {
			version++
			lastHash = res.Hash
			syncer.SetDesired(kongsync.Desired{Body: res.Body, Hash: res.Hash, Version: version})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		}
	}
}
