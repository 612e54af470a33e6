package manifests

import (
	"context"
	"slices"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestCRDsAreValid runs the API server's own validation of a
// CustomResourceDefinition (schema structure, CEL rules and their cost) on
// the CRDs we ship (Kong's in the base, KEDA's in its add-on), which kubectl
// would otherwise only reject at apply time.
func TestCRDsAreValid(t *testing.T) {
	tests := []struct {
		dir   string
		kinds []string
	}{
		{"../../deploy/base", []string{"KongClusterPlugin", "KongConsumer", "KongPlugin"}},
		{"../../deploy/addons/keda", []string{"CloudEventSource", "ClusterCloudEventSource", "ClusterTriggerAuthentication", "ScaledJob", "ScaledObject", "TriggerAuthentication"}},
	}
	s := runtime.NewScheme()
	if err := apiextensions.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			objs, err := RenderDir(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, crd := range All[*apiextensionsv1.CustomResourceDefinition](objs) {
				var internal apiextensions.CustomResourceDefinition
				if err := s.Convert(crd, &internal, nil); err != nil {
					t.Fatalf("%s: %v", crd.Name, err)
				}
				// The API server records the storage version before validating.
				for _, v := range internal.Spec.Versions {
					if v.Storage {
						internal.Status.StoredVersions = []string{v.Name}
					}
				}
				if errs := validation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
					t.Errorf("%s: %v", crd.Name, errs.ToAggregate())
				}
				kinds = append(kinds, crd.Spec.Names.Kind)
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("CRDs for %v, want %v", kinds, tt.kinds)
			}
		})
	}
}
