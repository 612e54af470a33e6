package translate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// DecodeYAML reads the objects of a snapshot from a multi-document YAML bundle of
// Ingresses, Services, EndpointSlices, Secrets, KongPlugins,
// KongClusterPlugins and KongConsumers, as kubectl would apply
// it, so a bundle can be translated without a cluster (the golden tests'
// inputs are such bundles). Secret stringData is folded into data, as the
// API server does. Other kinds are an error naming the document.
func DecodeYAML(raw []byte) (Objects, error) {
	var snap Objects
	for i, doc := range docSeparator.Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return Objects{}, fmt.Errorf("document %d: %w", i, err)
		}
		var meta struct{ Kind string }
		if err := json.Unmarshal(js, &meta); err != nil {
			return Objects{}, fmt.Errorf("document %d: %w", i, err)
		}
		var into any
		switch meta.Kind {
		case "Ingress":
			obj := &networkingv1.Ingress{}
			snap.Ingresses, into = append(snap.Ingresses, obj), obj
		case "Service":
			obj := &corev1.Service{}
			snap.Services, into = append(snap.Services, obj), obj
		case "EndpointSlice":
			obj := &discoveryv1.EndpointSlice{}
			snap.EndpointSlices, into = append(snap.EndpointSlices, obj), obj
		case "Secret":
			obj := &corev1.Secret{}
			snap.Secrets, into = append(snap.Secrets, obj), obj
		case KindKongPlugin, KindKongClusterPlugin:
			if _, err := PluginFromJSON(js); err != nil {
				return Objects{}, fmt.Errorf("document %d (%s): %w", i, meta.Kind, err)
			}
			obj := &unstructured.Unstructured{}
			snap.Plugins, into = append(snap.Plugins, obj), obj
		case KindKongConsumer:
			if _, err := ConsumerFromJSON(js); err != nil {
				return Objects{}, fmt.Errorf("document %d (%s): %w", i, meta.Kind, err)
			}
			obj := &unstructured.Unstructured{}
			snap.Consumers, into = append(snap.Consumers, obj), obj
		default:
			return Objects{}, fmt.Errorf("document %d: kind %q is not an Ingress, Service, EndpointSlice, Secret, %s, %s or %s",
				i, meta.Kind, KindKongPlugin, KindKongClusterPlugin, KindKongConsumer)
		}
		if err := json.Unmarshal(js, into); err != nil {
			return Objects{}, fmt.Errorf("document %d (%s): %w", i, meta.Kind, err)
		}
	}
	for _, s := range snap.Secrets {
		for k, v := range s.StringData {
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	}
	return snap, nil
}
