package ingressclass

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ingress(className *string, annotation string) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "n"}}
	ing.Spec.IngressClassName = className
	if annotation != "" {
		ing.Annotations = map[string]string{AnnotationIngressClass: annotation}
	}
	return ing
}

func ptr(s string) *string { return &s }

func TestMatches(t *testing.T) {
	tests := []struct {
		name      string
		ing       *networkingv1.Ingress
		isDefault bool
		want      bool
	}{
		{"class name ours", ingress(ptr("kong"), ""), false, true},
		{"class name other", ingress(ptr("nginx"), ""), true, false},
		{"class name beats annotation", ingress(ptr("nginx"), "kong"), false, false},
		{"class name ours, annotation other", ingress(ptr("kong"), "nginx"), false, true},
		{"annotation ours", ingress(nil, "kong"), false, true},
		{"annotation other, we are default", ingress(nil, "nginx"), true, false},
		{"empty class name falls to annotation", ingress(ptr(""), "kong"), false, true},
		{"neither set, we are default", ingress(nil, ""), true, true},
		{"neither set, not default", ingress(nil, ""), false, false},
		{"empty class name, we are default", ingress(ptr(""), ""), true, true},
		{"nil ingress", nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Matches(tt.ing, "kong", tt.isDefault); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsOurDefault(t *testing.T) {
	class := func(name, controller, isDefault string) *networkingv1.IngressClass {
		ic := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
		ic.Spec.Controller = controller
		if isDefault != "" {
			ic.Annotations = map[string]string{AnnotationIsDefault: isDefault}
		}
		return ic
	}
	tests := []struct {
		name string
		ic   *networkingv1.IngressClass
		want bool
	}{
		{"ours and default", class("kong", ControllerName, "true"), true},
		{"ours not default", class("kong", ControllerName, ""), false},
		{"ours default false", class("kong", ControllerName, "false"), false},
		{"other name", class("kong-internal", ControllerName, "true"), false},
		{"other controller", class("kong", "k8s.io/ingress-nginx", "true"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsOurDefault(tt.ic, "kong"); got != tt.want {
				t.Errorf("IsOurDefault = %v, want %v", got, tt.want)
			}
		})
	}
	if !AnyOurDefault([]*networkingv1.IngressClass{class("nginx", "x", "true"), class("kong", ControllerName, "true")}, "kong") {
		t.Error("AnyOurDefault missed our default class")
	}
	if AnyOurDefault(nil, "kong") {
		t.Error("AnyOurDefault true for no classes")
	}
}
