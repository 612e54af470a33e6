package dbsync

import (
	"testing"

	"github.com/kong/go-kong/kong"
)

// TestReconcilePrewrites: entities written while the listing ran may or
// may not be in it; the plan must bring each of them to the newest
// desired state either way.
func TestReconcilePrewrites(t *testing.T) {
	set := mustSet(t, fixture())
	r1 := set[KindRoute]["r1"]
	changed := r1
	obj := *r1.Obj.(*kong.Route)
	obj.Paths = kong.StringSlice("/other")
	changed.Obj = &obj
	gone := Entity{Kind: KindRoute, ID: "r9", Parent: "s1", Obj: &kong.Route{ID: kong.String("r9"), Paths: kong.StringSlice("/gone")}}

	for _, tc := range []struct {
		name       string
		listed     *Set // what the listing saw
		prewritten []Entity
		want       string
	}{
		{"nothing prewritten: the diff alone", asKongStores(t, set), nil, ""},
		{"prewrite of the final content, listing saw it", asKongStores(t, set), []Entity{r1}, ""},
		{"prewrite of the final content, listing missed it", without(asKongStores(t, set), r1), []Entity{r1}, "1:create:routes:r1"},
		{"prewrite of an older content, listing missed it", asKongStores(t, set), []Entity{changed}, "1:update:routes:r1"},
		{"prewrite the newest configuration dropped, listing missed it", asKongStores(t, set), []Entity{gone}, "4:delete:routes:r9"},
		{"prewrite the newest configuration dropped, listing saw it", with(asKongStores(t, set), gone), []Entity{gone}, "4:delete:routes:r9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := opsString(reconcile(Diff(set, tc.listed), set, tc.prewritten))
			if got != tc.want {
				t.Errorf("plan %q, want %q", got, tc.want)
			}
		})
	}
}

func without(s *Set, e Entity) *Set {
	delete(s[e.Kind], e.ID)
	return s
}

func with(s *Set, e Entity) *Set {
	s.Add(e)
	return s
}

// TestUpsertsNeverDelete: what a takeover writes from its warm listing
// holds no delete, however much the listing holds that is not desired.
func TestUpsertsNeverDelete(t *testing.T) {
	set := mustSet(t, fixture())
	stale := asKongStores(t, set)
	stale.Add(Entity{Kind: KindService, ID: "s9", Obj: &kong.Service{ID: kong.String("s9"), Name: kong.String("old")}})
	delete(stale[KindRoute], "r2")
	ops := upserts(set, stale)
	if got := opsString(Plan{Ops: ops}); got != "1:create:routes:r2" {
		t.Fatalf("upserts %q, want only the missing route", got)
	}
}
