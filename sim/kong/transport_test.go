package kong

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// The in-memory transport answers as httptest.ResponseRecorder would (and
// a server on a connection): the same status, header, length and body for
// every way a handler can write its response.
func TestInMemoryTransportAnswersAsARecorder(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}},
		{"status only", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }},
		{"implicit 200 sniffs the type", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html><body>hi</body></html>"))
		}},
		{"implicit 200 keeps a set type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"a":1}`)
		}},
		{"header changed after the status reaches nobody", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Before", "1")
			w.WriteHeader(http.StatusTeapot)
			w.Header().Set("X-After", "2")
			w.Header().Del("X-Before")
			_, _ = w.Write([]byte("short and stout"))
		}},
		{"content length announced", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("hello"))
		}},
		{"second status ignored", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("bad"))
		}},
		{"flush sends the status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte("streamed"))
		}},
		{"unknown status text", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://kong.test/x", nil)
			rec := httptest.NewRecorder()
			tc.handler(rec, req)
			want := rec.Result()
			wantBody, _ := io.ReadAll(want.Body)

			got, err := NewInMemoryTransport(tc.handler).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			gotBody, _ := io.ReadAll(got.Body)
			if got.StatusCode != want.StatusCode || got.Status != want.Status {
				t.Errorf("status %d %q, want %d %q", got.StatusCode, got.Status, want.StatusCode, want.Status)
			}
			if !reflect.DeepEqual(got.Header, want.Header) {
				t.Errorf("header %v, want %v", got.Header, want.Header)
			}
			if got.ContentLength != want.ContentLength {
				t.Errorf("content length %d, want %d", got.ContentLength, want.ContentLength)
			}
			if string(gotBody) != string(wantBody) {
				t.Errorf("body %q, want %q", gotBody, wantBody)
			}
			if got.Request != req {
				t.Error("the response does not name the client's request")
			}
		})
	}
}
