package translate

import (
	"slices"
	"testing"
)

func TestSlabHandsOutSeparateZeroedSlices(t *testing.T) {
	var s slab[int]
	var got [][]int
	for n := range 40 { // crosses several chunks, of growing size
		part := s.take(n%5 + 1)
		if len(part) != cap(part) || slices.ContainsFunc(part, func(v int) bool { return v != 0 }) {
			t.Fatalf("take(%d) = %v (cap %d): want zeroed, capacity equal to length", n%5+1, part, cap(part))
		}
		for i := range part {
			part[i] = n
		}
		got = append(got, part)
	}
	// Appending to one part copies it rather than overwriting the next.
	_ = append(got[0], -1)
	for n, part := range got {
		for _, v := range part {
			if v != n {
				t.Fatalf("part %d = %v: overwritten", n, part)
			}
		}
	}
}

func TestTextBatchCutsPieces(t *testing.T) {
	var b textBatch
	for round := range 2 { // pieces stay valid after a reset
		b.reset()
		b.buf = append(b.buf, "name"...)
		b.end()
		b.end() // an empty piece
		b.buf = append(b.buf, "id"...)
		b.end()
		p := b.cut()
		if p.at(0) != "name" || p.at(1) != "" || p.at(2) != "id" {
			t.Fatalf("round %d: pieces %q %q %q", round, p.at(0), p.at(1), p.at(2))
		}
	}
}
