package translate

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// The configuration.konghq.com/v1 kinds konductor reads, with the Kong
// Ingress Controller's schema so that its users' manifests apply unchanged.
const (
	KongGroup             = "configuration.konghq.com"
	KongVersion           = "v1"
	KindKongPlugin        = "KongPlugin"
	KindKongClusterPlugin = "KongClusterPlugin"

	// LabelGlobal on a KongClusterPlugin applies it to every request.
	LabelGlobal = "global"
	// AnnotationPlugins on an Ingress or a Service lists the KongPlugins
	// (or KongClusterPlugins) attached to its routes or services.
	AnnotationPlugins = AnnotationPrefix + "plugins"

	// LabelSecret: "true" marks a Secret that holds a plugin's configFrom.
	// konductor caches only Secrets it has reason to read: TLS Secrets,
	// and Secrets labelled so (or with LabelCredential).
	LabelSecret = "konghq.com/secret"
	// LabelCredential names the kind of a KongConsumer credential Secret.
	LabelCredential = "konghq.com/credential"
)

// Plugin is what translation reads of a KongPlugin or a KongClusterPlugin.
// PluginOf makes one from the object as served (or as written in YAML).
type Plugin struct {
	Namespace string // empty for a KongClusterPlugin
	Name      string
	UID       types.UID
	Cluster   bool // a KongClusterPlugin
	Global    bool // a KongClusterPlugin labelled global: "true"

	PluginName   string // the Kong plugin, e.g. key-auth
	InstanceName string
	// Config is the plugin's config as compact JSON with sorted keys (or
	// nil); ConfigErr says why the config written was not a JSON object.
	Config     []byte
	ConfigErr  string
	ConfigFrom *SecretKeyRef
	Disabled   bool
	Protocols  []string
	// Ordering is set when the object asks for a plugin order, which only
	// Kong Enterprise honours.
	Ordering bool
	// ConfigPatches is set when the object has configPatches, which
	// konductor does not apply.
	ConfigPatches bool
}

// SecretKeyRef names one key of a Secret. Namespace is set only for
// KongClusterPlugins; a KongPlugin reads Secrets of its own namespace.
type SecretKeyRef struct {
	Namespace string
	Name      string
	Key       string
}

// Ref names the object.
func (p *Plugin) Ref() ObjectRef {
	if p.Cluster {
		return ObjectRef{Kind: KindKongClusterPlugin, Name: p.Name, UID: p.UID}
	}
	return ObjectRef{Kind: KindKongPlugin, Namespace: p.Namespace, Name: p.Name, UID: p.UID}
}

// pluginDoc is the JSON form of both kinds; their fields sit at the top
// level, beside metadata, not under a spec.
type pluginDoc struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		UID       types.UID         `json:"uid"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Plugin       string          `json:"plugin"`
	InstanceName string          `json:"instance_name"`
	Config       json.RawMessage `json:"config"`
	ConfigFrom   *struct {
		SecretKeyRef *struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			Key       string `json:"key"`
		} `json:"secretKeyRef"`
	} `json:"configFrom"`
	ConfigPatches []json.RawMessage `json:"configPatches"`
	Disabled      bool              `json:"disabled"`
	Protocols     []string          `json:"protocols"`
	Ordering      json.RawMessage   `json:"ordering"`
}

// PluginOf reads a KongPlugin or KongClusterPlugin served as an
// unstructured object.
func PluginOf(u *unstructured.Unstructured) (*Plugin, error) {
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return PluginFromJSON(raw)
}

// PluginFromJSON reads a KongPlugin or KongClusterPlugin from its JSON
// form (an unstructured object's MarshalJSON, or YAML turned into JSON).
func PluginFromJSON(raw []byte) (*Plugin, error) {
	var d pluginDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	if d.Kind != KindKongPlugin && d.Kind != KindKongClusterPlugin {
		return nil, fmt.Errorf("kind %q is not %s or %s", d.Kind, KindKongPlugin, KindKongClusterPlugin)
	}
	p := &Plugin{
		Namespace: d.Metadata.Namespace, Name: d.Metadata.Name, UID: d.Metadata.UID,
		Cluster:    d.Kind == KindKongClusterPlugin,
		PluginName: d.Plugin, InstanceName: d.InstanceName,
		Disabled: d.Disabled, Protocols: d.Protocols,
		Ordering:      len(d.Ordering) > 0 && !bytes.Equal(d.Ordering, []byte("null")),
		ConfigPatches: len(d.ConfigPatches) > 0,
	}
	if p.Cluster {
		p.Namespace = ""
		p.Global = d.Metadata.Labels[LabelGlobal] == "true"
	}
	if len(d.Config) > 0 && !bytes.Equal(d.Config, []byte("null")) {
		p.Config, p.ConfigErr = canonicalObject(d.Config)
	}
	if d.ConfigFrom != nil && d.ConfigFrom.SecretKeyRef != nil {
		r := d.ConfigFrom.SecretKeyRef
		p.ConfigFrom = &SecretKeyRef{Name: r.Name, Key: r.Key}
		if p.Cluster {
			p.ConfigFrom.Namespace = r.Namespace
		}
	}
	return p, nil
}

// canonicalObject re-renders a JSON object compactly with sorted keys, so
// that equal configs are equal bytes; a value that is not an object is
// refused with the reason.
func canonicalObject(raw []byte) ([]byte, string) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keeps 1e21 and large integers as written
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Sprintf("not valid JSON: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Sprintf("an object is required, got %s", jsonKind(v))
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err.Error()
	}
	return out, ""
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}
