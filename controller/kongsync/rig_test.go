package kongsync

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"konductor.dev/controller/fence"
)

// testGate is a WriteGate the test flips.
type testGate struct {
	mu   sync.Mutex
	term fence.Term
	ok   bool
}

func (g *testGate) Permit() (fence.Term, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.term, g.ok
}

func (g *testGate) set(term fence.Term, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.term, g.ok = term, ok
}

// rig is the package's one test set-up: a Syncer wired to fake Kongs
// (fakekong_test.go) over an in-memory network, under a gate the test
// flips.
type rig struct {
	t        *testing.T
	net      *memNet
	kongs    map[string]*fakeKong
	gate     *testGate
	reg      *prometheus.Registry
	s        *Syncer
	stop     context.CancelFunc
	done     chan error
	mu       sync.Mutex
	rejected [][]Rejection
	applied  []string // "target@version"
}

func newRig(t *testing.T, names []string, tweak func(o *Options)) *rig {
	t.Helper()
	r := &rig{
		t:     t,
		net:   newMemNet(),
		kongs: map[string]*fakeKong{},
		gate:  &testGate{term: ourTerm(time.Time{}), ok: true},
		reg:   prometheus.NewRegistry(),
		done:  make(chan error, 1),
	}
	o := Options{
		Client:     &http.Client{Transport: r.net},
		Gate:       r.gate,
		Registerer: r.reg,
		OnApplied: func(tg Target, d Desired) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.applied = append(r.applied, fmt.Sprintf("%s@%d", tg.Name, d.Version))
		},
		OnRejected: func(_ Target, _ Desired, rs []Rejection) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.rejected = append(r.rejected, rs)
		},
	}
	if tweak != nil {
		tweak(&o)
	}
	r.s = New(o)
	r.s.SetTargets(r.targets(names...))
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.s.Run(ctx) }()
	synctest.Wait()
	return r
}

// newRejectingRig is a rig of one Kong, kong-a (returned too), that
// rejects every configuration containing the word INVALID.
func newRejectingRig(t *testing.T) (*rig, *fakeKong) {
	t.Helper()
	r := newRig(t, []string{"kong-a"}, nil)
	k := r.kongs["kong-a"]
	k.set(func(k *fakeKong) { k.rejectWord = "INVALID" })
	return r, k
}

func (r *rig) targets(names ...string) []Target {
	var ts []Target
	for _, n := range names {
		if _, ok := r.kongs[n]; !ok {
			r.kongs[n] = newFakeKong()
			r.net.add(n+":8001", r.kongs[n])
		}
		ts = append(ts, Target{Name: n, URL: "http://" + n + ":8001"})
	}
	return ts
}

func (r *rig) shutdown() {
	r.t.Helper()
	r.stop()
	if err := <-r.done; err != nil {
		r.t.Fatalf("Run returned %v", err)
	}
}

func (r *rig) status(name string) TargetStatus {
	for _, st := range r.s.Status() {
		if st.Target.Name == name {
			return st
		}
	}
	r.t.Fatalf("no status for target %q", name)
	return TargetStatus{}
}

func (r *rig) requireConfig(name string, d Desired) {
	r.t.Helper()
	if got := r.kongs[name].config(); got != string(d.Body) {
		r.t.Fatalf("%s holds %q, want version %d %q", name, got, d.Version, d.Body)
	}
}

// setDesired hands d to the Syncer and waits until every goroutine of the
// bubble is blocked: pushes that need no retry are done. It returns d.
func (r *rig) setDesired(d Desired) Desired {
	r.s.SetDesired(d)
	synctest.Wait()
	return d
}

// ourTerm is the rig's term (the gate's from the start) valid until
// validUntil.
func ourTerm(validUntil time.Time) fence.Term {
	return fence.Term{Identity: "konductor-0-abc", Epoch: 3, ValidUntil: validUntil}
}

// advance moves the bubble's virtual clock by d and lets every goroutine
// settle; inside synctest this takes no real time.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func desired(version uint64, extra string) Desired {
	body := fmt.Sprintf(`{"_format_version":"3.0","services":[{"name":"svc-%d%s","host":"echo.default.80.svc","port":80}]}`, version, extra)
	return NewDesired([]byte(body), version)
}
