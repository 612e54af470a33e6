package footprint

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"konductor.dev/controller/snapshot"
	localcluster "konductor.dev/sim/cluster"
)

// TestWaitCurrent10k measures what a new term's snapshot.Cache.WaitCurrent
// costs with 10k Ingresses, 10k Services and 10k EndpointSlices on a real
// kube-apiserver: the wall time of each call, the CPU time of this process
// (the listings' decoding) and of the kube-apiserver and etcd (serving
// them), and the load average beside them. The figures are logged, not
// asserted; every call must return without error.
//
// Environment:
//
//   - KONDUCTOR_FOOTPRINT=1 runs it (minutes; root; control-plane binaries);
//
//   - KONDUCTOR_WAITCURRENT_ROUNDS: calls to measure (default 5).
//
//     KONDUCTOR_FOOTPRINT=1 go test -count=1 -timeout=60m -run TestWaitCurrent10k -v ./sim/footprint/
func TestWaitCurrent10k(t *testing.T) {
	if os.Getenv("KONDUCTOR_FOOTPRINT") != "1" {
		t.Skip("set KONDUCTOR_FOOTPRINT=1 to measure WaitCurrent with 10k Ingresses on a real API server (minutes; needs root and the control-plane binaries)")
	}
	rounds := 5
	if v := os.Getenv("KONDUCTOR_WAITCURRENT_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KONDUCTOR_WAITCURRENT_ROUNDS=%q: want a positive whole number", v)
		}
		rounds = n
	}
	ctx := t.Context()
	kc := startCluster(t, "konductor-waitcurrent")
	_, admin := adminClient(t, kc)
	began := time.Now()
	if err := createWorkload(ctx, admin); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d Services, %d EndpointSlices and %d Ingresses in %v", apps, apps, apps, time.Since(began).Round(time.Millisecond))

	// The controller's client: its default --apiserver-qps and -burst.
	rc := kc.RESTConfig()
	rc.QPS, rc.Burst = 100, 300
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := snapshot.New(snapshot.Config{Client: client, Namespaces: []string{namespace}, IngressClass: ingressClass})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	cache.Start(runCtx)
	t.Cleanup(func() { stop(); cache.Shutdown() })
	if !cache.WaitForSync(ctx) {
		t.Fatal("the caches never synced")
	}

	var wall, self, server time.Duration
	for i := range rounds {
		serverBefore, selfBefore, start := serverCPU(kc), selfCPU(t), time.Now()
		if err := cache.WaitCurrent(ctx); err != nil {
			t.Fatalf("round %d: WaitCurrent: %v", i+1, err)
		}
		took, selfUsed, serverUsed := time.Since(start), selfCPU(t)-selfBefore, serverCPU(kc)-serverBefore
		wall, self, server = wall+took, self+selfUsed, server+serverUsed
		t.Logf("round %d: wall %v, CPU of this process %v, of kube-apiserver+etcd %v, load average %s",
			i+1, took.Round(time.Millisecond), selfUsed.Round(time.Millisecond), serverUsed.Round(10*time.Millisecond), loadAverage(t))
	}
	n := time.Duration(rounds)
	t.Logf("WaitCurrent with %d objects of each kind, mean of %d: wall %v, CPU of this process %v, of kube-apiserver+etcd %v",
		apps, rounds, (wall / n).Round(time.Millisecond), (self / n).Round(time.Millisecond), (server / n).Round(10*time.Millisecond))
}

// serverCPU is the CPU time kube-apiserver and etcd have used.
func serverCPU(kc *localcluster.Cluster) time.Duration {
	var sum time.Duration
	for name, used := range kc.CPU() {
		if name == "kube-apiserver" || name == "etcd" {
			sum += used
		}
	}
	return sum
}

// selfCPU is the CPU time (user and system) this process has used.
func selfCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage(t *testing.T) string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
