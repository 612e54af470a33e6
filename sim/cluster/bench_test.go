package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/clustertest"
	"konductor.dev/sim/cluster/node"
)

// BenchmarkCluster measures what the issue asks of the local cluster: start
// time with cached binaries (target < 30 s), pod start latency from create
// to Ready (target < 1 s) and the idle control plane's memory.
//
//	go test ./sim/cluster -run '^$' -bench Cluster -benchtime 1x
func BenchmarkCluster(b *testing.B) {
	ctx := context.Background()
	binDir := clustertest.Binaries(b)
	echo := filepath.Join(b.TempDir(), "echoserver")
	if out, err := exec.Command("go", "build", "-o", echo, "./echoserver").CombinedOutput(); err != nil {
		b.Fatalf("build echoserver: %v\n%s", err, out)
	}
	for b.Loop() {
		c, err := cluster.Start(ctx, cluster.Options{
			BinDir:    binDir,
			StateRoot: filepath.Join(os.TempDir(), "konductor-localcluster-bench"),
			Images:    node.ImageMap{"konductor.dev/echo": echo},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(c.StartupTime.Seconds(), "start-s")
		var rss int64
		for _, v := range c.Memory() {
			rss += v
		}
		b.ReportMetric(float64(rss)/(1<<20), "idle-control-plane-MiB")
		client, err := c.Client()
		if err != nil {
			b.Fatal(err)
		}
		var total time.Duration
		const pods = 5
		for i := range pods {
			total += podStartLatency(b, ctx, client.CoreV1().Pods("default"), "latency-"+strconv.Itoa(i))
		}
		b.ReportMetric(total.Seconds()/pods, "pod-ready-s")
		if err := c.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

type podClient interface {
	Create(context.Context, *corev1.Pod, metav1.CreateOptions) (*corev1.Pod, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// podStartLatency creates an echo pod with a readiness probe and returns
// the time until its Ready condition is true.
func podStartLatency(b *testing.B, ctx context.Context, pods podClient, name string) time.Duration {
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	began := time.Now()
	_, err = pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "echo", Image: "konductor.dev/echo",
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/status/ready", Port: intstr.FromInt32(8100)}},
				PeriodSeconds: 1,
			},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev := <-w.ResultChan():
			if p, ok := ev.Object.(*corev1.Pod); ok && isReady(*p) {
				return time.Since(began)
			}
		case <-timeout:
			b.Fatalf("pod %s not ready within 60 s", name)
		}
	}
}
