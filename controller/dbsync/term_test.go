package dbsync

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/kongsync"
)

// fixedGate grants one term, whatever the time: the elector's own
// step-down is not what these specs are about.
type fixedGate struct{ term fence.Term }

func (g fixedGate) Permit() (fence.Term, bool) { return g.term, true }

// holdingKong is a Kong whose database answers reads (empty listings) at
// once and holds every write until its sender gives up: a database stalled
// on a lock, or a write queued behind a long migration.
type holdingKong struct {
	mu     sync.Mutex
	writes []heldWrite
}

type heldWrite struct {
	path       string
	sent, gave time.Time
}

func (k *holdingKong) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	if req.Method == http.MethodGet {
		body := `{"data":[],"next":null}`
		return &http.Response{
			StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": []string{"application/json"}}, Request: req,
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		}, nil
	}
	sent := time.Now()
	<-req.Context().Done()
	k.mu.Lock()
	k.writes = append(k.writes, heldWrite{path: req.URL.Path, sent: sent, gave: time.Now()})
	k.mu.Unlock()
	return nil, req.Context().Err()
}

// An entity write sent near the end of a term must not outlive the term:
// the next leader may start writing right after it (the lease's margin over
// the renew deadline is all that separates them), and a write of the old
// term landing then would overwrite the new leader's. So each write's
// deadline is the earlier of the request timeout and the term's end.
func TestWritesAreAbandonedAtTheEndOfTheTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kong := &holdingKong{}
		validUntil := time.Now().Add(2 * time.Second)
		s := New(Options{
			Client:  &http.Client{Transport: kong},
			Gate:    fixedGate{fence.Term{Identity: "leader", Epoch: 3, ValidUntil: validUntil}},
			Timeout: 30 * time.Second, WarmInterval: -1,
			BackoffMin: time.Minute, BackoffMax: time.Minute, DriftInterval: time.Hour,
		})
		s.SetTargets([]kongsync.Target{{Name: "kong", URL: "http://kong:8001"}})
		s.SetDesired(Desired{Config: fixture(), Hash: "h1", Version: 1})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		time.Sleep(40 * time.Second) // past the request timeout
		synctest.Wait()
		kong.mu.Lock()
		writes := append([]heldWrite(nil), kong.writes...)
		kong.mu.Unlock()
		if len(writes) == 0 {
			t.Fatal("no write was sent: the spec exercised nothing")
		}
		for _, w := range writes {
			if w.gave.After(validUntil) {
				t.Errorf("write %s, sent %v before its term ended, was still under way %v after it",
					w.path, validUntil.Sub(w.sent), w.gave.Sub(validUntil))
			}
		}
		if s.AllApplied(1) {
			t.Error("version 1 counts as applied although every write was abandoned")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
