package kongsync

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"konductor.dev/controller/testsupport/bubble"
)

// bigDesired is a configuration well above compactMin, as repetitive as a
// translated one; extra lands in every service name.
func bigDesired(version uint64, extra string) Desired {
	var b strings.Builder
	b.WriteString(`{"_format_version":"3.0","services":[`)
	for i := 0; b.Len() < 4*compactMin; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"default.echo-%d.80%s","host":"echo-%d.default.80.svc","port":80,"routes":[{"name":"default.echo-%d.0","paths":["/echo-%d"],"strip_path":false}]}`, i, extra, i, i, i)
	}
	b.WriteString(`]}`)
	return NewDesired([]byte(b.String()), version)
}

// current reports whether the current configuration is held raw, and how
// often it was inflated.
func (r *rig) current() (raw bool, inflated int) {
	r.t.Helper()
	cur := r.s.current()
	cur.mu.Lock()
	defer cur.mu.Unlock()
	return cur.raw != nil, cur.inflated
}

func (r *rig) requireCompacted(size int) {
	r.t.Helper()
	if raw, _ := r.current(); raw {
		r.t.Fatal("the current configuration is still held raw once idle")
	}
	if got := r.s.retainedBytes(); got == 0 || got > size/5 {
		r.t.Fatalf("retained %d bytes for a %d byte configuration; want it compressed (0 < n <= %d)", got, size, size/5)
	}
}

// OnCompacted hears of each compaction that turned raw bytes into garbage,
// once per compactor round, and of nothing else.
func TestOnCompactedReportsTheDroppedRawBytes(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var calls []int
		r := newRig(t, three, func(o *Options) {
			o.OnCompacted = func(n int) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, n)
			}
		})
		defer r.shutdown()
		got := func() []int {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(calls)
		}
		d1 := r.setDesired(bigDesired(1, ""))
		if c := got(); len(c) != 0 {
			t.Fatalf("OnCompacted before the configuration went idle: %v", c)
		}
		advance(compactDelay)
		if c := got(); !slices.Equal(c, []int{len(d1.Body)}) {
			t.Fatalf("OnCompacted calls %v; want one with the %d raw bytes", c, len(d1.Body))
		}
		advance(10 * compactDelay)
		if c := got(); len(c) != 1 {
			t.Fatalf("OnCompacted called again with nothing more to compact: %v", c)
		}
		small := NewDesired([]byte(`{"_format_version":"3.0"}`), 2)
		r.s.SetDesired(small)
		advance(10 * compactDelay)
		if c := got(); len(c) != 1 {
			t.Fatalf("a configuration below compactMin is never compacted, yet OnCompacted ran: %v", c)
		}
	})
}

func TestIdleConfigurationIsCompactedAndRestoredByteForByte(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		d1 := r.setDesired(bigDesired(1, ""))
		for _, n := range three {
			r.requireConfig(n, d1)
		}
		if raw, _ := r.current(); !raw {
			t.Fatal("compacted at once; want it kept raw for compactDelay")
		}
		advance(compactDelay)
		r.requireCompacted(len(d1.Body))
		if _, inflated := r.current(); inflated != 0 {
			t.Fatalf("inflated %d times: the first push of a version must use its raw bytes", inflated)
		}
		if got := gauge(t, r, "konductor_kong_config_retained_bytes"); got != float64(r.s.retainedBytes()) {
			t.Fatalf("konductor_kong_config_retained_bytes = %v, want %d", got, r.s.retainedBytes())
		}

		r.kongs["kong-b"].restart()
		advance(DefaultDriftInterval * 12 / 10)
		if got := r.kongs["kong-b"].config(); got != string(d1.Body) {
			t.Fatalf("restarted kong-b got %d bytes back, not the identical %d byte configuration", len(got), len(d1.Body))
		}
		if st := r.status("kong-b"); st.AppliedVersion != 1 || st.ReportedHash != kongHash(d1.Body) {
			t.Fatalf("status of kong-b after repair: %+v", st)
		}
		if _, inflated := r.current(); inflated != 1 {
			t.Fatalf("inflated %d times for one repair, want 1", inflated)
		}
		// The repair over, the raw copy is dropped again.
		advance(compactDelay)
		r.requireCompacted(len(d1.Body))

		// A new version goes out raw at once, and is compacted in turn.
		d2 := bigDesired(2, "-v2")
		start := time.Now()
		r.setDesired(d2)
		for _, n := range three {
			r.requireConfig(n, d2)
			if got := postsOf(r.kongs[n], d2); len(got) != 1 || got[0].at != start {
				t.Fatalf("%s: version 2 writes %+v, want one at once", n, got)
			}
		}
		advance(compactDelay)
		if _, inflated := r.current(); inflated != 0 {
			t.Fatalf("version 2 inflated %d times", inflated)
		}
		r.requireCompacted(len(d2.Body))
	})
}

func TestLastGoodIsRestoredFromCompressedCopyAfterRejection(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r, k := newRejectingRig(t)
		defer r.shutdown()
		good, bad := bigDesired(1, ""), bigDesired(2, "INVALID")
		r.setDesired(good)
		r.s.SetDesired(bad)
		advance(compactDelay)
		if st := r.status("kong-a"); st.AppliedVersion != 1 || st.Healthy {
			t.Fatalf("status after rejection: %+v", st)
		}
		lastGood := r.s.workers["kong-a"].retainedGood()
		state := func() (raw bool, kept, inflated int) {
			lastGood.mu.Lock()
			defer lastGood.mu.Unlock()
			return lastGood.raw != nil, len(lastGood.raw) + len(lastGood.packed), lastGood.inflated
		}
		if raw, kept, _ := state(); raw || lastGood.version != 1 || kept > len(good.Body)/5 {
			t.Fatalf("last good: version %d, raw %v, %d bytes; want version 1 compressed", lastGood.version, raw, kept)
		}

		k.restart()
		advance(DefaultDriftInterval * 12 / 10)
		if got := k.config(); got != string(good.Body) {
			t.Fatalf("kong-a got %d bytes back, not the identical last good %d bytes", len(got), len(good.Body))
		}
		if st := r.status("kong-a"); st.AppliedVersion != 1 {
			t.Fatalf("applied version %d, want 1 (last good)", st.AppliedVersion)
		}
		advance(compactDelay)
		if raw, _, inflated := state(); raw || inflated != 1 {
			t.Fatalf("last good after restore: raw %v, inflated %d; want compacted again after one inflation", raw, inflated)
		}
	})
}

func TestNoCompactionWhilePushInFlight(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		kb := r.kongs["kong-b"]
		kb.set(func(k *fakeKong) { k.stall = true })
		d1 := bigDesired(1, "")
		r.s.SetDesired(d1)
		advance(compactDelay)
		r.requireConfig("kong-a", d1)
		r.requireConfig("kong-c", d1)
		if raw, _ := r.current(); !raw {
			t.Fatal("compacted while kong-b's first push was in flight")
		}
		if got := r.s.retainedBytes(); got < len(d1.Body) {
			t.Fatalf("retained %d bytes while pushing a %d byte configuration", got, len(d1.Body))
		}

		// The stalled push times out; its retry still finds the raw bytes.
		kb.set(func(k *fakeKong) { k.stall = false })
		advance(DefaultPushTimeout + 2*DefaultBackoffMin)
		if got := kb.config(); got != string(d1.Body) {
			t.Fatalf("kong-b got %d bytes on its retry, want the identical %d", len(got), len(d1.Body))
		}
		advance(compactDelay)
		r.requireCompacted(len(d1.Body))
		if _, inflated := r.current(); inflated != 0 {
			t.Fatalf("inflated %d times; the retry came before compaction", inflated)
		}

		// Every worker is settled now; a drift repair hanging on a
		// restarted kong-b still keeps its inflated copy, however long.
		kb.set(func(k *fakeKong) { k.stall = true })
		kb.restart()
		advance(DefaultDriftInterval * 12 / 10)
		advance(compactDelay)
		if raw, inflated := r.current(); !raw || inflated != 1 {
			t.Fatalf("during the repair push: raw %v, inflated %d; want the one inflated copy kept", raw, inflated)
		}
		kb.set(func(k *fakeKong) { k.stall = false })
		advance(DefaultPushTimeout + 2*DefaultBackoffMin)
		if got := kb.config(); got != string(d1.Body) {
			t.Fatalf("kong-b holds %d bytes after the repair, want the identical %d", len(got), len(d1.Body))
		}
		advance(compactDelay)
		r.requireCompacted(len(d1.Body))
	})
}

// gauge reads an unlabelled gauge from the rig's registry.
func gauge(t *testing.T, r *rig, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single gauge %s", name)
	return 0
}

func TestSmallConfigurationStaysRaw(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, three, nil)
		defer r.shutdown()
		d1 := desired(1, "")
		r.s.SetDesired(d1)
		advance(compactDelay)
		if raw, _ := r.current(); !raw {
			t.Fatal("a small configuration was compacted")
		}
		if got := r.s.retainedBytes(); got != len(d1.Body) {
			t.Fatalf("retained %d bytes, want the raw %d", got, len(d1.Body))
		}
	})
}

func TestRetainedRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{name: "empty", body: []byte{}},
		{name: "small", body: []byte(`{"_format_version":"3.0"}`)},
		{name: "large", body: bigDesired(1, "").Body},
		{name: "incompressible", body: noise(3 * compactMin)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireRoundTrip(t, tc.body)
		})
	}
}

func FuzzRetainedRoundTrip(f *testing.F) {
	f.Add([]byte(`{"_format_version":"3.0","services":[]}`))
	f.Add(noise(1 << 10))
	f.Fuzz(requireRoundTrip)
}

// requireRoundTrip compacts body and requires the identical bytes back.
func requireRoundTrip(t *testing.T, body []byte) {
	r := newRetained(NewDesired(body, 1))
	if _, err := r.compact(); err != nil {
		t.Fatal(err)
	}
	if r.raw != nil {
		t.Fatal("raw body kept after compact")
	}
	got, err := r.acquire()
	if err != nil {
		t.Fatal(err)
	}
	r.release()
	if !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes back, want the identical %d", len(got), len(body))
	}
}

func TestCorruptCompressedBodyIsAnError(t *testing.T) {
	body := bigDesired(7, "").Body
	packed, err := deflate(body)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		packed []byte
		size   int
	}{
		{name: "truncated", packed: packed[:len(packed)/2], size: len(body)},
		{name: "longer than recorded", packed: packed, size: len(body) - 1},
		{name: "shorter than recorded", packed: packed, size: len(body) + 1},
		{name: "garbage", packed: []byte("not deflate at all"), size: 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &retained{version: 7, size: tc.size, packed: tc.packed}
			if _, err := r.acquire(); err == nil || !strings.Contains(err.Error(), "version 7") {
				t.Fatalf("acquire = %v; want an error naming version 7", err)
			}
			if r.pushing != 0 {
				t.Fatal("a failed acquire counts as a push in flight")
			}
		})
	}
}

// noise is deterministic, poorly compressible bytes.
func noise(n int) []byte {
	out := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = byte(x)
	}
	return out
}
