package kongsync

import (
	"context"
	"net/http"
	"testing"
)

// BenchmarkFanOut3 measures one Desired reaching three in-memory Kongs:
// SetDesired until every replica accepted it and reported its hash.
func BenchmarkFanOut3(b *testing.B) {
	net := newMemNet()
	var targets []Target
	for _, n := range three {
		net.add(n+":8001", newFakeKong())
		targets = append(targets, Target{Name: n, URL: "http://" + n + ":8001"})
	}
	applied := make(chan uint64, len(targets))
	s := New(Options{
		Client:    &http.Client{Transport: net},
		Identity:  "bench",
		OnApplied: func(_ Target, d Desired) { applied <- d.Version },
	})
	s.SetTargets(targets)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	bodies := []Desired{desired(1, "-a"), desired(2, "-b")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d := bodies[i%2]
		d.Version = uint64(i + 1)
		s.SetDesired(d)
		for n := 0; n < len(targets); {
			if v := <-applied; v == d.Version {
				n++
			}
		}
	}
}
