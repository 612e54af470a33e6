package footprint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// zeroHash is what a DB-less Kong without configuration reports.
const zeroHash = "00000000000000000000000000000000"

// hashKong is the smallest DB-less Kong Admin API the controller needs: it
// answers the version probe, reports as configuration hash a prefix of the
// sha256 of the last POST /config body, and keeps nothing else, so that
// the test process stays small and what is measured is the controller.
type hashKong struct {
	srv *httptest.Server

	mu     sync.Mutex
	hash   string        // hex sha256 of the last accepted body
	posts  int           // accepted POST /config requests
	notify chan struct{} // closed and replaced on every accepted push
}

// startHashKong serves a hashKong on 127.0.0.1 until the test ends.
func startHashKong(t testing.TB) *hashKong {
	k := &hashKong{notify: make(chan struct{})}
	k.srv = httptest.NewServer(k)
	t.Cleanup(k.srv.Close)
	return k
}

func (k *hashKong) URL() string { return k.srv.URL }

func (k *hashKong) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		io.WriteString(w, `{"version":"3.9.1","node_id":"00000000-0000-4000-8000-000000000001","hostname":"kong","configuration":{"database":"off","router_flavor":"traditional_compatible","role":"traditional"}}`)
	case r.Method == http.MethodGet && r.URL.Path == "/status":
		h := k.Hash()
		if h == "" {
			h = zeroHash
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
		k.posts++
		close(k.notify)
		k.notify = make(chan struct{})
		k.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not found"}`)
	}
}

// Hash is the hex sha256 of the last accepted body; "" before any push.
func (k *hashKong) Hash() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.hash
}

// Changed is closed at the next accepted push.
func (k *hashKong) Changed() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.notify
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
