package hatest

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/controller/translate"
	kongsim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// dbKongLatency is what one Admin API request to a database-backed Kong
// costs in the virtual-time DB-mode cluster: a small listing or a single
// write through PostgreSQL on the same host takes a millisecond or two.
const dbKongLatency = 2 * time.Millisecond

// newDBCluster is a cluster whose n Kong nodes run in database mode on one
// shared in-memory store, polling it every second, so it runs inside a
// synctest bubble with the default election timings.
func newDBCluster(t testing.TB, n int) *cluster {
	t.Helper()
	db := store.NewMemory()
	nodes := make([]*kongsim.Node, n)
	urls := make([]string, n)
	for i := range n {
		node, err := kongsim.NewNode(kongsim.Options{
			Database: kongsim.DatabasePostgres, Backend: db, UpdateFrequency: time.Second,
			Hostname: "kong-" + strconv.Itoa(i), ProxyTransport: echoUpstream{}, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i], urls[i] = node, "http://"+kongHost(i)
	}
	c := newCluster(t, nodes, urls, 8080)
	c.dbPusher = dbPusher
	c.kongLatency = dbKongLatency
	return c
}

// handover is one measured leader change in DB mode.
type handover struct {
	// changed is when the change was made (at the instant the leader was
	// stopped or killed); locked is when the new leader's term began;
	// applied is when the change's route was written to the database.
	changed, locked, applied time.Time
	writer                   string
}

// measureDBHandover runs repetitions of: make a change, and at the same
// instant lose the leader through end (a graceful stop or a crash); it
// returns when each change reached the database and who wrote it. The lost
// replica comes back as a standby before the next repetition.
func measureDBHandover(t *testing.T, c *cluster, leader, repetitions int, end func(c *cluster, leader int)) []handover {
	t.Helper()
	c.api.SetBaseLatency(apiLatency)
	var out []handover
	for rep := range repetitions {
		old := c.replica(leader).identity
		name := fmt.Sprintf("h-%d", rep)
		changed := time.Now()
		c.addIngress(name)
		end(c, leader)
		settle(lease + retry + 5*time.Second)
		first, ok := c.routeWritten(name)
		if !ok || first.Writer == old {
			t.Fatalf("repetition %d: nobody took over from %s and wrote the change (route write %+v)", rep, old, first)
		}
		h := handover{changed: changed, applied: first.Time, writer: first.Writer}
		for _, lc := range c.lockChanges() {
			if lc.client == first.Writer && lc.holder == first.Writer && !lc.at.Before(changed) {
				h.locked = lc.at
				break
			}
		}
		for i := range c.kong {
			if !c.serves(i, name) {
				t.Fatalf("repetition %d: kong-%d does not route %s.example.com after the handover", rep, i, name)
			}
		}
		out = append(out, h)
		c.restart(leader)
		leader = c.indexOf(first.Writer)
		settle(5 * time.Second)
	}
	c.checkSingleWriter()
	return out
}

// TestMeasureDBHandover measures, in virtual time with the default
// timings, API requests delayed by up to 20ms and each Kong Admin API
// request by 2ms, how long a change made at the instant the leader is lost
// takes to reach Kong's database: after a graceful stop (from the change)
// and after a crash (from the new leader's term; the crash itself waits
// for the lease here, as this cluster has no kubelet). It logs the
// figures; TestDBHandoverUsesWarmState asserts the mechanism. Run it with
//
//	go test -count=1 -v -run TestMeasureDBHandover ./sim/hatest/
func TestMeasureDBHandover(t *testing.T) {
	const reps = 30
	t.Run("graceful", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, leader := startedWith(t, newDBCluster(t, 2))
			hs := measureDBHandover(t, c, leader, reps, func(c *cluster, leader int) { c.stop(leader) })
			var fromChange, fromLock []time.Duration
			for _, h := range hs {
				fromChange = append(fromChange, h.applied.Sub(h.changed))
				fromLock = append(fromLock, h.applied.Sub(h.locked))
			}
			t.Log(summary("DB mode graceful handover (change at the stop → the change's route written)", fromChange))
			t.Log(summary("DB mode graceful handover (new term → the change's route written)", fromLock))
		})
	})
	t.Run("crash", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, leader := startedWith(t, newDBCluster(t, 2))
			hs := measureDBHandover(t, c, leader, reps, func(c *cluster, leader int) { c.crash(leader) })
			var fromLock []time.Duration
			for _, h := range hs {
				fromLock = append(fromLock, h.applied.Sub(h.locked))
			}
			t.Log(summary("DB mode crash failover (new term → the change's route written)", fromLock))
		})
	})
}

// routeWritten returns the first audited write of the route that sends
// <name>.example.com to its app.
func (c *cluster) routeWritten(name string) (kongsim.AuditEntry, bool) {
	c.t.Helper()
	resp, err := adminDo(c, http.MethodGet, 0, "/routes?size=1000&tags="+translate.ManagedByTag)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			ID    string   `json:"id"`
			Hosts []string `json:"hosts"`
		} `json:"data"`
		Next *string `json:"next"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		c.t.Fatal(err)
	}
	if page.Next != nil {
		c.t.Fatal("more than one page of routes")
	}
	for _, r := range page.Data {
		if slices.Contains(r.Hosts, name+".example.com") {
			for _, e := range c.audit() {
				if e.Writer != "" && e.Method == http.MethodPut && e.Path == "/routes/"+r.ID {
					return e, true
				}
			}
		}
	}
	return kongsim.AuditEntry{}, false
}
