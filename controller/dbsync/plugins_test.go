package dbsync

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kong/go-kong/kong"
)

func TestCoversJSON(t *testing.T) {
	tests := []struct {
		name       string
		want, have string
		equal      bool
	}{
		{"same", `{"minute":5}`, `{"minute":5}`, true},
		{"Kong adds defaults", `{"minute":5}`, `{"minute":5,"policy":"local","hour":null}`, true},
		{"value changed", `{"minute":5}`, `{"minute":6}`, false},
		{"key missing in Kong", `{"minute":5}`, `{}`, false},
		{"null wanted, absent", `{"hour":null}`, `{}`, true},
		{"null wanted, set", `{"hour":null}`, `{"hour":3}`, false},
		{"nested object covers", `{"redis":{"host":"r"}}`, `{"redis":{"host":"r","port":6379}}`, true},
		{"array order matters", `{"key_names":["a","b"]}`, `{"key_names":["b","a"]}`, false},
		{"array longer in Kong", `{"key_names":["a"]}`, `{"key_names":["a","b"]}`, false},
		{"type differs", `{"minute":"5"}`, `{"minute":5}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w, h kong.Configuration
			if err := json.Unmarshal([]byte(tt.want), &w); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.have), &h); err != nil {
				t.Fatal(err)
			}
			want := &kong.Plugin{Name: kong.String("rate-limiting"), Config: w}
			have := &kong.Plugin{Name: kong.String("rate-limiting"), Config: h}
			if got := Equal(KindPlugin, want, have); got != tt.equal {
				t.Errorf("Equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

func TestBasicAuthPasswordComparesWithKongsStoredForm(t *testing.T) {
	consumer := &kong.Consumer{ID: kong.String("c1")}
	want := &kong.BasicAuth{ID: kong.String("b1"), Username: kong.String("u"), Password: kong.String("pw"), Consumer: consumer}
	stored := func(p string) *kong.BasicAuth {
		return &kong.BasicAuth{ID: kong.String("b1"), Username: kong.String("u"), Password: kong.String(p), Consumer: consumer}
	}
	if !Equal(KindBasicAuth, want, stored(storedForm("pw", "c1"))) {
		t.Error("the stored form of the same password reads as a change")
	}
	if Equal(KindBasicAuth, want, stored(storedForm("other", "c1"))) {
		t.Error("another password reads as unchanged")
	}
	if Equal(KindBasicAuth, want, stored(storedForm("pw", "c2"))) {
		t.Error("the password hashed for another consumer reads as unchanged")
	}
}

func TestCredentialValuesAreRedacted(t *testing.T) {
	c := &kong.Consumer{ID: kong.String("c1")}
	for _, e := range []Entity{
		{Kind: KindKeyAuth, ID: "k1", Parent: "c1", Obj: &kong.KeyAuth{ID: kong.String("k1"), Key: kong.String("s3cr3t"), Consumer: c}},
		{Kind: KindBasicAuth, ID: "b1", Parent: "c1", Obj: &kong.BasicAuth{ID: kong.String("b1"), Password: kong.String("s3cr3t"), Consumer: c}},
		{Kind: KindHMACAuth, ID: "h1", Parent: "c1", Obj: &kong.HMACAuth{ID: kong.String("h1"), Secret: kong.String("s3cr3t"), Consumer: c}},
		{Kind: KindJWT, ID: "j1", Parent: "c1", Obj: &kong.JWTAuth{ID: kong.String("j1"), Secret: kong.String("s3cr3t"), Consumer: c}},
	} {
		msg := redact(`UNIQUE violation detected on '{key="s3cr3t"}' stored as `+storedForm("s3cr3t", "c1"), e)
		if strings.Contains(msg, "s3cr3t") || (e.Kind == KindBasicAuth && strings.Contains(msg, storedForm("s3cr3t", "c1"))) {
			t.Errorf("%s: %q still holds the secret", e.Kind, msg)
		}
		if strings.Contains(e.Name(), "s3cr3t") {
			t.Errorf("%s: Name() = %q", e.Kind, e.Name())
		}
	}
}

func TestPluginsAfterTheirParentsAndDeletedFirst(t *testing.T) {
	plugin := Entity{Kind: KindPlugin, ID: "p", Obj: &kong.Plugin{}}
	cred := Entity{Kind: KindKeyAuth, ID: "k", Obj: &kong.KeyAuth{}}
	consumer := Entity{Kind: KindConsumer, ID: "c", Obj: &kong.Consumer{}}
	route := Entity{Kind: KindRoute, ID: "r", Obj: &kong.Route{}}
	write := func(e Entity) int { return Op{Action: Create, Entity: e}.Phase() }
	del := func(e Entity) int { return Op{Action: Delete, Entity: e}.Phase() }
	if !(write(consumer) < write(cred) && write(cred) < write(plugin) && write(route) < write(plugin)) {
		t.Errorf("write phases: consumer %d, credential %d, route %d, plugin %d", write(consumer), write(cred), write(route), write(plugin))
	}
	if !(del(plugin) < del(cred) && del(cred) < del(consumer) && del(plugin) < del(route)) {
		t.Errorf("delete phases: plugin %d, credential %d, route %d, consumer %d", del(plugin), del(cred), del(route), del(consumer))
	}
	if write(plugin) >= del(plugin) || del(consumer) >= numPhases {
		t.Errorf("writes must precede deletes and phases stay below %d", numPhases)
	}
}
