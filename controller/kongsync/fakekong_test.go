package kongsync

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"konductor.dev/controller/fence"
)

// zeroHash is what a DB-less Kong reports with no configuration.
const zeroHash = "00000000000000000000000000000000"

// fakeKong is a minimal DB-less Kong Admin API with switchable behaviour,
// faithful to kong-facts.md for the calls the syncer makes.
type fakeKong struct {
	mu         sync.Mutex
	hash       string
	body       []byte
	stall      bool   // POST /config hangs until the client gives up
	stallAfter int    // > 0: POST /config stalls once this many were recorded
	rejectWord string // a body containing it is refused with flattened errors
	busy       int    // answer this many POST /config with 429
	retryAfter string
	writes     []write
	statusGets int
	database   string // GET / configuration.database; "" means "off"
	rootGets   int
	requests   int // server.total_requests: every request since (re)start
	// block, when set, holds every POST /config until it is closed (as a
	// Kong stuck loading a configuration would); entered receives one
	// value per held request.
	block   chan struct{}
	entered chan struct{}
}

type write struct {
	writer, epoch string
	status        int // 0: the client gave up while Kong stalled
	body          string
	at            time.Time
}

func newFakeKong() *fakeKong { return &fakeKong{hash: zeroHash} }

func kongHash(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

func (k *fakeKong) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.requests++
	k.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/status":
		k.mu.Lock()
		k.statusGets++
		hash, requests := k.hash, k.requests
		k.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"configuration_hash": hash,
			"server":             map[string]int{"total_requests": requests},
		})
	case r.Method == http.MethodGet && r.URL.Path == "/":
		k.mu.Lock()
		k.rootGets++
		db := k.database
		k.mu.Unlock()
		if db == "" {
			db = "off"
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"version": "3.9.1", "node_id": "6b1c5a4e-0000-4000-8000-00000000000a", "hostname": "kong",
			"configuration": map[string]string{"database": db, "router_flavor": "traditional_compatible", "role": "traditional"},
		})
	case r.Method == http.MethodPost && r.URL.Path == "/config":
		k.postConfig(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not found"})
	}
}

func (k *fakeKong) postConfig(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	k.mu.Lock()
	stall, block, entered := k.stall, k.block, k.entered
	stall = stall || (k.stallAfter > 0 && len(k.writes) >= k.stallAfter)
	k.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		<-block
	}
	if stall {
		<-r.Context().Done()
		k.record(r, 0, body)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rec := func(code int) { k.recordLocked(r, code, body) }
	switch {
	case k.busy > 0:
		k.busy--
		rec(http.StatusTooManyRequests)
		w.Header().Set("Retry-After", k.retryAfter)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "configuration is being loaded"})
	case len(body) == 0:
		rec(http.StatusBadRequest)
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 14, "message": "expected a declarative configuration"})
	case k.rejectWord != "" && strings.Contains(string(body), k.rejectWord):
		rec(http.StatusBadRequest)
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"code":    14,
			"name":    "invalid declarative configuration",
			"message": "declarative config is invalid: {}",
			"fields":  map[string]any{},
			"flattened_errors": []any{map[string]any{
				"entity_type": "route",
				"entity_name": "default.echo.0",
				"entity_id":   "6b1c5a4e-0000-4000-8000-000000000001",
				"entity_tags": []string{"k8s-name:echo", "k8s-namespace:default"},
				"entity":      map[string]any{"name": "default.echo.0"},
				"errors": []any{
					map[string]string{"type": "field", "field": "paths.1", "message": "should start with: / (fixed path) or ~/ (regex path)"},
					map[string]string{"type": "entity", "message": "must set one of 'methods', 'hosts', 'headers', 'paths'"},
				},
			}},
		})
	case r.URL.Query().Get("check_hash") == "1" && kongHash(body) == k.hash:
		rec(http.StatusNotModified)
		w.WriteHeader(http.StatusNotModified)
	default:
		k.hash, k.body = kongHash(body), body
		rec(http.StatusCreated)
		writeJSON(w, http.StatusCreated, map[string]any{})
	}
}

func (k *fakeKong) record(r *http.Request, code int, body []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.recordLocked(r, code, body)
}

func (k *fakeKong) recordLocked(r *http.Request, code int, body []byte) {
	k.writes = append(k.writes, write{
		writer: r.Header.Get(fence.HeaderWriter),
		epoch:  r.Header.Get(fence.HeaderEpoch),
		status: code,
		body:   string(body),
		at:     time.Now(),
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// restart drops the configuration, as a DB-less Kong without a declarative
// file does when its container restarts.
func (k *fakeKong) restart() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hash, k.body, k.requests = zeroHash, nil, 0
}

// restartWith restarts the replica with a declarative file loaded at start:
// not empty, but not ours either.
func (k *fakeKong) restartWith(body string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hash, k.body, k.requests = kongHash([]byte(body)), []byte(body), 0
}

// tamper loads another configuration behind the controller's back.
func (k *fakeKong) tamper(body string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hash, k.body = kongHash([]byte(body)), []byte(body)
}

func (k *fakeKong) set(fn func(k *fakeKong)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fn(k)
}

func (k *fakeKong) config() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return string(k.body)
}

func (k *fakeKong) posts() []write {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]write(nil), k.writes...)
}

// memNet routes requests by host to in-memory handlers: no sockets, so it
// works inside a synctest bubble.
type memNet struct {
	mu    sync.Mutex
	hosts map[string]http.Handler
	down  map[string]bool
}

func newMemNet() *memNet {
	return &memNet{hosts: map[string]http.Handler{}, down: map[string]bool{}}
}

func (n *memNet) add(host string, h http.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hosts[host] = h
}

func (n *memNet) setDown(host string, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[host] = down
}

var errConnRefused = errors.New("connect: connection refused")

func (n *memNet) RoundTrip(req *http.Request) (*http.Response, error) {
	n.mu.Lock()
	h, ok := n.hosts[req.URL.Host]
	down := n.down[req.URL.Host]
	n.mu.Unlock()
	if !ok || down {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errConnRefused
	}
	sreq := req.Clone(req.Context())
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	sreq.RequestURI = sreq.URL.RequestURI()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, sreq)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	resp := rec.Result()
	resp.Request = req
	resp.ContentLength = int64(rec.Body.Len())
	resp.Header.Set("Content-Length", strconv.Itoa(rec.Body.Len()))
	return resp, nil
}
