package dbsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kong/go-kong/kong"
)

// pageSize is the largest page Kong serves, to list big configurations in
// few requests.
const pageSize = 1000

// listManaged reads every entity of kind carrying tag, page by page, each
// page bounded by timeout.
func listManaged(ctx context.Context, kc *kong.Client, kind Kind, tag string, timeout time.Duration, into *Set) error {
	opt := &kong.ListOpt{Size: pageSize, Tags: []*string{&tag}}
	for opt != nil {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		ctx := pctx
		var (
			objs []any
			next *kong.ListOpt
			err  error
		)
		switch kind {
		case KindCertificate:
			var l []*kong.Certificate
			l, next, err = kc.Certificates.List(ctx, opt)
			objs = anys(l)
		case KindSNI:
			var l []*kong.SNI
			l, next, err = kc.SNIs.List(ctx, opt)
			objs = anys(l)
		case KindUpstream:
			var l []*kong.Upstream
			l, next, err = kc.Upstreams.List(ctx, opt)
			objs = anys(l)
		case KindService:
			var l []*kong.Service
			l, next, err = kc.Services.List(ctx, opt)
			objs = anys(l)
		case KindRoute:
			var l []*kong.Route
			l, next, err = kc.Routes.List(ctx, opt)
			objs = anys(l)
		case KindConsumer:
			var l []*kong.Consumer
			l, next, err = kc.Consumers.List(ctx, opt)
			objs = anys(l)
		case KindKeyAuth:
			var l []*kong.KeyAuth
			l, next, err = kc.KeyAuths.List(ctx, opt)
			objs = anys(l)
		case KindBasicAuth:
			var l []*kong.BasicAuth
			l, next, err = kc.BasicAuths.List(ctx, opt)
			objs = anys(l)
		case KindJWT:
			var l []*kong.JWTAuth
			l, next, err = kc.JWTAuths.List(ctx, opt)
			objs = anys(l)
		case KindACL:
			var l []*kong.ACLGroup
			l, next, err = kc.ACLs.List(ctx, opt)
			objs = anys(l)
		case KindHMACAuth:
			var l []*kong.HMACAuth
			l, next, err = kc.HMACAuths.List(ctx, opt)
			objs = anys(l)
		case KindPlugin:
			var l []*kong.Plugin
			l, next, err = kc.Plugins.List(ctx, opt)
			objs = anys(l)
		default:
			err = errors.New("unknown kind")
		}
		cancel()
		if err != nil {
			return fmt.Errorf("listing %s: %w", kind, err)
		}
		for _, o := range objs {
			if e, ok := existing(kind, o); ok {
				into.Add(e)
			}
		}
		if next != nil && next.Offset == opt.Offset {
			return fmt.Errorf("listing %s: Kong returned the same page offset twice", kind)
		}
		opt = next
	}
	return nil
}

func anys[T any](l []*T) []any {
	out := make([]any, len(l))
	for i, x := range l {
		out[i] = x
	}
	return out
}

// listTargets reads the targets of one upstream carrying tag. Kong serves
// targets only below their upstream (GET /targets is disabled).
func listTargets(ctx context.Context, kc *kong.Client, up, tag string, timeout time.Duration) ([]Entity, error) {
	var found []Entity
	opt := &kong.ListOpt{Size: pageSize}
	for opt != nil {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		l, next, err := kc.Targets.List(pctx, &up, opt)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("listing targets of upstream %s: %w", up, err)
		}
		for _, t := range l {
			if !slices.Contains(derefAll(t.Tags), tag) {
				continue
			}
			if e, ok := existing(KindTarget, t); ok {
				if e.Parent == "" {
					e.Parent = up
				}
				found = append(found, e)
			}
		}
		if next != nil && next.Offset == opt.Offset {
			return nil, fmt.Errorf("listing targets of upstream %s: Kong returned the same page offset twice", up)
		}
		opt = next
	}
	return found, nil
}

// listAll reads every managed entity of every kind, with at most
// concurrency requests in flight: the kinds side by side, and the targets
// one listing per upstream. Targets need their upstream's id, so without a
// hint they wait for the upstream listing; the upstreams in hint (ids from
// an earlier listing) are listed at once, side by side with the kinds, and
// only upstreams the hint lacked wait. Whatever the hint says, the result
// holds exactly the targets of the upstreams this listing found: the hint
// only orders the requests. Any failure fails the whole listing.
func listAll(ctx context.Context, kc *kong.Client, tag string, timeout time.Duration, concurrency int, hint map[string]bool) (*Set, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		into     = NewSet()
		// targets by upstream id; an upstream listed early that Kong
		// no longer has answers 404 and is recorded as gone.
		targets = map[string][]Entity{}
		gone    = map[string]bool{}
	)
	sem := make(chan struct{}, max(concurrency, 1))
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	spawn := func(f func() error) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(); err != nil {
				fail(err)
			}
		})
	}
	listUpstream := func(up string, early bool) func() error {
		return func() error {
			found, err := listTargets(ctx, kc, up, tag, timeout)
			if early && kong.IsNotFoundErr(err) {
				mu.Lock()
				gone[up] = true
				mu.Unlock()
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			targets[up] = found
			mu.Unlock()
			return nil
		}
	}
	upstreamsListed := make(chan struct{})
	for _, kind := range Kinds {
		if kind == KindTarget {
			continue
		}
		spawn(func() error {
			part := NewSet()
			err := listManaged(ctx, kc, kind, tag, timeout, part)
			if err == nil {
				mu.Lock()
				into[kind] = part[kind]
				mu.Unlock()
			}
			if kind == KindUpstream {
				close(upstreamsListed)
			}
			return err
		})
	}
	for up := range hint {
		spawn(listUpstream(up, true))
	}
	select {
	case <-upstreamsListed:
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		mu.Lock()
		var rest []string
		for up := range into[KindUpstream] {
			_, listed := targets[up]
			if !listed && (!hint[up] || gone[up]) {
				rest = append(rest, up)
			}
		}
		mu.Unlock()
		for _, up := range rest {
			spawn(listUpstream(up, false))
		}
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() == nil {
		// An early listing that found its upstream gone may have ended
		// after the upstream listing showed it again (re-created): list
		// those once more, now that the upstream exists.
		var again []string
		for up := range into[KindUpstream] {
			if _, listed := targets[up]; !listed {
				again = append(again, up)
			}
		}
		for _, up := range again {
			spawn(listUpstream(up, false))
		}
		wg.Wait()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		// The caller's context ended before everything was listed.
		return nil, fmt.Errorf("listing: %w", err)
	}
	for up := range into[KindUpstream] {
		for _, e := range targets[up] {
			into.Add(e)
		}
	}
	return into, nil
}

// write performs op: a PUT by id for creates and updates (go-kong's Create
// with an id set; credentials below their consumer), a DELETE otherwise.
// Deleting what is already gone succeeds. A credential's key, password or
// secret travels only in the request body; Kong's error messages about it
// are reported by the entity's id.
func write(ctx context.Context, kc *kong.Client, op Op) error {
	e := op.Entity
	if op.Action == Delete {
		var err error
		switch e.Kind {
		case KindCertificate:
			err = kc.Certificates.Delete(ctx, &e.ID)
		case KindSNI:
			err = kc.SNIs.Delete(ctx, &e.ID)
		case KindUpstream:
			err = kc.Upstreams.Delete(ctx, &e.ID)
		case KindTarget:
			err = kc.Targets.Delete(ctx, &e.Parent, &e.ID)
		case KindService:
			err = kc.Services.Delete(ctx, &e.ID)
		case KindRoute:
			err = kc.Routes.Delete(ctx, &e.ID)
		case KindConsumer:
			err = kc.Consumers.Delete(ctx, &e.ID)
		case KindKeyAuth:
			err = kc.KeyAuths.Delete(ctx, &e.Parent, &e.ID)
		case KindBasicAuth:
			err = kc.BasicAuths.Delete(ctx, &e.Parent, &e.ID)
		case KindJWT:
			err = kc.JWTAuths.Delete(ctx, &e.Parent, &e.ID)
		case KindACL:
			err = kc.ACLs.Delete(ctx, &e.Parent, &e.ID)
		case KindHMACAuth:
			err = kc.HMACAuths.Delete(ctx, &e.Parent, &e.ID)
		case KindPlugin:
			err = kc.Plugins.Delete(ctx, &e.ID)
		default:
			err = fmt.Errorf("unknown kind")
		}
		if kong.IsNotFoundErr(err) {
			// Gone already, or (targets) its upstream is.
			return nil
		}
		return err
	}
	var err error
	switch o := e.Obj.(type) {
	case *kong.Certificate:
		_, err = kc.Certificates.Create(ctx, o)
	case *kong.SNI:
		_, err = kc.SNIs.Create(ctx, o)
	case *kong.Upstream:
		_, err = kc.Upstreams.Create(ctx, o)
	case *kong.Target:
		_, err = kc.Targets.Create(ctx, &e.Parent, o)
	case *kong.Service:
		_, err = kc.Services.Create(ctx, o)
	case *kong.Route:
		_, err = kc.Routes.Create(ctx, o)
	case *kong.Consumer:
		_, err = kc.Consumers.Create(ctx, o)
	case *kong.KeyAuth:
		_, err = kc.KeyAuths.Create(ctx, &e.Parent, o)
	case *kong.BasicAuth:
		_, err = kc.BasicAuths.Create(ctx, &e.Parent, o)
	case *kong.JWTAuth:
		_, err = kc.JWTAuths.Create(ctx, &e.Parent, o)
	case *kong.ACLGroup:
		_, err = kc.ACLs.Create(ctx, &e.Parent, o)
	case *kong.HMACAuth:
		_, err = kc.HMACAuths.Create(ctx, &e.Parent, o)
	case *kong.Plugin:
		_, err = kc.Plugins.Create(ctx, o)
	default:
		err = fmt.Errorf("unsupported entity type %T", e.Obj)
	}
	return err
}

// rejected reports whether err is Kong refusing the entity itself (a
// schema, foreign key or uniqueness error), which retrying unchanged cannot
// fix, as opposed to Kong or its database failing.
func rejected(err error) (*kong.APIError, bool) {
	var apiErr *kong.APIError
	if !errors.As(err, &apiErr) {
		return nil, false
	}
	code := apiErr.Code()
	return apiErr, code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}
