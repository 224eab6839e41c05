package store

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestChunked compares the chunked set with a plain sorted slice under random
// inserts, removals, prefix removals and seeks, with enough elements to split
// and empty chunks.
func TestChunked(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := chunked[int]{cmp: cmp.Compare[int]}
	var ref []int
	for step := range 60_000 {
		x := rng.IntN(5000)
		switch op := rng.IntN(100); {
		case op < 60:
			c.insert(x)
			if i, found := slices.BinarySearch(ref, x); !found {
				ref = slices.Insert(ref, i, x)
			}
		case op < 98:
			c.remove(x)
			if i, found := slices.BinarySearch(ref, x); found {
				ref = slices.Delete(ref, i, i+1)
			}
		default:
			x /= 20
			c.removePrefix(func(e int) bool { return e >= x })
			i, _ := slices.BinarySearch(ref, x)
			ref = ref[i:]
		}
		if c.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, c.len(), len(ref))
		}
		if step%1000 == 0 {
			from := rng.IntN(5000)
			var got []int
			c.ascend(func(e int) bool { return e > from }, func(e int) bool { got = append(got, e); return true })
			i, found := slices.BinarySearch(ref, from)
			if found {
				i++
			}
			if !slices.Equal(got, ref[i:]) && !(len(got) == 0 && len(ref[i:]) == 0) {
				t.Fatalf("step %d: ascend after %d = %v..., want %v...", step, from, got[:min(5, len(got))], ref[i:min(i+5, len(ref))])
			}
			for ci, ch := range c.chunks {
				if len(ch) == 0 || len(ch) > chunkMax {
					t.Fatalf("step %d: chunk %d has %d elements", step, ci, len(ch))
				}
			}
		}
	}
}
