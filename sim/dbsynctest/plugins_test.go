package dbsynctest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	. "github.com/onsi/gomega"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate"
	"konductor.dev/sim/internal/pgtest"
	kongsim "konductor.dev/sim/kong"
	"konductor.dev/sim/kong/pgstore"
)

// The credential values of the test consumer; none may ever be logged.
const (
	aliceKey      = "alice-key-3f9c1e"
	alicePassword = "alice-password-77ab0d"
	aliceHMAC     = "alice-hmac-secret-51e2aa"
	aliceJWT      = "alice-jwt-secret-9d0c44"
)

// withAuth is apps plus: app-0's Ingress protected by key-auth and
// rate-limited, a global correlation-id plugin, and (when consumer is set)
// the consumer alice holding one credential of every kind with a
// consumer-scoped rate limit.
func withAuth(t testing.TB, a []app, consumer bool, v uint64) dbsync.Desired {
	s := snapshot(t, a)
	s.Ingresses[0] = s.Ingresses[0].DeepCopy()
	if s.Ingresses[0].Annotations == nil {
		s.Ingresses[0].Annotations = map[string]string{}
	}
	s.Ingresses[0].Annotations[translate.AnnotationPlugins] = "auth,limit"
	s.Plugins = append(s.Plugins,
		&translate.Plugin{Namespace: "default", Name: "auth", UID: "p-auth", PluginName: "key-auth", Config: []byte(`{"key_names":["apikey"]}`)},
		&translate.Plugin{Namespace: "default", Name: "limit", UID: "p-limit", PluginName: "rate-limiting", Config: []byte(`{"minute":100,"policy":"local"}`)},
		&translate.Plugin{Namespace: "default", Name: "alice-limit", UID: "p-alice", PluginName: "rate-limiting", Config: []byte(`{"minute":50}`)},
		&translate.Plugin{Name: "trace", UID: "p-trace", Cluster: true, Global: true, PluginName: "correlation-id"},
	)
	if consumer {
		secret := func(name, kind string, data map[string]string) *corev1.Secret {
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("sec-" + name),
				Labels: map[string]string{translate.LabelCredential: kind}}, Data: map[string][]byte{}}
			for k, v := range data {
				sec.Data[k] = []byte(v)
			}
			return sec
		}
		s.Secrets = append(s.Secrets,
			secret("alice-key", "key-auth", map[string]string{"key": aliceKey}),
			secret("alice-basic", "basic-auth", map[string]string{"username": "alice", "password": alicePassword}),
			secret("alice-jwt", "jwt", map[string]string{"key": "alice-iss", "algorithm": "HS256", "secret": aliceJWT}),
			secret("alice-acl", "acl", map[string]string{"group": "admins"}),
			secret("alice-hmac", "hmac-auth", map[string]string{"username": "alice-hmac", "secret": aliceHMAC}),
		)
		s.Consumers = append(s.Consumers, &translate.Consumer{
			Namespace: "default", Name: "alice", UID: "c-alice", Username: "alice",
			Credentials: []string{"alice-key", "alice-basic", "alice-jwt", "alice-acl", "alice-hmac"},
			Annotations: map[string]string{translate.AnnotationPlugins: "alice-limit"},
		})
	}
	res := translate.Translate(s, translate.Options{})
	if len(res.Errors) > 0 {
		t.Fatalf("translation errors: %v", res.Errors)
	}
	return dbsync.Desired{Config: res.Config, Hash: res.Hash, Version: v}
}

// waitProxied advances virtual time until node 0's proxy, which polls the
// database, answers want for a request with the given headers.
func (w *world) waitProxied(host string, header http.Header, want int) {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code := w.proxy(host, header)
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("proxy answered %d for %s %v, want %d", code, host, header, want)
		}
		w.advance(updateFrequency)
	}
}

func (w *world) proxy(host string, header http.Header) int {
	code, _ := proxiedWith(w.node(0), host, "/api", header)
	return code
}

func TestPluginsConsumersAndCredentialsSyncIdempotently(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := withAuth(t, apps(2), true, 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		w.expectCounts(d)
		if got := len(w.ourWrites()); got != total(d) {
			t.Errorf("initial sync made %d writes for %d entities", got, total(d))
		}
		host := "app-0.example.com"
		w.waitProxied(host, nil, http.StatusUnauthorized)
		w.waitProxied(host, http.Header{"Apikey": {aliceKey}}, http.StatusOK)
		w.waitProxied(host, http.Header{"Apikey": {"wrong"}}, http.StatusUnauthorized)

		// Kong filled in plugin defaults and hashed the password; none of
		// that is a difference.
		before := len(w.ourWrites())
		w.syncer.Resync()
		w.advance(3 * driftInterval)
		w.syncer.SetDesired(withAuth(t, apps(2), true, 2))
		w.waitApplied(2)
		if after := len(w.ourWrites()); after != before {
			t.Errorf("second sync wrote %d entities, want none: %v", after-before, methods(w.ourWrites()[before:]))
		}

		// A credential deleted by hand is drift and comes back.
		keys, _, err := w.admin(0).KeyAuths.List(t.Context(), nil)
		if err != nil || len(keys) != 1 {
			t.Fatalf("listing key-auths: %v, %d", err, len(keys))
		}
		if err := w.admin(0).KeyAuths.Delete(t.Context(), keys[0].Consumer.ID, keys[0].ID); err != nil {
			t.Fatal(err)
		}
		w.advance(2 * driftInterval)
		w.expectCounts(d)

		// Removing the consumer deletes its credentials and its plugin
		// before the consumer itself.
		before = len(w.ourWrites())
		d3 := withAuth(t, apps(2), false, 3)
		w.syncer.SetDesired(d3)
		w.waitApplied(3)
		w.expectCounts(d3)
		removed := w.ourWrites()[before:]
		consumerAt := slices.IndexFunc(removed, func(e kongsim.AuditEntry) bool {
			return e.Method == http.MethodDelete && strings.Count(strings.Trim(e.Path, "/"), "/") == 1 && strings.HasPrefix(e.Path, "/consumers/")
		})
		if consumerAt != len(removed)-1 {
			t.Errorf("the consumer was not deleted last: %v", removed)
		}
		if got, want := len(removed), 7; got != want { // 5 credentials, 1 plugin, 1 consumer
			t.Errorf("removing the consumer made %d writes, want %d: %v", got, want, methods(removed))
		}
		w.waitProxied(host, http.Header{"Apikey": {aliceKey}}, http.StatusUnauthorized)

		logs := w.syncerLogs()
		for _, secret := range []string{aliceKey, alicePassword, aliceHMAC, aliceJWT} {
			if strings.Contains(logs, secret) {
				t.Errorf("a credential value appears in the Syncer's logs")
			}
		}
	})
}

// TestEmptyDesiredKeepsConsumers: an empty configuration deletes neither
// consumers nor their credentials without AllowEmpty.
func TestEmptyDesiredKeepsConsumers(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := withAuth(t, apps(1), true, 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		before := len(w.ourWrites())
		empty := desired(t, nil, 2)
		w.syncer.SetDesired(empty)
		w.advance(3 * driftInterval)
		if after := len(w.ourWrites()); after != before {
			t.Errorf("an empty desired configuration wrote %d times", after-before)
		}
		w.expectCounts(d)
	})
}

// TestFailedCredentialListingWritesNothing: a listing of key-auths that
// fails stops the sync before any write, so nothing is deleted on a partial
// picture.
func TestFailedCredentialListingWritesNothing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		w := newWorld(t, worldOptions{})
		d := withAuth(t, apps(1), true, 1)
		w.syncer.SetDesired(d)
		w.waitApplied(1)
		before := len(w.ourWrites())
		w.router.mu.Lock()
		w.router.failList = "key-auths"
		w.router.mu.Unlock()
		w.syncer.SetDesired(withAuth(t, apps(1), false, 2))
		w.advance(3 * driftInterval)
		if after := len(w.ourWrites()); after != before {
			t.Errorf("%d writes while key-auths could not be listed", after-before)
		}
		w.expectCounts(d)
	})
}

// proxiedWith sends GET path with host and header through n's proxy and
// returns the status and body.
func proxiedWith(n *kongsim.Node, host, path string, header http.Header) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	n.Proxy().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestPluginsOnPostgreSQL syncs plugins, a consumer and its credentials
// through node A of two kongsim nodes on one PostgreSQL database: node B
// enforces key-auth with the consumer's key, and syncing the same
// configuration again writes nothing.
func TestPluginsOnPostgreSQL(t *testing.T) {
	g := NewWithT(t)
	db := pgtest.NewProxy(t, pgtest.DSN(t))
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	nodes := map[string]*kongsim.Node{}
	for _, name := range []string{"a", "b"} {
		st, err := pgstore.New(ctx, db.DSN())
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { st.Close() })
		g.Expect(st.Bootstrap(ctx)).To(Succeed())
		n, err := kongsim.NewNode(kongsim.Options{
			Database: kongsim.DatabasePostgres, Backend: st, UpdateFrequency: 100 * time.Millisecond,
			Hostname: name, ProxyTransport: echoUpstream{}, Logger: slog.New(slog.DiscardHandler),
		})
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(n.Close)
		nodes[name] = n
		wg.Go(func() { _ = n.Run(ctx) })
	}
	s := dbsync.New(dbsync.Options{
		Client: &http.Client{Transport: kongsim.NewInMemoryTransport(nodes["a"].Admin())},
		Gate:   fence.Always{Identity: identity}, Identity: identity,
		Timeout: 5 * time.Second, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
	})
	s.SetTargets([]kongsync.Target{{Name: "a", URL: "http://kong-a:8001"}})
	wg.Go(func() { _ = s.Run(ctx) })

	d1 := withAuth(t, apps(2), true, 1)
	s.SetDesired(d1)
	g.Eventually(func() bool { return s.AllApplied(1) }).WithTimeout(30*time.Second).Should(BeTrue(), "status %+v", s.Status())
	g.Expect(nodes["a"].Audit()).To(HaveLen(total(d1)), "one write per entity")
	host := "app-0.example.com"
	g.Eventually(func() int { c, _ := proxiedWith(nodes["b"], host, "/api", nil); return c }).
		WithTimeout(10 * time.Second).Should(Equal(http.StatusUnauthorized))
	g.Eventually(func() int { c, _ := proxiedWith(nodes["b"], host, "/api", http.Header{"Apikey": {aliceKey}}); return c }).
		WithTimeout(10 * time.Second).Should(Equal(http.StatusOK))

	written := len(nodes["a"].Audit())
	s.SetDesired(withAuth(t, apps(2), true, 2))
	s.Resync()
	g.Eventually(func() bool { return s.AllApplied(2) }).WithTimeout(30*time.Second).Should(BeTrue(), "status %+v", s.Status())
	g.Expect(nodes["a"].Audit()).To(HaveLen(written), "the second sync writes nothing")
}
