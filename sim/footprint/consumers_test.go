package footprint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"konductor.dev/controller/translate"
)

// consumerCount is how many KongConsumers the workload holds, each with a
// key-auth credential Secret: KONDUCTOR_FOOTPRINT_CONSUMERS, default 10k.
func consumerCount() (int, error) {
	v := os.Getenv("KONDUCTOR_FOOTPRINT_CONSUMERS")
	if v == "" {
		return apps, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("KONDUCTOR_FOOTPRINT_CONSUMERS=%q: want a count", v)
	}
	return n, nil
}

var (
	crdResource      = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	consumerResource = schema.GroupVersionResource{Group: translate.KongGroup, Version: translate.KongVersion, Resource: "kongconsumers"}
)

// installConsumerCRD creates the KongConsumer CustomResourceDefinition from
// deploy/base and waits until the API server serves it, so the controller
// started afterwards finds it in discovery.
func installConsumerCRD(ctx context.Context, c kubernetes.Interface, dyn dynamic.Interface) error {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "base", "crd-kongconsumers.yaml"))
	if err != nil {
		return err
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(raw, &crd.Object); err != nil {
		return fmt.Errorf("deploy/base/crd-kongconsumers.yaml: %w", err)
	}
	if _, err := dyn.Resource(crdResource).Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the KongConsumer CRD: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		list, err := c.Discovery().ServerResourcesForGroupVersion(consumerResource.GroupVersion().String())
		if err == nil && slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == consumerResource.Resource }) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the KongConsumer CRD is not served a minute after its creation: %v", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func consumerName(i int) string { return fmt.Sprintf("user-%05d", i) }

// createConsumers creates n KongConsumers of our class, each with its own
// key-auth credential Secret, createWorkers at a time.
func createConsumers(ctx context.Context, c kubernetes.Interface, dyn dynamic.Interface, n int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	applied := metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}
	indexes := make(chan int)
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Go(func() {
			for i := range indexes {
				name := consumerName(i)
				sec := &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-key",
						Labels: map[string]string{translate.LabelCredential: "key-auth"}},
					StringData: map[string]string{"key": "key-" + name},
				}
				if _, err := c.CoreV1().Secrets(namespace).Create(ctx, sec, applied); err != nil {
					cancel(fmt.Errorf("creating Secret %s/%s: %w", namespace, sec.Name, err))
					return
				}
				kc := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": consumerResource.GroupVersion().String(), "kind": translate.KindKongConsumer,
					"metadata": map[string]any{"name": name, "namespace": namespace,
						"annotations": map[string]any{"kubernetes.io/ingress.class": ingressClass}},
					"username": name, "credentials": []any{name + "-key"},
				}}
				if _, err := dyn.Resource(consumerResource).Namespace(namespace).Create(ctx, kc, applied); err != nil {
					cancel(fmt.Errorf("creating KongConsumer %s/%s: %w", namespace, name, err))
					return
				}
			}
		})
	}
	for i := range n {
		select {
		case indexes <- i:
		case <-ctx.Done():
		}
	}
	close(indexes)
	wg.Wait()
	return context.Cause(ctx)
}

// listConsumers adds the KongConsumers and the credential Secrets the API
// server holds to s.
func listConsumers(ctx context.Context, c kubernetes.Interface, dyn dynamic.Interface, s *translate.Objects) error {
	list, err := dyn.Resource(consumerResource).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing KongConsumers: %w", err)
	}
	for i := range list.Items {
		s.Consumers = append(s.Consumers, &list.Items[i])
	}
	secs, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: translate.LabelCredential})
	if err != nil {
		return fmt.Errorf("listing credential Secrets: %w", err)
	}
	for i := range secs.Items {
		s.Secrets = append(s.Secrets, &secs.Items[i])
	}
	return nil
}
