package translate

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"konductor.dev/controller/internal/synthetic"
)

// benchSnapshot is synthetic.Apps(n): object i of each kind belongs
// together, in that order.
func benchSnapshot(n int) Snapshot {
	var s Objects
	s.Ingresses, s.Services, s.EndpointSlices = synthetic.Apps(n)
	return s.Snapshot()
}

func benchmarkTranslate(b *testing.B, n int) { benchmarkTranslateWith(b, n, Options{}) }

func benchmarkTranslateWith(b *testing.B, n int, opts Options) {
	snap := benchSnapshot(n)
	b.ReportAllocs()
	b.ResetTimer()
	cpuBefore := processCPU()
	for b.Loop() {
		res := Translate(snap, opts)
		if len(res.Translated) != n {
			b.Fatalf("translated %d of %d Ingresses: %v", len(res.Translated), n, res.Errors[:min(3, len(res.Errors))])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	// On a shared machine wall time mostly measures the neighbours; CPU time
	// (user+system, all threads including GC) is what the translation costs.
	b.ReportMetric(float64((processCPU()-cpuBefore).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkTranslate1k(b *testing.B)  { benchmarkTranslate(b, 1_000) }
func BenchmarkTranslate10k(b *testing.B) { benchmarkTranslate(b, 10_000) }

// BenchmarkTranslate10kExpressions: the same snapshot translated for
// router_flavor=expressions, every route an ATC expression.
func BenchmarkTranslate10kExpressions(b *testing.B) {
	benchmarkTranslateWith(b, 10_000, Options{RouterFlavor: RouterFlavorExpressions})
}

// pluginsConsumersSnapshot is benchSnapshot(n) with a KongPlugin
// (rate-limiting, its own config) on every Ingress and n KongConsumers of
// the Ingresses' namespaces, each with a key-auth credential Secret.
func pluginsConsumersSnapshot(n int) Snapshot {
	snap := benchSnapshot(n)
	for i, ing := range snap.Ingresses {
		name := fmt.Sprintf("limit-%05d", i)
		ing.Annotations = map[string]string{AnnotationPlugins: name}
		snap.Plugins = append(snap.Plugins, &Plugin{Namespace: ing.Namespace, Name: name, UID: types.UID("kp-" + name),
			PluginName: "rate-limiting", Config: []byte(fmt.Sprintf(`{"minute":%d,"policy":"local"}`, i%100+1))})
		user := fmt.Sprintf("user-%05d", i)
		snap.Consumers = append(snap.Consumers, &Consumer{Namespace: ing.Namespace, Name: user, UID: types.UID("kc-" + user),
			Username: user, Credentials: []string{user + "-key"}})
		snap.Secrets = append(snap.Secrets, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ing.Namespace, Name: user + "-key", UID: types.UID("s-" + user),
				Labels: map[string]string{LabelCredential: "key-auth"}},
			Data: map[string][]byte{"key": []byte("key-" + user)}})
	}
	return snap
}

// BenchmarkTranslate10kPluginsConsumers is the 10k workload with a
// KongPlugin on every Ingress's route and 10k KongConsumers with a key-auth
// credential each; every one of them must reach the document.
func BenchmarkTranslate10kPluginsConsumers(b *testing.B) {
	const n = 10_000
	snap := pluginsConsumersSnapshot(n)
	b.ReportAllocs()
	b.ResetTimer()
	cpuBefore := processCPU()
	for b.Loop() {
		res := Translate(snap, Options{})
		counts := res.Config.Counts()
		if len(res.Translated) != n || counts["plugins"] != n || counts["consumers"] != n || counts["credentials"] != n || len(res.Errors) != 0 {
			b.Fatalf("translated %d Ingresses, %d plugins, %d consumers, %d credentials; errors %v", len(res.Translated),
				counts["plugins"], counts["consumers"], counts["credentials"], res.Errors[:min(3, len(res.Errors))])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	b.ReportMetric(float64((processCPU()-cpuBefore).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkMarshal10k isolates the encoder: the document of a 10k-Ingress
// snapshot rendered again and again.
func BenchmarkMarshal10k(b *testing.B) {
	cfg := Translate(benchSnapshot(10_000), Options{}).Config
	b.ReportAllocs()
	b.ResetTimer()
	cpuBefore := processCPU()
	var size int
	for b.Loop() {
		body, err := cfg.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		size = len(body)
	}
	b.SetBytes(int64(size))
	b.ReportMetric(float64((processCPU()-cpuBefore).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
