// Package fence carries a leadership term to every Admin API write, so that a
// Kong (or kongsim's audit) can tell which writer and which term a change came
// from, and so that no write is started once the term could have ended.
//
// A Term is granted by a WriteGate (the leader elector, or a constant gate for
// a DB-less sidecar that always writes its own Kong). Writers ask the gate
// for a term before each batch, bound the batch by Term.ValidUntil, and send
// the term with each request through Transport.
package fence

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// Header names stamped on every Admin API write. kongsim records them in its
// audit log; real Kong ignores them.
const (
	HeaderWriter = "X-Konductor-Writer"
	HeaderEpoch  = "X-Konductor-Epoch"
)

// Term is one writer's permission to write.
type Term struct {
	// Identity names the writer (pod name plus a unique suffix).
	Identity string
	// Epoch is the leadership term's number: the lock's transition count.
	// It never goes backwards for the same lock.
	Epoch int64
	// ValidUntil is the latest instant at which a write may still be in
	// flight. It comes from time.Now plus a duration, so it carries Go's
	// monotonic reading and comparisons are immune to wall-clock steps.
	// The zero value means no limit.
	ValidUntil time.Time
}

// Valid reports whether a write may start at now.
func (t Term) Valid(now time.Time) bool {
	return t.ValidUntil.IsZero() || now.Before(t.ValidUntil)
}

// WriteGate grants terms. Permit must be cheap and safe for concurrent use.
type WriteGate interface {
	// Permit returns the current term and true when the caller may write.
	Permit() (Term, bool)
}

// Always is a WriteGate for writers that need no election (a DB-less
// sidecar configuring its own Kong): it always permits, with epoch 0.
type Always struct{ Identity string }

// Permit implements WriteGate.
func (a Always) Permit() (Term, bool) { return Term{Identity: a.Identity}, true }

type termKey struct{}

// WithTerm returns a context whose requests carry t.
func WithTerm(ctx context.Context, t Term) context.Context {
	return context.WithValue(ctx, termKey{}, t)
}

// TermFrom returns the term stored in ctx, if any.
func TermFrom(ctx context.Context) (Term, bool) {
	t, ok := ctx.Value(termKey{}).(Term)
	return t, ok
}

// Transport stamps the term found in each request's context onto the
// request's headers, and refuses to send a write whose term has expired.
type Transport struct {
	// Base performs the request; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// ErrTermExpired is returned for a write attempted after its term ended.
type ErrTermExpired struct{ Term Term }

func (e *ErrTermExpired) Error() string {
	return "fence: term " + strconv.FormatInt(e.Term.Epoch, 10) + " of " + e.Term.Identity + " expired; write not sent"
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	term, ok := TermFrom(req.Context())
	if !ok {
		return base.RoundTrip(req)
	}
	if isWrite(req.Method) && !term.Valid(time.Now()) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &ErrTermExpired{Term: term}
	}
	// RoundTrippers must not modify the caller's request.
	r := req.Clone(req.Context())
	r.Header.Set(HeaderWriter, term.Identity)
	r.Header.Set(HeaderEpoch, strconv.FormatInt(term.Epoch, 10))
	return base.RoundTrip(r)
}

func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}
