package translate

import (
	"cmp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"konductor.dev/controller/translate/declarative"
)

// Reasons for plugin problems.
const (
	ReasonPluginNotFound     = "PluginNotFound"
	ReasonInvalidPlugin      = "InvalidPlugin"
	ReasonUnknownPlugin      = "UnknownPlugin"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonConflictingPlugin  = "ConflictingPlugin"
	ReasonEnterpriseOnly     = "EnterpriseOnly"
	ReasonUnsupportedFeature = "UnsupportedFeature"
)

// bundledPlugins are the plugins Kong 3.9 (open source) ships and enables
// by default; Kong refuses a whole declarative document that configures
// any other, so such a plugin is reported and left out instead.
var bundledPlugins = map[string]bool{
	"acl": true, "acme": true, "ai-prompt-decorator": true, "ai-prompt-guard": true,
	"ai-prompt-template": true, "ai-proxy": true, "ai-request-transformer": true,
	"ai-response-transformer": true, "aws-lambda": true, "azure-functions": true,
	"basic-auth": true, "bot-detection": true, "correlation-id": true, "cors": true,
	"datadog": true, "file-log": true, "grpc-gateway": true, "grpc-web": true,
	"hmac-auth": true, "http-log": true, "ip-restriction": true, "jwt": true,
	"key-auth": true, "ldap-auth": true, "loggly": true, "oauth2": true,
	"opentelemetry": true, "post-function": true, "pre-function": true,
	"prometheus": true, "proxy-cache": true, "rate-limiting": true, "redirect": true,
	"request-size-limiting": true, "request-termination": true,
	"request-transformer": true, "response-ratelimiting": true,
	"response-transformer": true, "session": true, "standard-webhooks": true,
	"statsd": true, "syslog": true, "tcp-log": true, "udp-log": true, "zipkin": true,
}

// pluginProtocols are the values the CRDs allow in protocols.
var pluginProtocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", "ws", "wss"}

// pluginEntry is one KongPlugin or KongClusterPlugin as translation uses
// it: checked once, however many objects attach it.
type pluginEntry struct {
	p         *Plugin
	checked   bool
	ok        bool
	config    *declarative.RawObject // nil, or raw
	raw       declarative.RawObject
	enabled   bool
	protocols []string
	tags      []*string
	attached  int // entities made from it; above one, instance names get a suffix
}

// pluginsOf resolves the konghq.com/plugins annotation of owner: each name
// is a KongPlugin of the owner's namespace or, failing that, a
// KongClusterPlugin. Names that resolve to nothing usable, and a second
// plugin of the same Kong plugin, are reported on owner and left out.
func (t *translator) pluginsOf(owner ObjectRef, annotations map[string]string) []*pluginEntry {
	v, ok := annotations[AnnotationPlugins]
	if !ok {
		return nil
	}
	a := &annotationErrors{ref: owner}
	out := t.pluginLists.take(strings.Count(v, ",") + 1)[:0]
	for rest := v; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, ",")
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		e := t.plugins[nsName{owner.Namespace, name}]
		if e == nil {
			e = t.plugins[nsName{"", name}]
		}
		if e == nil {
			a.errs = append(a.errs, ObjectError{Object: owner, Field: "metadata.annotations[" + AnnotationPlugins + "]",
				Reason: ReasonPluginNotFound, Message: "no KongPlugin " + owner.Namespace + "/" + name + " or KongClusterPlugin " + name + "; not attached"})
			continue
		}
		if !t.checkPlugin(e) {
			a.errs = append(a.errs, ObjectError{Object: owner, Field: "metadata.annotations[" + AnnotationPlugins + "]",
				Reason: ReasonInvalidPlugin, Message: e.p.Ref().String() + " is invalid (see its events); not attached"})
			continue
		}
		if i := slices.IndexFunc(out, func(o *pluginEntry) bool { return o.p.PluginName == e.p.PluginName }); i >= 0 {
			a.errs = append(a.errs, ObjectError{Object: owner, Field: "metadata.annotations[" + AnnotationPlugins + "]",
				Reason: ReasonConflictingPlugin, Message: e.p.Ref().String() + " configures plugin " + e.p.PluginName + ", as " + out[i].p.Ref().String() + " listed before it does; not attached"})
			continue
		}
		out = append(out, e)
	}
	t.errs = append(t.errs, a.errs...)
	if len(out) == 0 {
		return nil
	}
	return out
}

// checkPlugin validates a plugin object once, reporting its problems on
// it, and reports whether it can be configured.
func (t *translator) checkPlugin(e *pluginEntry) bool {
	if e.checked {
		return e.ok
	}
	e.checked = true
	p, ref := e.p, e.p.Ref()
	switch {
	case p.PluginName == "":
		t.report(ref, "plugin", ReasonInvalidPlugin, "the Kong plugin name is required")
		return false
	case !bundledPlugins[p.PluginName]:
		t.report(ref, "plugin", ReasonUnknownPlugin, "%q is not a plugin bundled with Kong", p.PluginName)
		return false
	case p.ConfigErr != "":
		t.report(ref, "config", ReasonInvalidPlugin, "config: %s", p.ConfigErr)
		return false
	case p.Config != nil && p.ConfigFrom != nil:
		t.report(ref, "configFrom", ReasonInvalidPlugin, "config and configFrom are mutually exclusive")
		return false
	}
	config := p.Config
	if p.ConfigFrom != nil {
		var ok bool
		if config, ok = t.configFromSecret(p, ref); !ok {
			return false
		}
	}
	for _, proto := range p.Protocols {
		if !slices.Contains(pluginProtocols, proto) {
			t.report(ref, "protocols", ReasonInvalidPlugin, "%q is not one of %s", proto, strings.Join(pluginProtocols, ", "))
			return false
		}
	}
	if p.Ordering {
		t.report(ref, "ordering", ReasonEnterpriseOnly, "plugin ordering needs Kong Enterprise; ignored")
	}
	if p.ConfigPatches {
		t.report(ref, "configPatches", ReasonUnsupportedFeature, "configPatches are not supported; ignored")
	}
	if config != nil {
		e.raw.Set(config)
		e.config = &e.raw
	}
	if len(p.Protocols) > 0 {
		e.protocols = slices.Sorted(slices.Values(p.Protocols))
		e.protocols = slices.Compact(e.protocols)
	}
	e.enabled = !p.Disabled
	e.tags = t.tagsFor(ref)
	e.ok = true
	return true
}

// configFromSecret reads a plugin's config from a Secret key holding a
// JSON or YAML object. Messages never quote the Secret's value.
func (t *translator) configFromSecret(p *Plugin, ref ObjectRef) ([]byte, bool) {
	r := p.ConfigFrom
	ns := p.Namespace
	if p.Cluster {
		ns = r.Namespace
	}
	const field = "configFrom.secretKeyRef"
	if r.Name == "" || r.Key == "" || ns == "" {
		t.report(ref, field, ReasonInvalidPlugin, "name and key (and, for a KongClusterPlugin, namespace) are required")
		return nil, false
	}
	sec := t.secrets[nsName{ns, r.Name}]
	if sec == nil || sec.Labels[LabelSecret] != "true" {
		t.report(ref, field+".name", ReasonSecretNotFound, "Secret %s/%s labelled %s: \"true\" not found", ns, r.Name, LabelSecret)
		return nil, false
	}
	v, ok := sec.Data[r.Key]
	if !ok {
		t.report(ref, field+".key", ReasonSecretNotFound, "Secret %s/%s has no key %q", ns, r.Name, r.Key)
		return nil, false
	}
	js, err := yaml.YAMLToJSON(v)
	var config []byte
	var problem string
	if err != nil {
		problem = "not valid JSON or YAML"
	} else if config, problem = canonicalObject(js); strings.HasPrefix(problem, "not valid") {
		problem = "not valid JSON or YAML" // the parser's message may quote the value
	}
	if problem != "" {
		t.report(ref, field+".key", ReasonInvalidPlugin, "the value of key %q of Secret %s/%s is %s", r.Key, ns, r.Name, problem)
		return nil, false
	}
	return config, true
}

// globalPlugins decides the KongClusterPlugins labelled global: "true":
// by name, the first of each Kong plugin wins.
func (t *translator) globalPlugins() {
	var globals []*pluginEntry
	for _, e := range t.plugins {
		if e.p.Cluster && e.p.Global {
			globals = append(globals, e)
		}
	}
	slices.SortFunc(globals, func(a, b *pluginEntry) int { return cmp.Compare(a.p.Name, b.p.Name) })
	taken := map[string]*pluginEntry{}
	for _, e := range globals {
		if !t.checkPlugin(e) {
			continue
		}
		if first := taken[e.p.PluginName]; first != nil {
			t.report(e.p.Ref(), "metadata.labels[global]", ReasonConflictingPlugin,
				"%s already configures plugin %s globally; not applied", first.p.Ref(), e.p.PluginName)
			continue
		}
		taken[e.p.PluginName] = e
		e.attached++
		t.globals = append(t.globals, e)
	}
}

// pluginOut is a plugin entity with the key it is sorted by.
type pluginOut struct {
	key    string
	plugin *declarative.Plugin
}

type pluginBlock struct {
	plugin                                declarative.Plugin
	id, name, instanceName, parent, owner string
	enabled                               bool
}

// attachPlugin makes the entity of e on a parent (kind "route", "service"
// or "consumer", by id; kind "" for a global plugin). Its id is the UUIDv5
// of <kind>:<parent name>:<plugin>, as Kong allows one plugin of a name
// per parent.
func (bd *builder) attachPlugin(e *pluginEntry, kind, parentName, parentID string) {
	bd.ids.begin("plugins")
	bd.ids.buf = append(append(append(append(append(bd.ids.buf, kind...), ':'), parentName...), ':'), e.p.PluginName...)
	tb := &bd.text
	tb.reset()
	tb.buf = append(tb.buf, bd.ids.key()...)
	tb.end()
	tb.buf = bd.ids.append(tb.buf)
	tb.end()
	if e.p.InstanceName != "" {
		tb.buf = append(tb.buf, e.p.InstanceName...)
		if e.attached > 1 {
			// Kong wants instance names unique; one KongPlugin attached to
			// several parents gets one per parent, stable across runs.
			id := tb.buf[tb.ends[0]:tb.ends[1]]
			tb.buf = append(append(tb.buf, '-'), id[:8]...)
		}
		tb.end()
	}
	text := tb.cut()

	b := bd.pluginBlocks.one()
	b.id, b.name, b.parent, b.enabled = text.at(1), e.p.PluginName, parentID, e.enabled
	p := &b.plugin
	p.ID, p.Name, p.Enabled, p.Config, p.Tags = &b.id, &b.name, &b.enabled, e.config, e.tags
	if e.p.InstanceName != "" {
		b.instanceName = text.at(2)
		p.InstanceName = &b.instanceName
	}
	p.Protocols = bd.stringList(e.protocols)
	switch kind {
	case "route":
		p.Route = &b.parent
	case "service":
		p.Service = &b.parent
	case "consumer":
		p.Consumer = &b.parent
	}
	bd.plugins = append(bd.plugins, pluginOut{text.at(0), p})
}

// sortedPlugins lists every plugin entity by key; nil when there are none.
func sortedPlugins(outs []pluginOut) []*declarative.Plugin {
	if len(outs) == 0 {
		return nil
	}
	slices.SortFunc(outs, func(a, b pluginOut) int { return strings.Compare(a.key, b.key) })
	plugins := make([]*declarative.Plugin, len(outs))
	for i, o := range outs {
		plugins[i] = o.plugin
	}
	return plugins
}
