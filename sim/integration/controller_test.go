package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/controller/eventreport"
	"konductor.dev/controller/translate"
	"konductor.dev/sim/kong"
)

// The specifications run the real controller against a fake API server and
// three in-process kongsim replicas under testing/synctest: time is
// virtual, so the bounds below are statements about the controller's own
// timing (default --sync-debounce 100ms, --proxy-sync-seconds 0.3,
// --kong-drift-check-interval 10s, --kong-admin-request-timeout 30s), not
// about the machine's speed.

const (
	replicas = 3
	// applyBound covers debounce + minimum push interval + the push.
	applyBound = 2 * time.Second
	// driftBound covers one drift check interval (10s ±10%) and a push.
	driftBound = 15 * time.Second
)

// world is one controller with three Kong replicas.
type world struct {
	t      *testing.T
	client *fake.Clientset
	kongs  *Kongs
}

// spec runs body as a subtest inside a synctest bubble, with a world whose
// API server starts with the given apps.
func spec(t *testing.T, name string, apps []App, body func(t *testing.T, w *world)) {
	t.Run(name, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var objs []runtime.Object
			for _, a := range apps {
				objs = append(objs, a.Objects()...)
			}
			kongs, err := NewKongs(replicas, KongsOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kongs.Close)
			w := &world{t: t, client: fake.NewClientset(objs...), kongs: kongs}
			startController(t, w.client, kongs.AdminURLs(), kongs.Transport())
			body(t, w)
		})
	})
}

// converged waits until every replica serves the configuration the API
// server's content translates to, and returns it.
func (w *world) converged(within time.Duration, nodes ...int) expected {
	w.t.Helper()
	want := expectedConfig(w.t, w.client)
	eventually(w.t, within, "Kong replicas serve the translated configuration", func() error {
		return serving(w.kongs, want.kongHash, nodes...)
	})
	return want
}

func (w *world) routes(i int) []string {
	w.t.Helper()
	hosts, err := routedHosts(context.Background(), w.kongs, i)
	if err != nil {
		w.t.Fatalf("kong-%d: listing routes: %v", i, err)
	}
	return hosts
}

func TestController(t *testing.T) {
	three := Apps(3)

	spec(t, "all three Kong replicas converge on the same configuration", three, func(t *testing.T, w *world) {
		want := w.converged(applyBound)
		if want.kongHash == kong.ZeroHash {
			t.Fatal("the expected configuration is empty")
		}
		for i := range replicas {
			if got := w.routes(i); !slices.Equal(got, []string{"app-0.example.com", "app-1.example.com", "app-2.example.com"}) {
				t.Errorf("kong-%d routes hosts %v", i, got)
			}
		}
	})

	spec(t, "a new Ingress and a changed path propagate to every replica", three, func(t *testing.T, w *world) {
		before := w.converged(applyBound)
		create(t, w.client, App{Name: "app-3"}.Objects()...)
		updateIngress(t, w.client, "default", "app-0", func(ing *networkingv1.Ingress) {
			ing.Spec.Rules[0].HTTP.Paths[0].Path = "/v2"
		})
		after := w.converged(applyBound)
		if after.kongHash == before.kongHash {
			t.Fatal("the change did not change the configuration")
		}
		for i := range replicas {
			if !slices.Contains(w.routes(i), "app-3.example.com") {
				t.Errorf("kong-%d does not route the new Ingress", i)
			}
		}
		if !bytes.Contains(after.result.Body, []byte(`"~/v2$"`)) {
			t.Errorf("the changed Prefix path is not in the configuration")
		}
	})

	spec(t, "a replica restarted empty is configured again", three, func(t *testing.T, w *world) {
		w.converged(applyBound)
		if err := w.kongs.Restart(1); err != nil {
			t.Fatal(err)
		}
		if got := w.kongs.Node(1).ConfigHash(); got != kong.ZeroHash {
			t.Fatalf("restarted node serves %s, want the empty hash", got)
		}
		w.converged(driftBound)
		if n := len(w.kongs.Node(1).Audit()); n != 1 {
			t.Errorf("restarted replica got %d pushes, want 1", n)
		}
	})

	spec(t, "a replica whose configuration was replaced behind our back is repaired", three, func(t *testing.T, w *world) {
		want := w.converged(applyBound)
		other := []byte(`{"_format_version":"3.0","services":[{"name":"intruder","host":"example.net","routes":[{"name":"intruder","paths":["/"]}]}]}`)
		req, _ := http.NewRequest(http.MethodPost, AdminURL(2)+"/config", bytes.NewReader(other))
		req.Header.Set("Content-Type", "application/json")
		resp, err := w.kongs.Transport().RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("direct POST /config: HTTP %d", resp.StatusCode)
		}
		if got := w.kongs.Node(2).ConfigHash(); got == want.kongHash || got == kong.ZeroHash {
			t.Fatalf("the direct edit did not take: %s", got)
		}
		w.converged(driftBound)
		if slices.Contains(w.routes(2), "example.net") || len(w.routes(2)) != 3 {
			t.Errorf("kong-2 still routes %v", w.routes(2))
		}
	})

	spec(t, "a stalled replica does not delay the other two and catches up when released", three, func(t *testing.T, w *world) {
		before := w.converged(applyBound)
		release := w.kongs.Stall(2)
		defer release()
		create(t, w.client, App{Name: "app-3"}.Objects()...)
		start := time.Now()
		want := expectedConfig(t, w.client)
		eventually(t, applyBound, "the two healthy replicas apply the change", func() error {
			return serving(w.kongs, want.kongHash, 0, 1)
		})
		// Bound on the healthy replicas' delay: a stall would cost them the
		// 30s push timeout if they waited for the hung replica.
		if took := time.Since(start); took > time.Second {
			t.Errorf("the healthy replicas applied the change after %s", took)
		}
		consistently(t, 20*time.Second, "the stalled replica keeps what it had", func() error {
			return serving(w.kongs, before.kongHash, 2)
		})
		release()
		w.converged(driftBound + 30*time.Second)
	})

	spec(t, "an invalid Ingress gets a Warning Event and the rest applies", three, func(t *testing.T, w *world) {
		w.converged(applyBound)
		broken := App{Name: "broken"}.Ingress()
		broken.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "missing"
		create(t, w.client, broken)
		create(t, w.client, App{Name: "app-3"}.Objects()...)
		want := w.converged(applyBound)
		if !slices.ContainsFunc(want.result.Errors, func(e translate.ObjectError) bool { return e.Object.Name == "broken" }) {
			t.Fatalf("the translator reports no error for the broken Ingress: %v", want.result.Errors)
		}
		for i := range replicas {
			hosts := w.routes(i)
			if !slices.Contains(hosts, "app-3.example.com") || slices.Contains(hosts, "broken.example.com") {
				t.Errorf("kong-%d routes %v", i, hosts)
			}
		}
		eventually(t, applyBound, "a Warning Event on the broken Ingress", func() error {
			if evs := warnings(t, w.client, "Ingress", "broken", translate.ReasonServiceNotFound); len(evs) == 0 {
				return fmt.Errorf("no %s Event", translate.ReasonServiceNotFound)
			}
			return nil
		})
	})

	spec(t, "a Kong rejection keeps the replica's last good configuration and is reported on the object", three, func(t *testing.T, w *world) {
		lastGood := w.converged(applyBound)
		w.kongs.SetAdmission(2, RejectRoutesWithHost("poison.example.com", "host is on the deny list"))
		create(t, w.client, App{Name: "poison"}.Objects()...)
		want := w.converged(applyBound, 0, 1)
		consistently(t, 30*time.Second, "the rejecting replica keeps its last good configuration", func() error {
			return serving(w.kongs, lastGood.kongHash, 2)
		})
		evs := warnings(t, w.client, "Ingress", "poison", eventreport.ReasonKongRejected)
		if len(evs) == 0 {
			t.Fatal("no Event on the rejected Ingress")
		}
		if !bytes.Contains([]byte(evs[0].Message), []byte("host is on the deny list")) {
			t.Errorf("the Event does not carry Kong's message: %q", evs[0].Message)
		}
		// Emptied while its current configuration is rejected, the replica
		// gets its last good configuration back, never nothing.
		if err := w.kongs.Restart(2); err != nil {
			t.Fatal(err)
		}
		eventually(t, driftBound, "the restarted rejecting replica is restored", func() error {
			return serving(w.kongs, lastGood.kongHash, 2)
		})
		// Once Kong accepts it, the replica catches up.
		w.kongs.SetAdmission(2, nil)
		create(t, w.client, App{Name: "app-3"}.Objects()...)
		final := w.converged(applyBound + driftBound)
		if final.kongHash == want.kongHash {
			t.Fatal("the last change changed nothing")
		}
	})

	spec(t, "Ingress status is written once every replica applied the configuration", three, func(t *testing.T, w *world) {
		w.converged(applyBound)
		eventually(t, applyBound, "status of the first apps", func() error {
			if ips := statusIPs(t, w.client, "default", "app-0"); !slices.Equal(ips, []string{publishAddress}) {
				return fmt.Errorf("status %v", ips)
			}
			return nil
		})
		w.kongs.SetUnreachable(2, true)
		create(t, w.client, App{Name: "late"}.Objects()...)
		w.converged(applyBound, 0, 1)
		consistently(t, 5*time.Second, "no status before the configuration is everywhere", func() error {
			if ips := statusIPs(t, w.client, "default", "late"); len(ips) != 0 {
				return fmt.Errorf("status %v written while kong-2 lacks the Ingress", ips)
			}
			return nil
		})
		w.kongs.SetUnreachable(2, false)
		w.converged(driftBound + 30*time.Second)
		eventually(t, applyBound, "status after every replica applied", func() error {
			if ips := statusIPs(t, w.client, "default", "late"); !slices.Equal(ips, []string{publishAddress}) {
				return fmt.Errorf("status %v", ips)
			}
			return nil
		})
	})
}
