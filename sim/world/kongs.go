package world

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"konductor.dev/sim/kong"
)

// served is one configuration a Kong node started serving.
type served struct {
	At    time.Time
	Slot  int
	Gen   int
	Hash  string
	Count int
}

// observer records what a node serves.
type observer struct {
	w    *World
	slot int
	gen  int
}

func (o observer) Configure(st *kong.State) error {
	o.w.mu.Lock()
	o.w.served = append(o.w.served, served{At: time.Now(), Slot: o.slot, Gen: o.gen, Hash: st.Hash(), Count: st.Count()})
	o.w.mu.Unlock()
	return nil
}

// kongSlot is one Kong pod: its address stays, its node is replaced on
// restart.
type kongSlot struct {
	index int
	gen   int
	node  *kong.Node
	up    bool // listed in the admin Service and answering
	// restartedAt is when the node last came back empty.
	restartedAt time.Time

	stalled chan struct{} // non-nil while stalled; closed to release
	// slowWrites, non-nil while Kong holds writes (reads answer), is
	// closed to release them.
	slowWrites chan struct{}
	// slowApply: Kong applies each write slowApplyDelay after receiving it.
	slowApply bool
	rejecting bool
	// readErrors: Kong answers 500 to every entity read (kong-read-errors).
	readErrors bool
	cutFrom    map[string]bool // controller replicas partitioned from it

	oldAudits []kong.AuditEntry // audits of earlier incarnations
}

func (w *World) newNode(slot int, gen int) (*kong.Node, error) {
	o := kong.Options{
		NodeID:         fmt.Sprintf("00000000-0000-4000-8000-%06d%06d", slot, gen),
		Hostname:       kongPod(slot),
		Logger:         slog.New(slog.DiscardHandler),
		ProxyTransport: backendTransport{},
		Observer:       observer{w: w, slot: slot, gen: gen},
	}
	if w.db != nil {
		o.Database, o.Backend, o.UpdateFrequency = kong.DatabasePostgres, w.db, time.Second
	}
	n, err := kong.NewNode(o)
	if err != nil || w.db == nil {
		return n, err
	}
	// A DB-mode node polls its database until its context ends.
	ctx, cancel := context.WithCancel(w.ctx)
	w.wg.Go(func() { _ = n.Run(ctx) })
	w.nodeStops = append(w.nodeStops, cancel)
	return n, nil
}

// errRefused is a dial error: the address does not answer.
func errRefused(u *url.URL) error {
	return &url.Error{Op: "Post", URL: u.String(), Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
}

// kongTransport is one controller replica's network to the Kong Admin APIs.
// It applies the Kong-side faults (down, stall, reject, partition) and
// the replica's own death, then serves the request with the node's Admin
// handler in memory.
type kongTransport struct {
	w       *World
	replica *replica
}

func (t kongTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	host, _, _ := net.SplitHostPort(req.URL.Host)
	w := t.w
	w.mu.Lock()
	var slot *kongSlot
	for _, s := range w.slots {
		if kongIP(s.index) == host {
			slot = s
		}
	}
	dead := t.replica.dead
	isWrite := req.Method != http.MethodGet && req.Method != http.MethodHead
	var a *attempt
	if !dead && slot != nil {
		// Every request that leaves a live replica is an attempt, whatever
		// becomes of it (refused, stalled, rejected, accepted): the
		// write-volume and in-flight oracles count them and time their end.
		a = w.attemptStartedLocked(t.replica, slot.index, req, isWrite)
		defer func() { w.attemptEnded(a, resp, err) }()
	}
	if slot == nil || !slot.up || dead || slot.cutFrom[t.replica.name] {
		if slot != nil && slot.cutFrom[t.replica.name] {
			w.fired(FaultKongPartition)
		}
		w.mu.Unlock()
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errRefused(req.URL)
	}
	stalled := slot.stalled
	if stalled != nil {
		w.fired(FaultKongStall)
	} else if slot.slowWrites != nil && isWrite {
		stalled = slot.slowWrites
		w.fired(FaultKongSlowWrites)
	}
	paused := t.replica.paused
	w.mu.Unlock()
	if paused != nil {
		// A frozen process sends nothing until it thaws; its request
		// then goes out only if its context still allows it.
		select {
		case <-paused:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	if stalled != nil {
		select {
		case <-stalled:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	if d := w.cfg.AdminLatency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
	w.mu.Lock()
	node, rejecting, slowApply, readErrors := slot.node, slot.rejecting, slot.slowApply, slot.readErrors
	dead = t.replica.dead
	if slowApply && isWrite {
		w.fired(FaultKongSlowApply)
	}
	w.mu.Unlock()
	// A request whose sender gave up (its context ended, e.g. at the end
	// of its term) never reaches Kong.
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	if dead {
		return nil, errRefused(req.URL)
	}
	if slowApply && isWrite {
		return w.applySlowly(t.replica, slot, node, req, a)
	}
	w.attemptReached(a)
	if readErrors && req.Method == http.MethodGet && entityRead(req.URL.Path) {
		w.mu.Lock()
		w.fired(FaultKongReadErrors)
		w.mu.Unlock()
		return kongError(req, http.StatusInternalServerError, `{"message":"An unexpected error occurred"}`), nil
	}
	if rejecting && isWrite && strings.HasPrefix(req.URL.Path, "/config") {
		w.mu.Lock()
		w.fired(FaultKongReject)
		w.mu.Unlock()
		if req.Body != nil {
			req.Body.Close()
		}
		body := `{"code":14,"name":"invalid declarative configuration","message":"declarative config is invalid: {}","fields":{},"flattened_errors":[]}`
		return kongError(req, http.StatusBadRequest, body), nil
	}
	resp, err = kong.NewInMemoryTransport(node.Admin()).RoundTrip(req)
	if err == nil && isWrite && resp.StatusCode < 300 {
		w.controllerWrote(t.replica, "kong "+kongPod(slot.index)+" "+req.Method+" "+req.URL.Path)
	}
	return resp, err
}

// kongError is an Admin API error answer with a JSON body.
func kongError(req *http.Request, code int, body string) *http.Response {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": []string{"application/json"}},
		Body:    io.NopCloser(strings.NewReader(body)),
		Request: req, ContentLength: int64(len(body)),
	}
}

// entityRead reports whether a GET of path reads entities from Kong's
// database (a listing or one entity), rather than the node's own state
// (GET / and the /status endpoints), which kong-read-errors spares.
func entityRead(path string) bool {
	return path != "/" && path != "/status" && !strings.HasPrefix(path, "/status/")
}

// slowApplyDelay is how long a Kong under kong-slow-apply takes to apply
// a write it received: less than the election's margin (lease − renew
// deadline, 5s), which is what the margin must cover (see
// controller/election's package documentation, "Limits").
const slowApplyDelay = 4 * time.Second

// applySlowly is Kong receiving a write at once and applying it
// slowApplyDelay later, whether or not its sender is still waiting: a
// sender that gives up (its deadline, the end of its term) does not take
// back what Kong received. The write counts as reaching Kong when it is
// applied.
func (w *World) applySlowly(r *replica, slot *kongSlot, node *kong.Node, req *http.Request, a *attempt) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	received := req.Clone(context.WithoutCancel(req.Context()))
	received.Body = io.NopCloser(bytes.NewReader(body))
	received.ContentLength = int64(len(body))
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	w.wg.Go(func() {
		time.Sleep(slowApplyDelay)
		w.mu.Lock()
		current := slot.node == node && slot.up
		w.mu.Unlock()
		if !current {
			// The node that received it is gone (restarted, scaled away).
			done <- result{nil, errRefused(req.URL)}
			return
		}
		w.attemptReached(a)
		resp, err := kong.NewInMemoryTransport(node.Admin()).RoundTrip(received)
		if err == nil && resp.StatusCode < 300 {
			w.controllerWrote(r, "kong "+kongPod(slot.index)+" "+req.Method+" "+req.URL.Path)
		}
		done <- result{resp, err}
	})
	select {
	case res := <-done:
		return res.resp, res.err
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
}

// backendTransport answers every proxied request as the app pod at the
// target address would: 200 with the app's name.
type backendTransport struct{}

func (backendTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host, _, _ := net.SplitHostPort(req.URL.Host)
	if req.Body != nil {
		req.Body.Close()
	}
	i, ok := appAt(host)
	if !ok {
		return nil, errors.New("backend: no pod at " + req.URL.Host)
	}
	app := appName(i)
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": []string{"text/plain"}}, Body: io.NopCloser(strings.NewReader(app)),
		ContentLength: int64(len(app)), Request: req,
	}, nil
}

// probe sends one request for app through a node's proxy and returns the
// status and the app that answered. It hands the request to the proxy as
// the in-memory transport would (a server's request: RequestURI, a
// client address, no body) but records only what the oracles read: the
// probes are most of the requests of a run.
func probe(ctx context.Context, n *kong.Node, app int, withKey bool) (int, string) {
	if err := ctx.Err(); err != nil {
		return 0, err.Error()
	}
	host := appHost(app)
	req := (&http.Request{
		Method: http.MethodGet, URL: &url.URL{Scheme: "http", Host: host, Path: "/"},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, 1),
		Body: http.NoBody, Host: host, RequestURI: "/", RemoteAddr: "127.0.0.1:1",
	}).WithContext(ctx)
	if withKey {
		req.Header.Set(authHeader, authKey)
	}
	var w probeWriter
	n.Proxy().ServeHTTP(&w, req)
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.code, w.body.String()
}

// probeWriter is the ResponseWriter of a probe: the status and the body.
type probeWriter struct {
	header http.Header
	code   int
	body   strings.Builder
}

func (w *probeWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 8)
	}
	return w.header
}

func (w *probeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *probeWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
