package manager

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDiscoveredKongWithDatabaseIsReportedNotPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dbless, withDB := &fakeKong{}, &fakeKong{database: "postgres"}
		h := hosts{"10.0.0.1:8444": dbless, "10.0.0.2:8444": withDB}
		w := newWorldWith(t, worldSpec{kongs: h}, service("echo"), endpointSlice("echo"), ingress("web", "echo"), adminSlice("10.0.0.1", "10.0.0.2"))
		w.start()
		defer w.stop()
		time.Sleep(time.Minute) // several re-probes of the Kong with a database
		synctest.Wait()

		if n := dbless.pushCount(); n != 1 {
			t.Errorf("DB-less Kong got %d pushes, want 1", n)
		}
		if n := withDB.pushCount(); n != 0 {
			t.Errorf("Kong with a database got %d pushes, want none", n)
		}
		list, err := w.client.CoreV1().Events("kong").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var found []corev1.Event
		for _, e := range list.Items {
			if e.Reason == ReasonKongDatabaseMismatch {
				found = append(found, e)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d %s events, want exactly 1: %+v", len(found), ReasonKongDatabaseMismatch, list.Items)
		}
		e := found[0]
		if e.InvolvedObject.Kind != "Service" || e.InvolvedObject.Name != "kong-admin" || e.Type != corev1.EventTypeWarning ||
			!strings.Contains(e.Message, "kong-b") || !strings.Contains(e.Message, `"postgres"`) {
			t.Errorf("event on %s %s/%s: %s %q", e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.Type, e.Message)
		}
		// Not every Kong serves the configuration: no status is claimed.
		if n := w.countActions("patch", "ingresses", "status"); n != 0 {
			t.Errorf("%d status writes while a Kong replica is not configured", n)
		}
	})
}
