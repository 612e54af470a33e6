// Package ingressclass decides which Ingresses belong to this controller.
//
// The rules, in order: spec.ingressClassName decides when set; otherwise the
// legacy kubernetes.io/ingress.class annotation decides when set; otherwise
// (neither set) the Ingress is ours only if our IngressClass is marked as the
// cluster default.
package ingressclass

import networkingv1 "k8s.io/api/networking/v1"

// ControllerName is the spec.controller of IngressClasses served by Kong
// ingress controllers; konductor shares it so existing classes keep working.
const ControllerName = "ingress-controllers.konghq.com/kong"

// Annotations consulted by the rules.
const (
	AnnotationIngressClass = "kubernetes.io/ingress.class"
	AnnotationIsDefault    = "ingressclass.kubernetes.io/is-default-class"
)

// IsOurDefault reports whether ic is our class (named class, controlled by
// ControllerName) and is marked as the cluster's default class.
func IsOurDefault(ic *networkingv1.IngressClass, class string) bool {
	return ic != nil &&
		ic.Name == class &&
		ic.Spec.Controller == ControllerName &&
		ic.Annotations[AnnotationIsDefault] == "true"
}

// AnyOurDefault reports whether one of classes is our default class.
func AnyOurDefault(classes []*networkingv1.IngressClass, class string) bool {
	for _, ic := range classes {
		if IsOurDefault(ic, class) {
			return true
		}
	}
	return false
}

// Matches reports whether ing belongs to class. ourClassIsDefault tells
// whether our IngressClass is the cluster default (see IsOurDefault).
func Matches(ing *networkingv1.Ingress, class string, ourClassIsDefault bool) bool {
	if ing == nil {
		return false
	}
	if n := ing.Spec.IngressClassName; n != nil && *n != "" {
		return *n == class
	}
	if a, ok := ing.Annotations[AnnotationIngressClass]; ok && a != "" {
		return a == class
	}
	return ourClassIsDefault
}
