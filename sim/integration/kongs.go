package integration

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"konductor.dev/sim/kong"
)

// Ports of every node on the in-memory network, as Kong's defaults.
const (
	AdminPort  = 8001
	ProxyPort  = 8000
	StatusPort = 8100
)

// Admission decides, before a node sees it, whether a POST /config body is
// refused as a stricter Kong would refuse it. It returns nil to let the
// body through, or the 400 answer body (Kong's flattened-errors shape).
type Admission func(body []byte) []byte

// KongsOptions configures Kongs.
type KongsOptions struct {
	// ProxyTransport carries the nodes' upstream traffic; nil dials real
	// connections.
	ProxyTransport http.RoundTripper
	// Logger receives the nodes' logs; nil discards them.
	Logger *slog.Logger
}

// Kongs is a set of DB-less kongsim nodes reached through one in-memory
// network: http://kong-<i>:8001 is node i's Admin API, :8000 its proxy and
// :8100 its Status API. Faults are switched per node. Safe for concurrent
// use; it opens no sockets, so it runs under testing/synctest.
type Kongs struct {
	opts KongsOptions

	mu      sync.Mutex
	slots   []*slot
	changed chan struct{} // closed and replaced when a node's configuration may have changed
}

type slot struct {
	node        *kong.Node
	gen         int
	stalled     chan struct{} // non-nil while stalled; closed on release
	unreachable bool
	admission   Admission
}

// NewKongs starts n empty nodes.
func NewKongs(n int, opts KongsOptions) (*Kongs, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Kongs{opts: opts, changed: make(chan struct{})}
	for i := range n {
		node, err := k.newNode(i, 0)
		if err != nil {
			return nil, err
		}
		k.slots = append(k.slots, &slot{node: node})
	}
	return k, nil
}

func (k *Kongs) newNode(i, gen int) (*kong.Node, error) {
	return kong.NewNode(kong.Options{
		NodeID:         fmt.Sprintf("00000000-0000-4000-8000-%06d%06d", i, gen),
		Hostname:       Host(i),
		Logger:         k.opts.Logger,
		ProxyTransport: k.opts.ProxyTransport,
	})
}

// notify wakes those waiting for a node's configuration to change. It is
// called once the change is visible: after the Admin API answered a write,
// or after a restart.
func (k *Kongs) notify() {
	k.mu.Lock()
	close(k.changed)
	k.changed = make(chan struct{})
	k.mu.Unlock()
}

// Host is node i's host name on the in-memory network.
func Host(i int) string { return "kong-" + strconv.Itoa(i) }

// AdminURL is node i's Admin API URL.
func AdminURL(i int) string { return "http://" + Host(i) + ":" + strconv.Itoa(AdminPort) }

// AdminURLs lists every node's Admin API URL.
func (k *Kongs) AdminURLs() []string {
	k.mu.Lock()
	n := len(k.slots)
	k.mu.Unlock()
	urls := make([]string, n)
	for i := range urls {
		urls[i] = AdminURL(i)
	}
	return urls
}

// Node returns node i's current incarnation.
func (k *Kongs) Node(i int) *kong.Node {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.slots[i].node
}

// Hashes returns the configuration hash each node serves now.
func (k *Kongs) Hashes() []string {
	k.mu.Lock()
	nodes := make([]*kong.Node, len(k.slots))
	for i, s := range k.slots {
		nodes[i] = s.node
	}
	k.mu.Unlock()
	hs := make([]string, len(nodes))
	for i, n := range nodes {
		hs[i] = n.ConfigHash()
	}
	return hs
}

// Changed returns a channel closed the next time a node's configuration
// may have changed (an Admin API write answered, a restart); take it before
// checking the condition you wait for.
func (k *Kongs) Changed() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.changed
}

// Stall makes node i hold every request (Admin, Status and proxy) until
// release is called or the request's context ends, as a hung Kong would.
func (k *Kongs) Stall(i int) (release func()) {
	ch := make(chan struct{})
	k.mu.Lock()
	k.slots[i].stalled = ch
	k.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			if k.slots[i].stalled == ch {
				k.slots[i].stalled = nil
			}
			k.mu.Unlock()
			close(ch)
		})
	}
}

// SetUnreachable makes node i refuse connections (or answer again).
func (k *Kongs) SetUnreachable(i int, down bool) {
	k.mu.Lock()
	k.slots[i].unreachable = down
	k.mu.Unlock()
}

// SetAdmission installs a stricter validation in front of node i's
// POST /config; nil removes it.
func (k *Kongs) SetAdmission(i int, a Admission) {
	k.mu.Lock()
	k.slots[i].admission = a
	k.mu.Unlock()
}

// Restart replaces node i with a fresh, empty node, as a DB-less Kong
// restarted without a declarative file comes back.
func (k *Kongs) Restart(i int) error {
	k.mu.Lock()
	gen := k.slots[i].gen + 1
	k.mu.Unlock()
	node, err := k.newNode(i, gen)
	if err != nil {
		return err
	}
	k.mu.Lock()
	old := k.slots[i].node
	k.slots[i].node, k.slots[i].gen = node, gen
	k.mu.Unlock()
	old.Close()
	k.notify()
	return nil
}

// Close releases every node's idle upstream connections.
func (k *Kongs) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.slots {
		s.node.Close()
	}
}

// Transport is the in-memory network: it routes a request by its URL host
// and port to a node's Admin API, proxy or Status API, applying the fault
// switches on the way.
func (k *Kongs) Transport() http.RoundTripper { return transport{k} }

type transport struct{ k *Kongs }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	i, port, ok := parseHost(req.URL.Host)
	t.k.mu.Lock()
	if !ok || i >= len(t.k.slots) || t.k.slots[i].unreachable {
		t.k.mu.Unlock()
		closeBody(req)
		return nil, refused(req)
	}
	s := t.k.slots[i]
	stalled := s.stalled
	t.k.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-req.Context().Done():
			closeBody(req)
			return nil, req.Context().Err()
		}
	}
	// A restart while the request waited: it reaches the new node.
	t.k.mu.Lock()
	node, admission := s.node, s.admission
	t.k.mu.Unlock()
	var h http.Handler
	switch port {
	case AdminPort:
		h = node.Admin()
		if admission != nil && req.Method == http.MethodPost && req.URL.Path == "/config" {
			body, err := io.ReadAll(req.Body)
			closeBody(req)
			if err != nil {
				return nil, err
			}
			if refusal := admission(body); refusal != nil {
				return badRequest(req, refusal), nil
			}
			req = req.Clone(req.Context())
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
	case ProxyPort:
		h = node.Proxy()
	case StatusPort:
		h = node.Status()
	default:
		closeBody(req)
		return nil, refused(req)
	}
	resp, err := kong.NewInMemoryTransport(h).RoundTrip(req)
	if port == AdminPort && req.Method != http.MethodGet && req.Method != http.MethodHead {
		t.k.notify()
	}
	return resp, err
}

func badRequest(req *http.Request, body []byte) *http.Response {
	return &http.Response{
		StatusCode: http.StatusBadRequest, Status: "400 Bad Request",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": []string{"application/json; charset=utf-8"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: req,
	}
}

func parseHost(hostport string) (node, port int, ok bool) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil || !strings.HasPrefix(host, "kong-") {
		return 0, 0, false
	}
	node, err1 := strconv.Atoi(strings.TrimPrefix(host, "kong-"))
	port, err2 := strconv.Atoi(p)
	return node, port, err1 == nil && err2 == nil && node >= 0
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// refused is the error a dial to a closed port gives.
func refused(req *http.Request) error {
	return &url.Error{Op: req.Method, URL: req.URL.String(),
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
}
