package dbsync

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/controller/kongsync"
)

func TestRunWithoutTargetsRetriesAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Options{BackoffMin: time.Second, BackoffMax: 4 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		s.SetDesired(Desired{Config: fixture(), Hash: "h1", Version: 1})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st := s.Status()
		if !strings.Contains(st.LastError, "no usable Kong Admin API target") {
			t.Errorf("status error %q, want it to say there is no target", st.LastError)
		}
		if s.AllApplied(1) {
			t.Error("applied without any Kong")
		}
		if err := s.Run(ctx); err == nil {
			t.Error("a second Run did not fail")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestSetTargetsRejectsBadURLAndKeepsCurrent(t *testing.T) {
	s := New(Options{})
	s.SetTargets([]kongsync.Target{{Name: "b", URL: "http://b:8001"}, {Name: "a", URL: "http://a:8001"}, {Name: "a", URL: "http://dup"}})
	st := s.Status()
	if len(st.Targets) != 2 || st.Targets[0].Target.Name != "a" || st.Targets[0].Target.URL != "http://a:8001" {
		t.Fatalf("targets %+v, want a (first of the duplicates) and b, sorted", st.Targets)
	}
	s.mu.Lock()
	s.current = 1
	s.mu.Unlock()
	s.SetTargets([]kongsync.Target{{Name: "c", URL: "http://c:8001"}, {Name: "b", URL: "http://b:8001"}})
	if got := s.Status().Current.Name; got != "b" {
		t.Errorf("current node %q after a target change, want b to stay in use", got)
	}
	s.SetTargets([]kongsync.Target{{Name: "bad", URL: "::not a url"}})
	st = s.Status()
	if st.Targets[0].Healthy || !strings.Contains(st.Targets[0].LastError, `target bad: Admin API URL "::not a url"`) {
		t.Errorf("bad URL target %+v, want it unhealthy with the reason", st.Targets[0])
	}
	if _, ok := s.pick(); ok {
		t.Error("picked a target whose URL does not parse")
	}
}

func TestBodyPusherIgnoresUndecodableBody(t *testing.T) {
	p := NewBodyPusher(kongsync.Options{})
	p.SetDesired(kongsync.Desired{Body: []byte("{not json"), Hash: "x", Version: 3})
	p.s.mu.Lock()
	got := p.s.desired
	p.s.mu.Unlock()
	if got != nil {
		t.Errorf("an undecodable body became the desired configuration: %+v", got)
	}
	body, err := fixture().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p.SetDesired(kongsync.NewDesired(body, 4))
	p.s.mu.Lock()
	got = p.s.desired
	p.s.mu.Unlock()
	if got == nil || got.Version != 4 || len(got.Config.Services) != 1 {
		t.Errorf("desired after a good body: %+v", got)
	}
}
