package world

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"konductor.dev/controller/translate"
	"konductor.dev/sim/apiserver"
)

// With Config.KeyAuth, app 0 is protected by Kong's key-auth plugin: a
// KongPlugin named by its Ingress, a KongConsumer and the consumer's
// key-auth credential Secret. The probes then send app 0's key, and send
// app 0 one anonymous request too, which must be refused.
const (
	authPlugin   = "app-auth"
	authConsumer = "alice"
	authSecret   = "alice-key"
	// authKey is the consumer's key; the probes send it in authHeader.
	authKey    = "sim-key-0b7e51"
	authHeader = "apikey"
)

// withKeyAuth returns objs with app 0's Ingress annotated with the plugin
// and the credential Secret added.
func withKeyAuth(objs []runtime.Object) []runtime.Object {
	out := make([]runtime.Object, 0, len(objs)+1)
	for _, o := range objs {
		if ing, ok := o.(*networkingv1.Ingress); ok && ing.Name == appName(0) {
			ing = ing.DeepCopy()
			ing.Annotations = map[string]string{translate.AnnotationPlugins: authPlugin}
			o = ing
		}
		out = append(out, o)
	}
	return append(out, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: authSecret,
			Labels: map[string]string{translate.LabelCredential: "key-auth"}},
		Data: map[string][]byte{"key": []byte(authKey)},
	})
}

// kongResources makes client's discovery serve the Kong resources and
// returns a dynamic client holding the KongPlugin and KongConsumer. The
// objects never change during a run, so each replica incarnation gets its
// own copy.
func kongResources(client *apiserver.View) dynamic.Interface {
	gv := translate.KongGroup + "/" + translate.KongVersion
	if fd, ok := client.Discovery().(*fakediscovery.FakeDiscovery); ok {
		fd.Resources = []*metav1.APIResourceList{{GroupVersion: gv, APIResources: []metav1.APIResource{
			{Name: "kongplugins", Namespaced: true, Kind: translate.KindKongPlugin},
			{Name: "kongconsumers", Namespaced: true, Kind: translate.KindKongConsumer},
		}}}
	}
	plugin := &unstructured.Unstructured{Object: map[string]any{"apiVersion": gv, "kind": translate.KindKongPlugin,
		"metadata": map[string]any{"name": authPlugin, "namespace": appNamespace, "uid": "plugin-" + authPlugin, "resourceVersion": "1"},
		"plugin":   "key-auth", "config": map[string]any{"key_names": []any{authHeader}}}}
	consumer := &unstructured.Unstructured{Object: map[string]any{"apiVersion": gv, "kind": translate.KindKongConsumer,
		"metadata": map[string]any{"name": authConsumer, "namespace": appNamespace, "uid": "consumer-" + authConsumer, "resourceVersion": "1",
			"annotations": map[string]any{"kubernetes.io/ingress.class": ingressClass}},
		"username": authConsumer, "credentials": []any{authSecret}}}
	group := func(resource string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: translate.KongGroup, Version: translate.KongVersion, Resource: resource}
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		group("kongplugins"): "KongPluginList", group("kongconsumers"): "KongConsumerList",
	}, plugin, consumer)
}
