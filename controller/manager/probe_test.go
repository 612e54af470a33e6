package manager

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDiscoveredKongWithDatabaseIsReportedNotPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dbless, withDB := &fakeKong{}, &fakeKong{database: "postgres"}
		h := hosts{"10.0.0.1:8001": dbless, "10.0.0.2:8001": withDB}
		adminPort, portName := int32(8001), "admin"
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "kong", Name: "kong-admin-x", Labels: map[string]string{discoveryv1.LabelServiceName: "kong-admin"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &adminPort}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.1"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "kong", Name: "kong-a"}},
				{Addresses: []string{"10.0.0.2"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "kong", Name: "kong-b"}},
			},
		}
		args := []string{"--kong-admin-svc=kong/kong-admin", "--election-namespace=kong", "--publish-status-address=203.0.113.7"}
		w := newWorldWith(t, args, h, service("echo"), endpointSlice("echo"), ingress("web", "echo"), slice)
		w.manager.cfg.HTTPClient = &http.Client{Transport: memoryTransport{h}}
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
