package translate

import (
	"crypto/sha1"
	"encoding/hex"
	"unsafe"

	"github.com/google/uuid"
)

// A 10k-Ingress snapshot becomes some 60k Kong entities, each made of a
// dozen small values that go-kong wants behind pointers. Allocated one by
// one they cost more than the translation itself, mostly in the garbage
// collector. The helpers below carve them out of larger allocations instead.
// Nothing handed out is ever written again by the translator, and no two
// entities share memory except their tag lists, the header matches of the
// routes of one Ingress and the config of the plugins of one KongPlugin,
// so a consumer may still modify one entity without affecting another
// unless it modifies those in place.

// slab hands out values and short slices carved from larger chunks. Chunks
// start small, so that a translation of a handful of objects stays cheap,
// and double up to maxSlabChunk.
type slab[T any] struct {
	free      []T
	nextChunk int
}

const (
	minSlabChunk = 8
	maxSlabChunk = 1024
)

// take returns n zero values. The slice's capacity is n, so appending to it
// copies rather than overwriting a neighbour.
func (s *slab[T]) take(n int) []T {
	if n > len(s.free) {
		s.nextChunk = min(max(2*s.nextChunk, minSlabChunk), maxSlabChunk)
		s.free = make([]T, max(n, s.nextChunk))
	}
	out := s.free[:n:n]
	s.free = s.free[n:]
	return out
}

func (s *slab[T]) one() *T { return &s.take(1)[0] }

// textBatch builds several strings at once: each piece is appended to buf
// and closed with end, then cut turns them all into substrings of one
// string.
//
// The bytes are written straight into an arena chunk shared by many
// batches, and cut makes the string over them without copying: a 10k
// snapshot cuts some 80,000 batches, and as separate allocations they were
// most of the translation's allocations. This is sound because arena bytes
// are never written again once cut: reset starts the next batch after
// them, and a chunk that fills up is replaced, never reused. A batch that
// outgrows its chunk moves to a fresh array by append, and is copied once
// by cut. Strings of one chunk keep the whole chunk alive, which is fine
// for a translation's entities, kept or dropped together.
type textBatch struct {
	buf   []byte
	ends  []int
	arena []byte // the current chunk: len is the part already cut
}

// Arena chunks are large enough for a few hundred batches; a batch starts
// in a new chunk when less than minBatchRoom is left.
const (
	arenaChunk   = 32 << 10
	minBatchRoom = 1 << 10
)

func (b *textBatch) reset() {
	if cap(b.arena)-len(b.arena) < minBatchRoom {
		b.arena = make([]byte, 0, arenaChunk)
	}
	b.buf, b.ends = b.arena[len(b.arena):len(b.arena)], b.ends[:0]
}

// end closes the piece appended since the previous end (or reset).
func (b *textBatch) end() { b.ends = append(b.ends, len(b.buf)) }

// cut returns the pieces; they stay valid after the batch is reset.
func (b *textBatch) cut() textPieces {
	if len(b.buf) == 0 {
		return textPieces{"", b.ends}
	}
	free := b.arena[len(b.arena):cap(b.arena)]
	if len(free) == 0 || unsafe.SliceData(b.buf) != unsafe.SliceData(free) {
		// Not written into the arena (it outgrew it, or reset was not
		// called): copied.
		return textPieces{string(b.buf), b.ends}
	}
	b.arena = b.arena[:len(b.arena)+len(b.buf)]
	return textPieces{unsafe.String(unsafe.SliceData(b.buf), len(b.buf)), b.ends}
}

// copyText returns b as a string cut from the text arena.
func (b *builder) copyText(v []byte) string {
	tb := &b.text
	tb.reset()
	tb.buf = append(tb.buf, v...)
	tb.end()
	return tb.cut().at(0)
}

type textPieces struct {
	s    string
	ends []int // shared with the batch: read before the next reset
}

func (p textPieces) at(i int) string {
	start := 0
	if i > 0 {
		start = p.ends[i-1]
	}
	return p.s[start:p.ends[i]]
}

// idSpace is the UUIDv5 namespace for entity ids. Changing it changes every
// id konductor has ever written, so it is fixed forever.
var idSpace = uuid.MustParse("5f0c7a4e-3b8d-4c1e-9a62-6b1f0d2e8c47")

// idLen is the length of a UUID in its text form.
const idLen = 36

// idMaker derives stable entity ids, the UUIDv5 of "<entity>/<key>", so the
// same entity keeps its id across translations and controller restarts.
// The key is appended to buf after begin; append formats the id without
// allocating.
type idMaker struct {
	buf       []byte // idSpace, entity, '/', key
	keyOffset int
}

func (m *idMaker) begin(entity string) {
	m.buf = append(append(append(m.buf[:0], idSpace[:]...), entity...), '/')
	m.keyOffset = len(m.buf)
}

// key is what was appended after begin.
func (m *idMaker) key() []byte { return m.buf[m.keyOffset:] }

// append appends the id of the current key to dst.
func (m *idMaker) append(dst []byte) []byte {
	sum := sha1.Sum(m.buf)
	sum[6] = sum[6]&0x0f | 0x50 // version 5
	sum[8] = sum[8]&0x3f | 0x80 // RFC 4122 variant
	var text [idLen]byte
	hex.Encode(text[0:8], sum[0:4])
	hex.Encode(text[9:13], sum[4:6])
	hex.Encode(text[14:18], sum[6:8])
	hex.Encode(text[19:23], sum[8:10])
	hex.Encode(text[24:36], sum[10:16])
	text[8], text[13], text[18], text[23] = '-', '-', '-', '-'
	return append(dst, text[:]...)
}

// entityID is the id of one entity, for the few made outside a batch.
func (bd *builder) entityID(entity, key string) string {
	bd.ids.begin(entity)
	bd.ids.buf = append(bd.ids.buf, key...)
	var text [idLen]byte
	return string(bd.ids.append(text[:0]))
}
