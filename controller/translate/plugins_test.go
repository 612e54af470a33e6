package translate

import (
	"strings"
	"testing"
)

// TestMessagesNeverQuoteSecrets: a Secret's value must not reach an error
// (and so an Event or a log line), even when it fails to parse or clashes
// with another consumer's. The bundles' Secret values all contain s3cr3t.
func TestMessagesNeverQuoteSecrets(t *testing.T) {
	for file, brokenBySecrets := range map[string][]string{
		"testdata/plugins.yaml":   {"from-bad-secret"},
		"testdata/consumers.yaml": {"bob", "alice"},
	} {
		res := Translate(loadSnapshot(t, file), Options{})
		reported := map[string]bool{}
		for _, e := range res.Errors {
			if strings.Contains(e.Error(), "s3cr3t") || strings.Contains(e.Error(), "unclosed") {
				t.Errorf("%s: error quotes a Secret's value: %v", file, e)
			}
			reported[e.Object.Name] = true
		}
		for _, name := range brokenBySecrets {
			if !reported[name] {
				t.Errorf("%s: %s was not reported", file, name)
			}
		}
		if !strings.Contains(string(res.Body), "s3cr3t") {
			t.Errorf("%s: no credential or Secret config reached the document", file)
		}
	}
}

func TestPluginFromJSON(t *testing.T) {
	tests := []struct {
		name, doc string
		check     func(*Plugin) bool
		wantErr   bool
	}{
		{"config canonical", `{"kind":"KongPlugin","metadata":{"name":"a","namespace":"ns"},"plugin":"cors","config":{"b":1,"a":[1e21,12345678901234567890]}}`,
			func(p *Plugin) bool {
				return string(p.Config) == `{"a":[1e21,12345678901234567890],"b":1}` && p.Namespace == "ns" && !p.Cluster
			}, false},
		{"cluster global with secret namespace", `{"kind":"KongClusterPlugin","metadata":{"name":"g","labels":{"global":"true"}},"plugin":"cors","configFrom":{"secretKeyRef":{"name":"s","namespace":"n","key":"k"}}}`,
			func(p *Plugin) bool { return p.Cluster && p.Global && *p.ConfigFrom == SecretKeyRef{"n", "s", "k"} }, false},
		{"KongPlugin ignores secret namespace", `{"kind":"KongPlugin","metadata":{"name":"a","namespace":"ns"},"plugin":"cors","configFrom":{"secretKeyRef":{"name":"s","namespace":"other","key":"k"}}}`,
			func(p *Plugin) bool { return p.ConfigFrom.Namespace == "" }, false},
		{"config not an object", `{"kind":"KongPlugin","metadata":{"name":"a"},"plugin":"cors","config":"x"}`,
			func(p *Plugin) bool { return p.Config == nil && strings.Contains(p.ConfigErr, "a string") }, false},
		{"null config", `{"kind":"KongPlugin","metadata":{"name":"a"},"plugin":"cors","config":null,"ordering":null}`,
			func(p *Plugin) bool { return p.Config == nil && p.ConfigErr == "" && !p.Ordering }, false},
		{"ordering and patches", `{"kind":"KongPlugin","metadata":{"name":"a"},"plugin":"cors","ordering":{"before":{"access":["x"]}},"configPatches":[{"path":"/x"}]}`,
			func(p *Plugin) bool { return p.Ordering && p.ConfigPatches }, false},
		{"other kind", `{"kind":"Service"}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PluginFromJSON([]byte(tt.doc))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %t", err, tt.wantErr)
			}
			if err == nil && !tt.check(p) {
				t.Fatalf("unexpected %+v", p)
			}
		})
	}
}
