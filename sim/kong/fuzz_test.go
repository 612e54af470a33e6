package kong

import (
	"encoding/json"
	"errors"
	"testing"
)

var fuzzSeeds = []string{
	`{"_format_version":"3.0"}`,
	`_format_version: "3.0"
services:
- name: s
  host: h.svc
  routes:
  - {name: r, paths: ["~/a$", "/a/"], hosts: ["*.example.com"]}
  plugins:
  - {name: cors}
upstreams:
- name: h.svc
  targets: [{target: "10.0.0.1"}, {target: "[::1]:80", weight: 0}]
consumers: [{username: u, plugins: [{name: correlation-id}], keyauth_credentials: [{key: k}]}]
routes:
- {name: top, service: s, methods: [GET]}
plugins:
- {name: rate-limiting, service: s, route: top, config: {minute: 1}}
`,
	`{"config":"{\"_format_version\":\"3.0\",\"services\":[{\"host\":\"x\"}]}"}`,
	`{"_format_version":"3.0","services":[{"name":"a","host":"a"},{"name":"a","host":"b"}]}`,
	`{"_format_version":"3.0","routes":[{"paths":["~/(unclosed"]}]}`,
	`{"_format_version":"3.0","targets":[{"target":"x","upstream":"nope"}]}`,
	`[1,2]`,
	``,
}

// FuzzDeclarative checks that the parser never panics, that an error
// yields no state, and that an accepted configuration survives export
// (GET /config) and reload with the same hash.
func FuzzDeclarative(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := ParseDeclarative(body, 1700000000)
		if err != nil {
			var de *DeclarativeError
			if st != nil || !errors.As(err, &de) {
				t.Fatalf("error %v came with state %v", err, st)
			}
			return
		}
		exported, err := json.Marshal(st.declarative())
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		again, err := ParseDeclarative(exported, 1800000000)
		if err != nil {
			t.Fatalf("exported config refused: %v\n%s", err, exported)
		}
		if again.Hash() != st.Hash() || again.Count() != st.Count() {
			t.Fatalf("round trip changed the config: %s/%d -> %s/%d\n%s", st.Hash(), st.Count(), again.Hash(), again.Count(), exported)
		}
	})
}
