package store_test

import (
	"context"
	"errors"
	"testing"

	"konductor.dev/sim/kong/store"
)

func rec(typ, id, name string) store.Record {
	return store.Record{Type: typ, ID: id, Name: name, Body: []byte(`{"id":"` + id + `"}`)}
}

func TestMemoryApplyLoadRevision(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemory()
	rev, err := m.Apply(ctx, []store.Record{rec("services", "b", "svc-b"), rec("services", "a", "svc-a"), rec("routes", "r", "")}, nil)
	if err != nil || rev != 1 {
		t.Fatalf("apply = %d %v", rev, err)
	}
	recs, rev, err := m.Load(ctx)
	if err != nil || rev != 1 || len(recs) != 3 || recs[0].Type != "routes" || recs[1].ID != "a" || recs[2].ID != "b" {
		t.Fatalf("load = %v %d %v", recs, rev, err)
	}
	// A batch may move a name from one record to another.
	rev, err = m.Apply(ctx, []store.Record{rec("services", "a", "svc-b"), rec("services", "b", "svc-x")}, nil)
	if err != nil || rev != 2 {
		t.Fatalf("rename swap = %d %v", rev, err)
	}
	// Deleting frees a name in the same batch.
	if _, err := m.Apply(ctx, []store.Record{rec("services", "c", "svc-x")}, []store.Key{{Type: "services", ID: "b"}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.Revision(ctx); r != 3 {
		t.Errorf("revision = %d", r)
	}
}

func TestMemoryUniqueViolationWritesNothing(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemory()
	if _, err := m.Apply(ctx, []store.Record{rec("services", "a", "n")}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := m.Apply(ctx, []store.Record{rec("services", "z", "other"), rec("services", "b", "n")}, []store.Key{{Type: "services", ID: "a2"}})
	var uv *store.UniqueViolation
	if !errors.As(err, &uv) || uv.Owner != "a" || uv.Name != "n" {
		t.Fatalf("err = %v", err)
	}
	recs, rev, _ := m.Load(ctx)
	if len(recs) != 1 || rev != 1 {
		t.Errorf("after violation: %v rev %d", recs, rev)
	}
	// Names are per type.
	if _, err := m.Apply(ctx, []store.Record{rec("routes", "r", "n")}, nil); err != nil {
		t.Errorf("same name in another type: %v", err)
	}
	// The failed batch did not reserve "other".
	if _, err := m.Apply(ctx, []store.Record{rec("services", "y", "other")}, nil); err != nil {
		t.Errorf("name of a failed batch stayed reserved: %v", err)
	}
}

func TestMemoryUnavailable(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemory()
	m.SetAvailable(false)
	if _, err := m.Revision(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("revision: %v", err)
	}
	if _, _, err := m.Load(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("load: %v", err)
	}
	if _, err := m.Apply(ctx, []store.Record{rec("services", "a", "")}, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("apply: %v", err)
	}
	if err := m.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ping: %v", err)
	}
	m.SetAvailable(true)
	if err := m.Ping(ctx); err != nil {
		t.Errorf("ping after recovery: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Ping(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("ping with cancelled context: %v", err)
	}
}
