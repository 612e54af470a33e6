package kong

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
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
	rec := &recorder{header: make(http.Header, 4)}
	t.Handler.ServeHTTP(rec, in)
	resp := rec.result()
	resp.Request = req
	return resp, nil
}

// recorder records a response in memory, as a server would send it: the
// header as it stood when the status was written, then the body. It does
// what httptest.ResponseRecorder does for a response without trailers,
// without copying the header twice (the simulator sends thousands of
// small requests a run, and those copies were most of their cost).
//
// A body announced with a Content-Length gets a buffer of that size before
// the first write: a configuration response is megabytes, which the
// buffer would otherwise copy while doubling. A deferred body (see
// bodyDeferrer) is not recorded at all: the client reads it from its
// source.
type recorder struct {
	header http.Header // what the handler sets; the response's once written
	// late is what Header returns once the status is written: changes
	// made then reach no client, as on a connection.
	late     http.Header
	code     int
	wrote    bool
	body     bytes.Buffer
	deferred io.Reader
}

func (w *recorder) deferBody(r io.Reader) { w.deferred = r }

// Header implements http.ResponseWriter.
func (w *recorder) Header() http.Header {
	if !w.wrote {
		return w.header
	}
	if w.late == nil {
		w.late = http.Header{}
	}
	return w.late
}

// WriteHeader implements http.ResponseWriter.
func (w *recorder) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wrote {
		return
	}
	w.code, w.wrote = code, true
	if v := w.header["Content-Length"]; len(v) == 1 && w.deferred == nil {
		if n, err := strconv.Atoi(v[0]); err == nil && n > 0 && n < 1<<30 {
			w.body.Grow(n)
		}
	}
}

// Write implements http.ResponseWriter: a first write without a status
// sends 200, with a Content-Type sniffed from the bytes if none was set.
func (w *recorder) Write(b []byte) (int, error) {
	w.implicitHeader(b)
	return w.body.Write(b)
}

// WriteString implements io.StringWriter.
func (w *recorder) WriteString(s string) (int, error) {
	if !w.wrote {
		w.implicitHeader([]byte(s))
	}
	return w.body.WriteString(s)
}

// Flush implements http.Flusher: the status goes out if it has not.
func (w *recorder) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
}

func (w *recorder) implicitHeader(b []byte) {
	if w.wrote {
		return
	}
	if _, typed := w.header["Content-Type"]; !typed && w.header.Get("Transfer-Encoding") == "" {
		w.header.Set("Content-Type", http.DetectContentType(b))
	}
	w.WriteHeader(http.StatusOK)
}

// result is the response the client reads.
func (w *recorder) result() *http.Response {
	code := w.code
	if !w.wrote {
		code = http.StatusOK
	}
	resp := &http.Response{
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		StatusCode: code, Status: strconv.Itoa(code) + " " + http.StatusText(code),
		Header: w.header, ContentLength: -1,
	}
	if v := w.header["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			resp.ContentLength = n
		}
	}
	if w.deferred != nil {
		resp.Body = io.NopCloser(w.deferred)
	} else {
		resp.Body = io.NopCloser(bytes.NewReader(w.body.Bytes()))
	}
	return resp
}
