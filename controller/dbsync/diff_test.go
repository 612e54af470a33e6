package dbsync

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kong/go-kong/kong"

	"konductor.dev/controller/translate/declarative"
)

// fixture builds a small desired configuration: one certificate with one
// SNI, one upstream with two targets, one service with two routes.
func fixture() *declarative.Config {
	tags := kong.StringSlice("k8s-name:echo", "k8s-namespace:default", "managed-by-konductor")
	cfg := declarative.New()
	cfg.Certificates = []*declarative.Certificate{{
		Certificate: kong.Certificate{ID: kong.String("c1"), Cert: kong.String("CERT"), Key: kong.String("KEY"), Tags: tags},
		SNIs:        []*kong.SNI{{ID: kong.String("n1"), Name: kong.String("example.com"), Tags: tags}},
	}}
	cfg.Upstreams = []*declarative.Upstream{{
		Upstream: kong.Upstream{ID: kong.String("u1"), Name: kong.String("echo.default.80.svc"), Tags: tags},
		Targets: []*kong.Target{
			{ID: kong.String("t1"), Target: kong.String("10.0.0.1:8080"), Weight: kong.Int(100), Tags: tags},
			{ID: kong.String("t2"), Target: kong.String("10.0.0.2:8080"), Weight: kong.Int(100), Tags: tags},
		},
	}}
	cfg.Services = []*declarative.Service{{
		Service: kong.Service{
			ID: kong.String("s1"), Name: kong.String("default.echo.80"), Host: kong.String("echo.default.80.svc"),
			Port: kong.Int(80), Protocol: kong.String("http"), Tags: tags,
		},
		Routes: []*kong.Route{
			{
				ID: kong.String("r1"), Name: kong.String("default.echo.a"), Hosts: kong.StringSlice("example.com"),
				Paths: kong.StringSlice("~/echo$", "/echo/"), StripPath: kong.Bool(false), PreserveHost: kong.Bool(true), Tags: tags,
			},
			{ID: kong.String("r2"), Name: kong.String("default.echo.b"), Paths: kong.StringSlice("/b"), Tags: tags},
		},
	}}
	return cfg
}

func mustSet(t *testing.T, cfg *declarative.Config) *Set {
	t.Helper()
	s, err := DesiredSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asKongStores returns what Kong hands back for s: every default filled in,
// server timestamps set, and certificates listing their SNI names.
func asKongStores(t testing.TB, s *Set) *Set {
	t.Helper()
	out := NewSet()
	for _, kind := range Kinds {
		for _, e := range s[kind] {
			v := reflect.New(reflect.TypeOf(e.Obj).Elem())
			v.Elem().Set(reflect.ValueOf(e.Obj).Elem())
			for name, def := range defaults[kind] {
				if f := v.Elem().FieldByName(name); f.IsNil() {
					f.Set(reflect.ValueOf(def))
				}
			}
			if f := v.Elem().FieldByName("CreatedAt"); f.IsValid() {
				f.Set(reflect.New(f.Type().Elem()))
			}
			if c, ok := v.Interface().(*kong.Certificate); ok {
				c.SNIs = kong.StringSlice("example.com")
			}
			got, ok := existing(kind, v.Interface())
			if !ok {
				t.Fatalf("%s %s: no id", kind, e.ID)
			}
			out.Add(got)
		}
	}
	return out
}

func opsString(p Plan) string {
	var b strings.Builder
	for _, op := range p.Ops {
		fmt.Fprintf(&b, "%d:%s:%s:%s ", op.Phase(), op.Action, op.Entity.Kind, op.Entity.ID)
	}
	return strings.TrimSpace(b.String())
}

func TestDiff(t *testing.T) {
	const allCreates = "0:create:certificates:c1 0:create:upstreams:u1 0:create:services:s1 " +
		"1:create:snis:n1 1:create:targets:t1 1:create:targets:t2 1:create:routes:r1 1:create:routes:r2"
	const allDeletes = "4:delete:snis:n1 4:delete:targets:t1 4:delete:targets:t2 4:delete:routes:r1 4:delete:routes:r2 " +
		"5:delete:certificates:c1 5:delete:upstreams:u1 5:delete:services:s1"
	route := func(s *Set, id string) *kong.Route { return s[KindRoute][id].Obj.(*kong.Route) }
	tests := []struct {
		name string
		// edit changes what Kong holds, starting from the desired state as
		// Kong stores it; desired edits the desired configuration.
		desired func(c *declarative.Config)
		edit    func(s *Set)
		want    string
	}{
		{name: "unchanged, Kong filled in its defaults", want: ""},
		{name: "empty Kong: everything created, parents first",
			edit: func(s *Set) { *s = *NewSet() }, want: allCreates},
		{name: "empty desired: everything deleted, children first",
			desired: func(c *declarative.Config) { *c = *declarative.New() }, want: allDeletes},
		{name: "one field changed by hand",
			edit: func(s *Set) { route(s, "r2").StripPath = kong.Bool(false) }, want: "1:update:routes:r2"},
		{name: "default changed by hand on a field we leave unset",
			edit: func(s *Set) { route(s, "r2").HTTPSRedirectStatusCode = kong.Int(301) }, want: "1:update:routes:r2"},
		{name: "unset field we watch set by hand",
			edit: func(s *Set) { route(s, "r2").Methods = kong.StringSlice("POST") }, want: "1:update:routes:r2"},
		{name: "watched field present but empty",
			edit: func(s *Set) { route(s, "r2").Methods = []*string{} }, want: ""},
		{name: "field Kong adds that we do not manage",
			edit: func(s *Set) { route(s, "r2").Priority = kong.Uint64(7) }, want: ""},
		{name: "tags and paths in another order",
			edit: func(s *Set) {
				r := route(s, "r1")
				r.Tags = []*string{r.Tags[2], r.Tags[0], r.Tags[1]}
				r.Paths = kong.StringSlice("/echo/", "~/echo$")
			}, want: ""},
		{name: "tag added by hand",
			edit: func(s *Set) { r := route(s, "r1"); r.Tags = append(r.Tags[:len(r.Tags):len(r.Tags)], kong.String("x")) },
			want: "1:update:routes:r1"},
		{name: "route moved to another service",
			edit: func(s *Set) { route(s, "r1").Service = &kong.Service{ID: kong.String("other")} },
			want: "1:update:routes:r1"},
		{name: "target deleted by hand, stale route left over",
			edit: func(s *Set) {
				delete(s[KindTarget], "t2")
				s.Add(Entity{Kind: KindRoute, ID: "r9", Parent: "s1", Obj: &kong.Route{ID: kong.String("r9")}})
			}, want: "1:create:targets:t2 4:delete:routes:r9"},
		{name: "desired weight change is an update of that target only",
			desired: func(c *declarative.Config) { c.Upstreams[0].Targets[1].Weight = kong.Int(0) },
			want:    "1:update:targets:t2"},
		{name: "desired sets a field to its default, Kong omits it",
			desired: func(c *declarative.Config) { c.Services[0].Retries = kong.Int(5) },
			edit:    func(s *Set) { s[KindService]["s1"].Obj.(*kong.Service).Retries = nil }, want: ""},
		{name: "certificate keeps its SNI list out of the comparison",
			edit: func(s *Set) { s[KindCertificate]["c1"].Obj.(*kong.Certificate).SNIs = kong.StringSlice("other.com") }, want: ""},
		{name: "certificate key replaced by hand",
			edit: func(s *Set) { s[KindCertificate]["c1"].Obj.(*kong.Certificate).Key = kong.String("OTHER") },
			want: "0:update:certificates:c1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			have := asKongStores(t, mustSet(t, fixture()))
			cfg := fixture()
			if tc.desired != nil {
				tc.desired(cfg)
			}
			if tc.edit != nil {
				tc.edit(have)
			}
			got := opsString(Diff(mustSet(t, cfg), have))
			if got != tc.want {
				t.Errorf("ops:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestPlanPhases(t *testing.T) {
	have := asKongStores(t, mustSet(t, fixture()))
	delete(have[KindRoute], "r1")
	delete(have[KindService], "s1")
	have.Add(Entity{Kind: KindUpstream, ID: "u9", Obj: &kong.Upstream{ID: kong.String("u9")}})
	phases := Diff(mustSet(t, fixture()), have).Phases()
	var got []string
	for _, ph := range phases {
		got = append(got, opsString(Plan{Ops: ph}))
	}
	want := []string{"0:create:services:s1", "1:create:routes:r1", "5:delete:upstreams:u9"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("phases:\n got %q\nwant %q", got, want)
	}
}

// TestDefaultsMatchGoKong guards the tables against typos and go-kong type
// changes, which would otherwise panic or silently compare nothing.
func TestDefaultsMatchGoKong(t *testing.T) {
	types := map[Kind]reflect.Type{
		KindService: reflect.TypeFor[kong.Service](), KindRoute: reflect.TypeFor[kong.Route](),
		KindUpstream: reflect.TypeFor[kong.Upstream](), KindTarget: reflect.TypeFor[kong.Target](),
		KindCertificate: reflect.TypeFor[kong.Certificate](), KindSNI: reflect.TypeFor[kong.SNI](),
		KindConsumer: reflect.TypeFor[kong.Consumer](), KindPlugin: reflect.TypeFor[kong.Plugin](),
		KindKeyAuth: reflect.TypeFor[kong.KeyAuth](), KindBasicAuth: reflect.TypeFor[kong.BasicAuth](),
		KindJWT: reflect.TypeFor[kong.JWTAuth](), KindACL: reflect.TypeFor[kong.ACLGroup](),
		KindHMACAuth: reflect.TypeFor[kong.HMACAuth](),
	}
	for kind, defs := range defaults {
		for name, def := range defs {
			f, ok := types[kind].FieldByName(name)
			if !ok {
				t.Errorf("%s default %s: go-kong has no such field", kind, name)
				continue
			}
			if f.Type != reflect.TypeOf(def) {
				t.Errorf("%s default %s: type %T, field is %s", kind, name, def, f.Type)
			}
		}
	}
	for kind, names := range nullable {
		for _, name := range names {
			if _, ok := types[kind].FieldByName(name); !ok {
				t.Errorf("%s nullable %s: go-kong has no such field", kind, name)
			}
			if _, ok := defaults[kind][name]; ok {
				t.Errorf("%s %s: both nullable and defaulted", kind, name)
			}
		}
	}
}

func TestDesiredSetErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *declarative.Config)
		want string
	}{
		{"route without id", func(c *declarative.Config) { c.Services[0].Routes[1].ID = nil },
			`desired routes "default.echo.b": field id: missing`},
		{"two targets with one id", func(c *declarative.Config) { c.Upstreams[0].Targets[1].ID = kong.String("t1") },
			`desired targets "echo.default.80.svc/10.0.0.2:8080": field id: t1 is used twice`},
		{"nil service", func(c *declarative.Config) { c.Services = append(c.Services, nil) },
			`desired services[1]: nil`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fixture()
			tc.edit(cfg)
			_, err := DesiredSet(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDesiredSetLeavesConfigAlone(t *testing.T) {
	cfg := fixture()
	s := mustSet(t, cfg)
	if cfg.Services[0].Routes[0].Service != nil || cfg.Upstreams[0].Targets[0].Upstream != nil {
		t.Error("DesiredSet set parent references on the caller's entities")
	}
	if got := s[KindRoute]["r1"].Obj.(*kong.Route).Service; got == nil || *got.ID != "s1" {
		t.Errorf("route r1 parent = %v, want s1", got)
	}
	if s.Len() != 8 {
		t.Errorf("Len = %d, want 8", s.Len())
	}
}

func TestDecodeConfigRoundTrip(t *testing.T) {
	cfg := fixture()
	body, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeConfig(body)
	if err != nil {
		t.Fatal(err)
	}
	if ops := Diff(mustSet(t, got), mustSet(t, cfg)); len(ops.Ops) != 0 {
		t.Errorf("decoded configuration differs: %s", opsString(ops))
	}
	if len(got.Certificates) != 1 || len(got.Certificates[0].SNIs) != 1 || *got.Certificates[0].SNIs[0].ID != "n1" {
		t.Errorf("certificate SNIs not decoded as entities: %+v", got.Certificates)
	}
	if _, err := DecodeConfig([]byte(`{"_format_version":"1.1"}`)); err == nil || !strings.Contains(err.Error(), "_format_version") {
		t.Errorf("wrong format version: err %v", err)
	}
}
