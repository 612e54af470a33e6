package snapshot

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/controller/translate"
)

func kongObject(kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": translate.KongGroup + "/" + translate.KongVersion,
		"kind":       kind,
		"metadata":   map[string]any{"name": name, "uid": "uid-" + name, "resourceVersion": "1"},
	}}
	if ns != "" {
		u.SetNamespace(ns)
	}
	for k, v := range fields {
		u.Object[k] = v
	}
	return u
}

func withClass(u *unstructured.Unstructured, class string) *unstructured.Unstructured {
	u.SetAnnotations(map[string]string{"kubernetes.io/ingress.class": class})
	return u
}

func dynamicClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		kongPluginsResource:        "KongPluginList",
		kongClusterPluginsResource: "KongClusterPluginList",
		kongConsumersResource:      "KongConsumerList",
	}, objs...)
}

// serveKongCRDs makes the fake discovery answer as an API server with the
// Kong CRDs installed.
func serveKongCRDs(c *fake.Clientset) {
	c.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{
		GroupVersion: translate.KongGroup + "/" + translate.KongVersion,
		APIResources: []metav1.APIResource{
			{Name: "kongplugins", Namespaced: true, Kind: translate.KindKongPlugin},
			{Name: "kongclusterplugins", Kind: translate.KindKongClusterPlugin},
			{Name: "kongconsumers", Namespaced: true, Kind: translate.KindKongConsumer},
		},
	}}
}

func TestSnapshotReadsKongPluginsWhenServed(t *testing.T) {
	plugins := []runtime.Object{
		kongObject(translate.KindKongPlugin, "a", "auth", map[string]any{
			"plugin": "key-auth", "config": map[string]any{"key_names": []any{"apikey"}},
		}),
		kongObject(translate.KindKongClusterPlugin, "", "metrics", map[string]any{"plugin": "prometheus"}),
		withClass(kongObject(translate.KindKongConsumer, "a", "ours", map[string]any{"username": "ours", "credentials": []any{"key"}}), "kong"),
		withClass(kongObject(translate.KindKongConsumer, "a", "theirs", map[string]any{"username": "theirs"}), "nginx"),
		kongObject(translate.KindKongConsumer, "a", "classless", map[string]any{"username": "classless"}),
	}
	labelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "conf",
		Labels: map[string]string{translate.LabelSecret: "true", "team": "x"}}, Data: map[string][]byte{"config": []byte("{}")}}
	credential := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "key",
		Labels: map[string]string{translate.LabelCredential: "key-auth"}}, Data: map[string][]byte{"key": []byte("k")}}
	for _, served := range []bool{true, false} {
		t.Run(map[bool]string{true: "served", false: "no CRDs"}[served], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client := fake.NewClientset(append(objects(), labelled, credential)...)
				if served {
					serveKongCRDs(client)
				}
				c := start(t, Config{Client: client, Dynamic: dynamicClient(plugins...), IngressClass: "kong"})
				s := c.Snapshot()
				var got []string
				for _, p := range s.Plugins {
					got = append(got, p.Ref().String()+" "+p.PluginName+" "+string(p.Config))
				}
				slices.Sort(got)
				var want []string
				if served {
					want = []string{"KongClusterPlugin /metrics prometheus ", `KongPlugin a/auth key-auth {"key_names":["apikey"]}`}
				}
				if !slices.Equal(got, want) {
					t.Errorf("plugins %q, want %q", got, want)
				}
				got = nil
				for _, kc := range s.Consumers {
					got = append(got, kc.Ref().String()+" "+kc.Username+" "+strings.Join(kc.Credentials, ","))
				}
				want = nil
				if served {
					want = []string{"KongConsumer a/ours ours key"}
				}
				if !slices.Equal(got, want) {
					t.Errorf("consumers %q, want %q (ours by class annotation; ours is not the default class)", got, want)
				}
				if got := names(s.Secrets); !slices.Equal(got, []string{"a/cert", "a/conf", "a/key"}) {
					t.Errorf("secrets %v (want TLS and labelled ones, each once)", got)
				}
				for _, sec := range s.Secrets {
					if sec.Name == "conf" && (string(sec.Data["config"]) != "{}" || sec.Labels["team"] != "" || sec.Labels[translate.LabelSecret] != "true") {
						t.Errorf("labelled Secret cached as %+v", sec)
					}
				}
			})
		})
	}
}
