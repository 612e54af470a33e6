package proxy

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// connectTimeoutKey carries a service's connect timeout to the dialer, so
// one pooled transport serves every service.
type connectTimeoutKey struct{}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // upstream traffic never goes through an environment proxy
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: defaultTimeout, KeepAlive: 30 * time.Second}
			if t, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && t > 0 {
				d.Timeout = t
			}
			return d.DialContext(ctx, network, addr)
		},
		// Like Kong, which verifies upstream certificates only when a
		// service asks for it (tls_verify), and kongsim services cannot.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     60 * time.Second,
		// Pass Accept-Encoding and compressed bodies through untouched.
		DisableCompression: true,
	}
}

// newRequestID returns 32 hex digits, the shape of Kong's request ids.
func newRequestID() string {
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		raw[i], raw[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	var out [32]byte
	hex.Encode(out[:], raw[:])
	return string(out[:])
}
