package apiserver

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
)

func cm(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: map[string]string{"k": "v"}}
}

func rv(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", s, err)
	}
	return n
}

func TestWritesFollowOptimisticConcurrency(t *testing.T) {
	ctx := context.Background()
	c := New(1).Client("a").CoreV1().ConfigMaps("ns")

	first, err := c.Create(ctx, cm("one"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Create(ctx, cm("two"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := rv(t, first.ResourceVersion), rv(t, second.ResourceVersion); b != a+1 {
		t.Errorf("resourceVersions %d then %d: want one global counter", a, b)
	}
	if _, err := c.Create(ctx, cm("one"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create of one: %v, want AlreadyExists", err)
	}

	first.Data["k"] = "w"
	updated, err := c.Update(ctx, first, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update with current resourceVersion: %v", err)
	}
	first.Data["k"] = "x" // still carries the old resourceVersion
	if _, err := c.Update(ctx, first, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update with stale resourceVersion: %v, want Conflict", err)
	}
	if updated.UID != first.UID || updated.UID == "" {
		t.Errorf("uid changed on update: %q → %q", first.UID, updated.UID)
	}
	if _, err := c.Update(ctx, cm("missing"), metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("update of missing object: %v, want NotFound", err)
	}

	gen := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", GenerateName: "gen-"}}
	made, err := c.Create(ctx, gen, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(made.Name) != len("gen-")+5 || made.Name[:4] != "gen-" {
		t.Errorf("generateName gave %q", made.Name)
	}
	if err := c.Delete(ctx, "two", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "two", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestSelectorsFilterListAndWatch(t *testing.T) {
	ctx := context.Background()
	s := New(1)
	c := s.Client("a").CoreV1().ConfigMaps("ns")
	for _, n := range []string{"x", "y"} {
		if _, err := c.Create(ctx, cm(n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sel := fields.OneTermEqualSelector("metadata.name", "y").String()
	l, err := c.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].Name != "y" {
		t.Errorf("field-selected list: %v", l.Items)
	}
	w, err := c.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, n := range []string{"x", "y"} {
		o, _ := c.Get(ctx, n, metav1.GetOptions{})
		o.Data["k"] = "changed"
		if _, err := c.Update(ctx, o, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ev := <-w.ResultChan()
	if got := ev.Object.(*corev1.ConfigMap).Name; got != "y" {
		t.Errorf("watch delivered %s, want only y", got)
	}
}

func TestWatchFromRevisionReplaysLaterChanges(t *testing.T) {
	ctx := context.Background()
	s := New(1)
	c := s.Client("a").CoreV1().ConfigMaps("ns")
	a, _ := c.Create(ctx, cm("a"), metav1.CreateOptions{})
	if _, err := c.Create(ctx, cm("b"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, metav1.ListOptions{ResourceVersion: a.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := <-w.ResultChan(); ev.Object.(*corev1.ConfigMap).Name != "b" {
		t.Errorf("replay from %s started with %v", a.ResourceVersion, ev.Object)
	}
}

// informerOn starts a ConfigMap informer on the view and counts its lists.
func informerOn(ctx context.Context, v *View) cache.SharedIndexInformer {
	f := informers.NewSharedInformerFactoryWithOptions(v, 0, informers.WithNamespace("ns"))
	inf := f.Core().V1().ConfigMaps().Informer()
	f.Start(ctx.Done())
	return inf
}

func TestInformersWorkUnderSynctestAndRelistAfterDroppedWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := New(7)
		if err := s.Seed(cm("pre")); err != nil {
			t.Fatal(err)
		}
		v := s.Client("r1")
		inf := informerOn(ctx, v)
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			t.Fatal("informer did not sync")
		}
		admin := s.Client("admin").CoreV1().ConfigMaps("ns")
		if _, err := admin.Create(ctx, cm("live"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, ok, _ := inf.GetStore().GetByKey("ns/live"); !ok {
			t.Fatal("watch event not delivered to the informer")
		}
		readsBefore := s.Reads("r1")
		if n := s.DropWatches("r1"); n != 1 {
			t.Fatalf("dropped %d watches, want 1", n)
		}
		// A change while the informer relists must not be lost.
		if _, err := admin.Create(ctx, cm("during"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // virtual: reflector backoff
		synctest.Wait()
		if s.Reads("r1") <= readsBefore {
			t.Error("dropped watch did not make the informer list again")
		}
		if _, ok, _ := inf.GetStore().GetByKey("ns/during"); !ok {
			t.Error("object created around the dropped watch is missing from the cache")
		}
		if got := s.Fired("r1")[FiredDroppedWatch]; got != 1 {
			t.Errorf("dropped-watch count %d", got)
		}
		cancel()
		synctest.Wait()
	})
}

func TestPartitionCutsOneClientOnly(t *testing.T) {
	ctx := context.Background()
	s := New(1)
	s.SetFaults("r1", Faults{Partitioned: true})
	if _, err := s.Client("r1").CoreV1().ConfigMaps("ns").Create(ctx, cm("x"), metav1.CreateOptions{}); err == nil {
		t.Error("partitioned client reached the server")
	}
	if _, err := s.Client("r2").CoreV1().ConfigMaps("ns").Create(ctx, cm("x"), metav1.CreateOptions{}); err != nil {
		t.Errorf("other client: %v", err)
	}
	if s.Fired("r1")[FiredPartition] != 1 || s.Fired("r2")[FiredPartition] != 0 {
		t.Errorf("fired: r1 %v r2 %v", s.Fired("r1"), s.Fired("r2"))
	}
}

func TestErrorFaultsAnswer429And500AndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := New(3)
		s.SetFaults("*", Faults{ErrorRate: 1, Timeout: 2 * time.Second})
		c := s.Client("a").CoreV1().ConfigMaps("ns")
		seen := map[string]bool{}
		for range 30 {
			start := time.Now()
			_, err := c.Get(ctx, "x", metav1.GetOptions{})
			switch {
			case apierrors.IsTooManyRequests(err):
				seen["429"] = true
			case apierrors.IsInternalError(err):
				seen["500"] = true
			case apierrors.IsTimeout(err):
				seen["timeout"] = true
				if time.Since(start) != 2*time.Second {
					t.Errorf("timeout fault answered after %v", time.Since(start))
				}
			default:
				t.Fatalf("unexpected answer %v", err)
			}
		}
		if len(seen) != 3 {
			t.Errorf("saw %v, want all three error kinds", seen)
		}
	})
}

func TestLatencyIsVirtualAndSeeded(t *testing.T) {
	elapsed := func(seed uint64) time.Duration {
		var d time.Duration
		synctest.Test(t, func(t *testing.T) {
			s := New(seed)
			s.SetFaults("a", Faults{Latency: time.Second})
			start := time.Now()
			for range 10 {
				_, _ = s.Client("a").CoreV1().ConfigMaps("ns").Get(t.Context(), "x", metav1.GetOptions{})
			}
			d = time.Since(start)
		})
		return d
	}
	a, b, c := elapsed(1), elapsed(1), elapsed(2)
	if a == 0 || a != b {
		t.Errorf("same seed gave %v and %v", a, b)
	}
	if a == c {
		t.Errorf("different seeds gave the same latency %v", a)
	}
}

// history builds a ConfigMap "x" that client "a" created and then updated
// n times, and returns the server, a's client and the newest revision of x.
func history(t *testing.T, n int) (*Server, typedcorev1.ConfigMapInterface, *corev1.ConfigMap) {
	t.Helper()
	ctx := context.Background()
	s := New(5)
	c := s.Client("a").CoreV1().ConfigMaps("ns")
	o, err := c.Create(ctx, cm("x"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		o.Data["k"] = strconv.Itoa(i)
		if o, err = c.Update(ctx, o, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return s, c, o
}

func TestStaleReadsAnswerFromAnOlderRevision(t *testing.T) {
	ctx := context.Background()
	s, c, o := history(t, 5)
	s.SetFaults("a", Faults{StaleRate: 1, StaleBy: 3})
	got, err := c.Get(ctx, "x", metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion == o.ResourceVersion {
		t.Error("stale read returned the newest revision")
	}
	if rv(t, got.ResourceVersion) < rv(t, o.ResourceVersion)-3 {
		t.Errorf("stale read %s is more than 3 revisions behind %s", got.ResourceVersion, o.ResourceVersion)
	}
	// Writing back what a stale read returned is a conflict.
	if _, err := c.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update from stale read: %v, want Conflict", err)
	}
	if s.Fired("a")[FiredStaleRead] == 0 {
		t.Error("stale read not counted")
	}
}

// Stale reads keep the resourceVersion contract of Get and List: a read
// with the version unset is consistent (the newest revision), and one
// "not older than" a revision never answers from before it.
func TestStaleReadsKeepTheResourceVersionContract(t *testing.T) {
	ctx := context.Background()
	s, c, o := history(t, 8)
	newest := rv(t, o.ResourceVersion)
	s.SetFaults("a", Faults{StaleRate: 1, StaleBy: 8})
	for range 20 {
		got, err := c.Get(ctx, "x", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rv(t, got.ResourceVersion) != newest {
			t.Fatalf("Get with resourceVersion unset answered %s, want the newest %d", got.ResourceVersion, newest)
		}
		list, err := c.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rv(t, list.ResourceVersion) != s.Revision() {
			t.Fatalf("List with resourceVersion unset answered revision %s, want %d", list.ResourceVersion, s.Revision())
		}
		floor := newest - 2
		list, err = c.List(ctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(floor, 10)})
		if err != nil {
			t.Fatal(err)
		}
		if rv(t, list.ResourceVersion) < floor {
			t.Fatalf("List not older than %d answered revision %s", floor, list.ResourceVersion)
		}
	}
	if _, err := c.List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err != nil {
		t.Fatal(err)
	}
	if s.Fired("a")[FiredStaleRead] == 0 {
		t.Error("no read was answered stale: the test proves nothing")
	}
}

func TestStatusSubresourceReplacesOnlyStatus(t *testing.T) {
	ctx := context.Background()
	s := New(1)
	c := s.Client("a").CoreV1().Services("ns")
	svc, err := c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.ClusterIP = "10.9.9.9"
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	got, err := c.UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ClusterIP != "10.0.0.1" || len(got.Status.LoadBalancer.Ingress) != 1 {
		t.Errorf("status update gave spec %v status %v", got.Spec.ClusterIP, got.Status)
	}
}
