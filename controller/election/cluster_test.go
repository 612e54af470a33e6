package election

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/testsupport/bubble"
)

// The timings konductor ships with (and client-go's defaults).
const (
	testLease = 15 * time.Second
	testRenew = 10 * time.Second
	testRetry = 2 * time.Second
)

// cluster runs electors for one lock against one apiServer, inside a
// testing/synctest bubble, and checks the single-leader and rising-epoch
// invariants at every term start and on a fine periodic sample.
type cluster struct {
	t        *testing.T
	srv      *apiServer
	lockType string

	mu    sync.Mutex
	nodes map[string]*node
	terms []termEvent
	won   chan termEvent
}

type termEvent struct {
	id   string
	term fence.Term
	at   time.Time
}

type node struct {
	id     string
	e      *Elector
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry

	mu      sync.Mutex
	stopped []time.Time // OnStoppedLeading calls
	// beforeRelease, if set, runs as the elector's BeforeRelease.
	beforeRelease func(context.Context)
}

func newCluster(t *testing.T, lockType string) *cluster {
	c := &cluster{t: t, srv: newAPIServer(), lockType: lockType, nodes: map[string]*node{}, won: make(chan termEvent, 1000)}
	go c.sample(t.Context())
	// The test's context is cancelled before cleanups run: wait here, while
	// virtual time still advances, for every elector to finish stepping down.
	t.Cleanup(func() {
		c.mu.Lock()
		running := make([]*node, 0, len(c.nodes))
		for _, n := range c.nodes {
			running = append(running, n)
		}
		c.mu.Unlock()
		for _, n := range running {
			n.cancel()
			<-n.done
		}
	})
	return c
}

// start runs a new elector named id; mutate may adjust its Config.
func (c *cluster) start(id string, mutate ...func(*node, *Config)) *node {
	c.t.Helper()
	n := &node{id: id, done: make(chan error, 1), reg: prometheus.NewRegistry()}
	cfg := Config{
		Client: c.srv.client(id), Namespace: "kong", Name: LockName("", ""), LockType: c.lockType, Identity: id,
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
		Registerer:       n.reg,
		OnNewTerm:        func(term fence.Term) { c.onNewTerm(n, term) },
		OnStoppedLeading: func() { n.mu.Lock(); n.stopped = append(n.stopped, time.Now()); n.mu.Unlock() },
		BeforeRelease: func(ctx context.Context) {
			if n.beforeRelease != nil {
				n.beforeRelease(ctx)
			}
		},
	}
	for _, m := range mutate {
		m(n, &cfg)
	}
	e, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s): %v", id, err)
	}
	n.e = e
	ctx, cancel := context.WithCancel(c.t.Context())
	n.cancel = cancel
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	go func() { n.done <- e.Run(ctx) }()
	return n
}

// onNewTerm checks, at the instant a term starts, that no other elector
// grants a term and that the epoch exceeds every earlier one.
func (c *cluster) onNewTerm(n *node, term fence.Term) {
	ev := termEvent{id: n.id, term: term, at: time.Now()}
	c.mu.Lock()
	for id, o := range c.nodes {
		if id == n.id {
			continue
		}
		if other, ok := o.e.Permit(); ok {
			c.t.Errorf("%s started epoch %d at %v while %s still grants epoch %d until %v",
				n.id, term.Epoch, ev.at, id, other.Epoch, other.ValidUntil)
		}
	}
	if k := len(c.terms); k > 0 && term.Epoch <= c.terms[k-1].term.Epoch {
		c.t.Errorf("epoch did not rise: %s got %d after %s had %d", n.id, term.Epoch, c.terms[k-1].id, c.terms[k-1].term.Epoch)
	}
	if term.Identity != n.id || !term.ValidUntil.After(ev.at) {
		c.t.Errorf("%s got term %+v at %v", n.id, term, ev.at)
	}
	c.terms = append(c.terms, ev)
	c.mu.Unlock()
	c.won <- ev
}

// sample checks every 100ms (virtual) that at most one elector grants.
func (c *cluster) sample(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c.mu.Lock()
		var granting []string
		for id, n := range c.nodes {
			if n.e.IsLeader() {
				granting = append(granting, id)
			}
		}
		c.mu.Unlock()
		if len(granting) > 1 {
			c.t.Errorf("at %v several electors grant: %v", time.Now(), granting)
		}
	}
}

// elect starts electors nodeName(0) to nodeName(n-1) and returns them
// with the first term, which must start within RetryPeriod.
func (c *cluster) elect(n int) ([]*node, termEvent) {
	c.t.Helper()
	var nodes []*node
	for i := range n {
		nodes = append(nodes, c.start(nodeName(i)))
	}
	return nodes, c.awaitTerm(testRetry)
}

// electOnEachLock runs body once per lock type, each in its own bubble,
// on a new cluster of n electors whose first term has started.
func electOnEachLock(t *testing.T, n int, body func(t *testing.T, c *cluster, nodes []*node, first termEvent)) {
	for _, lt := range lockTypes {
		t.Run(lt, func(t *testing.T) {
			bubble.Test(t, func(t *testing.T) {
				c := newCluster(t, lt)
				nodes, first := c.elect(n)
				body(t, c, nodes, first)
			})
		})
	}
}

// awaitTerm returns the next term started, failing after within (virtual).
func (c *cluster) awaitTerm(within time.Duration) termEvent {
	c.t.Helper()
	select {
	case ev := <-c.won:
		return ev
	case <-time.After(within):
		c.t.Fatalf("no term started within %v", within)
		return termEvent{}
	}
}

// expectNoTerm fails if a term starts within d (virtual).
func (c *cluster) expectNoTerm(d time.Duration) {
	c.t.Helper()
	select {
	case ev := <-c.won:
		c.t.Fatalf("unexpected term: %s epoch %d at %v", ev.id, ev.term.Epoch, ev.at)
	case <-time.After(d):
	}
}

// stop cancels a node gracefully and returns Run's result.
func (c *cluster) stop(n *node) error {
	n.cancel()
	err := <-n.done
	c.mu.Lock()
	delete(c.nodes, n.id)
	c.mu.Unlock()
	return err
}

// crash cuts the node off the API server, then stops it: it cannot release.
func (c *cluster) crash(n *node) {
	c.t.Helper()
	c.srv.setDown(n.id, true)
	if err := c.stop(n); err == nil {
		c.t.Fatalf("%s released the lock although its API access was cut", n.id)
	}
}

func (c *cluster) node(id string) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (n *node) stops() []time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Time(nil), n.stopped...)
}

func nodeName(i int) string { return fmt.Sprintf("konductor-%d_%04d", i%3, i) }
