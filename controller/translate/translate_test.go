package translate

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestKongPaths(t *testing.T) {
	prefix, exact, impl := networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific
	tests := []struct {
		path    string
		typ     *networkingv1.PathType
		want    []string
		wantErr string
		prefix  string // the regex prefix; DefaultRegexPrefix when empty
	}{
		{"/foo", &prefix, []string{"~/foo$", "/foo/"}, "", ""},
		{"/foo/", &prefix, []string{"~/foo$", "/foo/"}, "", ""},
		{"/", &prefix, []string{"/"}, "", ""},
		{"", &prefix, []string{"/"}, "", ""},
		{"/a.b", &exact, []string{`~/a\.b$`}, "", ""},
		{"/x*y(z)$", &exact, []string{`~/x\*y\(z\)\$$`}, "", ""},
		{"/foo", &impl, []string{"/foo"}, "", ""},
		{"/foo", nil, []string{"/foo"}, "", ""},
		{"~/v[12]/.*", &impl, []string{"~/v[12]/.*"}, "", ""},
		{"~/v[12", &impl, nil, "does not compile", ""},
		{"~v1", &impl, nil, "must start with ~/", ""},
		{"~/a//b", &impl, nil, "empty segment", ""},
		{"~/100%", &impl, nil, "percent-encoding", ""},
		{"~/a%2fb%41$", &impl, []string{"~/a%2fb%41$"}, "", ""},
		{"foo", &prefix, nil, "must start with /", ""},
		{"/a b", &exact, nil, "not allowed", ""},
		{"/a//b", &impl, nil, "not normalized", ""},
		{"/a/.", &prefix, nil, "dot segment", ""},
		{"/%2f", &impl, nil, "percent-encoding", ""},
		{"/%2F", &impl, []string{"/%2F"}, "", ""},
		{"/%41", &impl, nil, "unreserved", ""},
		{"/%4", &impl, nil, "percent-encoding", ""},
		// The Kong Ingress Controller's regex marker.
		{`/~/foo/\d{3}`, &impl, []string{`~/foo/\d{3}`}, "", ""},
		{`/~/foo/\d{3}`, nil, []string{`~/foo/\d{3}`}, "", ""},
		{"/~/plain", &impl, []string{"~/plain"}, "", ""},
		{"/~", &impl, []string{"~/"}, "", ""},
		{"/~/v[12", &impl, nil, "does not compile", ""},
		{"/~v1", &impl, nil, "must start with ~/", ""},
		{"/~/a//b", &impl, nil, "empty segment", ""},
		{"/~/x", &prefix, []string{"~/~/x$", "/~/x/"}, "", ""},
		{"/~/x", &exact, []string{`~/~/x$`}, "", ""},
		{"##/x+", &impl, []string{"~/x+"}, "", "##"},
		{"/~/x", &impl, []string{"/~/x"}, "", "##"},
	}
	for _, tt := range tests {
		typ := "nil"
		if tt.typ != nil {
			typ = string(*tt.typ)
		}
		t.Run(typ+" "+tt.path, func(t *testing.T) {
			got, err := kongPaths(tt.path, tt.typ, cmp.Or(tt.prefix, DefaultRegexPrefix))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("kongPaths(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}

func TestObjectFromTags(t *testing.T) {
	tests := []struct {
		tags   []string
		want   ObjectRef
		wantOK bool
	}{
		{[]string{"k8s-name:echo", "k8s-namespace:default", "k8s-kind:Ingress", "k8s-uid:u1", ManagedByTag},
			ObjectRef{Kind: "Ingress", Namespace: "default", Name: "echo", UID: "u1"}, true},
		{[]string{ManagedByTag, "k8s-kind:Service", "k8s-name:a:b"}, ObjectRef{Kind: "Service", Name: "a:b"}, true},
		{[]string{"k8s-namespace:default", "k8s-name:echo"}, ObjectRef{Namespace: "default", Name: "echo"}, false},
		{[]string{"k8s-kind:Ingress"}, ObjectRef{Kind: "Ingress"}, false},
		{nil, ObjectRef{}, false},
	}
	for _, tt := range tests {
		got, ok := ObjectFromTags(tt.tags)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ObjectFromTags(%q) = %+v, %t; want %+v, %t", tt.tags, got, ok, tt.want, tt.wantOK)
		}
	}
}

// Tags written by Translate round-trip through ObjectFromTags, and
// Options.ExtraTags reach every entity.
func TestTagsRoundTripAndExtraTags(t *testing.T) {
	snap := benchSnapshot(3)
	res := Translate(snap, Options{ExtraTags: []string{"konductor-instance:blue"}})
	if len(res.Errors) != 0 {
		t.Fatalf("unexpected errors: %v", res.Errors)
	}
	check := func(what string, tags []*string, want ObjectRef) {
		t.Helper()
		plain := derefAll(tags)
		if !slices.Contains(plain, "konductor-instance:blue") || !slices.Contains(plain, ManagedByTag) {
			t.Errorf("%s tags %q lack the extra or managed-by tag", what, plain)
		}
		if got, ok := ObjectFromTags(plain); !ok || got != want {
			t.Errorf("%s tags %q name %+v, want %+v", what, plain, got, want)
		}
	}
	for i, s := range res.Config.Services {
		check("service "+*s.Name, s.Tags, serviceRef(snap.Services[i]))
		for _, r := range s.Routes {
			check("route "+*r.Name, r.Tags, ingressRef(snap.Ingresses[i]))
		}
	}
	for i, u := range res.Config.Upstreams {
		check("upstream "+*u.Name, u.Tags, serviceRef(snap.Services[i]))
		for _, tg := range u.Targets {
			check("target "+*tg.Target, tg.Tags, serviceRef(snap.Services[i]))
		}
	}
}

// Changing one input changes the hash; an unchanged snapshot keeps it.
func TestHashFollowsContent(t *testing.T) {
	a := Translate(benchSnapshot(5), Options{})
	b := Translate(benchSnapshot(5), Options{})
	if a.Hash != b.Hash {
		t.Fatalf("equal snapshots hash differently: %s vs %s", a.Hash, b.Hash)
	}
	changed := benchSnapshot(5)
	changed.EndpointSlices[2].Serving = changed.EndpointSlices[2].Serving[1:]
	if c := Translate(changed, Options{}); c.Hash == a.Hash {
		t.Fatalf("removing an endpoint left the hash unchanged")
	}
}

func derefAll(ptrs []*string) []string {
	out := make([]string, len(ptrs))
	for i, p := range ptrs {
		out[i] = *p
	}
	return out
}

// entityID is UUIDv5 as the uuid package defines it.
func TestEntityIDIsUUIDv5(t *testing.T) {
	tr := newTranslator(Snapshot{}, Options{}, useParallel)
	for _, key := range []string{"", "default.echo.80", "ns/ü"} {
		want := uuid.NewSHA1(idSpace, []byte("routes/"+key)).String()
		if got := tr.entityID("routes", key); got != want {
			t.Errorf("entityID(routes, %q) = %s, want %s", key, got, want)
		}
	}
}

// An Exact path outranks a Prefix or ImplementationSpecific path with the
// same annotation, and the annotation's order is never reversed.
func TestRegexPriority(t *testing.T) {
	prefix, exact, impl := networkingv1.PathTypePrefix, networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific
	tests := []struct {
		annotated int
		typ       *networkingv1.PathType
		want      int
	}{
		{0, &prefix, 0}, {0, &exact, 1}, {0, &impl, 0}, {0, nil, 0},
		{3, &prefix, 6}, {3, &exact, 7}, {-1, &prefix, -2}, {-1, &exact, -1},
		{1<<31 - 1, &exact, 1<<32 - 1}, {-(1 << 31), &prefix, -(1 << 32)},
	}
	for _, tt := range tests {
		if got := regexPriority(tt.annotated, tt.typ); got != tt.want {
			t.Errorf("regexPriority(%d, %v) = %d, want %d", tt.annotated, tt.typ, got, tt.want)
		}
	}
	types := []*networkingv1.PathType{&prefix, &exact, &impl, nil}
	for p1 := -3; p1 <= 3; p1++ {
		for p2 := -3; p2 <= 3; p2++ {
			for _, t1 := range types {
				for _, t2 := range types {
					r1, r2 := regexPriority(p1, t1), regexPriority(p2, t2)
					switch {
					case p1 > p2 && r1 <= r2:
						t.Errorf("annotation %d (%v) does not outrank %d (%v): %d vs %d", p1, t1, p2, t2, r1, r2)
					case p1 == p2 && t1 == &exact && t2 != &exact && r1 <= r2:
						t.Errorf("Exact does not outrank %v at annotation %d: %d vs %d", t2, p1, r1, r2)
					}
				}
			}
		}
	}
}

// Working on two goroutines gives the very same result as on one.
func TestParallelBuildIsIdentical(t *testing.T) {
	snap := pluginsConsumersSnapshot(300)
	// Some Ingresses share a Service, so backends have several routes.
	for i, ing := range snap.Ingresses[:100] {
		ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = snap.Services[i%7].Name
		ing.Namespace = snap.Services[i%7].Namespace
		ing.Annotations = nil // their KongPlugins are of another namespace
	}
	// Some consumers have plugins, shared with a route (so instance names
	// take a suffix), and one consumer's plugin is missing.
	for i, c := range snap.Consumers[200:210] {
		p := snap.Plugins[200+i]
		p.InstanceName = "shared"
		c.Annotations = map[string]string{AnnotationPlugins: p.Name}
	}
	snap.Consumers[299].Annotations = map[string]string{AnnotationPlugins: "ghost"}
	one := translate(snap, Options{}, func(int) bool { return false })
	two := translate(snap, Options{}, func(int) bool { return true })
	if !bytes.Equal(one.Body, two.Body) || one.Hash != two.Hash {
		t.Fatalf("bodies differ:\n one %.300s\n two %.300s", one.Body, two.Body)
	}
	if !slices.Equal(one.Translated, two.Translated) || !slices.Equal(one.Errors, two.Errors) {
		t.Fatalf("Translated or Errors differ")
	}
	counts := one.Config.Counts()
	if counts["services"] < 200 || counts["consumers"] != 300 || counts["plugins"] != 200+10 ||
		len(one.Errors) != 1 || one.Errors[0].Reason != ReasonPluginNotFound {
		t.Fatalf("snapshot does not translate as intended: %v, errors %v", counts, one.Errors)
	}
	if !bytes.Contains(one.Body, []byte(`"instance_name":"shared-`)) {
		t.Fatalf("a KongPlugin on a route and a consumer did not get instance names per parent")
	}
}
