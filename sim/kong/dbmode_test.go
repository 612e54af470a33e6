package kong_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	gokong "github.com/kong/go-kong/kong"

	sim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// recordingProxy remembers the hash of every configuration pushed to it.
type recordingProxy struct{ hashes []string }

func (p *recordingProxy) Configure(st *sim.State) error {
	p.hashes = append(p.hashes, st.Hash())
	return nil
}

func newDBNode(t *testing.T, mem *store.Memory, p sim.Observer) (*sim.Node, *gokong.Client, *http.Client) {
	t.Helper()
	n, err := sim.NewNode(sim.Options{Database: sim.DatabasePostgres, Backend: mem, UpdateFrequency: time.Second, Observer: p, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://kong:8001"
	hc := &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())}
	c, err := gokong.NewClient(&base, hc)
	if err != nil {
		t.Fatal(err)
	}
	return n, c, hc
}

func TestDBModeChangesReachEveryNodeByPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mem := store.NewMemory()
		pa, pb := &recordingProxy{}, &recordingProxy{}
		a, ca, _ := newDBNode(t, mem, pa)
		b, _, _ := newDBNode(t, mem, pb)
		done := make(chan struct{}, 2)
		for _, n := range []*sim.Node{a, b} {
			go func() { _ = n.Run(ctx); done <- struct{}{} }()
		}
		synctest.Wait()
		if ok, why := b.Ready(ctx); !ok {
			t.Fatalf("node b not ready after first load: %s", why)
		}
		if _, err := ca.Services.Create(ctx, &gokong.Service{Name: gokong.String("s"), Host: gokong.String("h")}); err != nil {
			t.Fatal(err)
		}
		if !b.Config().Empty() {
			t.Fatal("node b saw the write before polling")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if b.Config().Empty() || b.ConfigHash() != a.ConfigHash() {
			t.Fatalf("node b after one period: %d entities, hash %s vs %s", b.Config().Count(), b.ConfigHash(), a.ConfigHash())
		}
		// The hash the writer computed in memory equals what the other node
		// rebuilt from the database.
		if audit := a.Audit(); len(audit) != 1 || audit[0].Hash != b.ConfigHash() {
			t.Errorf("writer's audit %+v disagrees with node b's hash %s", audit, b.ConfigHash())
		}
		if len(pb.hashes) != 2 || pb.hashes[1] != b.ConfigHash() {
			t.Errorf("proxy of b configured with %v", pb.hashes)
		}
		// An unchanged revision does not reload.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if len(pb.hashes) != 2 {
			t.Errorf("proxy reloaded without a change: %v", pb.hashes)
		}
		cancel()
		<-done
		<-done
	})
}

func TestDBOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mem := store.NewMemory()
		n, c, _ := newDBNode(t, mem, nil)
		done := make(chan struct{})
		go func() { _ = n.Run(ctx); close(done) }()
		if _, err := c.Services.Create(ctx, &gokong.Service{Name: gokong.String("s"), Host: gokong.String("h")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		cached := n.ConfigHash()
		if n.Config().Empty() {
			t.Fatal("write not loaded")
		}
		mem.SetAvailable(false)
		st, err := c.Status(ctx)
		if err != nil || st.Database.Reachable {
			t.Errorf("status with DB down = %+v %v", st, err)
		}
		if _, err := c.Root(ctx); apiStatus(err) != 500 {
			t.Errorf("GET / with DB down = %v, want 500", err)
		}
		if _, err := c.Services.Create(ctx, &gokong.Service{Host: gokong.String("h2")}); apiStatus(err) != 500 {
			t.Errorf("write with DB down = %v, want 500", err)
		}
		if ok, why := n.Ready(ctx); ok || why != "failed to connect to database" {
			t.Errorf("ready with DB down = %v %q", ok, why)
		}
		resp, err := (&http.Client{Transport: sim.NewInMemoryTransport(n.Status())}).Get("http://kong:8100/status/ready")
		if err != nil || resp.StatusCode != 503 {
			t.Errorf("/status/ready with DB down = %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n.ConfigHash() != cached {
			t.Errorf("cache lost during outage")
		}
		mem.SetAvailable(true)
		if ok, _ := n.Ready(ctx); !ok {
			t.Error("not ready after DB recovery")
		}
		cancel()
		<-done
	})
}

func TestDBModeConfigEndpointRefused(t *testing.T) {
	e := newEnv(t, dbmode)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		code, body := e.do(t, method, "/config", sampleConfig)
		if code != 400 || body["message"] != "this endpoint is only available when Kong is configured to not use a database" {
			t.Errorf("%s /config in DB mode = %d %v", method, code, body)
		}
	}
}

func TestDBModeAuditAndConcurrentNodesShareUniqueness(t *testing.T) {
	mem := store.NewMemory()
	a, ca, hca := newDBNode(t, mem, nil)
	_, cb, _ := newDBNode(t, mem, nil)
	if _, err := ca.Services.Create(ctx, &gokong.Service{Name: gokong.String("s"), Host: gokong.String("h")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Services.Create(ctx, &gokong.Service{Name: gokong.String("s"), Host: gokong.String("h")}); apiStatus(err) != 409 {
		t.Errorf("same name through another node = %v, want 409", err)
	}
	req, _ := http.NewRequest(http.MethodDelete, "http://kong:8001/services/s", nil)
	req.Header.Set("X-Konductor-Writer", "leader-1")
	req.Header.Set("X-Konductor-Epoch", "3")
	resp, err := hca.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete = %v %v", resp, err)
	}
	resp.Body.Close()
	audit := a.Audit()
	if len(audit) != 2 || audit[0].Writer != "" || audit[0].Revision != 1 || audit[0].Hash == sim.ZeroHash ||
		audit[1].Writer != "leader-1" || audit[1].Epoch != 3 || audit[1].Method != "DELETE" ||
		audit[1].Path != "/services/s" || audit[1].Hash != sim.ZeroHash || audit[1].Revision != 2 {
		t.Errorf("audit = %+v", audit)
	}
}
