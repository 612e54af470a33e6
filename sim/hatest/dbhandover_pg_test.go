package hatest

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/manager"
	"konductor.dev/sim/internal/pgtest"
	kongsim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/pgstore"
)

// TestMeasureDBHandoverOnPostgreSQL measures, in real time against
// PostgreSQL (two kongsim nodes sharing it, polling every 100ms), three
// controllers and a configuration of KONDUCTOR_HANDOVER_APPS apps (default
// 100; four managed entities each),
// how long a change made at the instant the leader is lost takes to reach
// the database (the new leader's first write) and every node's proxy:
// after a graceful stop, and after a crash (the lease runs out: this
// cluster has no kubelet, so the crash is measured from the new term). It
// logs the figures. The repetitions are KONDUCTOR_HANDOVER_REPS (default
// 2, to keep `make test` short). Run it with
//
//	KONDUCTOR_HANDOVER_REPS=20 KONDUCTOR_HANDOVER_APPS=300 go test -count=1 -v -run TestMeasureDBHandoverOnPostgreSQL ./sim/hatest/
func TestMeasureDBHandoverOnPostgreSQL(t *testing.T) {
	reps, apps := 2, 100
	if v, err := strconv.Atoi(os.Getenv("KONDUCTOR_HANDOVER_REPS")); err == nil && v > 0 {
		reps = v
	}
	if v, err := strconv.Atoi(os.Getenv("KONDUCTOR_HANDOVER_APPS")); err == nil && v > 0 {
		apps = v
	}
	g := NewWithT(t)
	db := pgtest.NewProxy(t, pgtest.DSN(t))
	ctx := t.Context()
	nodes := make([]*kongsim.Node, 2)
	urls := make([]string, 2)
	for i := range nodes {
		st, err := pgstore.New(ctx, db.DSN())
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { st.Close() })
		g.Expect(st.Bootstrap(ctx)).To(Succeed())
		n, err := kongsim.NewNode(kongsim.Options{
			Database: kongsim.DatabasePostgres, Backend: st, UpdateFrequency: 100 * time.Millisecond,
			Hostname: "kong-" + strconv.Itoa(i), ProxyTransport: echoUpstream{}, Logger: slog.New(slog.DiscardHandler),
		})
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(n.Close)
		nodes[i], urls[i] = n, "http://"+kongHost(i)
	}
	c := newCluster(t, nodes, urls, 8080)
	// Each incarnation's syncer, by identity, to see when a standby holds
	// a listing begun after a given instant (Status().WarmListed).
	var mu sync.Mutex
	syncers := map[string]*dbsync.Syncer{}
	c.dbPusher = func(o kongsync.Options) (manager.Pusher, error) {
		p := dbsync.NewBodyPusher(o)
		mu.Lock()
		syncers[o.Identity] = p.Syncer()
		mu.Unlock()
		return p, nil
	}
	// warmSince: replicas holds a listing begun after since, so it shows
	// every write made before.
	warmSince := func(since time.Time, replicas ...int) func() error {
		return func() error {
			for _, i := range replicas {
				r := c.replica(i)
				mu.Lock()
				s := syncers[r.identity]
				mu.Unlock()
				if s == nil {
					return fmt.Errorf("replica %s has no syncer yet", r.identity)
				}
				if at := s.Status().WarmListed; !at.After(since) {
					return fmt.Errorf("standby %s's listing began at %s, before %s", r.identity, at.Format(time.StampMilli), since.Format(time.StampMilli))
				}
			}
			return nil
		}
	}
	c.logs = &logRecord{}
	base := c.options
	c.options = func() *optionsT {
		o := base()
		o.ElectionLeaseDuration, o.ElectionRenewDeadline, o.ElectionRetryPeriod = dbLease, dbRenew, dbRetry
		o.KongDriftCheckInterval = 30 * time.Second
		return o
	}
	for i := range apps {
		if err := c.api.Seed(app(fmt.Sprintf("bulk-%d", i), 8080)...); err != nil {
			t.Fatal(err)
		}
	}
	servesEverywhere := func(name string) func() error {
		return func() error {
			for i := range nodes {
				if !c.serves(i, name) {
					return fmt.Errorf("kong-%d does not route %s.example.com", i, name)
				}
			}
			return nil
		}
	}
	c.startAll()
	// The first leader writes four entities per app; measure from a
	// settled state.
	for i := range apps {
		g.Eventually(servesEverywhere(fmt.Sprintf("bulk-%d", i))).WithTimeout(120 * time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
	}
	// The standbys listed Kong when they got the configuration, before
	// the leader wrote it; their next listing comes a WarmInterval (10s)
	// later, or a second after the next change. Make that change, and
	// wait for a listing that shows all of it.
	c.addIngress("settled")
	g.Eventually(servesEverywhere("settled")).WithTimeout(dbBound).WithPolling(5 * time.Millisecond).Should(Succeed())
	settled := time.Now()
	leader := c.indexOf(c.lastWriter())
	g.Expect(leader).NotTo(Equal(-1))
	var standbys []int
	for i := range replicaCount {
		if i != leader {
			standbys = append(standbys, i)
		}
	}
	g.Eventually(warmSince(settled, standbys...)).WithTimeout(dbBound).WithPolling(10 * time.Millisecond).Should(Succeed())
	t.Logf("standbys warm %s after the configuration settled", time.Since(settled).Round(time.Millisecond))

	for _, kind := range []string{"graceful", "crash"} {
		var toDB, toProxy, fromTerm []time.Duration
		var steps handoverSteps
		use := nowUse()
		for rep := range reps {
			old := c.replica(leader).identity
			name := fmt.Sprintf("%s-%d", kind, rep)
			changed := time.Now()
			c.addIngress(name)
			if kind == "graceful" {
				c.stop(leader)
			} else {
				c.crash(leader)
			}
			g.Eventually(servesEverywhere(name)).WithTimeout(dbBound).WithPolling(5 * time.Millisecond).Should(Succeed())
			served := time.Now()
			first, ok := c.routeWritten(name)
			g.Expect(ok).To(BeTrue(), "the change's route was written")
			g.Expect(first.Writer).NotTo(Equal(old), "the new leader wrote the change")
			var locked time.Time
			for _, lc := range c.lockChanges() {
				if lc.client == first.Writer && lc.holder == first.Writer && !lc.at.Before(changed) {
					locked = lc.at
					break
				}
			}
			steps.add(c, changed, locked, first, served)
			toDB = append(toDB, first.Time.Sub(changed))
			toProxy = append(toProxy, served.Sub(changed))
			fromTerm = append(fromTerm, first.Time.Sub(locked))
			restarted := time.Now()
			c.restart(leader)
			// The restarted replica lists as soon as it has its Desired:
			// a warm standby before the next handover.
			g.Eventually(warmSince(restarted, leader)).WithTimeout(dbBound).WithPolling(10 * time.Millisecond).Should(Succeed())
			leader = c.indexOf(first.Writer)
		}
		t.Log(summary("PostgreSQL "+kind+": change at the handover → the change's route written", toDB))
		t.Log(summary("PostgreSQL "+kind+": new term → the change's route written", fromTerm))
		t.Log(summary("PostgreSQL "+kind+": change at the handover → served by every node (100ms poll)", toProxy))
		steps.log(t, "PostgreSQL "+kind)
		t.Logf("PostgreSQL %s, %d repetitions: %s", kind, reps, use.since())
	}
	c.checkSingleWriter()
}
