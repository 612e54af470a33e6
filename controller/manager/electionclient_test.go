package manager

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/controller/options"
)

// The lock goes through ElectionClient alone, so that renewals do not share
// a rate limiter with status writes and Events.
func TestElectionUsesItsOwnClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, err := options.Parse(defaultArgs, options.Env{Getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatal(err)
		}
		w := &world{t: t, client: fake.NewClientset(service("echo"), endpointSlice("echo"), ingress("web", "echo")), kong: &fakeKong{}, done: make(chan error, 1)}
		lockClient := fake.NewClientset()
		w.manager, err = New(Config{
			Options:        o,
			Client:         w.client,
			ElectionClient: lockClient,
			HTTPClient:     &http.Client{Transport: memoryTransport{w.kong}},
			Identity:       "replica-0",
			Logger:         testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		w.start()
		defer w.stop()
		settle(5 * time.Second)

		lock := o.ElectionLockName()
		if _, err := lockClient.CoreV1().ConfigMaps("kong").Get(context.Background(), lock, metav1.GetOptions{}); err != nil {
			t.Fatalf("lock %s not held through ElectionClient: %v", lock, err)
		}
		if n := w.countActions("create", "configmaps", "") + w.countActions("update", "configmaps", ""); n != 0 {
			t.Fatalf("the main client made %d lock writes", n)
		}
		got, err := w.client.NetworkingV1().Ingresses("default").Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Status.LoadBalancer.Ingress) != 1 {
			t.Fatalf("the leader did not write status through the main client: %+v", got.Status)
		}
	})
}
