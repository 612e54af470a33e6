// Package eventreport puts problems on the Kubernetes objects that caused
// them, as Warning Events: translation errors and entities Kong rejected.
//
// Each distinct problem is reported once while it persists. A problem that
// goes away and comes back is reported again, and Reset makes everything
// current be reported again (a newly elected replica calls it, because only
// the elected replica reports and the previous one may have missed some).
package eventreport

import (
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate"
)

// ReasonKongRejected is the Event reason for an entity Kong refused.
const ReasonKongRejected = "KongConfigurationRejected"

type key struct {
	ref                    translate.ObjectRef
	reason, field, message string
}

// Reporter emits deduplicated Warning Events. Safe for concurrent use.
type Reporter struct {
	recorder record.EventRecorder
	logger   *slog.Logger

	mu           sync.Mutex
	translation  map[key]bool
	rejectedHash string
	rejections   map[key]bool
}

// New returns a Reporter emitting through recorder.
func New(recorder record.EventRecorder, logger *slog.Logger) *Reporter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{recorder: recorder, logger: logger, translation: map[key]bool{}, rejections: map[key]bool{}}
}

// Reset forgets what was reported, so that the next calls report every
// current problem again.
func (r *Reporter) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.translation = map[key]bool{}
	r.rejections = map[key]bool{}
	r.rejectedHash = ""
}

// TranslationErrors reports the errors of the latest translation that were
// not reported yet and forgets those that are gone. It returns how many
// Events it emitted.
func (r *Reporter) TranslationErrors(errs []translate.ObjectError) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[key]bool, len(errs))
	emitted := 0
	for _, e := range errs {
		k := key{e.Object, e.Reason, e.Field, e.Message}
		next[k] = true
		if r.translation[k] {
			continue
		}
		msg := e.Message
		if e.Field != "" {
			msg = e.Field + ": " + e.Message
		}
		r.emit(e.Object, e.Reason, msg)
		emitted++
	}
	r.translation = next
	return emitted
}

// Rejections reports the entities Kong refused in the configuration with
// hash. The same rejection from several Kong replicas is reported once; a
// new hash starts a fresh set. It returns how many Events it emitted.
func (r *Reporter) Rejections(hash string, rs []kongsync.Rejection) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hash != r.rejectedHash {
		r.rejectedHash = hash
		r.rejections = map[key]bool{}
	}
	emitted := 0
	for _, rej := range rs {
		ref, ok := translate.ObjectFromTags(rej.Tags)
		what := rej.EntityType
		if rej.EntityName != "" {
			what += " " + rej.EntityName
		}
		msg := "Kong rejected " + what
		if rej.Field != "" {
			msg += " field " + rej.Field
		}
		msg += ": " + rej.Message
		if !ok {
			r.logger.Warn("Kong rejected an entity that names no Kubernetes object", "entity", what, "field", rej.Field, "message", rej.Message)
			continue
		}
		k := key{ref, ReasonKongRejected, rej.Field, msg}
		if r.rejections[k] {
			continue
		}
		r.rejections[k] = true
		r.emit(ref, ReasonKongRejected, msg)
		emitted++
	}
	return emitted
}

func (r *Reporter) emit(ref translate.ObjectRef, reason, message string) {
	r.logger.Warn("object problem", "object", ref.String(), "reason", reason, "message", message)
	r.recorder.Event(Reference(ref), corev1.EventTypeWarning, reason, message)
}

// Reference returns the ObjectReference an Event about ref points at.
func Reference(ref translate.ObjectRef) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		Kind:       ref.Kind,
		APIVersion: apiVersion(ref.Kind),
		Namespace:  ref.Namespace,
		Name:       ref.Name,
		UID:        ref.UID,
	}
}

func apiVersion(kind string) string {
	switch kind {
	case "Ingress", "IngressClass":
		return "networking.k8s.io/v1"
	case "EndpointSlice":
		return "discovery.k8s.io/v1"
	case "Service", "Secret", "Endpoints", "Pod":
		return "v1"
	case translate.KindKongPlugin, translate.KindKongClusterPlugin, "KongConsumer":
		return translate.KongGroup + "/" + translate.KongVersion
	}
	return ""
}
