package kube

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"konductor.dev/chaos/drill"
)

// TestLeaderDeleteRecoversWithTheChange: a graceful leader delete counts
// as recovered only once a new leader holds the lock and the change made
// right after the delete routes on every Kong.
func TestLeaderDeleteRecoversWithTheChange(t *testing.T) {
	var routed atomic.Value // the host the Kong routes besides the echo host
	routed.Store("")
	kong := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host == EchoHost || r.Host == routed.Load().(string) {
			return
		}
		http.Error(w, "no Route matched", http.StatusNotFound)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go kong.Serve(ln)
	defer kong.Close()

	kongPod := pod("kong-1", true)
	kongPod.Labels = map[string]string{"app": "kong"}
	kongPod.Status.PodIP = "127.0.0.1"
	one := int32(1)
	cs := fake.NewClientset(lockObject(t, "konductor-a_x1", time.Now()), pod("konductor-a", true), kongPod,
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: "kong"}, Spec: appsv1.DeploymentSpec{Replicas: &one}})
	ingresses := schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}, meta.RESTScopeNamespace)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{ingresses: "IngressList"})
	// The fake dynamic client does not apply; an apply creates here.
	dyn.PrependReactor("patch", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(pa.GetPatch()); err != nil {
			return true, nil, err
		}
		return true, obj, dyn.Tracker().Create(ingresses, obj, pa.GetNamespace())
	})
	tg := &Target{cs: cs, ap: applier{dyn: dyn, mapper: mapper}, ns: "kong", lock: "ingress-controller-leader-kong",
		kongDeploy: "kong", kongSel: labels.SelectorFromSet(labels.Set{"app": "kong"}), ports: kongPorts{proxy: portOf(t, ln.Addr().String())},
		http: &http.Client{Timeout: time.Second}, d: &drill.Drill{Target: drill.Target{Overlay: "dbless-gateway-discovery"}}}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, recovered := tg.leaderFault(ctx, drill.Action{Fault: drill.FaultLeaderDelete}, 5*time.Second)
	if !in.Verified || recovered == nil {
		t.Fatalf("fault not verified: %s", in.Detail)
	}
	if len(tg.probeIngresses) != 1 {
		t.Fatalf("probe Ingresses %v, want the one change made during the handover", tg.probeIngresses)
	}
	host := strings.TrimSuffix(strings.Fields(in.Detail[strings.Index(in.Detail, "host "):])[1], ",")
	if err := recovered(ctx); err == nil || !strings.Contains(err.Error(), "lock still held") {
		t.Fatalf("recovered before a new leader: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("kong").Update(ctx, lockObject(t, "konductor-b_x2", time.Now()), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := recovered(ctx); err == nil || !strings.Contains(err.Error(), "answers 404 for "+host) {
		t.Fatalf("recovered before the change routes on every Kong: %v", err)
	}
	routed.Store(host)
	if err := recovered(ctx); err != nil {
		t.Fatalf("not recovered with a new leader and the change routed: %v", err)
	}
	if len(tg.probeIngresses) != 0 {
		t.Errorf("probe Ingresses %v left after recovery", tg.probeIngresses)
	}
}
