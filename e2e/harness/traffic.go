package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Proxy sends one request through the Kong proxy Service and returns the
// status code and body.
type Proxy interface {
	Get(ctx context.Context, path string) (status int, body []byte, err error)
}

// TrafficResult counts what a request loop saw.
type TrafficResult struct {
	Sent, OK int
	// Failures keeps the first few failures, with their time since start.
	Failures []string
	Failed   int
}

func (r TrafficResult) String() string {
	s := fmt.Sprintf("%d requests, %d ok, %d failed", r.Sent, r.OK, r.Failed)
	if len(r.Failures) > 0 {
		s += ":\n  " + strings.Join(r.Failures, "\n  ")
	}
	return s
}

// maxKeptFailures bounds TrafficResult.Failures.
const maxKeptFailures = 10

// Traffic is a bounded request loop running in the background: one request
// every Interval (each bounded by Timeout) until Stop or MaxDuration. A
// request fails unless it gets 200.
type Traffic struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	result TrafficResult
}

// TrafficOptions configure StartTraffic.
type TrafficOptions struct {
	Path        string
	Interval    time.Duration // default 50ms
	Timeout     time.Duration // default 2s
	MaxDuration time.Duration // default 5m; the loop never outlives it
}

// StartTraffic starts the loop; call Stop to end it and read the result.
func StartTraffic(ctx context.Context, p Proxy, o TrafficOptions) *Traffic {
	if o.Interval <= 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 5 * time.Minute
	}
	t := &Traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go t.run(ctx, p, o)
	return t
}

func (t *Traffic) run(ctx context.Context, p Proxy, o TrafficOptions) {
	defer close(t.done)
	start := time.Now()
	deadline := time.NewTimer(o.MaxDuration)
	defer deadline.Stop()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		reqCtx, cancel := context.WithTimeout(ctx, o.Timeout)
		status, body, err := p.Get(reqCtx, o.Path)
		cancel()
		t.record(time.Since(start), status, body, err)
		select {
		case <-t.stop:
			return
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

func (t *Traffic) record(at time.Duration, status int, body []byte, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.result.Sent++
	if err == nil && status == http.StatusOK {
		t.result.OK++
		return
	}
	t.result.Failed++
	if len(t.result.Failures) < maxKeptFailures {
		what := fmt.Sprintf("status %d: %.200s", status, strings.TrimSpace(string(body)))
		if err != nil {
			what = err.Error()
		}
		t.result.Failures = append(t.result.Failures, fmt.Sprintf("+%s %s", at.Round(time.Millisecond), what))
	}
}

// Snapshot returns the counts so far without stopping the loop.
func (t *Traffic) Snapshot() TrafficResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.result
	r.Failures = append([]string(nil), r.Failures...)
	return r
}

// Stop ends the loop, waits for its last request and returns the result.
// It may be called more than once.
func (t *Traffic) Stop() TrafficResult {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
	return t.Snapshot()
}

// URLProxy reaches the proxy at a fixed base URL, e.g. a kind NodePort
// mapped to the host.
type URLProxy struct {
	Base   string
	Client *http.Client
}

func (u URLProxy) Get(ctx context.Context, path string) (int, []byte, error) {
	c := u.Client
	if c == nil {
		c = http.DefaultClient
	}
	return get(ctx, c, strings.TrimSuffix(u.Base, "/")+path)
}

func get(ctx context.Context, c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}
