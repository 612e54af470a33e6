package dbsynctest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	"konductor.dev/sim/internal/pgtest"
	kongsim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/pgstore"
)

// echoUpstream answers every proxied request itself, naming the upstream
// address it was sent to, so no real backend is needed.
type echoUpstream struct{}

func (echoUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	body := "upstream " + req.URL.Host + " saw " + req.URL.Path
	return &http.Response{
		StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}, nil
}

// proxied sends GET path with host through n's proxy and returns the
// status and body.
func proxied(n *kongsim.Node, host, path string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	rec := httptest.NewRecorder()
	n.Proxy().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestTwoNodesOnPostgreSQL syncs through node A of two kongsim nodes that
// share one PostgreSQL database; node B serves the result. A database
// outage then fails syncs without deleting anything, and the change made
// meanwhile applies once the database is back.
func TestTwoNodesOnPostgreSQL(t *testing.T) {
	g := NewWithT(t)
	db := pgtest.NewProxy(t, pgtest.DSN(t))
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	const poll = 100 * time.Millisecond
	nodes := map[string]*kongsim.Node{}
	for _, name := range []string{"a", "b"} {
		st, err := pgstore.New(ctx, db.DSN())
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { st.Close() })
		g.Expect(st.Bootstrap(ctx)).To(Succeed())
		n, err := kongsim.NewNode(kongsim.Options{
			Database: kongsim.DatabasePostgres, Backend: st, UpdateFrequency: poll,
			Hostname: name, ProxyTransport: echoUpstream{}, Logger: slog.New(slog.DiscardHandler),
		})
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(n.Close)
		nodes[name] = n
		wg.Go(func() { _ = n.Run(ctx) })
	}

	reg := prometheus.NewRegistry()
	s := dbsync.New(dbsync.Options{
		Client: &http.Client{Transport: kongsim.NewInMemoryTransport(nodes["a"].Admin())},
		Gate:   fence.Always{Identity: identity}, Identity: identity,
		Timeout: 5 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
		Registerer: reg,
	})
	s.SetTargets([]kongsync.Target{{Name: "a", URL: "http://kong-a:8001"}})
	wg.Go(func() { _ = s.Run(ctx) })

	as := apps(3)
	d1 := desired(t, as, 1)
	s.SetDesired(d1)
	g.Eventually(func() bool { return s.AllApplied(1) }).WithTimeout(30*time.Second).Should(BeTrue(), "status %+v", s.Status())

	for name, n := range nodes {
		for _, a := range as {
			g.Eventually(func() string {
				code, body := proxied(n, a.name+".example.com", "/api/x")
				return fmt.Sprint(code, " ", body)
			}).WithTimeout(10*time.Second).Should(MatchRegexp(`^200 upstream 10\.1\.\d+\.[12]:8080 saw /api/x$`),
				"node %s proxies %s", name, a.name)
		}
	}
	written := len(nodes["a"].Audit())
	g.Expect(written).To(Equal(total(d1)), "one write per entity")
	g.Expect(nodes["b"].Audit()).To(BeEmpty(), "node B got no writes")

	// Outage: syncs fail, nothing is deleted, the change waits.
	db.Cut()
	d2 := desired(t, as[:2], 2)
	s.SetDesired(d2)
	g.Eventually(func() float64 {
		return counter(t, reg, "konductor_kong_db_syncs_total", "outcome", "error")
	}).WithTimeout(20 * time.Second).Should(BeNumerically(">=", 3))
	g.Expect(s.AllApplied(2)).To(BeFalse())
	for name, n := range nodes {
		code, _ := proxied(n, "app-2.example.com", "/api/x")
		g.Expect(code).To(Equal(http.StatusOK), "node %s still serves app-2 from its cache", name)
	}

	db.Restore()
	g.Eventually(func() bool { return s.AllApplied(2) }).WithTimeout(30*time.Second).Should(BeTrue(), "status %+v", s.Status())
	for name, n := range nodes {
		g.Eventually(func() int {
			code, _ := proxied(n, "app-2.example.com", "/api/x")
			return code
		}).WithTimeout(10*time.Second).Should(Equal(http.StatusNotFound), "node %s dropped app-2", name)
		code, _ := proxied(n, "app-1.example.com", "/api/x")
		g.Expect(code).To(Equal(http.StatusOK), "node %s still serves app-1", name)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
