package status

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/translate"
)

// maxHistory bounds the versions kept: when Kong falls this far behind,
// the older versions' Ingresses wait for a newer one to apply.
const maxHistory = 16

// Ingresses is what a Loop reads of the controller's cache
// (snapshot.Cache).
type Ingresses interface {
	Ingress(namespace, name string) (*networkingv1.Ingress, bool)
	AllIngresses() []*networkingv1.Ingress
	OurClassIsDefault() bool
}

// Loop publishes our addresses on the Ingresses of the newest
// configuration that every Kong applied. It clears them from Ingresses
// that leave our class; at the start of each term it also sweeps, once,
// every Ingress of another class that still holds exactly our addresses
// (a new leader cannot know which left before its term).
//
// The controller tells it of every translation (Translated) and new term
// (NewTerm), and kicks it (Kick) when something it reads may have changed:
// a version applied, the published Service changed. Build it with
// NewLoop.
type Loop struct {
	Writer       *Writer
	Cache        Ingresses
	IngressClass string
	// Update is --update-status: without it the loop writes nothing, but
	// still runs OnNewTerm.
	Update bool
	// Addresses returns the addresses to publish (see Addresses).
	Addresses func() []networkingv1.IngressLoadBalancerIngress
	// Applied reports whether every Kong applied version or a later one.
	Applied func(version uint64) bool
	// Reports tells whether this replica writes status now: the elected
	// one, or every replica when no election runs.
	Reports func() bool
	// OnNewTerm runs on the loop's goroutine at its first pass in a new
	// term, once a configuration was translated (the controller reports
	// current problems again there).
	OnNewTerm func()
	Logger    *slog.Logger

	kickCh     chan struct{}
	translated atomic.Bool
	newTerm    atomic.Bool

	mu      sync.Mutex
	history []applied // versions handed to the pusher, oldest first
	// routed are the Ingresses some translation routed, by UID: the ones
	// whose status we may have published and must clear should they leave
	// our class. seen is the translation that last routed them.
	routed       map[types.UID]routedIngress
	translations uint64
}

type routedIngress struct {
	ref  translate.ObjectRef
	seen uint64
}

// applied is one version and the Ingresses its configuration routes.
type applied struct {
	version    uint64
	translated []translate.ObjectRef
}

// NewLoop readies l (its fields set by the caller) to be kicked and told
// of translations; Run may start later.
func NewLoop(l *Loop) *Loop {
	l.kickCh = make(chan struct{}, 1)
	l.routed = map[types.UID]routedIngress{}
	return l
}

func (l *Loop) log() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

// Kick makes the loop look again, without blocking.
func (l *Loop) Kick() {
	select {
	case l.kickCh <- struct{}{}:
	default:
	}
}

// NewTerm records that this replica started a term: the next pass runs
// OnNewTerm and sweeps other classes' Ingresses.
func (l *Loop) NewTerm() {
	l.newTerm.Store(true)
	l.Kick()
}

// Translated records a translation: the Ingresses it routed and, when the
// configuration changed, the version it got. It forgets routed Ingresses
// that no longer exist, so that a replica that never writes status keeps
// no record of deleted objects. It does not kick the loop.
func (l *Loop) Translated(version uint64, changed bool, routed []translate.ObjectRef) {
	l.mu.Lock()
	if changed {
		l.history = append(l.history, applied{version: version, translated: routed})
		if len(l.history) > maxHistory {
			l.history = slices.Delete(l.history, 0, len(l.history)-maxHistory)
		}
	}
	l.translations++
	seen := l.translations
	for _, ref := range routed {
		l.routed[ref.UID] = routedIngress{ref: ref, seen: seen}
	}
	var unrouted []routedIngress
	for _, r := range l.routed {
		if r.seen != seen {
			unrouted = append(unrouted, r)
		}
	}
	l.mu.Unlock()
	l.translated.Store(true)
	l.forgetDeleted(unrouted)
}

// Run writes Ingress status at every kick until ctx is done; a failed pass
// is retried a second later.
func (l *Loop) Run(ctx context.Context) {
	var retry *time.Timer
	// sweep is the current term's pending sweep of other classes' Ingresses
	// (see sweepOthers), nil once done.
	var sweep map[types.UID]bool
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kickCh:
		}
		if !l.Reports() || !l.translated.Load() {
			continue
		}
		if l.newTerm.Swap(false) {
			if l.OnNewTerm != nil {
				l.OnNewTerm()
			}
			sweep = map[types.UID]bool{}
		}
		if !l.Update {
			continue
		}
		err := l.writeStatus(ctx)
		if sweep != nil {
			done, sweepErr := l.sweepOthers(ctx, sweep)
			if done {
				sweep = nil
			}
			err = errors.Join(err, sweepErr)
		}
		if err != nil && ctx.Err() == nil {
			l.log().Warn("writing Ingress status failed; retrying", "err", err)
			if retry != nil {
				retry.Stop()
			}
			retry = time.AfterFunc(time.Second, func() { l.Kick() })
		}
	}
}

// writeStatus publishes the addresses on every Ingress of the newest
// configuration that all Kong targets have applied.
func (l *Loop) writeStatus(ctx context.Context) error {
	addrs := l.Addresses()
	if len(addrs) == 0 {
		return nil
	}
	l.mu.Lock()
	var refs []translate.ObjectRef
	for i := len(l.history) - 1; i >= 0; i-- {
		if l.Applied(l.history[i].version) {
			refs = l.history[i].translated
			l.history = l.history[i:] // older versions are superseded
			break
		}
	}
	l.mu.Unlock()
	l.log().Debug("checking Ingress status", "ingresses", len(refs), "addresses", len(addrs))
	isDefault := l.Cache.OurClassIsDefault()
	var errs []error
	for _, ref := range refs {
		if !l.Reports() {
			return nil
		}
		ing, ok := l.Cache.Ingress(ref.Namespace, ref.Name)
		if !ok || ing.UID != ref.UID {
			continue
		}
		if !ingressclass.Matches(ing, l.IngressClass, isDefault) {
			// Left our class since that version was translated: its
			// status is clearDeparted's business, or its new owner's.
			continue
		}
		if _, err := l.Writer.Update(ctx, ing, addrs); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, l.clearDeparted(ctx, addrs)...)
	return errors.Join(errs...)
}

// clearDeparted removes the addresses we publish from Ingresses that a
// translation routed but that no longer belong to our class: their
// ingressClassName or class annotation changed, or our IngressClass is no
// longer the default. Status.Writer.Clear leaves any other value alone, so
// a status the new owner already wrote is never wiped. Each departure is
// handled once: should another controller then publish our very addresses
// (a shared proxy), we do not fight it.
func (l *Loop) clearDeparted(ctx context.Context, addrs []networkingv1.IngressLoadBalancerIngress) []error {
	isDefault := l.Cache.OurClassIsDefault()
	var candidates []routedIngress
	l.mu.Lock()
	for _, r := range l.routed {
		// The latest translation routed it, so it was ours a moment ago;
		// a departure triggers a translation, and that one is looked at.
		if r.seen != l.translations {
			candidates = append(candidates, r)
		}
	}
	l.mu.Unlock()
	// Map order is random; a fixed order keeps simulator runs replayable.
	slices.SortFunc(candidates, func(a, b routedIngress) int {
		return strings.Compare(a.ref.Namespace+"/"+a.ref.Name, b.ref.Namespace+"/"+b.ref.Name)
	})
	var errs []error
	for _, c := range candidates {
		ing, ok := l.Cache.Ingress(c.ref.Namespace, c.ref.Name)
		if ok && ing.UID != c.ref.UID {
			ok = false // replaced: the new object is judged on its own
		}
		if ok && ingressclass.Matches(ing, l.IngressClass, isDefault) {
			continue
		}
		if ok {
			if !l.Reports() {
				return errs
			}
			if _, err := l.Writer.Clear(ctx, ing, addrs); err != nil {
				errs = append(errs, err)
				continue // retried on the next pass
			}
		}
		l.forget(c)
	}
	return errs
}

// sweepOthers clears the addresses we publish from every Ingress outside
// our class whose status holds exactly them, once per leadership term: a
// new leader does not know which Ingresses left our class before its term
// (clearDeparted only sees departures it translated), so their status
// would stay forever. handled collects the Ingresses already dealt with
// this term; a pass that failed on some is retried for those only. It
// reports whether the sweep is over.
//
// Once per term, not on every pass: another controller behind the same
// addresses (a shared proxy) may publish them on its own Ingresses; it
// writes them back after the sweep, and we do not fight it.
func (l *Loop) sweepOthers(ctx context.Context, handled map[types.UID]bool) (bool, error) {
	addrs := l.Addresses()
	if len(addrs) == 0 {
		return false, nil // swept once our addresses are known
	}
	isDefault := l.Cache.OurClassIsDefault()
	var errs []error
	for _, ing := range l.Cache.AllIngresses() {
		if handled[ing.UID] || ingressclass.Matches(ing, l.IngressClass, isDefault) ||
			!Equal(ing.Status.LoadBalancer.Ingress, addrs) {
			continue
		}
		if !l.Reports() {
			return true, nil // the term ended; the next one sweeps again
		}
		if _, err := l.Writer.Clear(ctx, ing, addrs); err != nil {
			errs = append(errs, err)
			continue
		}
		handled[ing.UID] = true
	}
	return len(errs) == 0, errors.Join(errs...)
}

// forgetDeleted drops the routed Ingresses that no longer exist, so that a
// replica that never writes status keeps no record of deleted objects.
func (l *Loop) forgetDeleted(candidates []routedIngress) {
	for _, c := range candidates {
		if ing, ok := l.Cache.Ingress(c.ref.Namespace, c.ref.Name); !ok || ing.UID != c.ref.UID {
			l.forget(c)
		}
	}
}

// forget drops c unless a translation routed it again meanwhile.
func (l *Loop) forget(c routedIngress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.routed[c.ref.UID]; ok && cur.seen == c.seen {
		delete(l.routed, c.ref.UID)
	}
}
