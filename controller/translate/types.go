package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"konductor.dev/controller/translate/declarative"
)

// ManagedByTag is carried by every entity konductor creates, so DB-mode sync
// can list exactly the entities it owns.
const ManagedByTag = "managed-by-konductor"

// Config is the Kong declarative document produced by Translate.
type Config = declarative.Config

// Snapshot is the input of one translation. Callers pass the objects as they
// are; Translate neither mutates nor retains them.
type Snapshot struct {
	Ingresses      []*networkingv1.Ingress // already filtered to our ingress class
	Services       []*Service              // ServicesOf converts API objects
	EndpointSlices []*EndpointSlice        // EndpointSlicesOf converts API objects
	Secrets        []*corev1.Secret        // TLS secrets and plugin config secrets; looked up by namespace/name
	Plugins        []*Plugin               // KongPlugins and KongClusterPlugins; PluginOf reads them
	Consumers      []*Consumer             // KongConsumers of our class; ConsumerOf reads them
}

// Options tune the translation. The zero value is the documented default.
type Options struct {
	// ExtraTags are appended to the tags of every entity, for example to tell
	// apart several controllers that share one Kong.
	ExtraTags []string
	// RouterFlavor is Kong's router_flavor (GET / configuration.
	// router_flavor). Under RouterFlavorExpressions routes are ATC
	// expression routes, which match a wildcard host in exactly one label
	// as the Ingress API says; under any other flavor (or none) they are
	// traditional routes, which Kong matches at any depth, and each
	// Ingress with a wildcard host gets a WildcardHostDepth warning.
	RouterFlavor string
}

// ObjectRef names one Kubernetes object.
type ObjectRef struct {
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid,omitempty"`
}

func (r ObjectRef) String() string { return r.Kind + " " + r.Namespace + "/" + r.Name }

func compareRefs(a, b ObjectRef) int {
	if c := strings.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return strings.Compare(string(a.UID), string(b.UID))
}

// Reasons reported in ObjectError.Reason.
const (
	ReasonServiceNotFound     = "ServiceNotFound"
	ReasonServicePortNotFound = "ServicePortNotFound"
	ReasonInvalidBackend      = "InvalidBackend"
	ReasonInvalidPath         = "InvalidPath"
	ReasonInvalidHost         = "InvalidHost"
	ReasonInvalidTLSSecret    = "InvalidTLSSecret"
	ReasonConflictingRule     = "ConflictingRule"
	ReasonConflictingSNI      = "ConflictingSNI"
	ReasonInvalidAnnotation   = "InvalidAnnotation"
	// ReasonWildcardHostDepth warns that a wildcard host matches more
	// than the Ingress API says; the rule still applies.
	ReasonWildcardHostDepth = "WildcardHostDepth"
)

// ObjectError reports one problem with one object, precise enough to be put
// on the object as an Event or condition.
type ObjectError struct {
	Object  ObjectRef `json:"object"`
	Field   string    `json:"field"`  // e.g. "spec.rules[0].http.paths[1].backend.service.port"
	Reason  string    `json:"reason"` // CamelCase, one of the Reason constants
	Message string    `json:"message"`
}

func (e ObjectError) Error() string {
	return fmt.Sprintf("%s: %s: %s: %s", e.Object, e.Field, e.Reason, e.Message)
}

func compareErrors(a, b ObjectError) int {
	return cmp.Or(compareRefs(a.Object, b.Object), cmp.Compare(a.Field, b.Field),
		cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Message, b.Message))
}

// Result is the outcome of Translate.
type Result struct {
	Config     *Config       // the declarative document, format 3.0
	Body       []byte        // canonical JSON of Config for POST /config
	Hash       string        // hex sha256 of Body
	Errors     []ObjectError // sorted, without duplicates
	Translated []ObjectRef   // Ingresses with at least one route in Config, sorted
}

func sortedErrors(errs []ObjectError) []ObjectError {
	slices.SortFunc(errs, compareErrors)
	return slices.CompactFunc(errs, func(a, b ObjectError) bool { return compareErrors(a, b) == 0 })
}
