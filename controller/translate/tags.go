package translate

import (
	"crypto/sha1"
	"strings"

	"github.com/google/uuid"
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
func (t *translator) tagsFor(ref ObjectRef) []*string {
	values := make([]string, 0, 5+len(t.opts.ExtraTags))
	values = append(values, tagName+ref.Name, tagNamespace+ref.Namespace, tagKind+ref.Kind)
	if ref.UID != "" {
		values = append(values, tagUID+string(ref.UID))
	}
	values = append(values, ManagedByTag)
	values = append(values, t.opts.ExtraTags...)
	tags := make([]*string, len(values))
	for i := range values {
		tags[i] = &values[i]
	}
	return tags
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

// idSpace is the UUIDv5 namespace for entity ids. Changing it changes every
// id konductor has ever written, so it is fixed forever.
var idSpace = uuid.MustParse("5f0c7a4e-3b8d-4c1e-9a62-6b1f0d2e8c47")

// entityID derives a stable id, the UUIDv5 of "<entity>/<key>", so the same
// entity keeps its id across translations and controller restarts. The
// scratch buffer is reused because tens of thousands of ids are made per
// translation.
func (t *translator) entityID(entity, key string) string {
	t.idBuf = append(append(append(append(t.idBuf[:0], idSpace[:]...), entity...), '/'), key...)
	sum := sha1.Sum(t.idBuf)
	var id uuid.UUID
	copy(id[:], sum[:])
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id.String()
}
