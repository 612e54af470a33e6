// Package hashkong is the smallest DB-less Kong Admin API the controller
// needs: it answers the version probe, takes POST /config, reports as
// configuration hash a prefix of the sha256 of the last body, and keeps
// nothing else. Benchmarks and footprint tests use it so that what they
// measure is the controller, not a simulated Kong.
package hashkong

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"

	"konductor.dev/sim/kong"
)

// Signal is a channel closed and replaced at every accepted push of the
// Kongs sharing it, so a waiter hears of a push to any of them.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewSignal returns a Signal no push has fired yet.
func NewSignal() *Signal { return &Signal{ch: make(chan struct{})} }

// C is closed at the next accepted push.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *Signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// Kong is one hash-only Kong; serve it with any http.Server or transport.
type Kong struct {
	signal *Signal

	mu   sync.Mutex
	hash string // hex sha256 of the last accepted body
}

// New returns a Kong that fires signal at every accepted push; nil gives it
// a Signal of its own.
func New(signal *Signal) *Kong {
	if signal == nil {
		signal = NewSignal()
	}
	return &Kong{signal: signal}
}

func (k *Kong) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		io.WriteString(w, `{"version":"3.9.1","node_id":"00000000-0000-4000-8000-000000000001","hostname":"kong","configuration":{"database":"off","router_flavor":"traditional_compatible","role":"traditional"}}`)
	case r.Method == http.MethodGet && r.URL.Path == "/status":
		h := k.Hash()
		if h == "" {
			h = kong.ZeroHash
		}
		fmt.Fprintf(w, `{"configuration_hash":%q,"server":{"total_requests":0}}`, h[:32])
	case r.Method == http.MethodPost && r.URL.Path == "/config":
		sum := sha256.New()
		if _, err := io.Copy(sum, r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		k.mu.Lock()
		k.hash = hex.EncodeToString(sum.Sum(nil))
		k.mu.Unlock()
		k.signal.fire()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not found"}`)
	}
}

// Hash is the hex sha256 of the last accepted body; "" before any push.
func (k *Kong) Hash() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.hash
}

// Changed is closed at the next accepted push to any Kong of k's Signal.
func (k *Kong) Changed() <-chan struct{} { return k.signal.C() }
