package hlc_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/syncnode/syncnode/hlc"
)

// FuzzParse checks that Parse never panics, fails only with ErrInvalid, and
// that whatever it accepts prints back to a form it reads as the same HLC.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"1764130555123:0:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"0:0:00000000-0000-0000-0000-000000000000",
		"18446744073709551615:4294967295:ffffffff-ffff-ffff-ffff-ffffffffffff",
		"1:0:urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"1:0:{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
		"", "::", "1:2", "1:4294967296:x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, err := hlc.Parse(s)
		if err != nil {
			if !errors.Is(err, hlc.ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		y, err := hlc.Parse(x.String())
		if err != nil || y != x {
			t.Fatalf("Parse(%q) = %v, but Parse(%q) = %v, %v", s, x, x.String(), y, err)
		}
	})
}

// FuzzFromKey checks that FromKey never panics, fails only on short input,
// round-trips through Key, and that key order is HLC order.
func FuzzFromKey(f *testing.F) {
	a := h(1764130555123, 1, devA).Key()
	f.Add(a, h(1764130555123, 1, devB).Key())
	f.Add(a, a)
	f.Add([]byte{}, []byte{1, 2, 3})
	f.Add(bytes.Repeat([]byte{0xff}, hlc.KeySize+3), make([]byte, hlc.KeySize))
	f.Fuzz(func(t *testing.T, ka, kb []byte) {
		x, errA := hlc.FromKey(ka)
		y, errB := hlc.FromKey(kb)
		for _, c := range []struct {
			key []byte
			v   hlc.HLC
			err error
		}{{ka, x, errA}, {kb, y, errB}} {
			if len(c.key) < hlc.KeySize {
				if !errors.Is(c.err, hlc.ErrInvalid) {
					t.Fatalf("FromKey(%x) error = %v, want ErrInvalid for %d bytes", c.key, c.err, len(c.key))
				}
				return
			}
			if c.err != nil {
				t.Fatalf("FromKey(%x) = %v", c.key, c.err)
			}
			if got := c.v.Key(); !bytes.Equal(got, c.key[:hlc.KeySize]) {
				t.Fatalf("FromKey(%x).Key() = %x", c.key, got)
			}
		}
		if got, want := bytes.Compare(ka[:hlc.KeySize], kb[:hlc.KeySize]), x.Compare(y); got != want {
			t.Fatalf("keys compare %d but %v.Compare(%v) = %d", got, x, y, want)
		}
	})
}
