package world

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"

	"konductor.dev/controller/manager"
	"konductor.dev/sim/apiserver"
	"konductor.dev/sim/kong"
	"konductor.dev/sim/kong/store"
)

// byHost serves each Kong Admin API in memory by IP.
type byHost map[string]*kong.Node

func (b byHost) RoundTrip(req *http.Request) (*http.Response, error) {
	host, _, _ := net.SplitHostPort(req.URL.Host)
	n, ok := b[host]
	if !ok {
		return nil, errRefused(req.URL)
	}
	return kong.NewInMemoryTransport(n.Admin()).RoundTrip(req)
}

// Gateway discovery finds two kongsim replicas: one DB-less, one running
// with a database (kongsim in DB mode stands in for a misconfigured Kong
// deployment). The controller configures the first only and reports the
// second on the admin Service.
func TestDiscoveredKongWithDatabaseIsLeftAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		api := apiserver.New(1)
		if err := api.Seed(baseObjects(1)...); err != nil {
			t.Fatal(err)
		}
		if err := api.Apply(adminSlice([]int{0, 1})); err != nil {
			t.Fatal(err)
		}
		discard := slog.New(slog.DiscardHandler)
		dbless, err := kong.NewNode(kong.Options{NodeID: "00000000-0000-4000-8000-000000000001", Hostname: kongPod(0), Logger: discard, ProxyTransport: backendTransport{}})
		if err != nil {
			t.Fatal(err)
		}
		withDB, err := kong.NewNode(kong.Options{NodeID: "00000000-0000-4000-8000-000000000002", Hostname: kongPod(1), Logger: discard,
			Database: kong.DatabasePostgres, Backend: store.NewMemory(), UpdateFrequency: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		nodeDone := make(chan struct{})
		go func() { defer close(nodeDone); _ = withDB.Run(ctx) }()

		const id = "konductor-0-1"
		r, err := Manager(ReplicaEnv{
			Identity: id, Client: api.Client(id), Options: defaultOptions(),
			HTTP: &http.Client{Transport: byHost{kongIP(0): dbless, kongIP(1): withDB}},
			Rand: replicaRand(1, id),
		})
		if err != nil {
			t.Fatal(err)
		}
		runDone := make(chan error, 1)
		go func() { runDone <- r.Run(ctx) }()
		time.Sleep(30 * time.Second)
		synctest.Wait()

		if dbless.Config().Empty() {
			t.Error("the DB-less Kong was not configured")
		}
		if a := withDB.Audit(); len(a) != 0 {
			t.Errorf("the Kong with a database got %d writes: %+v", len(a), a)
		}
		var reported []string
		for _, c := range api.Changes() {
			if e, ok := c.Object.(*corev1.Event); ok && e.Reason == manager.ReasonKongDatabaseMismatch {
				reported = append(reported, e.InvolvedObject.Kind+" "+e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name+": "+e.Message)
			}
		}
		if len(reported) != 1 || !strings.HasPrefix(reported[0], "Service "+kongNamespace+"/"+adminService+":") || !strings.Contains(reported[0], kongPod(1)) {
			t.Errorf("reports %q, want one Event on the admin Service naming %s", reported, kongPod(1))
		}

		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
		<-nodeDone
	})
}
