package kong

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
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
		// Configurations are megabytes: read a body of known length
		// into one buffer of that size.
		var buf bytes.Buffer
		if req.ContentLength > 0 && req.ContentLength < 1<<30 {
			buf.Grow(int(req.ContentLength) + bytes.MinRead)
		}
		_, err := buf.ReadFrom(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = buf.Bytes()
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
	rec := &recorder{ResponseRecorder: httptest.NewRecorder()}
	t.Handler.ServeHTTP(rec, in)
	resp := rec.Result()
	if rec.deferred != nil {
		resp.Body = io.NopCloser(rec.deferred)
	}
	resp.Request = req
	return resp, nil
}

// recorder records a response in memory. A body announced with a
// Content-Length gets a buffer of that size before the first write: a
// configuration response is megabytes, which the recorder would otherwise
// copy while doubling its buffer. A deferred body (see bodyDeferrer) is
// not recorded at all: the client reads it from its source.
type recorder struct {
	*httptest.ResponseRecorder
	deferred io.Reader
}

func (w *recorder) deferBody(r io.Reader) { w.deferred = r }

func (w *recorder) WriteHeader(code int) {
	if n, err := strconv.Atoi(w.Header().Get("Content-Length")); err == nil && n > 0 && n < 1<<30 && w.deferred == nil {
		w.Body.Grow(n)
	}
	w.ResponseRecorder.WriteHeader(code)
}
