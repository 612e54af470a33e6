package manager

import (
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"konductor.dev/controller/translate"
)

// TestKongPluginReachesKong checks the wiring of Config.Dynamic: a
// KongPlugin attached by annotation, and a KongConsumer of our class, are
// read from the API server and pushed to Kong with the routes.
func TestKongPluginReachesKong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ing := ingress("web", "echo")
		ing.Annotations = map[string]string{translate.AnnotationPlugins: "auth"}
		gv := translate.KongGroup + "/" + translate.KongVersion
		plugin := &unstructured.Unstructured{Object: map[string]any{"apiVersion": gv, "kind": translate.KindKongPlugin,
			"metadata": map[string]any{"name": "auth", "namespace": "default", "resourceVersion": "1"},
			"plugin":   "key-auth"}}
		consumer := &unstructured.Unstructured{Object: map[string]any{"apiVersion": gv, "kind": translate.KindKongConsumer,
			"metadata": map[string]any{"name": "alice", "namespace": "default", "resourceVersion": "1",
				"annotations": map[string]any{"kubernetes.io/ingress.class": "kong"}},
			"username": "alice"}}
		group := func(resource string) schema.GroupVersionResource {
			return schema.GroupVersionResource{Group: translate.KongGroup, Version: translate.KongVersion, Resource: resource}
		}
		dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
			group("kongplugins"): "KongPluginList", group("kongconsumers"): "KongConsumerList",
		}, plugin, consumer)

		served := func(c *Config) {
			c.Client.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{GroupVersion: gv,
				APIResources: []metav1.APIResource{
					{Name: "kongplugins", Namespaced: true, Kind: translate.KindKongPlugin},
					{Name: "kongconsumers", Namespaced: true, Kind: translate.KindKongConsumer},
				}}}
			c.Dynamic = dyn
		}
		w := newWorldWith(t, worldSpec{adjust: served}, service("echo"), endpointSlice("echo"), ing)
		w.start()
		defer w.stop()
		settle(5 * time.Second)

		w.kong.mu.Lock()
		var doc struct {
			Plugins   []struct{ Name, Route string }
			Consumers []struct{ Username string }
		}
		if len(w.kong.pushes) == 0 {
			w.kong.mu.Unlock()
			t.Fatal("nothing pushed")
		}
		err := json.Unmarshal(w.kong.pushes[len(w.kong.pushes)-1], &doc)
		w.kong.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.Plugins) != 1 || doc.Plugins[0].Name != "key-auth" || doc.Plugins[0].Route == "" {
			t.Errorf("plugins pushed %+v, want key-auth on the route of web", doc.Plugins)
		}
		if len(doc.Consumers) != 1 || doc.Consumers[0].Username != "alice" {
			t.Errorf("consumers pushed %+v, want alice", doc.Consumers)
		}
	})
}
