package snapshot

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"konductor.dev/controller/translate"
)

// The Kong custom resources konductor reads, served when the CRDs of
// deploy/base are installed.
var (
	kongPluginsResource        = schema.GroupVersionResource{Group: translate.KongGroup, Version: translate.KongVersion, Resource: "kongplugins"}
	kongClusterPluginsResource = schema.GroupVersionResource{Group: translate.KongGroup, Version: translate.KongVersion, Resource: "kongclusterplugins"}
	kongConsumersResource      = schema.GroupVersionResource{Group: translate.KongGroup, Version: translate.KongVersion, Resource: "kongconsumers"}
)

// Secret labels that admit a Secret that is not of type kubernetes.io/tls
// into the cache: credentials of KongConsumers (as the Kong Ingress
// Controller 3 reads them), and Secrets holding a plugin's configFrom.
const (
	LabelCredential = translate.LabelCredential
	LabelSecret     = translate.LabelSecret
)

// labelledSecretSelectors are the label selectors of the Secret informers
// beside the TLS one; a selector cannot say "this label or that one".
var labelledSecretSelectors = []string{LabelCredential, LabelSecret + "=true"}

// isLabelledSecret tells whether a Secret is cached for its labels.
func isLabelledSecret(s *corev1.Secret) bool {
	_, credential := s.Labels[LabelCredential]
	return credential || s.Labels[LabelSecret] == "true"
}

// cachedPlugin is a KongPlugin or KongClusterPlugin as the cache keeps it:
// translation's form, config rendered once.
type cachedPlugin struct {
	translate.Plugin
	trimmedMeta
}

func (c *cachedPlugin) GetNamespace() string   { return c.Namespace }
func (c *cachedPlugin) SetNamespace(ns string) { c.Namespace = ns }
func (c *cachedPlugin) GetName() string        { return c.Name }
func (c *cachedPlugin) SetName(name string)    { c.Name = name }
func (c *cachedPlugin) GetUID() types.UID      { return c.UID }
func (c *cachedPlugin) SetUID(uid types.UID)   { c.UID = uid }

// cachedConsumer is a KongConsumer as the cache keeps it.
type cachedConsumer struct {
	translate.Consumer
	trimmedMeta
}

func (c *cachedConsumer) GetNamespace() string   { return c.Namespace }
func (c *cachedConsumer) SetNamespace(ns string) { c.Namespace = ns }
func (c *cachedConsumer) GetName() string        { return c.Name }
func (c *cachedConsumer) SetName(name string)    { c.Name = name }
func (c *cachedConsumer) GetUID() types.UID      { return c.UID }
func (c *cachedConsumer) SetUID(uid types.UID)   { c.UID = uid }

var (
	_ metav1.Object = (*cachedPlugin)(nil)
	_ metav1.Object = (*cachedConsumer)(nil)
)

// consumerOfClass tells whether a KongConsumer is ours: its
// kubernetes.io/ingress.class annotation names our class, or it has none
// and our class is the cluster default (as for Ingresses without a class).
func consumerOfClass(c *translate.Consumer, class string, ourClassIsDefault bool) bool {
	if c.Class == "" {
		return ourClassIsDefault
	}
	return c.Class == class
}

// compactKongObject converts a Kong custom resource for the cache; other
// unstructured objects are returned as they are.
func compactKongObject(u *unstructured.Unstructured) (any, error) {
	switch u.GetKind() {
	case translate.KindKongPlugin, translate.KindKongClusterPlugin:
		p, err := translate.PluginOf(u)
		if err != nil {
			return nil, err
		}
		p.Namespace = namespaces.intern(p.Namespace)
		return &cachedPlugin{Plugin: *p, trimmedMeta: trimmedMeta{resourceVersion: u.GetResourceVersion()}}, nil
	case translate.KindKongConsumer:
		c, err := translate.ConsumerOf(u)
		if err != nil {
			return nil, err
		}
		c.Namespace = namespaces.intern(c.Namespace)
		return &cachedConsumer{Consumer: *c, trimmedMeta: trimmedMeta{resourceVersion: u.GetResourceVersion()}}, nil
	}
	u.SetManagedFields(nil)
	return u, nil
}

// servedKongResources lists which of the Kong resources the API server
// serves. Without the CRDs an informer would never sync, and a cache that
// never syncs never lets the controller push.
func servedKongResources(d discovery.DiscoveryInterface) (map[string]bool, error) {
	list, err := d.ServerResourcesForGroupVersion(translate.KongGroup + "/" + translate.KongVersion)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return map[string]bool{}, nil
		}
		return nil, fmt.Errorf("snapshot: discovering %s/%s: %w", translate.KongGroup, translate.KongVersion, err)
	}
	served := map[string]bool{}
	for _, r := range list.APIResources {
		served[r.Name] = true
	}
	return served, nil
}

// kongInformer makes the informer of one Kong resource in namespace ns
// ("" for all, and for cluster-scoped resources).
func kongInformer(client dynamic.Interface, gvr schema.GroupVersionResource, ns string) cache.SharedIndexInformer {
	return dynamicinformer.NewFilteredDynamicInformer(client, gvr, ns, 0, cache.Indexers{}, nil).Informer()
}
