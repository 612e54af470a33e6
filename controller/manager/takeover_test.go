package manager

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// cutOffClient is a second client onto the object tracker of another fake
// clientset, whose watches can be cut: open ones end and new ones fail
// with "connection refused", as when a replica loses the API server. Its
// reflectors then retry with their backoff while their caches, still
// synced, keep what they had.
type cutOffClient struct {
	*fake.Clientset
	mu      sync.Mutex
	cut     bool
	watches []watch.Interface
}

func newCutOffClient(shared *fake.Clientset) *cutOffClient {
	c := &cutOffClient{Clientset: &fake.Clientset{}}
	tracker := shared.Tracker()
	c.AddReactor("*", "*", k8stesting.ObjectReaction(tracker))
	c.AddWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cut {
			return true, nil, &url.Error{Op: "Get", URL: "https://apiserver", Err: &net.OpError{Op: "dial", Net: "tcp",
				Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
		}
		w, err := tracker.Watch(a.GetResource(), a.GetNamespace(), a.(k8stesting.WatchActionImpl).ListOptions)
		if err == nil {
			c.watches = append(c.watches, w)
		}
		return true, w, err
	})
	return c
}

func (c *cutOffClient) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for _, w := range c.watches {
			w.Stop()
		}
		c.watches = nil
	}
}

// A standby whose informers lag (its watches broke and its reflectors are
// backing off, their caches still counted as synced) takes over: it must
// not push what its caches hold, which lacks an Ingress the previous leader
// had already pushed, but wait until its caches hold what the API server
// holds, then push everything.
// laggingStandby starts replica-0 leading and replica-1 standing by, then
// cuts replica-1's watches and has replica-0 push a new Ingress "later"
// that replica-1's caches miss. The caller stops both.
func laggingStandby(t *testing.T) (a, b *world, client *cutOffClient) {
	t.Helper()
	kong := &fakeKong{}
	a = newWorldWith(t, worldSpec{kongs: hosts{"10.0.0.1:8444": kong}}, service("echo"), endpointSlice("echo"), ingress("web", "echo"), adminSlice("10.0.0.1"))
	a.kong = kong
	a.start()
	time.Sleep(time.Second) // a leads
	synctest.Wait()
	client = newCutOffClient(a.client)
	b = a.replica("replica-1", client)
	b.start()
	settle(5 * time.Second)
	if !a.manager.elector.IsLeader() || b.manager.elector.IsLeader() {
		t.Fatal("want replica-0 leading and replica-1 standing by")
	}

	// The standby's watches break; the leader pushes a new Ingress.
	client.setCut(true)
	a.create(ingress("later", "echo"))
	settle(2 * time.Second)
	if last := kong.lastBody(); !bytes.Contains(last, []byte("later")) {
		t.Fatalf("the leader did not push Ingress later: %s", last)
	}
	if _, cached := b.manager.cache.Ingress("default", "later"); cached {
		t.Fatal("the standby's cache has Ingress later although its watches are cut: the test proves nothing")
	}
	return a, b, client
}

// A standby whose informers lag (its watches broke and its reflectors are
// backing off, their caches still counted as synced) takes over: it must
// not push what its caches hold, which lacks an Ingress the previous leader
// had already pushed, but wait until its caches hold what the API server
// holds, then push everything.
func TestNewLeaderWithLaggingCachesDoesNotShrinkKong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, client := laggingStandby(t)
		defer b.stop()
		kong := b.kong

		// The standby takes over while its caches lag (the lock is read
		// and written without a watch).
		a.stop()
		settle(10 * time.Second)
		if !b.manager.elector.IsLeader() {
			t.Fatal("replica-1 did not take over")
		}
		for _, body := range kong.bodiesBy("replica-1") {
			if !bytes.Contains(body, []byte("later")) {
				t.Fatalf("replica-1 pushed a configuration without Ingress later, which replica-0 had applied: %s", body)
			}
		}

		// Its watches come back: its reflectors catch up within their
		// backoff, and it configures Kong.
		client.setCut(false)
		settle(openTermBound - 20*time.Second)
		bodies := kong.bodiesBy("replica-1")
		if len(bodies) == 0 {
			t.Fatal("replica-1 never pushed after its caches caught up")
		}
		for _, body := range bodies {
			if !bytes.Contains(body, []byte("later")) {
				t.Fatalf("replica-1 pushed a configuration without Ingress later: %s", body)
			}
		}
	})
}

// A new leader whose watches never come back still writes once
// openTermBound has passed: Kong is not left unconfigured for the term.
func TestNewLeaderWritesAfterTheBoundIfCachesNeverCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, _ := laggingStandby(t)
		defer b.stop()
		a.stop()
		settle(openTermBound - 10*time.Second)
		if n := len(b.kong.bodiesBy("replica-1")); n != 0 {
			t.Fatalf("replica-1 pushed %d times before the bound while its caches lag", n)
		}
		settle(20 * time.Second)
		if len(b.kong.bodiesBy("replica-1")) == 0 {
			t.Fatal("replica-1 never pushed: a watch that never returns keeps Kong unconfigured for the whole term")
		}
	})
}
