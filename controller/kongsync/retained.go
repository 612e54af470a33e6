package kongsync

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
	"time"
)

const (
	// compactMin is the smallest body worth compressing: below it the
	// saving is a few KiB and not worth a compressor's buffers.
	compactMin = 64 << 10
	// compactDelay is how long a configuration stays idle before it is
	// compressed. While changes follow each other closely (a rollout
	// moving endpoints), each version is soon replaced: compressing every
	// one would cost CPU (~100ms for 10k Ingresses) and save nothing.
	compactDelay = 2 * time.Second
)

// retained is one declarative configuration kept for as long as a worker may
// push it again: the current Desired, and each replica's last good one.
//
// A large configuration (10k Ingresses: 16-19 MiB of JSON) is the largest
// thing the controller holds, and most of the time nobody is pushing it. So
// once it is idle the compactor keeps only a deflated copy (the JSON is
// repetitive, its UUIDs are not: 16 MiB deflates to 2.3 MiB), and a later
// push (drift repair, a new replica, a retry, the last good configuration
// after a rejection) inflates it again for as long as pushes of it are in
// flight. A new configuration is pushed
// from its raw bytes at once: compression happens only after it went idle,
// never on the way to Kong.
type retained struct {
	hash    string
	version uint64
	size    int // length of the raw body

	mu       sync.Mutex
	raw      []byte    // nil while compacted
	packed   []byte    // deflated raw; nil until first compressed
	pushing  int       // pushes in flight using raw
	inflated int       // times raw was restored from packed
	idle     time.Time // since when compactable; zero: not (yet) seen so
}

func newRetained(d Desired) *retained {
	return &retained{hash: d.Hash, version: d.Version, size: len(d.Body), raw: d.Body}
}

// desired returns the public view of r with body as its Body.
func (r *retained) desired(body []byte) Desired {
	return Desired{Body: body, Hash: r.hash, Version: r.version}
}

// acquire returns the raw body for one push, inflating it if it was
// compacted; every successful acquire must be paired with a release. While
// a push holds it, the raw body is never dropped, so concurrent pushes of
// the same configuration share one inflated copy.
func (r *retained) acquire() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.raw == nil && r.packed != nil {
		raw, err := inflate(r.packed, r.size)
		if err != nil {
			return nil, fmt.Errorf("configuration version %d: restoring the retained body: %w", r.version, err)
		}
		r.raw = raw
		r.inflated++
	}
	r.pushing++
	r.idle = time.Time{}
	return r.raw, nil
}

func (r *retained) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushing--
}

// compactAt returns when r is to be compacted, if it is large, still held
// raw and not being pushed: compactDelay after it was first found so.
func (r *retained) compactAt(now time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.raw == nil || r.pushing > 0 || r.size < compactMin {
		r.idle = time.Time{}
		return time.Time{}, false
	}
	if r.idle.IsZero() {
		r.idle = now
	}
	return r.idle.Add(compactDelay), true
}

// compact drops the raw body of an idle r, compressing it first unless a
// compressed copy is already kept (it was inflated for a push since), and
// returns how many raw bytes it dropped. The compression runs without the
// lock: a push starting meanwhile reads the same raw bytes, and then keeps
// them until it is done.
func (r *retained) compact() (int, error) {
	r.mu.Lock()
	raw, packed := r.raw, r.packed
	r.mu.Unlock()
	if raw == nil {
		return 0, nil
	}
	if packed == nil {
		var err error
		if packed, err = deflate(raw); err != nil {
			return 0, fmt.Errorf("configuration version %d: compressing the retained body: %w", r.version, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.packed = packed
	if r.pushing > 0 {
		return 0, nil
	}
	r.raw = nil
	return len(raw), nil
}

// bytes is what r keeps in memory now.
func (r *retained) bytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.raw) + len(r.packed)
}

func deflate(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(raw) / 8)
	zw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	// Trim the spare capacity: it would otherwise stay retained.
	return bytes.Clone(buf.Bytes()), nil
}

func inflate(packed []byte, size int) ([]byte, error) {
	raw := make([]byte, size)
	zr := flate.NewReader(bytes.NewReader(packed))
	defer zr.Close()
	if _, err := io.ReadFull(zr, raw); err != nil {
		return nil, err
	}
	// The stream must end exactly at size bytes.
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		return nil, fmt.Errorf("compressed body longer than its recorded %d bytes", size)
	}
	return raw, nil
}
