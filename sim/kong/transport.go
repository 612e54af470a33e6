package kong

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
)

// InMemoryTransport serves HTTP requests by calling a handler directly: no
// sockets, no goroutines, so clients such as go-kong can drive a node under
// testing/synctest virtual time.
type InMemoryTransport struct {
	Handler http.Handler
}

// NewInMemoryTransport returns a RoundTripper that serves every request
// with h, whatever the request's host.
func NewInMemoryTransport(h http.Handler) http.RoundTripper {
	return &InMemoryTransport{Handler: h}
}

// RoundTrip implements http.RoundTripper.
func (t *InMemoryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	// The handler sees a server-side request, as net/http would build it.
	in := req.Clone(req.Context())
	in.Body = io.NopCloser(bytes.NewReader(body))
	in.ContentLength = int64(len(body))
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:1"
	if in.Host == "" {
		in.Host = req.URL.Host
	}
	rec := httptest.NewRecorder()
	t.Handler.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
