package manager

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"konductor.dev/controller/eventreport"
)

func TestDBModeIsRefusedClearly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"))
		w.kong.database = "postgres"
		err := w.manager.Run(context.Background())
		if !errors.Is(err, ErrDBModeUnsupported) {
			t.Fatalf("Run = %v, want ErrDBModeUnsupported", err)
		}
		if n := w.kong.pushCount(); n != 0 {
			t.Errorf("%d pushes to a DB-mode Kong", n)
		}
	})
}

func TestKongRejectionBecomesAnEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		w.kong.reject = []map[string]any{{
			"entity_type": "route", "entity_name": "default.web.0.0",
			"entity_tags": []string{"k8s-name:web", "k8s-namespace:default", "k8s-kind:Ingress", "k8s-uid:ing-web", "managed-by-konductor"},
			"errors":      []map[string]any{{"type": "field", "field": "paths.0", "message": "invalid regex"}},
		}}
		w.start()
		defer w.stop()
		time.Sleep(10 * time.Second) // several rejected attempts with backoff
		synctest.Wait()

		events := w.events("web", eventreport.ReasonKongRejected)
		if len(events) != 1 {
			t.Fatalf("%d %s events on default/web, want exactly 1 for repeated rejections", len(events), eventreport.ReasonKongRejected)
		}
		if e := events[0]; e.InvolvedObject.UID != "ing-web" || !strings.Contains(e.Message, "field paths.0: invalid regex") {
			t.Errorf("event on %s: %q", e.InvolvedObject.UID, e.Message)
		}
		if n := w.countActions("patch", "ingresses", "status"); n != 0 {
			t.Errorf("status written for a configuration Kong refused (%d writes)", n)
		}
	})
}

func TestShutdownReleasesTheLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		w.start()
		settle(2 * time.Second)
		w.stop()
		cm, err := w.client.CoreV1().ConfigMaps("kong").Get(context.Background(), "ingress-controller-leader-kong", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("lock: %v", err)
		}
		record := cm.Annotations["control-plane.alpha.kubernetes.io/leader"]
		if !strings.Contains(record, `"holderIdentity":""`) {
			t.Errorf("lock not released after shutdown: %s", record)
		}
	})
}

func TestGatewayDiscoveryConfiguresEveryKong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kongs := map[string]*fakeKong{"10.0.0.1:8444": {}, "10.0.0.2:8444": {}, "10.0.0.3:8444": {}}
		h := hosts{}
		for addr, k := range kongs {
			h[addr] = k
		}
		w := newWorldWith(t, worldSpec{kongs: h}, service("echo"), endpointSlice("echo"), ingress("web", "echo"), adminSlice("10.0.0.1", "10.0.0.2"))
		w.start()
		defer w.stop()
		settle(5 * time.Second)
		if !w.manager.gated {
			t.Error("gateway discovery must gate Kong writes by election")
		}
		for _, addr := range []string{"10.0.0.1:8444", "10.0.0.2:8444"} {
			if n := kongs[addr].pushCount(); n != 1 {
				t.Errorf("%s got %d pushes, want 1", addr, n)
			}
		}

		// Kong scales out: the new replica is configured without any
		// Kubernetes change to translate.
		w.updateAdminSlice(adminSlice("10.0.0.1", "10.0.0.2", "10.0.0.3"))
		settle(2 * time.Second)
		if n := kongs["10.0.0.3:8444"].pushCount(); n != 1 {
			t.Errorf("new Kong replica got %d pushes, want 1", n)
		}
	})
}

func TestPushesAreSpacedByProxySyncSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := syncedEchoWorld(t)
		defer w.stop()
		// Two changes 150ms apart: each outlives the 100ms debounce, but
		// the second translation must wait for the 300ms minimum interval.
		w.create(ingress("a", "echo"))
		time.Sleep(150 * time.Millisecond)
		w.create(ingress("b", "echo"))
		settle(2 * time.Second)
		times := w.kong.pushTimes()
		if len(times) != 3 {
			t.Fatalf("%d pushes, want 3", len(times))
		}
		if gap := times[2].Sub(times[1]); gap < 300*time.Millisecond {
			t.Errorf("pushes %v apart, want at least --proxy-sync-seconds=0.3", gap)
		}
	})
}

func TestStandbyIsWarmAndTakesOverOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kong := &fakeKong{}
		a := newWorldWith(t, worldSpec{kongs: hosts{"10.0.0.1:8444": kong}}, service("echo"), endpointSlice("echo"), ingress("web", "echo"), adminSlice("10.0.0.1"))
		a.start()
		time.Sleep(time.Second) // a leads
		synctest.Wait()
		// b shares the API server and the Kong.
		b := a.replica("replica-1", a.client)
		b.start()
		defer b.stop()
		settle(5 * time.Second)

		if !a.manager.elector.IsLeader() || b.manager.elector.IsLeader() {
			t.Fatal("want replica-0 leading and replica-1 standing by")
		}
		if err := b.ready(); err != nil {
			t.Errorf("a warm standby with translated configuration must be ready: %v", err)
		}
		for _, wr := range kong.pushWriters() {
			if wr != "replica-0" {
				t.Fatalf("push by %q while replica-0 leads", wr)
			}
		}

		a.stop() // graceful: releases the lock
		start := time.Now()
		for !b.manager.elector.IsLeader() && time.Since(start) < 20*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		t.Logf("standby took over %v (virtual time) after the leader released the lock", took)
		if took > time.Second {
			t.Errorf("standby took %v (virtual) to take over a released lock, want under 1s", took)
		}
		// The new leader takes the standby's place: one more edit is
		// pushed by it.
		a.create(ingress("after", "echo"))
		settle(2 * time.Second)
		writers := kong.pushWriters()
		if len(writers) == 0 || writers[len(writers)-1] != "replica-1" {
			t.Errorf("writers %v, want the last push from replica-1", writers)
		}
	})
}

func TestMetricsShareOneRegistry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		w := newWorldWith(t, worldSpec{adjust: func(c *Config) { c.Registerer = reg }},
			service("echo"), endpointSlice("echo"), ingress("web", "echo"), ingress("broken", "missing"))
		w.start()
		defer w.stop()
		settle(2 * time.Second)
		families, err := reg.Gather()
		if err != nil {
			t.Fatalf("gathering from the shared registry: %v", err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				switch {
				case m.GetGauge() != nil:
					got[f.GetName()] = m.GetGauge().GetValue()
				case m.GetHistogram() != nil:
					got[f.GetName()] = float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		if got["konductor_translation_duration_seconds"] < 1 {
			t.Errorf("no translation observed: %v", got)
		}
		if got["konductor_translation_broken_objects"] != 1 {
			t.Errorf("broken objects %v, want 1", got["konductor_translation_broken_objects"])
		}
		if got["konductor_translation_last_timestamp_seconds"] == 0 {
			t.Error("last translation timestamp not set")
		}
	})
}

// A discovered Kong whose endpoint turns not ready (its container stopped
// and came back empty at the same address) is configured at once, with the
// liveness poll off: only the readiness flip can tell before the drift
// check, 10s later.
func TestReadinessFlipConfiguresRestartedKongAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kong0 := &fakeKong{}
		slice := func(ready bool) *discoveryv1.EndpointSlice {
			es := adminSlice("10.0.0.1")
			es.Endpoints[0].Conditions.Ready = &ready
			return es
		}
		spec := worldSpec{kongs: hosts{"10.0.0.1:8444": kong0}, args: append(slices.Clone(discoveryArgs), "--kong-liveness-check-interval=0")}
		w := newWorldWith(t, spec, service("echo"), endpointSlice("echo"), ingress("web", "echo"), slice(true))
		w.start()
		defer w.stop()
		settle(5 * time.Second)
		if n := kong0.pushCount(); n != 1 {
			t.Fatalf("%d pushes, want 1", n)
		}

		kong0.mu.Lock()
		kong0.hash = zeroHash // restarted empty
		kong0.mu.Unlock()
		restarted := time.Now()
		w.updateAdminSlice(slice(false))
		settle(time.Second)
		times := kong0.pushTimes()
		if len(times) != 2 {
			t.Fatalf("%d pushes a second after the readiness flip, want 2 (the drift check is 10s away)", len(times))
		}
		if took := times[1].Sub(restarted); took >= time.Second {
			t.Fatalf("configured %v after the flip", took)
		}
	})
}

// A sidecar's Kong (a static --kong-admin-url, no EndpointSlice to watch)
// that restarts empty is configured again by the liveness poll within a
// second, not at the drift check 10s later.
func TestRestartedSidecarKongIsConfiguredWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := syncedEchoWorld(t)
		defer w.stop()
		if n := w.kong.pushCount(); n != 1 {
			t.Fatalf("%d pushes, want 1", n)
		}
		w.kong.mu.Lock()
		w.kong.hash = zeroHash // restarted empty
		w.kong.mu.Unlock()
		restarted := time.Now()
		settle(time.Second)
		times := w.kong.pushTimes()
		if len(times) != 2 {
			t.Fatalf("%d pushes a second after the restart, want 2 (the drift check is 10s away)", len(times))
		}
		if took := times[1].Sub(restarted); took >= time.Second {
			t.Fatalf("configured %v after the restart", took)
		}
	})
}
