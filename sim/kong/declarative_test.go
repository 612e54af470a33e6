package kong

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDeclarativeAccepts(t *testing.T) {
	st, err := ParseDeclarative([]byte(fuzzSeeds[1]), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"services": 1, "routes": 2, "plugins": 3, "upstreams": 1, "targets": 2, "consumers": 1}
	for c, n := range want {
		if got := len(st.list(c)); got != n {
			t.Errorf("%s: %d entities, want %d", c, got, n)
		}
	}
	svc := st.byName("services", "s")
	top := st.byName("routes", "top")
	if foreignID(top, "service") != asString(svc["id"]) {
		t.Errorf("top-level route not attached to its service by name: %v", top["service"])
	}
	if st.byName("targets", foreignID(st.list("targets")[0], "upstream")+":10.0.0.1:8000") == nil {
		t.Errorf("target port not defaulted: %v", st.list("targets"))
	}
	again, err := ParseDeclarative([]byte(fuzzSeeds[1]), 2)
	if err != nil || again.Hash() != st.Hash() {
		t.Errorf("same document, different hash: %v", err)
	}
	wrapped, err := ParseDeclarative([]byte(fuzzSeeds[2]), 1)
	if err != nil || wrapped.Count() != 1 {
		t.Errorf("wrapped config: %v", err)
	}
}

func TestParseDeclarativeRejects(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		want      []string // substrings of the flattened errors or message
	}{
		{"no version", `{"services":[]}`, []string{"_format_version"}},
		{"old version", `{"_format_version":"1.1"}`, []string{"expected one of: 3.0"}},
		{"unknown top-level", `{"_format_version":"3.0","vaults":[]}`, []string{"vaults", "unknown field"}},
		{"duplicate name", fuzzSeeds[3], []string{"uniqueness violation: 'services' entity with name set to 'a' already declared"}},
		{"bad regex", fuzzSeeds[4], []string{"field paths.1: invalid regex"}},
		{"unknown parent", fuzzSeeds[5], []string{"field upstream: could not find upstream 'nope'"}},
		{"not an object", fuzzSeeds[6], []string{"expected an object"}},
		{"empty", fuzzSeeds[7], []string{"expected a declarative configuration"}},
		{"yaml syntax", "a: [", []string{"failed parsing declarative configuration"}},
		{"bad target weight", `{"_format_version":"3.0","upstreams":[{"name":"u","targets":[{"target":"a","weight":70000}]}]}`,
			[]string{"field weight: value should be between 0 and 65535"}},
		{"host header", `{"_format_version":"3.0","routes":[{"headers":{"Host":["x"]}}]}`, []string{"cannot contain 'host' header"}},
		{"unknown plugin", `{"_format_version":"3.0","plugins":[{"name":"nope"}]}`, []string{"plugin 'nope' not enabled"}},
		{"nested not array", `{"_format_version":"3.0","services":[{"host":"h","routes":{"a":1}}]}`, []string{"field routes: expected an array"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := ParseDeclarative([]byte(c.doc), 1)
			var de *DeclarativeError
			if st != nil || !errors.As(err, &de) {
				t.Fatalf("got %v, %v", st, err)
			}
			var text strings.Builder
			text.WriteString(de.Message)
			for _, fe := range de.Flattened {
				for _, e := range fe.Errors {
					text.WriteString("|" + e.Type + " " + e.Field + ": " + e.Message)
				}
			}
			for _, w := range c.want {
				if !strings.Contains(text.String(), w) {
					t.Errorf("errors %q lack %q", text.String(), w)
				}
			}
		})
	}
}

func TestDeclarativeErrorMessageMatchesKong(t *testing.T) {
	_, err := ParseDeclarative([]byte(`{"_format_version":"3.0","services":[{"port":70000}]}`), 1)
	want := `declarative config is invalid: {services={{host="required field missing",port="value should be between 0 and 65535"}}}`
	if err == nil || err.Error() != want {
		t.Errorf("message = %v\nwant      %s", err, want)
	}
}

// TestForeignFieldsReferToEarlierCollections holds what finish relies on
// to make the by-name maps late: a collection is referred to only by
// collections validated after it.
func TestForeignFieldsReferToEarlierCollections(t *testing.T) {
	pos := map[string]int{}
	for i, c := range collections {
		pos[c] = i
	}
	for _, flavor := range []string{FlavorTraditionalCompatible, FlavorExpressions} {
		for _, c := range collections {
			for _, f := range schemaOf(flavor, c).foreignFields() {
				if ref, ok := pos[f.ref]; !ok || ref >= pos[c] {
					t.Errorf("%s (%s): %s.%s refers to %s, which is not validated before it", c, flavor, c, f.name, f.ref)
				}
			}
		}
	}
}
