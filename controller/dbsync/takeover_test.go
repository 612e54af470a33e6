package dbsync

import (
	"testing"

	"github.com/kong/go-kong/kong"
)

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
