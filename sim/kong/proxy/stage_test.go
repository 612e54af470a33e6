package proxy

import (
	"strings"
	"testing"
)

// TestStageChecksWhatChanged stages configurations that hand back the
// services and routes of the last one (the same pointers) with one change:
// what Stage skips as checked before must not hide an error the change
// brings.
func TestStageChecksWhatChanged(t *testing.T) {
	s1, s2 := &Service{ID: "s1", Host: "a"}, &Service{ID: "s2", Host: "b"}
	r1 := &Route{ID: "r1", Name: "r1", ServiceID: "s1", Paths: []string{"/"}}
	r2 := &Route{ID: "r2", Name: "r2", ServiceID: "s2", Paths: []string{"/b"}}
	good := Config{Services: []*Service{s1, s2}, Routes: []*Route{r1, r2}}
	badPath := &Route{ID: "r2", Name: "r2", ServiceID: "s2", Paths: []string{"/b"}, PathHandling: "v9"}
	badRegex := &Route{ID: "r2", Name: "r2", ServiceID: "s2", Paths: []string{"~/b("}}
	steps := []struct {
		name string
		cfg  Config
		want string // "" to pass
	}{
		{"first", good, ""},
		{"the same again", good, ""},
		{"a route's service gone", Config{Services: []*Service{s2}, Routes: []*Route{r1, r2}}, `service "s1" not found`},
		{"back", good, ""},
		{"a changed route with a bad field", Config{Services: good.Services, Routes: []*Route{r1, badPath}}, "path_handling"},
		{"a changed route the router refuses", Config{Services: good.Services, Routes: []*Route{r1, badRegex}}, "r2"},
		{"back again", good, ""},
		{"routes in another order", Config{Services: good.Services, Routes: []*Route{r2, r1}}, ""},
		{"a route's service gone, routes reordered", Config{Services: []*Service{s1}, Routes: []*Route{r2, r1}}, `service "s2" not found`},
	}
	p := New(Options{})
	for _, st := range steps {
		err := p.Stage(st.cfg)
		switch {
		case st.want == "" && err != nil:
			t.Fatalf("%s: Stage = %v, want it to pass", st.name, err)
		case st.want != "" && (err == nil || !strings.Contains(err.Error(), st.want)):
			t.Fatalf("%s: Stage = %v, want an error naming %q", st.name, err, st.want)
		}
	}
}
