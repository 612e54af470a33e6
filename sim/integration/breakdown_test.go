package integration

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/controller/translate"
)

// The two benchmarks below split BenchmarkChangeToApplied1k's latency into
// its two CPU-bound steps, on the same 1000 apps: the translation, and one
// kongsim replica loading the result through POST /config.

func snapshotOf(apps []App) translate.Snapshot {
	var snap translate.Objects
	for _, a := range apps {
		snap.Ingresses = append(snap.Ingresses, a.Ingress())
		snap.Services = append(snap.Services, a.Service())
		snap.EndpointSlices = append(snap.EndpointSlices, a.EndpointSlice())
	}
	return snap.Snapshot()
}

func BenchmarkTranslate1k(b *testing.B) {
	snap := snapshotOf(Apps(1000))
	b.ReportAllocs()
	for b.Loop() {
		translate.Translate(snap, translate.Options{})
	}
}

// BenchmarkKongsimLoad1k alternates two versions (one path differs) so that
// every load is a change.
func BenchmarkKongsimLoad1k(b *testing.B) {
	snap := snapshotOf(Apps(1000))
	first := translate.Translate(snap, translate.Options{}).Body
	changed := *snap.Ingresses[0]
	changed.Spec = *changed.Spec.DeepCopy()
	changed.Spec.Rules[0].HTTP.Paths[0].Path = "/v2"
	snap.Ingresses = append([]*networkingv1.Ingress{&changed}, snap.Ingresses[1:]...)
	bodies := [2][]byte{first, translate.Translate(snap, translate.Options{}).Body}
	node := newNode(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if code, body := postConfig(b, node, bodies[i%2]); code != 201 {
			b.Fatalf("POST /config: HTTP %d: %s", code, body)
		}
		i++
	}
}
