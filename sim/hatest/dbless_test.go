package hatest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/sim/apiserver"
)

// Default election timings (virtual time).
const (
	lease = 15 * time.Second
	retry = 2 * time.Second
	// margin covers the debounce, one translation and one push.
	margin = 500 * time.Millisecond
)

// settle lets virtual time pass and every goroutine block.
func settle(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// started is a running cluster of three replicas and two DB-less Kongs
// at static URLs whose leader has configured both.
func started(t *testing.T) (*cluster, int) {
	return startedWith(t, newDBLessCluster(t, 2))
}

func startedWith(t *testing.T, c *cluster) (*cluster, int) {
	c.startAll()
	settle(5 * time.Second)
	leader := c.indexOf(c.lastWriter())
	if leader < 0 {
		t.Fatalf("no replica wrote to Kong within 5s; audit: %+v", c.audit())
	}
	for i := range c.kong {
		if !c.serves(i, "web") {
			t.Fatalf("kong-%d does not route web.example.com after 5s", i)
		}
	}
	return c, leader
}

func TestExactlyOneReplicaWrites(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func(testing.TB, int) *cluster
	}{
		{"static URLs, --leader-elect=true", newDBLessCluster},
		{"gateway discovery, --leader-elect=auto", newDiscoveryCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, _ := startedWith(t, tc.new(t, 2))
				for _, name := range []string{"a", "b", "c"} {
					c.addIngress(name)
					settle(3 * time.Second)
				}
				settle(30 * time.Second) // several drift checks and renewals
				for i := range c.kong {
					for _, name := range []string{"web", "a", "b", "c"} {
						if !c.serves(i, name) {
							t.Errorf("kong-%d does not route %s.example.com", i, name)
						}
					}
				}
				if ws := c.writers(); len(ws) != 1 {
					t.Errorf("writers = %v, want exactly one", ws)
				}
				c.checkSingleWriter()
			})
		})
	}
}

// A leader that dies without releasing the lock is replaced once its lease
// has expired, and a change made while nobody leads is not lost.
func TestCrashedLeaderIsReplacedWithinLeasePlusRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader := started(t)
		old := c.replica(leader).identity
		renewed := c.lastRenewal(old)
		c.crash(leader)
		killed := c.replica(leader).stoppedAt
		c.addIngress("during-failover")
		settle(lease + retry + 5*time.Second)

		first, ok := c.firstWriteAfter(killed, old)
		if !ok {
			t.Fatalf("no other replica wrote within %v of the crash; lock: %+v", lease+retry+5*time.Second, c.lockChanges())
		}
		if bound := renewed.Add(lease + retry + margin); first.Time.After(bound) {
			t.Errorf("%s first wrote %v after %s's last renewal, want ≤ lease+retry+%v = %v",
				first.Writer, first.Time.Sub(renewed), old, margin, lease+retry+margin)
		}
		t.Logf("crash failover: last renewal → first write by %s: %v (kill → write: %v)", first.Writer, first.Time.Sub(renewed), first.Time.Sub(killed))
		for i := range c.kong {
			if !c.serves(i, "during-failover") {
				t.Errorf("kong-%d lost the change made during the failover", i)
			}
		}
		c.checkSingleWriter()
	})
}

// On SIGTERM the leader releases the lock and a standby writes at once.
func TestGracefulHandoverTakesAFractionOfASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, leader := started(t)
		old := c.replica(leader).identity
		c.stop(leader)
		stopped := c.replica(leader).stoppedAt
		c.addIngress("during-handover")
		settle(5 * time.Second)

		lcs := c.lockChanges()
		if last := lcs[len(lcs)-1]; last.holder == old {
			t.Errorf("lock still held by %s after its graceful stop", old)
		}
		first, ok := c.firstWriteAfter(stopped, old)
		if !ok {
			t.Fatal("no other replica wrote within 5s of the graceful stop")
		}
		if took := first.Time.Sub(stopped); took >= time.Second {
			t.Errorf("graceful handover: stop → first write by %s took %v, want a fraction of a second", first.Writer, took)
		}
		for i := range c.kong {
			if !c.serves(i, "during-handover") {
				t.Errorf("kong-%d lost the change made during the handover", i)
			}
		}
		c.checkSingleWriter()
	})
}

// A leader cut off from the API server (but still reaching Kong) stops
// writing before its lease could have expired; the Kong audits show no
// interleaving of the two terms and no epoch going backwards, also after
// the partition heals. Two kinds of cut: every request refused (watches
// end), and every request failing or hanging for 30s while watches still
// deliver (the leader keeps seeing changes it must not push).
func TestPartitionedLeaderStopsWritingBeforeItsLeaseExpires(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults apiserver.Faults
	}{
		{"refused", apiserver.Faults{Partitioned: true}},
		{"failing and hanging", apiserver.Faults{ErrorRate: 1, Timeout: 30 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { partitionedLeader(t, tc.faults) })
		})
	}
}

func partitionedLeader(t *testing.T, faults apiserver.Faults) {
	c, leader := started(t)
	old := c.replica(leader).identity
	c.partition(leader, faults)
	// Someone edits Kong by hand every second and a user adds Ingresses:
	// a leader that kept writing would restore its configuration at its
	// next drift check, or push the new Ingresses it still watches.
	cut := time.Now()
	for i := range 40 {
		tamper(t, c, 0)
		if i%10 == 0 {
			c.addIngress(fmt.Sprintf("during-partition-%d", i))
		}
		settle(time.Second)
	}
	renewed := c.lastRenewal(old)
	for _, e := range c.audit() {
		if e.Writer == old && e.Time.After(cut) && !e.Time.Before(renewed.Add(lease)) {
			t.Errorf("%s wrote at %s, after its lease (renewed %s) could have expired", old,
				e.Time.Format(time.StampMilli), renewed.Format(time.StampMilli))
		}
	}
	next, ok := c.firstWriteAfter(cut, old)
	if !ok {
		t.Fatal("no other replica took over from the partitioned leader")
	}
	settle(5 * time.Second) // two drift checks
	if !c.serves(0, "web") {
		t.Error("kong-0 was not restored after the tampering stopped")
	}
	c.partition(leader, apiserver.Faults{})
	c.addIngress("after-heal")
	settle(40 * time.Second) // hanging requests end, the healed replica catches up
	for i := range c.kong {
		for _, name := range []string{"web", "during-partition-0", "during-partition-30", "after-heal"} {
			if !c.serves(i, name) {
				t.Errorf("kong-%d does not route %s.example.com", i, name)
			}
		}
	}
	terms := c.checkSingleWriter()
	for _, tm := range terms {
		if tm.writer == old && tm.epoch > next.Epoch {
			t.Errorf("the healed replica %s led again (epoch %d) although %s led", old, tm.epoch, next.Writer)
		}
	}
	t.Logf("%s last renewed at +%v, last wrote at +%v; %s wrote from +%v", old, renewed.Sub(cut), lastWrite(c, old).Sub(cut), next.Writer, next.Time.Sub(cut))
}

// lastWrite is when identity's latest write was accepted.
func lastWrite(c *cluster, identity string) time.Time {
	var at time.Time
	for _, e := range c.audit() {
		if e.Writer == identity {
			at = e.Time
		}
	}
	return at
}

// tamper replaces node i's configuration by hand (no writer header), as an
// operator's POST /config would.
func tamper(t *testing.T, c *cluster, i int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+kongHost(i)+"/config", strings.NewReader(`{"_format_version":"3.0","services":[{"name":"by-hand","host":"example.org"}]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: transportFunc(func(r *http.Request) (*http.Response, error) {
		return c.roundTrip(&replica{}, r)
	})}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("tampering with kong-%d: %s", i, resp.Status)
	}
}
