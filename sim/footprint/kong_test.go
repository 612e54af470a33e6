package footprint

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"testing"

	"konductor.dev/sim/internal/hashkong"
)

// hashKong is a hash-only Kong (package hashkong) on 127.0.0.1: the test
// process stays small, and what is measured is the controller.
type hashKong struct {
	*hashkong.Kong
	srv *httptest.Server
}

// startHashKong serves a hashKong, firing pushed at every accepted push,
// until the test ends.
func startHashKong(t testing.TB, pushed *hashkong.Signal) *hashKong {
	k := &hashKong{Kong: hashkong.New(pushed)}
	k.srv = httptest.NewServer(k.Kong)
	t.Cleanup(k.srv.Close)
	return k
}

func (k *hashKong) URL() string { return k.srv.URL }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
