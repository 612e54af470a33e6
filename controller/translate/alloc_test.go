package translate

import (
	"slices"
	"strings"
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

// Strings cut from the arena keep their bytes while later batches fill the
// chunk, outgrow it and move on to new chunks.
func TestTextBatchArenaNeverRewritesCutText(t *testing.T) {
	var b textBatch
	var cut []string
	var want []string
	for i := range 2000 {
		b.reset()
		piece := strings.Repeat(string(rune('a'+i%26)), 1+i%40)
		if i%500 == 7 {
			piece = strings.Repeat("x", 3*arenaChunk) // outgrows any chunk
		}
		b.buf = append(b.buf, piece...)
		b.end()
		cut = append(cut, b.cut().at(0))
		want = append(want, piece)
	}
	for i := range cut {
		if cut[i] != want[i] {
			t.Fatalf("piece %d became %.20q, want %.20q", i, cut[i], want[i])
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		b.reset()
		b.buf = append(b.buf, "k8s-name:example"...)
		b.end()
		_ = b.cut()
	}); n > 0.1 {
		t.Fatalf("%.2f allocations per batch, want the arena's share only", n)
	}
}
