// Package snapshot keeps informer caches of the Kubernetes objects konductor
// translates and turns them into a translate.Snapshot on demand.
//
// One set of informers runs per watched namespace (or one for the whole
// cluster), plus a cluster-wide one for IngressClasses (and KongClusterPlugins).
// Only Secrets of type kubernetes.io/tls (a field selector, and a filter for
// API servers and fakes that ignore it) and Secrets labelled
// konghq.com/credential or konghq.com/secret: "true" (label selectors) are
// listed, and every object is trimmed to what
// translation and the status writer read before it is cached (see trim):
// Services and EndpointSlices are kept in translation's compact form.
//
// Every change that can alter the translation calls OnChange; the caller
// debounces. A Snapshot must never be taken for a push before HasSynced is
// true: an empty cache would translate into an empty configuration and wipe
// Kong.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	networkinginformers "k8s.io/client-go/informers/networking/v1"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersnetworkingv1 "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"

	"konductor.dev/controller/ingressclass"
	"konductor.dev/controller/translate"
)

// Config configures a Cache.
type Config struct {
	Client kubernetes.Interface
	// Namespaces limits the namespaced objects watched; empty means all.
	Namespaces []string
	// IngressClass is the class this controller serves.
	IngressClass string
	// OnChange is called (from informer goroutines) after any change that
	// may alter the translation. It must not block.
	OnChange func()
	// Dynamic, when set, reads the Kong custom resources (KongPlugin,
	// KongClusterPlugin, KongConsumer) that the API server serves;
	// resources whose CRDs are not installed are not watched.
	Dynamic dynamic.Interface
}

type scope struct {
	ingresses      listersnetworkingv1.IngressLister
	services       cache.Store // of *cachedService
	endpointSlices cache.Store // of *cachedEndpointSlice
	secrets        listerscorev1.SecretLister
	labelled       []listerscorev1.SecretLister // by labelledSecretSelectors
	plugins        cache.Store                  // of *cachedPlugin; nil when not served
	consumers      cache.Store                  // of *cachedConsumer; nil when not served
}

// Cache holds the informers. Create with New, then Start.
type Cache struct {
	cfg     Config
	scopes  map[string]*scope // by namespace ("" = all)
	classes listersnetworkingv1.IngressClassLister
	// clusterPlugins holds KongClusterPlugins; nil when not served.
	clusterPlugins cache.Store
	informers      []cache.SharedIndexInformer
	// listers[i] lists, straight from the API server, what informers[i]
	// caches (same resource, namespace and selectors): see WaitCurrent.
	listers   []lister
	hasSynced []cache.InformerSynced
	running   sync.WaitGroup
}

// New builds the informers; nothing runs until Start.
//
// The informers are made one by one rather than by a shared factory: a
// factory adds a namespace index to every informer, ~1.5 MB with 10k
// objects of each kind, and nothing here lists by namespace.
func New(cfg Config) (*Cache, error) {
	if cfg.Client == nil {
		return nil, errors.New("snapshot: Config.Client is nil")
	}
	if cfg.IngressClass == "" {
		return nil, errors.New("snapshot: Config.IngressClass is empty")
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	c := &Cache{cfg: cfg, scopes: map[string]*scope{}}
	namespaces := slices.Clone(cfg.Namespaces)
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	slices.Sort(namespaces)
	namespaces = slices.Compact(namespaces)

	noIndexes := cache.Indexers{}
	tlsOnly := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()
	}
	served := map[string]bool{}
	if cfg.Dynamic != nil {
		var err error
		if served, err = servedKongResources(cfg.Client.Discovery()); err != nil {
			return nil, err
		}
	}
	for _, ns := range namespaces {
		ing := networkinginformers.NewFilteredIngressInformer(cfg.Client, ns, 0, noIndexes, nil)
		svc := coreinformers.NewFilteredServiceInformer(cfg.Client, ns, 0, noIndexes, nil)
		eps := discoveryinformers.NewFilteredEndpointSliceInformer(cfg.Client, ns, 0, noIndexes, nil)
		sec := coreinformers.NewFilteredSecretInformer(cfg.Client, ns, 0, noIndexes, tlsOnly)
		c.scopes[ns] = &scope{
			ingresses:      listersnetworkingv1.NewIngressLister(ing.GetIndexer()),
			services:       svc.GetStore(),
			endpointSlices: eps.GetStore(),
			secrets:        listerscorev1.NewSecretLister(sec.GetIndexer()),
		}
		if err := c.watch(ing, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cfg.Client.NetworkingV1().Ingresses(ns).List(ctx, o)
		}, ingressChanged); err != nil {
			return nil, err
		}
		for _, k := range []struct {
			inf  cache.SharedIndexInformer
			list lister
		}{
			{svc, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cfg.Client.CoreV1().Services(ns).List(ctx, o)
			}},
			{eps, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cfg.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, o)
			}},
			{sec, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				tlsOnly(&o)
				return cfg.Client.CoreV1().Secrets(ns).List(ctx, o)
			}},
		} {
			if err := c.watch(k.inf, k.list, resourceVersionChanged); err != nil {
				return nil, err
			}
		}
		for _, selector := range labelledSecretSelectors {
			inf := coreinformers.NewFilteredSecretInformer(cfg.Client, ns, 0, noIndexes, func(o *metav1.ListOptions) { o.LabelSelector = selector })
			c.scopes[ns].labelled = append(c.scopes[ns].labelled, listerscorev1.NewSecretLister(inf.GetIndexer()))
			if err := c.watch(inf, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.LabelSelector = selector
				return cfg.Client.CoreV1().Secrets(ns).List(ctx, o)
			}, resourceVersionChanged); err != nil {
				return nil, err
			}
		}
		for _, k := range []struct {
			gvr   schema.GroupVersionResource
			store *cache.Store
		}{{kongPluginsResource, &c.scopes[ns].plugins}, {kongConsumersResource, &c.scopes[ns].consumers}} {
			if served[k.gvr.Resource] {
				inf := kongInformer(cfg.Dynamic, k.gvr, ns)
				*k.store = inf.GetStore()
				if err := c.watch(inf, dynamicLister(cfg.Dynamic, k.gvr, ns), resourceVersionChanged); err != nil {
					return nil, err
				}
			}
		}
	}
	if served[kongClusterPluginsResource.Resource] {
		inf := kongInformer(cfg.Dynamic, kongClusterPluginsResource, metav1.NamespaceAll)
		c.clusterPlugins = inf.GetStore()
		if err := c.watch(inf, dynamicLister(cfg.Dynamic, kongClusterPluginsResource, metav1.NamespaceAll), resourceVersionChanged); err != nil {
			return nil, err
		}
	}
	classes := networkinginformers.NewFilteredIngressClassInformer(cfg.Client, 0, noIndexes, nil)
	c.classes = listersnetworkingv1.NewIngressClassLister(classes.GetIndexer())
	if err := c.watch(classes, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return cfg.Client.NetworkingV1().IngressClasses().List(ctx, o)
	}, resourceVersionChanged); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cache) watch(inf cache.SharedIndexInformer, list lister, changed func(old, new any) bool) error {
	if err := inf.SetTransform(trim); err != nil {
		return fmt.Errorf("snapshot: setting the transform: %w", err)
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.cfg.OnChange() },
		UpdateFunc: func(old, new any) {
			if changed(old, new) {
				c.cfg.OnChange()
			}
		},
		DeleteFunc: func(any) { c.cfg.OnChange() },
	})
	if err != nil {
		return fmt.Errorf("snapshot: adding event handler: %w", err)
	}
	c.informers = append(c.informers, inf)
	c.listers = append(c.listers, list)
	c.hasSynced = append(c.hasSynced, inf.HasSynced, reg.HasSynced)
	return nil
}

// Start runs the informers until ctx is done.
func (c *Cache) Start(ctx context.Context) {
	for _, inf := range c.informers {
		c.running.Go(func() { inf.RunWithContext(ctx) })
	}
}

// Shutdown waits for the informers to stop after Start's ctx is done.
func (c *Cache) Shutdown() {
	c.running.Wait()
}

// HasSynced reports whether every informer has listed its objects and
// delivered them to the change handlers.
func (c *Cache) HasSynced() bool {
	for _, f := range c.hasSynced {
		if !f() {
			return false
		}
	}
	return true
}

// WaitForSync blocks until HasSynced or ctx is done, and reports which.
func (c *Cache) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.HasSynced)
}

// OurClassIsDefault reports whether our IngressClass is the cluster default.
func (c *Cache) OurClassIsDefault() bool {
	ic, err := c.classes.Get(c.cfg.IngressClass)
	return err == nil && ingressclass.IsOurDefault(ic, c.cfg.IngressClass)
}

// Snapshot lists the cached objects: Ingresses of our class, and all
// Services, EndpointSlices and TLS Secrets in the watched namespaces. The
// objects are shared with the cache and must not be modified.
func (c *Cache) Snapshot() translate.Snapshot {
	var s translate.Snapshot
	isDefault := c.OurClassIsDefault()
	for _, ns := range slices.Sorted(maps.Keys(c.scopes)) {
		sc := c.scopes[ns]
		ings, _ := sc.ingresses.List(labels.Everything())
		for _, ing := range ings {
			if ingressclass.Matches(ing, c.cfg.IngressClass, isDefault) {
				s.Ingresses = append(s.Ingresses, ing)
			}
		}
		for _, obj := range sc.services.List() {
			if svc, ok := obj.(*cachedService); ok {
				s.Services = append(s.Services, &svc.Service)
			}
		}
		for _, obj := range sc.endpointSlices.List() {
			if es, ok := obj.(*cachedEndpointSlice); ok {
				s.EndpointSlices = append(s.EndpointSlices, &es.EndpointSlice)
			}
		}
		secs, _ := sc.secrets.List(labels.Everything())
		for _, sec := range secs {
			if sec.Type == corev1.SecretTypeTLS {
				s.Secrets = append(s.Secrets, sec)
			}
		}
		// A labelled TLS Secret is taken from the TLS informer only.
		for _, l := range sc.labelled {
			secs, _ := l.List(labels.Everything())
			for _, sec := range secs {
				if sec.Type != corev1.SecretTypeTLS && isLabelledSecret(sec) {
					s.Secrets = append(s.Secrets, sec)
				}
			}
		}
		s.Plugins = appendPlugins(s.Plugins, sc.plugins, false)
		if sc.consumers != nil {
			for _, obj := range sc.consumers.List() {
				if kc, ok := obj.(*cachedConsumer); ok && consumerOfClass(&kc.Consumer, c.cfg.IngressClass, isDefault) {
					s.Consumers = append(s.Consumers, &kc.Consumer)
				}
			}
		}
	}
	s.Plugins = appendPlugins(s.Plugins, c.clusterPlugins, true)
	return s
}

func appendPlugins(out []*translate.Plugin, store cache.Store, cluster bool) []*translate.Plugin {
	if store == nil {
		return out
	}
	for _, obj := range store.List() {
		if p, ok := obj.(*cachedPlugin); ok && p.Cluster == cluster {
			out = append(out, &p.Plugin)
		}
	}
	return out
}

// AllIngresses lists the cached Ingresses of every class in the watched
// namespaces, by namespace and name. The objects are shared with the cache
// and must not be modified.
func (c *Cache) AllIngresses() []*networkingv1.Ingress {
	var out []*networkingv1.Ingress
	for _, ns := range slices.Sorted(maps.Keys(c.scopes)) {
		ings, _ := c.scopes[ns].ingresses.List(labels.Everything())
		slices.SortFunc(ings, func(a, b *networkingv1.Ingress) int {
			if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
		out = append(out, ings...)
	}
	return out
}

// Ingress returns the cached Ingress namespace/name.
func (c *Cache) Ingress(namespace, name string) (*networkingv1.Ingress, bool) {
	for ns, sc := range c.scopes {
		if ns != metav1.NamespaceAll && ns != namespace {
			continue
		}
		if ing, err := sc.ingresses.Ingresses(namespace).Get(name); err == nil {
			return ing, true
		}
	}
	return nil, false
}

// ingressChanged ignores status-only updates (our own status writes), which
// cannot alter the translation; a spec change bumps the generation.
func ingressChanged(old, new any) bool {
	o, ok1 := old.(*networkingv1.Ingress)
	n, ok2 := new.(*networkingv1.Ingress)
	if !ok1 || !ok2 {
		return true
	}
	return o.Generation != n.Generation || o.UID != n.UID ||
		!maps.Equal(o.Annotations, n.Annotations) || !maps.Equal(o.Labels, n.Labels)
}

// resourceVersionChanged ignores periodic resyncs that deliver the same object.
func resourceVersionChanged(old, new any) bool {
	o, err1 := meta.Accessor(old)
	n, err2 := meta.Accessor(new)
	if err1 != nil || err2 != nil {
		return true
	}
	return o.GetResourceVersion() != n.GetResourceVersion() || o.GetResourceVersion() == ""
}
