package node

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// fieldValue resolves a downward-API field path of pod, as the kubelet does
// for env valueFrom.fieldRef.
func fieldValue(pod *corev1.Pod, podIP, hostIP, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	for prefix, m := range map[string]map[string]string{
		"metadata.labels":      pod.Labels,
		"metadata.annotations": pod.Annotations,
	} {
		if key, ok := strings.CutPrefix(path, prefix+"['"); ok {
			key, ok = strings.CutSuffix(key, "']")
			if ok {
				return m[key], nil
			}
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}

// expand replaces $(NAME) with NAME's value from vars, leaves unknown
// references alone, and turns $$ into $ — the container runtime's rules for
// env values, command and args.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// containerEnv builds a container's environment in the kubelet's order:
// service-link and API-server variables, envFrom, then env (later entries
// win, and may refer to earlier ones with $(NAME)). allocatable is the
// node's, for resourceFieldRef limits the container leaves unset.
func containerEnv(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, c *corev1.Container, base map[string]string, podIP, hostIP string, allocatable corev1.ResourceList) (vars map[string]string, order []string, err error) {
	vars = map[string]string{}
	set := func(k, v string) {
		if _, seen := vars[k]; !seen {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, k := range sortedKeys(base) {
		set(k, base[k])
	}
	for _, from := range c.EnvFrom {
		data, err := envSource(ctx, client, pod.Namespace, from)
		if err != nil {
			return nil, nil, fmt.Errorf("container %s envFrom: %w", c.Name, err)
		}
		for _, k := range sortedKeys(data) {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, err := envValueFrom(ctx, client, pod, c, e, podIP, hostIP, allocatable)
		if err != nil {
			return nil, nil, fmt.Errorf("container %s env %s: %w", c.Name, e.Name, err)
		}
		set(e.Name, v)
	}
	return vars, order, nil
}

func envValueFrom(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, c *corev1.Container, e corev1.EnvVar, podIP, hostIP string, allocatable corev1.ResourceList) (string, error) {
	src := e.ValueFrom
	switch {
	case src.FieldRef != nil:
		return fieldValue(pod, podIP, hostIP, src.FieldRef.FieldPath)
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", optional(ref.Optional, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			return "", optional(ref.Optional, fmt.Errorf("configmap %s has no key %q", ref.Name, ref.Key))
		}
		return v, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", optional(ref.Optional, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			return "", optional(ref.Optional, fmt.Errorf("secret %s has no key %q", ref.Name, ref.Key))
		}
		return string(v), nil
	case src.ResourceFieldRef != nil:
		return resourceFieldValue(pod, c, src.ResourceFieldRef, allocatable)
	}
	return "", fmt.Errorf("valueFrom has no supported source")
}

func envSource(ctx context.Context, client kubernetes.Interface, ns string, from corev1.EnvFromSource) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, optional(from.ConfigMapRef.Optional, err)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		s, err := client.CoreV1().Secrets(ns).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, optional(from.SecretRef.Optional, err)
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("envFrom has no supported source")
}

// optional swallows err when the reference is marked optional.
func optional(opt *bool, err error) error {
	if opt != nil && *opt {
		return nil
	}
	return err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
