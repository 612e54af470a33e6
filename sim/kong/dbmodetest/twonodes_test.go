package dbmodetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kong/go-kong/kong"
	. "github.com/onsi/gomega"

	"konductor.dev/sim/internal/pgtest"
)

// updatePeriod is KONG_DB_UPDATE_FREQUENCY: how often nodes poll the
// database for changes.
const updatePeriod = 200 * time.Millisecond

// propagationBound is how long a change may take to reach the other node.
// Kong's contract is about two update periods; the bound is wider so a busy
// machine does not fail the test, and the measured time is logged.
const propagationBound = 10 * time.Second

var httpClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func TestTwoNodesShareOneDatabase(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	db := pgtest.NewProxy(t, pgtest.DSN(t))
	params, err := pgtest.ParseDSN(db.DSN())
	g.Expect(err).NotTo(HaveOccurred())
	env := append(params.KongEnv(),
		"KONG_DATABASE=postgres",
		fmt.Sprintf("KONG_DB_UPDATE_FREQUENCY=%g", updatePeriod.Seconds()))
	runOnce(t, env, "migrations", "bootstrap")
	a := startNode(t, "A", env)
	b := startNode(t, "B", env)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s", r.URL.Path)
	}))
	t.Cleanup(upstream.Close)

	adminA, adminB := adminClient(t, a), adminClient(t, b)

	// Write a service load-balanced over an upstream with one target, and a
	// route to it, through node A only.
	written := time.Now()
	up, err := adminA.Upstreams.Create(ctx, &kong.Upstream{Name: kong.String("echo-upstream")})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = adminA.Targets.Create(ctx, up.ID, &kong.Target{Target: kong.String(strings.TrimPrefix(upstream.URL, "http://"))})
	g.Expect(err).NotTo(HaveOccurred())
	svc, err := adminA.Services.Create(ctx, &kong.Service{
		Name: kong.String("echo"), Host: kong.String("echo-upstream"), Port: kong.Int(80), Protocol: kong.String("http"),
	})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = adminA.Routes.Create(ctx, &kong.Route{
		Name: kong.String("echo"), Paths: kong.StringSlice("/echo"), StripPath: kong.Bool(false), Service: &kong.Service{ID: svc.ID},
	})
	g.Expect(err).NotTo(HaveOccurred())

	g.Eventually(proxied(b, "/echo/1")).WithTimeout(propagationBound).WithPolling(10*time.Millisecond).
		Should(Equal("upstream saw /echo/1"), "node B proxies what was written through node A")
	t.Logf("node B proxied the new route %v after the write (update period %v)", time.Since(written).Round(time.Millisecond), updatePeriod)
	g.Eventually(proxied(a, "/echo/1")).WithTimeout(propagationBound).Should(Equal("upstream saw /echo/1"))
	for _, n := range []*node{a, b} {
		g.Eventually(readyStatus(n)).WithTimeout(propagationBound).Should(Equal(http.StatusOK), "node %s ready", n.name)
	}

	// Database outage: nodes keep serving from their cache but say so.
	db.Cut()
	for _, n := range []*node{a, b} {
		admin := adminClient(t, n)
		g.Eventually(reachable(ctx, admin)).WithTimeout(propagationBound).Should(BeFalse(), "node %s /status", n.name)
		g.Eventually(readyStatus(n)).WithTimeout(propagationBound).Should(Equal(http.StatusServiceUnavailable), "node %s /status/ready", n.name)
		_, err := admin.Services.Create(ctx, &kong.Service{Name: kong.String("during-outage-" + n.name), Host: kong.String("example.com")})
		g.Expect(apiErrorCode(err)).To(Equal(http.StatusInternalServerError), "a write through node %s while the database is down: %v", n.name, err)
	}
	// Several polls fail meanwhile; proxying must not notice.
	g.Consistently(func(g Gomega) {
		for _, n := range []*node{a, b} {
			body, err := proxied(n, "/echo/during-outage")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(body).To(Equal("upstream saw /echo/during-outage"), "node %s", n.name)
		}
	}).WithTimeout(5 * updatePeriod).WithPolling(updatePeriod / 2).Should(Succeed())

	// Recovery: both nodes report the database again, are ready, accept
	// writes, and see each other's writes.
	db.Restore()
	for _, n := range []*node{a, b} {
		g.Eventually(reachable(ctx, adminClient(t, n))).WithTimeout(propagationBound).Should(BeTrue(), "node %s /status after restore", n.name)
		g.Eventually(readyStatus(n)).WithTimeout(propagationBound).Should(Equal(http.StatusOK), "node %s ready after restore", n.name)
	}
	var svc2 *kong.Service
	g.Eventually(func() error {
		svc2, err = adminB.Services.Create(ctx, &kong.Service{
			Name: kong.String("echo2"), Host: kong.String("echo-upstream"), Port: kong.Int(80), Protocol: kong.String("http"),
		})
		return err
	}).WithTimeout(propagationBound).Should(Succeed(), "a write through node B after restore")
	_, err = adminB.Routes.Create(ctx, &kong.Route{
		Name: kong.String("echo2"), Paths: kong.StringSlice("/echo2"), StripPath: kong.Bool(false), Service: &kong.Service{ID: svc2.ID},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(proxied(a, "/echo2")).WithTimeout(propagationBound).Should(Equal("upstream saw /echo2"), "node A proxies what was written through node B")
	g.Expect(proxied(b, "/echo/after")()).To(Equal("upstream saw /echo/after"))

	// Nothing written during the outage was stored.
	for _, n := range []string{"A", "B"} {
		_, err := adminA.Services.Get(ctx, kong.String("during-outage-"+n))
		g.Expect(kong.IsNotFoundErr(err)).To(BeTrue(), "service written through node %s during the outage: %v", n, err)
	}
}

func adminClient(t *testing.T, n *node) *kong.Client {
	t.Helper()
	c, err := kong.NewClient(kong.String("http://"+n.admin), httpClient)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// proxied returns a probe of GET path through n's proxy, yielding the body
// of a 200 response.
func proxied(n *node, path string) func() (string, error) {
	return func() (string, error) {
		resp, err := httpClient.Get("http://" + n.proxy + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("proxy of node %s answered %d: %s", n.name, resp.StatusCode, body)
		}
		return string(body), nil
	}
}

// readyStatus returns a probe of GET /status/ready on n's status listener.
func readyStatus(n *node) func() (int, error) {
	return func() (int, error) {
		resp, err := httpClient.Get("http://" + n.status + "/status/ready")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}

func reachable(ctx context.Context, admin *kong.Client) func() (bool, error) {
	return func() (bool, error) {
		st, err := admin.Status(ctx)
		if err != nil {
			return false, err
		}
		return st.Database.Reachable, nil
	}
}

func apiErrorCode(err error) int {
	var apiErr *kong.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code()
	}
	return 0
}
