package translate

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// benchSnapshot builds n Ingresses, each with its own Service (one named
// port) and an EndpointSlice of three ready endpoints. Object i of each kind
// belongs together, in that order.
func benchSnapshot(n int) Snapshot {
	var s Objects
	prefix := networkingv1.PathTypePrefix
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ns := fmt.Sprintf("ns-%d", i%50)
		name := fmt.Sprintf("app-%05d", i)
		s.Ingresses = append(s.Ingresses, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("ing-" + name),
				CreationTimestamp: metav1.NewTime(created.Add(time.Duration(i) * time.Second))},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
				Host: name + ".example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/api", PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}},
					}},
				}},
			}}},
		})
		s.Services = append(s.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("svc-" + name)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		portName, port, ready := "http", int32(8080), true
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-x", Namespace: ns,
				Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		for j := range 3 {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", i>>8&255, i&255, j+1)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			})
		}
		s.EndpointSlices = append(s.EndpointSlices, slice)
	}
	return s.Snapshot()
}

func benchmarkTranslate(b *testing.B, n int) {
	snap := benchSnapshot(n)
	b.ReportAllocs()
	b.ResetTimer()
	cpuBefore := processCPU()
	for b.Loop() {
		res := Translate(snap, Options{})
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
