package manager

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The lock goes through ElectionClient alone, so that renewals do not share
// a rate limiter with status writes and Events.
func TestElectionUsesItsOwnClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lockClient := fake.NewClientset()
		w := newWorldWith(t, worldSpec{adjust: func(c *Config) { c.ElectionClient = lockClient }},
			service("echo"), endpointSlice("echo"), ingress("web", "echo"))
		w.start()
		defer w.stop()
		settle(5 * time.Second)

		lock := w.o.ElectionLockName()
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
