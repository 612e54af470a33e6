package kong

import (
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
	// The handler reads the client's body as a server reads it off the
	// connection: not copied first (a configuration is megabytes, and
	// the handler makes its own copy).
	in := req.Clone(req.Context())
	in.Body = http.NoBody
	if req.Body != nil && req.Body != http.NoBody {
		in.Body = req.Body
		defer req.Body.Close()
		if in.ContentLength == 0 {
			in.ContentLength = -1 // unknown, as a client's 0 with a body means
		}
	}
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
