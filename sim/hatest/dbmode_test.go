package hatest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"konductor.dev/controller/options"

	"konductor.dev/sim/internal/pgtest"
	kongsim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/pgstore"
)

// Real-time election timings of the DB-mode test (a database connection
// cannot run inside a synctest bubble).
const (
	dbLease  = 3 * time.Second
	dbRenew  = 2 * time.Second
	dbRetry  = 500 * time.Millisecond
	dbDrift  = time.Second
	dbBound  = 20 * time.Second // Eventually bound of every convergence
	dbOutage = 3 * time.Second
)

// TestDBModeEndToEnd: PostgreSQL, two kongsim nodes sharing it, three
// controllers. Only the leader writes; changes reach both nodes' proxies;
// killing the leader mid-stream loses nothing; an entity deleted by hand is
// restored; a database outage wipes nothing and the controllers recover.
// Without PostgreSQL it skips, except with CI=true where it fails
// (pgtest.DSN).
func TestDBModeEndToEnd(t *testing.T) {
	g := NewWithT(t)
	db := pgtest.NewProxy(t, pgtest.DSN(t))
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s %s", r.Host, r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	_, portText, _ := net.SplitHostPort(upstream.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)

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
			Hostname: "kong-" + strconv.Itoa(i), Logger: slog.New(slog.DiscardHandler),
		})
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(n.Close)
		nodes[i], urls[i] = n, "http://"+kongHost(i)
	}
	c := newCluster(t, nodes, urls, int32(port))
	c.dbPusher = dbPusher
	base := c.options
	c.options = func() *optionsT {
		o := base()
		o.ElectionLeaseDuration, o.ElectionRenewDeadline, o.ElectionRetryPeriod = dbLease, dbRenew, dbRetry
		o.KongDriftCheckInterval = dbDrift
		return o
	}
	servesEverywhere := func(names ...string) func() error {
		return func() error {
			for i, n := range nodes {
				for _, name := range names {
					if code, body := proxiedReal(n, name+".example.com"); code != http.StatusOK {
						return fmt.Errorf("kong-%d: %s.example.com answers %d %q", i, name, code, body)
					}
				}
			}
			return nil
		}
	}

	c.startAll()
	g.Eventually(servesEverywhere("web")).WithTimeout(dbBound).Should(Succeed())
	g.Expect(c.writers()).To(HaveLen(1), "only the leader writes")
	leader := c.indexOf(c.writers()[0])

	t.Log("killing the leader in the middle of a stream of changes")
	for i := range 6 {
		if i == 3 {
			c.crash(leader)
		}
		c.addIngress("stream-" + strconv.Itoa(i))
	}
	all := []string{"web"}
	for i := range 6 {
		all = append(all, "stream-"+strconv.Itoa(i))
	}
	g.Eventually(servesEverywhere(all...)).WithTimeout(dbBound).Should(Succeed())
	g.Expect(len(c.writers())).To(BeNumerically(">=", 2), "a new leader took over")

	t.Log("deleting a route by hand")
	route := anyRoute(t, c, 0)
	deleteByHand(t, c, 0, "/routes/"+route)
	g.Eventually(func() error {
		return routeExists(c, 0, route)
	}).WithTimeout(dbBound).Should(Succeed(), "route restored by the drift check")
	g.Eventually(servesEverywhere(all...)).WithTimeout(dbBound).Should(Succeed())

	t.Log("cutting PostgreSQL for a while")
	db.Cut()
	c.addIngress("during-outage")
	g.Consistently(servesEverywhere(all...)).WithTimeout(dbOutage).Should(Succeed(), "nothing is wiped during the outage")
	db.Restore()
	g.Eventually(servesEverywhere(append(all, "during-outage")...)).WithTimeout(dbBound).Should(Succeed())

	terms := c.checkSingleWriter()
	t.Logf("terms: %+v", terms)
}

type optionsT = options.Options

// proxiedReal sends GET / with host through n's proxy to the real upstream.
func proxiedReal(n *kongsim.Node, host string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+"/", nil)
	rec := httptest.NewRecorder()
	n.Proxy().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func adminDo(c *cluster, method string, node int, path string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(context.Background(), method, "http://"+kongHost(node)+path, nil)
	return c.roundTrip(&replica{}, req)
}

// anyRoute names a route konductor created on node.
func anyRoute(t *testing.T, c *cluster, node int) string {
	t.Helper()
	resp, err := adminDo(c, http.MethodGet, node, "/routes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Data) == 0 {
		t.Fatalf("listing routes on kong-%d: %v (%d routes)", node, err, len(page.Data))
	}
	return page.Data[0].ID
}

func deleteByHand(t *testing.T, c *cluster, node int, path string) {
	t.Helper()
	resp, err := adminDo(c, http.MethodDelete, node, path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE %s on kong-%d: %s", path, node, resp.Status)
	}
}

func routeExists(c *cluster, node int, id string) error {
	resp, err := adminDo(c, http.MethodGet, node, "/routes/"+id)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /routes/%s: %s", id, resp.Status)
	}
	return nil
}
