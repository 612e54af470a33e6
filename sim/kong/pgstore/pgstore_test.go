package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"konductor.dev/sim/internal/pgtest"
	"konductor.dev/sim/kong/pgstore"
	"konductor.dev/sim/kong/store"
)

const (
	svcA = "8a0b1c2d-0000-4000-8000-00000000000a"
	svcB = "8a0b1c2d-0000-4000-8000-00000000000b"
	rtA  = "8a0b1c2d-0000-4000-8000-0000000000aa"
)

func record(typ, id, name string, body string) store.Record {
	return store.Record{Type: typ, ID: id, Name: name, Body: json.RawMessage(body)}
}

// newStore returns a bootstrapped store on a fresh database.
func newStore(t *testing.T, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// mustLoad loads and normalises bodies so they compare as JSON values.
func mustLoad(t *testing.T, s *pgstore.Store) ([]store.Record, int64) {
	t.Helper()
	recs, rev, err := s.Load(ctx(t))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for i := range recs {
		recs[i].Body = normalise(t, recs[i].Body)
	}
	return recs, rev
}

func normalise(t *testing.T, body json.RawMessage) json.RawMessage {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("stored body %s: %v", body, err)
	}
	out, _ := json.Marshal(v) // sorts keys
	return out
}

func TestApplyLoadRevisionRoundTrip(t *testing.T) {
	g := NewWithT(t)
	s := newStore(t, pgtest.DSN(t))

	recs, rev := mustLoad(t, s)
	g.Expect(recs).To(BeEmpty())
	g.Expect(rev).To(BeZero())

	rev1, err := s.Apply(ctx(t), []store.Record{
		record("services", svcA, "echo", `{"name":"echo","port":80,"id":"`+svcA+`"}`),
		record("routes", rtA, "", `{"paths":["/echo"],"service":{"id":"`+svcA+`"}}`),
	}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rev1).To(BeNumerically(">", rev))

	recs, rev = mustLoad(t, s)
	g.Expect(rev).To(Equal(rev1))
	g.Expect(recs).To(Equal([]store.Record{
		record("routes", rtA, "", `{"paths":["/echo"],"service":{"id":"`+svcA+`"}}`),
		record("services", svcA, "echo", `{"id":"`+svcA+`","name":"echo","port":80}`),
	}), "records come back ordered by type and id, bodies intact")

	rev2, err := s.Apply(ctx(t), []store.Record{
		record("services", svcA, "echo-renamed", `{"name":"echo-renamed"}`),
	}, []store.Key{{Type: "routes", ID: rtA}, {Type: "routes", ID: "absent"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rev2).To(BeNumerically(">", rev1))

	got, err := s.Revision(ctx(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(rev2))
	recs, _ = mustLoad(t, s)
	g.Expect(recs).To(Equal([]store.Record{record("services", svcA, "echo-renamed", `{"name":"echo-renamed"}`)}))

	// Every Apply commits a revision, as with store.Memory.
	rev3, err := s.Apply(ctx(t), nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rev3).To(BeNumerically(">", rev2))
}

func TestUniqueViolationWritesNothing(t *testing.T) {
	g := NewWithT(t)
	s := newStore(t, pgtest.DSN(t))
	_, err := s.Apply(ctx(t), []store.Record{record("services", svcA, "echo", `{"name":"echo"}`)}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	before, revBefore := mustLoad(t, s)

	tests := []struct {
		name    string
		puts    []store.Record
		deletes []store.Key
	}{
		{"another record takes the name", []store.Record{
			record("services", svcB, "echo", `{"name":"echo"}`),
		}, nil},
		{"a valid put in the same batch is not written either", []store.Record{
			record("routes", rtA, "", `{}`),
			record("services", svcB, "echo", `{"name":"echo"}`),
		}, nil},
		{"the deletes of the batch are not applied either", []store.Record{
			record("services", svcB, "echo", `{"name":"echo"}`),
		}, []store.Key{{Type: "routes", ID: rtA}, {Type: "services", ID: "other"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := s.Apply(ctx(t), tc.puts, tc.deletes)
			var uv *store.UniqueViolation
			g.Expect(errors.As(err, &uv)).To(BeTrue(), "error %v", err)
			g.Expect(*uv).To(Equal(store.UniqueViolation{Type: "services", Name: "echo", Owner: svcA}))
			after, revAfter := mustLoad(t, s)
			g.Expect(after).To(Equal(before))
			g.Expect(revAfter).To(Equal(revBefore))
		})
	}
}

func TestNamesAreUniquePerTypeAndOnlyWhenSet(t *testing.T) {
	g := NewWithT(t)
	s := newStore(t, pgtest.DSN(t))
	_, err := s.Apply(ctx(t), []store.Record{
		record("services", svcA, "echo", `{}`),
		record("upstreams", svcB, "echo", `{}`), // same name, other type
		record("routes", rtA, "", `{}`),
		record("routes", svcA, "", `{}`), // two unnamed records
	}, nil)
	g.Expect(err).NotTo(HaveOccurred())

	// A name may move within one batch, whatever the order of its puts.
	_, err = s.Apply(ctx(t), []store.Record{
		record("services", svcB, "echo", `{}`),
		record("services", svcA, "old-echo", `{}`),
	}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	// And a deleted record's name is free for a put in the same batch.
	_, err = s.Apply(ctx(t), []store.Record{record("services", svcA, "echo", `{}`)},
		[]store.Key{{Type: "services", ID: svcB}})
	g.Expect(err).NotTo(HaveOccurred())

	recs, _ := mustLoad(t, s)
	var services []string
	for _, r := range recs {
		if r.Type == "services" {
			services = append(services, r.ID+"="+r.Name)
		}
	}
	g.Expect(services).To(Equal([]string{svcA + "=echo"}))
}

func TestApplyRejectsBadRecordsBeforeWriting(t *testing.T) {
	s := newStore(t, pgtest.DSN(t))
	tests := []struct {
		name string
		put  store.Record
		want string
	}{
		{"body not JSON", record("services", svcA, "x", `{"name":`), "services/" + svcA + ": body is not valid JSON"},
		{"no id", record("services", "", "x", `{}`), "type and id are required"},
		{"no type", record("", svcA, "x", `{}`), "type and id are required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(ctx(t), []store.Record{record("routes", rtA, "", `{}`), tc.put}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply error = %v, want one containing %q", err, tc.want)
			}
			if recs, rev := mustLoad(t, s); len(recs) != 0 || rev != 0 {
				t.Fatalf("after a rejected batch: %d records at revision %d, want none", len(recs), rev)
			}
		})
	}
}

func TestConcurrentWritersAreSerialised(t *testing.T) {
	g := NewWithT(t)
	dsn := pgtest.DSN(t)
	nodes := []*pgstore.Store{newStore(t, dsn), newStore(t, dsn)}

	// Both nodes claim one name at once; exactly one may win.
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "00000000-0000-4000-8000-00000000000" + string(rune('0'+i))
			_, errs[i] = nodes[i%2].Apply(ctx(t), []store.Record{record("services", id, "contested", `{}`)}, nil)
		}()
	}
	wg.Wait()
	var won, lost int
	for _, err := range errs {
		var uv *store.UniqueViolation
		switch {
		case err == nil:
			won++
		case errors.As(err, &uv):
			lost++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	g.Expect(won).To(Equal(1))
	g.Expect(lost).To(Equal(writers - 1))

	// Each node sees the other's write and the same revision.
	recs, rev := mustLoad(t, nodes[1])
	g.Expect(recs).To(HaveLen(1))
	rev0, err := nodes[0].Revision(ctx(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rev0).To(Equal(rev))
}

func TestBootstrapIsIdempotentAndConcurrencySafe(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := newStore(t, dsn)
	if _, err := s.Apply(ctx(t), []store.Record{record("services", svcA, "echo", `{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = newStoreNoBootstrap(t, dsn).Bootstrap(ctx(t))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Bootstrap: %v", err)
	}
	if recs, _ := mustLoad(t, s); len(recs) != 1 {
		t.Fatalf("Bootstrap again lost data: %d records", len(recs))
	}
}

func newStoreNoBootstrap(t *testing.T, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.New(context.Background(), dsn)
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestUnbootstrappedDatabaseSaysSo(t *testing.T) {
	s := newStoreNoBootstrap(t, pgtest.DSN(t))
	_, err := s.Revision(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "migrations bootstrap") || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Revision on an empty database = %v, want a hint to bootstrap that is not ErrUnavailable", err)
	}
}

func TestNewRejectsBadDSNWithoutLeakingIt(t *testing.T) {
	_, err := pgstore.New(context.Background(), "postgres://kong:s3cret@127.0.0.1:notaport/kong")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("New error = %v, want an error that hides the password", err)
	}
}

func TestOutageIsReportedAsUnavailableAndRecovers(t *testing.T) {
	g := NewWithT(t)
	proxy := pgtest.NewProxy(t, pgtest.DSN(t))
	s := newStore(t, proxy.DSN())
	rev, err := s.Apply(ctx(t), []store.Record{record("services", svcA, "echo", `{}`)}, nil)
	g.Expect(err).NotTo(HaveOccurred())

	proxy.Cut()
	g.Expect(s.Ping(ctx(t))).To(MatchError(store.ErrUnavailable))
	_, err = s.Revision(ctx(t))
	g.Expect(err).To(MatchError(store.ErrUnavailable))
	_, _, err = s.Load(ctx(t))
	g.Expect(err).To(MatchError(store.ErrUnavailable))
	_, err = s.Apply(ctx(t), []store.Record{record("services", svcB, "other", `{}`)}, nil)
	g.Expect(err).To(MatchError(store.ErrUnavailable))
	g.Expect(s.Bootstrap(ctx(t))).To(MatchError(store.ErrUnavailable))

	proxy.Restore()
	// The first call after the outage must not trip over a connection
	// opened before it.
	g.Expect(s.Ping(ctx(t))).To(Succeed())
	got, err := s.Revision(ctx(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(rev), "the failed Apply wrote nothing")
	_, err = s.Apply(ctx(t), []store.Record{record("services", svcB, "other", `{}`)}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	recs, _ := mustLoad(t, s)
	g.Expect(recs).To(HaveLen(2))
}

func TestCallerCancellationIsNotAnOutage(t *testing.T) {
	s := newStore(t, pgtest.DSN(t))
	c, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Revision(c)
	if !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Revision with a cancelled context = %v, want context.Canceled and not ErrUnavailable", err)
	}
}

// BenchmarkRevision measures the poll every node makes each update period.
func BenchmarkRevision(b *testing.B) {
	s := newStoreB(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Revision(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyOnePut measures one Admin API write.
func BenchmarkApplyOnePut(b *testing.B) {
	s := newStoreB(b)
	ctx := context.Background()
	put := []store.Record{record("services", svcA, "echo", `{"name":"echo","host":"example.com","port":80}`)}
	for b.Loop() {
		if _, err := s.Apply(ctx, put, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad1000 measures a node's reload of a thousand entities.
func BenchmarkLoad1000(b *testing.B) {
	s := newStoreB(b)
	ctx := context.Background()
	puts := make([]store.Record, 1000)
	for i := range puts {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		puts[i] = record("routes", id, "route-"+id, `{"paths":["/a","/b"],"strip_path":false,"protocols":["http","https"]}`)
	}
	if _, err := s.Apply(ctx, puts, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := s.Load(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func newStoreB(b *testing.B) *pgstore.Store {
	b.Helper()
	s, err := pgstore.New(context.Background(), pgtest.DSN(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Bootstrap(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

// TestBehavesLikeMemory replays batches against store.Memory and pgstore and
// expects the same errors, records and revisions, so kongsim behaves alike
// on either backend.
func TestBehavesLikeMemory(t *testing.T) {
	const x, y, z = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"
	type batch struct {
		puts    []store.Record
		deletes []store.Key
	}
	steps := []batch{
		{puts: []store.Record{record("services", x, "a", `{"n":1}`), record("services", y, "b", `{}`), record("routes", z, "", `{}`)}},
		{puts: []store.Record{record("services", z, "a", `{}`)}},                                     // clash with a stored record
		{puts: []store.Record{record("upstreams", x, "n", `{}`), record("upstreams", y, "n", `{}`)}}, // clash inside the batch
		{puts: []store.Record{record("services", x, "b", `{}`), record("services", y, "a", `{}`)}},   // swap names
		{puts: []store.Record{record("services", z, "b", `{}`)}, deletes: []store.Key{{Type: "services", ID: x}}},
		{puts: []store.Record{record("services", x, "c", `{"n":1}`), record("services", x, "c", `{"n":2}`)}}, // last put wins
		{deletes: []store.Key{{Type: "routes", ID: z}, {Type: "routes", ID: z}, {Type: "nothing", ID: x}}},
		{puts: []store.Record{record("routes", z, "", `{}`)}, deletes: []store.Key{{Type: "routes", ID: z}}}, // put wins
		{},
	}
	pg := newStore(t, pgtest.DSN(t))
	mem := store.NewMemory()
	for i, step := range steps {
		memRev, memErr := mem.Apply(ctx(t), step.puts, step.deletes)
		pgRev, pgErr := pg.Apply(ctx(t), step.puts, step.deletes)
		if fmt.Sprint(memErr) != fmt.Sprint(pgErr) {
			t.Fatalf("step %d: memory says %v, pgstore says %v", i, memErr, pgErr)
		}
		if memErr == nil && memRev != pgRev {
			t.Fatalf("step %d: memory at revision %d, pgstore at %d", i, memRev, pgRev)
		}
		memRecs, _, err := mem.Load(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for j := range memRecs {
			memRecs[j].Body = normalise(t, memRecs[j].Body)
		}
		pgRecs, _ := mustLoad(t, pg)
		if got, want := describe(pgRecs), describe(memRecs); got != want {
			t.Fatalf("step %d: memory holds\n%s\npgstore holds\n%s", i, want, got)
		}
	}
}

func describe(recs []store.Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%s/%s name=%q %s\n", r.Type, r.ID, r.Name, r.Body)
	}
	return b.String()
}
