package node

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"$(A)", "1"},
		{"x$(A)y$(B)z", "x1ytwoz"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"cost $5", "cost $5"},
		{"open $(A", "open $(A"},
		{"end $", "end $"},
	} {
		if got := expand(tc.in, vars); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	optional := true
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "web-1", Namespace: "shop", UID: "u-1", Labels: map[string]string{"app": "web"},
	}, Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "web"}}
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "shop"}, Data: map[string]string{"mode": "db", "level": "info"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pw", Namespace: "shop"}, Data: map[string][]byte{"password": []byte("s3cret")}},
	)
	c := &corev1.Container{
		Name:    "app",
		EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pw"}, Key: "password"}}},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: &optional}}},
			{Name: "URL", Value: "http://$(POD_IP):8000/$(POD_NAMESPACE)"},
		},
	}
	vars, order, err := containerEnv(context.Background(), client, pod, c, map[string]string{"KUBERNETES_SERVICE_HOST": "10.213.0.1"}, "10.213.0.7", "10.213.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.213.0.1", "CFG_level": "info", "CFG_mode": "db",
		"POD_NAME": "web-1", "POD_NAMESPACE": "shop", "POD_IP": "10.213.0.7", "APP": "web",
		"PW": "s3cret", "MAYBE": "", "URL": "http://10.213.0.7:8000/shop",
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	if len(vars) != len(want) {
		t.Errorf("got %d variables, want %d: %v", len(vars), len(want), vars)
	}
	if !slices.Equal(order[:3], []string{"KUBERNETES_SERVICE_HOST", "CFG_level", "CFG_mode"}) {
		t.Errorf("order = %v", order)
	}

	c.Env = append(c.Env, corev1.EnvVar{Name: "BAD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.unknown"}}})
	if _, _, err := containerEnv(context.Background(), client, pod, c, nil, "", "", nil); err == nil || err.Error() != `container app env BAD: fieldRef "spec.unknown" is not supported` {
		t.Errorf("unsupported fieldRef: err = %v", err)
	}
}
