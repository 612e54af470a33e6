package translate

import (
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

const (
	tagName      = "k8s-name:"
	tagNamespace = "k8s-namespace:"
	tagKind      = "k8s-kind:"
	tagUID       = "k8s-uid:"
)

// tagsFor returns the tags naming ref. Callers give all the entities they
// derive from one object the same slice: that saves allocations, and lets
// the encoder render the list once. Treat the tags as read-only.
//
// extra are the object's own konghq.com/tags, placed last.
func (t *translator) tagsFor(ref ObjectRef, extra ...string) []*string {
	n := 4 + len(t.opts.ExtraTags) + len(extra)
	if ref.UID != "" {
		n++
	}
	values := t.strings.take(n)
	// The name and uid tags are the only ones unique to the object; the
	// namespace tag is shared by all objects of the namespace.
	tb := &t.text
	tb.reset()
	tb.buf = append(append(tb.buf, tagName...), ref.Name...)
	tb.end()
	tb.buf = append(append(tb.buf, tagUID...), ref.UID...)
	tb.end()
	own := tb.cut()
	values[0], values[1], values[2] = own.at(0), t.namespaceTag(ref.Namespace), kindTag(ref.Kind)
	i := 3
	if ref.UID != "" {
		values[i] = own.at(1)
		i++
	}
	values[i] = ManagedByTag
	copy(values[i+1:], t.opts.ExtraTags)
	copy(values[i+1+len(t.opts.ExtraTags):], extra)
	tags := t.stringPtrs.take(n)
	for i := range values {
		tags[i] = &values[i]
	}
	return tags
}

func (t *translator) namespaceTag(namespace string) string {
	tag, ok := t.nsTags[namespace]
	if !ok {
		tag = tagNamespace + namespace
		t.nsTags[namespace] = tag
	}
	return tag
}

func kindTag(kind string) string {
	switch kind {
	case "Ingress":
		return tagKind + "Ingress"
	case "Service":
		return tagKind + "Service"
	case KindKongPlugin:
		return tagKind + KindKongPlugin
	case KindKongClusterPlugin:
		return tagKind + KindKongClusterPlugin
	case KindKongConsumer:
		return tagKind + KindKongConsumer
	}
	return tagKind + kind
}

// ObjectFromTags recovers the Kubernetes object from an entity's tags, used
// to map Kong's flattened errors back to objects. It reports false when the
// tags do not name an object (no kind or no name).
func ObjectFromTags(tags []string) (ObjectRef, bool) {
	var ref ObjectRef
	for _, tag := range tags {
		switch {
		case strings.HasPrefix(tag, tagName):
			ref.Name = tag[len(tagName):]
		case strings.HasPrefix(tag, tagNamespace):
			ref.Namespace = tag[len(tagNamespace):]
		case strings.HasPrefix(tag, tagKind):
			ref.Kind = tag[len(tagKind):]
		case strings.HasPrefix(tag, tagUID):
			ref.UID = types.UID(tag[len(tagUID):])
		}
	}
	return ref, ref.Kind != "" && ref.Name != ""
}
