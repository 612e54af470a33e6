package kongsync

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

	"konductor.dev/controller/translate"
)

// translatedBody is the declarative body for n Ingresses, each with its own
// Service and an EndpointSlice of three ready endpoints: what the
// controller retains at that scale.
func translatedBody(b *testing.B, n int) []byte {
	b.Helper()
	var s translate.Objects
	prefix := networkingv1.PathTypePrefix
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	portName, port, ready := "http", int32(8080), true
	for i := range n {
		ns, name := fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("app-%05d", i)
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
	res := translate.Translate(s.Snapshot(), translate.Options{})
	if len(res.Translated) != n {
		b.Fatalf("translated %d of %d Ingresses", len(res.Translated), n)
	}
	return res.Body
}

// BenchmarkRetained10k measures keeping the 10k-Ingress body compressed:
// compact is the idle-time cost after each new version, inflate the cost of
// each push that needs it again (drift repair, a new replica, a retry).
// retained-bytes is what stays in memory between pushes.
func BenchmarkRetained10k(b *testing.B) {
	body := translatedBody(b, 10_000)
	d := NewDesired(body, 1)
	b.Run("compact", func(b *testing.B) {
		var kept int
		b.SetBytes(int64(len(body)))
		measureCPU(b, func() {
			r := newRetained(d)
			if _, err := r.compact(); err != nil {
				b.Fatal(err)
			}
			kept = r.bytes()
		})
		b.ReportMetric(float64(len(body)), "raw-bytes")
		b.ReportMetric(float64(kept), "retained-bytes")
	})
	b.Run("inflate", func(b *testing.B) {
		r := newRetained(d)
		if _, err := r.compact(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(body)))
		measureCPU(b, func() {
			if _, err := r.acquire(); err != nil {
				b.Fatal(err)
			}
			r.release()
			// Drop the inflated copy so each round inflates again.
			if _, err := r.compact(); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// measureCPU runs fn b.N times and reports the process CPU (user+system,
// all threads including GC) per run: on a shared machine wall time mostly
// measures the neighbours.
func measureCPU(b *testing.B, fn func()) {
	b.ReportAllocs()
	before := processCPU()
	for b.Loop() {
		fn()
	}
	b.ReportMetric(float64((processCPU()-before).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
