package kube

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// EchoHost is the host the traffic asks for. Each propagation probe routes
// a host of its own, so that only the new route can answer it.
const EchoHost = "echo.chaos.test"

// echoObjects is the backend: an echo Deployment behind a Service and an
// Ingress routing EchoHost's "/" to it through Kong.
func (t *Target) echoObjects() []*unstructured.Unstructured {
	labels := map[string]any{"app.kubernetes.io/name": "echo"}
	field := func(path string) map[string]any {
		return map[string]any{"fieldRef": map[string]any{"fieldPath": path}}
	}
	return []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": EchoNamespace}}},
		{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"namespace": EchoNamespace, "name": "echo", "labels": labels},
			"spec": map[string]any{
				"replicas": int64(2),
				"selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{"containers": []any{map[string]any{
						"name": "echo", "image": t.o.EchoImage,
						"env": []any{
							map[string]any{"name": "PORT", "value": "8080"},
							map[string]any{"name": "STATUS_PORT", "value": "8180"},
							map[string]any{"name": "POD_NAME", "valueFrom": field("metadata.name")},
							map[string]any{"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
						},
						"ports": []any{
							map[string]any{"name": "http", "containerPort": int64(8080)},
							map[string]any{"name": "status", "containerPort": int64(8180)},
						},
						"readinessProbe": map[string]any{
							"httpGet":       map[string]any{"path": "/status/ready", "port": "status"},
							"periodSeconds": int64(2),
						},
						"resources": map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "16Mi"}},
					}}},
				},
			},
		}},
		{Object: map[string]any{
			"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"namespace": EchoNamespace, "name": "echo"},
			"spec": map[string]any{
				"selector": labels,
				"ports":    []any{map[string]any{"name": "http", "port": int64(80), "targetPort": "http"}},
			},
		}},
		ingressObject("echo", EchoHost),
	}
}

// ingressObject routes exactly "/" of host to the echo Service (which
// answers only "/").
func ingressObject(name, host string) *unstructured.Unstructured {
	rule := map[string]any{"http": map[string]any{"paths": []any{map[string]any{
		"path": "/", "pathType": "Exact",
		"backend": map[string]any{"service": map[string]any{"name": "echo", "port": map[string]any{"number": int64(80)}}},
	}}}}
	rule["host"] = host
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
		"metadata": map[string]any{"namespace": EchoNamespace, "name": name},
		"spec":     map[string]any{"ingressClassName": "kong", "rules": []any{rule}},
	}}
}
