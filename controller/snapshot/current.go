package snapshot

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// lister lists from the API server what one informer caches.
type lister func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error)

func dynamicLister(client dynamic.Interface, gvr schema.GroupVersionResource, ns string) lister {
	return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return client.Resource(gvr).Namespace(ns).List(ctx, o)
	}
}

// currentPoll is how often WaitCurrent compares the caches with what it
// listed.
const currentPoll = 100 * time.Millisecond

// WaitCurrent returns once every cache holds at least what the API server
// held when WaitCurrent was called, or when ctx ends (with its error).
//
// HasSynced stays true once the first list is in, whatever happens next:
// an informer whose watch broke (an API-server outage, a partition) keeps
// its old objects while its reflector retries with a backoff that reaches
// 30s, jittered up to 60s, and nothing tells the rest of the program that
// its cache lags. A warm standby that takes over in that window would
// translate the lagging cache and push a configuration without the objects
// created since: the previous leader's newer configuration shrinks. So a
// new leader calls WaitCurrent before its first push.
//
// It lists each informer's objects once with the resourceVersion unset (a
// consistent read: the API server answers with the most recent data), then
// waits until the informer has caught up with that list: its last synced
// revision is at least the list's, or it holds every listed object at the
// listed version or a later one and nothing older than the list that the
// list no longer has. Comparing revisions by number is what etcd-backed
// API servers allow in practice (resourceVersions are etcd revisions); a
// version that does not parse as a number is compared for equality only.
// Pages of 500 keep the listing's memory small with many objects.
func (c *Cache) WaitCurrent(ctx context.Context) error {
	if !c.WaitForSync(ctx) {
		return ctx.Err()
	}
	for i, inf := range c.informers {
		want, err := listCurrent(ctx, c.listers[i])
		if err != nil {
			return err
		}
		tick := time.NewTicker(currentPoll)
		for !want.heldBy(inf) {
			select {
			case <-ctx.Done():
				tick.Stop()
				return ctx.Err()
			case <-tick.C:
			}
		}
		tick.Stop()
	}
	return nil
}

// listed is what one consistent listing found.
type listed struct {
	revision string
	versions map[string]string // cache key → resourceVersion
}

// listCurrent lists with the resourceVersion unset, page by page, retrying
// failed requests until ctx ends.
func listCurrent(ctx context.Context, list lister) (listed, error) {
	delay := 200 * time.Millisecond
	for {
		got, err := listPages(ctx, list)
		if err == nil {
			return got, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return listed{}, fmt.Errorf("snapshot: listing to check the caches: %w (%w)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func listPages(ctx context.Context, list lister) (listed, error) {
	out := listed{versions: map[string]string{}}
	opts := metav1.ListOptions{Limit: 500}
	for {
		obj, err := list(ctx, opts)
		if err != nil {
			return listed{}, err
		}
		lm, err := meta.ListAccessor(obj)
		if err != nil {
			return listed{}, err
		}
		if out.revision == "" {
			out.revision = lm.GetResourceVersion()
		}
		if err := meta.EachListItem(obj, func(item runtime.Object) error {
			key, err := cache.MetaNamespaceKeyFunc(item)
			if err != nil {
				return err
			}
			m, err := meta.Accessor(item)
			if err != nil {
				return err
			}
			out.versions[key] = m.GetResourceVersion()
			return nil
		}); err != nil {
			return listed{}, err
		}
		if lm.GetContinue() == "" {
			return out, nil
		}
		// Later pages come from the first page's snapshot.
		opts.Continue = lm.GetContinue()
	}
}

// heldBy reports whether inf has caught up with the listing.
func (l listed) heldBy(inf cache.SharedIndexInformer) bool {
	if notBefore(inf.LastSyncResourceVersion(), l.revision) {
		return true
	}
	store := inf.GetStore()
	for key, v := range l.versions {
		obj, ok, err := store.GetByKey(key)
		if err != nil || !ok {
			return false
		}
		m, err := meta.Accessor(obj)
		if err != nil || !notBefore(m.GetResourceVersion(), v) {
			return false
		}
	}
	// An object the listing does not have is fine if it came later; one
	// from before the listing was deleted since, and the cache missed it.
	for _, key := range store.ListKeys() {
		if _, ok := l.versions[key]; ok {
			continue
		}
		obj, ok, err := store.GetByKey(key)
		if err != nil || !ok {
			continue
		}
		m, err := meta.Accessor(obj)
		if err != nil || !after(m.GetResourceVersion(), l.revision) {
			return false
		}
	}
	return true
}

// notBefore reports whether resourceVersion a is b or later. Equal
// versions are the same, even empty ones: a server that stamps none (a
// fake) leaves only the comparison of names.
func notBefore(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x >= y
}

// after reports whether resourceVersion a is later than b.
func after(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}
