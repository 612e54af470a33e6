package kube

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// trafficClient is the traffic probe's HTTP client: keep-alive
// connections, as many as the rate needs, no proxy from the environment
// (the endpoints are pod addresses). With retry, a request whose
// connection could not be made goes once more to another endpoint of rot
// (see connectRetrier); the returned retrier then tells which requests it
// retried (it is nil, and tells nothing, without retry).
func trafficClient(rot *rotation, timeout time.Duration, retry bool) (*http.Client, *connectRetrier) {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	if retry {
		// A connection not made in half the request's time counts as a
		// connect failure, leaving the other half for the retry.
		dialer.Timeout = timeout / 2
	}
	base := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 10000,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &http.Client{Timeout: timeout, Transport: base}
	if !retry {
		return c, nil
	}
	r := &connectRetrier{base: base, rot: rot, retried: map[uint64]retried{}}
	c.Transport = r
	return c, r
}

// connectRetrier retries on another endpoint a request whose connection
// failed before any byte was sent — refused (no Kong listening), the
// address unreachable (its pod is gone) or the connection not made in
// time — and an idempotent request without a body (GET, HEAD) whose
// connection was reset or closed before any answer came: a kept-alive
// connection to a Kong killed a moment earlier fails that way. That is
// what a load balancer with passive health checks does (nginx's
// proxy_next_upstream error, which leaves non-idempotent requests alone).
// Nothing else is retried: a request that reached Kong and got no answer
// may have had effects, unless its method says it cannot.
type connectRetrier struct {
	base http.RoundTripper
	rot  *rotation
	n    atomic.Uint64

	mu      sync.Mutex
	retried map[uint64]retried // by vegeta's sequence number
}

// retried is one retry: the endpoint that failed, the failure, and the
// endpoint the request went to instead.
type retried struct{ from, err, to string }

// seqHeader is the header vegeta numbers its requests with.
const seqHeader = "X-Vegeta-Seq"

// RoundTrip implements http.RoundTripper.
func (c *connectRetrier) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil || !retryable(req, err) || req.Context().Err() != nil {
		return resp, err
	}
	alt := c.rot.other(req.URL.Host, c.n.Add(1))
	seq, perr := strconv.ParseUint(req.Header.Get(seqHeader), 10, 64)
	if alt == "" || perr != nil {
		return resp, err
	}
	c.mu.Lock()
	c.retried[seq] = retried{from: req.URL.Host, err: err.Error(), to: alt}
	c.mu.Unlock()
	again := req.Clone(req.Context())
	again.URL.Host = alt
	return c.base.RoundTrip(again)
}

// take returns (and forgets) the retry of request seq, if it was retried.
func (c *connectRetrier) take(seq uint64) (retried, bool) {
	if c == nil {
		return retried{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.retried[seq]
	delete(c.retried, seq)
	return r, ok
}

// retryable says whether the failed req may go to another endpoint: its
// connection could not be made, or it is idempotent without a body and
// its connection broke before an answer (a RoundTrip error comes with no
// response, so nothing of the answer had arrived).
func retryable(req *http.Request, err error) bool {
	if connectFailure(err) {
		return true
	}
	idempotent := (req.Method == http.MethodGet || req.Method == http.MethodHead) && (req.Body == nil || req.Body == http.NoBody)
	return idempotent && connectionLost(err)
}

// connectionLost says whether err is the connection breaking under the
// request: reset by the peer, a broken pipe, or closed without an answer.
func connectionLost(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// connectFailure says whether err is a failure to connect: the dial
// failed, so no byte of the request left.
func connectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
