package fence

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

type recorder struct{ got []*http.Request }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = append(r.got, req)
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

func TestTransport(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name       string
		method     string
		term       *Term
		wantSent   bool
		wantWriter string
		wantEpoch  string
		wantErr    bool
	}{
		{name: "no term passes through unstamped", method: "POST", wantSent: true},
		{name: "valid term is stamped", method: "POST", term: &Term{Identity: "a-1", Epoch: 7, ValidUntil: now.Add(time.Hour)}, wantSent: true, wantWriter: "a-1", wantEpoch: "7"},
		{name: "unbounded term is stamped", method: "PUT", term: &Term{Identity: "side", Epoch: 0}, wantSent: true, wantWriter: "side", wantEpoch: "0"},
		{name: "expired write is refused", method: "DELETE", term: &Term{Identity: "a-1", Epoch: 7, ValidUntil: now.Add(-time.Second)}, wantErr: true},
		{name: "expired read still goes out", method: "GET", term: &Term{Identity: "a-1", Epoch: 7, ValidUntil: now.Add(-time.Second)}, wantSent: true, wantWriter: "a-1", wantEpoch: "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			ctx := context.Background()
			if tc.term != nil {
				ctx = WithTerm(ctx, *tc.term)
			}
			req := httptest.NewRequest(tc.method, "http://kong:8001/config", nil).WithContext(ctx)
			req.RequestURI = ""
			_, err := (&Transport{Base: rec}).RoundTrip(req)
			var expired *ErrTermExpired
			if tc.wantErr != errors.As(err, &expired) {
				t.Fatalf("err = %v, want expired error %v", err, tc.wantErr)
			}
			if sent := len(rec.got) == 1; sent != tc.wantSent {
				t.Fatalf("sent = %v, want %v", sent, tc.wantSent)
			}
			if !tc.wantSent {
				return
			}
			h := rec.got[0].Header
			if h.Get(HeaderWriter) != tc.wantWriter || h.Get(HeaderEpoch) != tc.wantEpoch {
				t.Fatalf("headers = %q/%q, want %q/%q", h.Get(HeaderWriter), h.Get(HeaderEpoch), tc.wantWriter, tc.wantEpoch)
			}
			if req.Header.Get(HeaderWriter) != "" {
				t.Fatal("caller's request was modified")
			}
		})
	}
}

func TestAlwaysPermits(t *testing.T) {
	term, ok := Always{Identity: "pod-x"}.Permit()
	if !ok || term.Identity != "pod-x" || !term.Valid(time.Now()) {
		t.Fatalf("Always.Permit() = %+v, %v", term, ok)
	}
}
