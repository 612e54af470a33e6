package translate

import (
	"strings"
	"testing"
)

func TestDecodeYAML(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(t *testing.T, s Objects)
	}{
		{name: "every kind, stringData folded", in: `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: default}
addressType: IPv4
endpoints: []
---
apiVersion: v1
kind: Secret
metadata: {name: tls, namespace: default}
type: kubernetes.io/tls
stringData: {tls.crt: CRT}
`, check: func(t *testing.T, s Objects) {
			if len(s.Ingresses) != 1 || len(s.Services) != 1 || len(s.EndpointSlices) != 1 || len(s.Secrets) != 1 {
				t.Fatalf("got %d/%d/%d/%d objects", len(s.Ingresses), len(s.Services), len(s.EndpointSlices), len(s.Secrets))
			}
			if sec := s.Secrets[0]; string(sec.Data["tls.crt"]) != "CRT" || sec.StringData != nil {
				t.Fatalf("stringData not folded: %+v", sec)
			}
		}},
		{name: "empty documents skipped", in: "---\n---\n", check: func(t *testing.T, s Objects) {
			if len(s.Ingresses)+len(s.Services)+len(s.EndpointSlices)+len(s.Secrets) != 0 {
				t.Fatalf("objects from empty documents: %+v", s)
			}
		}},
		{name: "other kind", in: "kind: ConfigMap\n", wantErr: `document 0: kind "ConfigMap"`},
		{name: "bad field type", in: "kind: Service\nspec: {ports: 3}\n", wantErr: "document 0 (Service)"},
		{name: "not YAML", in: "kind: [\n", wantErr: "document 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := DecodeYAML([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}
