package hlc_test

import (
	"bytes"
	"errors"
	"go/build"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// Devices in byte order: devA < devB < devC < devD < devE.
var (
	devA = uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	devB = uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	devC = uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	devD = uuid.MustParse("00000000-0000-0000-0000-00000000000d")
	devE = uuid.MustParse("00000000-0000-0000-0000-00000000000e")
	devZ = uuid.MustParse("ffffffff-ffff-ffff-ffff-ffffffffffff")
)

// h builds an HLC with a keyed literal (the zero-size `_` field forbids
// unkeyed ones from other packages).
func h(ts uint64, ctr uint32, dev uuid.UUID) hlc.HLC {
	return hlc.HLC{Timestamp: ts, Counter: ctr, DeviceID: dev}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b hlc.HLC
		want int
	}{
		{hlc.HLC{}, hlc.HLC{}, 0},
		{h(1, 0, devA), h(1, 0, devA), 0},
		{h(1, 0, devA), h(2, 0, devA), -1},
		{h(2, 0, devA), h(1, 9, devZ), 1}, // timestamp first
		{h(1, 1, devA), h(1, 2, devA), -1},
		{h(1, 2, devA), h(1, 1, devZ), 1}, // then counter
		{h(1, 1, devA), h(1, 1, devB), -1},
		{h(1, 1, devB), h(1, 1, devA), 1}, // then device, as bytes
		{hlc.HLC{}, h(0, 0, devA), -1},
		{h(math.MaxUint64, math.MaxUint32, devZ), h(math.MaxUint64, math.MaxUint32, devE), 1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
		if got := tt.a.Less(tt.b); got != (tt.want < 0) {
			t.Errorf("%v.Less(%v) = %v, want %v", tt.a, tt.b, got, tt.want < 0)
		}
		if got := tt.a.After(tt.b); got != (tt.want > 0) {
			t.Errorf("%v.After(%v) = %v, want %v", tt.a, tt.b, got, tt.want > 0)
		}
		if got := tt.a == tt.b; got != (tt.want == 0) {
			t.Errorf("%v == %v is %v, want %v", tt.a, tt.b, got, tt.want == 0)
		}
		wantMax, wantMin := tt.a, tt.b
		if tt.want < 0 {
			wantMax, wantMin = tt.b, tt.a
		}
		if got := hlc.Max(tt.a, tt.b); got != wantMax {
			t.Errorf("Max(%v, %v) = %v, want %v", tt.a, tt.b, got, wantMax)
		}
		if got := hlc.Min(tt.a, tt.b); got != wantMin {
			t.Errorf("Min(%v, %v) = %v, want %v", tt.a, tt.b, got, wantMin)
		}
	}
}

func TestIsZero(t *testing.T) {
	if !(hlc.HLC{}).IsZero() {
		t.Error("HLC{}.IsZero() = false, want true")
	}
	for _, x := range []hlc.HLC{h(1, 0, uuid.Nil), h(0, 1, uuid.Nil), h(0, 0, devA)} {
		if x.IsZero() {
			t.Errorf("%v.IsZero() = true, want false", x)
		}
	}
}

// randHLC draws HLCs from small pools often enough that equal timestamps,
// counters and devices (and whole equal HLCs) are common, plus extremes and
// fully random values.
func randHLC(r *rand.Rand) hlc.HLC {
	var x hlc.HLC
	switch r.IntN(4) {
	case 0:
		x.Timestamp = uint64(r.IntN(3))
	case 1:
		x.Timestamp = []uint64{0, 1 << 32, 1<<63 - 1, 1 << 63, math.MaxUint64}[r.IntN(5)]
	case 2:
		x.Timestamp = 1_700_000_000_000 + uint64(r.IntN(3))
	default:
		x.Timestamp = r.Uint64()
	}
	switch r.IntN(3) {
	case 0:
		x.Counter = uint32(r.IntN(3))
	case 1:
		x.Counter = []uint32{0, 1 << 8, 1 << 24, 1 << 31, math.MaxUint32}[r.IntN(5)]
	default:
		x.Counter = r.Uint32()
	}
	switch r.IntN(3) {
	case 0:
		x.DeviceID = []uuid.UUID{uuid.Nil, devA, devB, devZ}[r.IntN(4)]
	default:
		for i := range x.DeviceID {
			x.DeviceID[i] = byte(r.Uint32())
		}
	}
	return x
}

func TestKeyOrderMatchesCompare(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var equal int
	for i := 0; i < 20000; i++ {
		a, b := randHLC(r), randHLC(r)
		if i%10 == 0 {
			b = a // guarantee a share of identical pairs
		}
		if a == b {
			equal++
		}
		ka, kb := a.Key(), b.Key()
		if len(ka) != hlc.KeySize {
			t.Fatalf("len(%v.Key()) = %d, want %d", a, len(ka), hlc.KeySize)
		}
		if got, want := bytes.Compare(ka, kb), a.Compare(b); got != want {
			t.Fatalf("bytes.Compare(%v.Key(), %v.Key()) = %d, want %d (the HLC order)", a, b, got, want)
		}
		back, err := hlc.FromKey(ka)
		if err != nil || back != a {
			t.Fatalf("FromKey(%v.Key()) = %v, %v; want %v, nil", a, back, err, a)
		}
	}
	if equal < 2000 {
		t.Fatalf("only %d equal pairs drawn; the test wants the equality case covered", equal)
	}
}

func TestKeyLayout(t *testing.T) {
	x := h(0x0102030405060708, 0x090a0b0c, uuid.MustParse("10111213-1415-1617-1819-1a1b1c1d1e1f"))
	want := []byte{
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // timestamp, big-endian
		0x09, 0x0a, 0x0b, 0x0c, // counter, big-endian
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	}
	if got := x.Key(); !bytes.Equal(got, want) {
		t.Fatalf("Key() = %x, want %x", got, want)
	}
	prefix := []byte("log/")
	got := x.AppendKey(slices.Clone(prefix))
	if !bytes.Equal(got, append(prefix, want...)) {
		t.Fatalf("AppendKey(%q) = %x, want the prefix then %x", prefix, got, want)
	}
}

func TestFromKey(t *testing.T) {
	x := h(42, 7, devB)
	key := x.Key()
	for n := 0; n < hlc.KeySize; n++ {
		if _, err := hlc.FromKey(key[:n]); !errors.Is(err, hlc.ErrInvalid) {
			t.Errorf("FromKey(%d bytes) error = %v, want one wrapping ErrInvalid", n, err)
		}
	}
	// A longer slice (an HLC followed by more key) decodes its first KeySize bytes.
	got, err := hlc.FromKey(append(key, 0xff, 0xee))
	if err != nil || got != x {
		t.Errorf("FromKey(key+suffix) = %v, %v; want %v, nil", got, err, x)
	}
}

func TestStringParse(t *testing.T) {
	x := h(1764130555123, 0, uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"))
	if got, want := x.String(), "1764130555123:0:6ba7b810-9dad-11d1-80b4-00c04fd430c8"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		a := randHLC(r)
		got, err := hlc.Parse(a.String())
		if err != nil || got != a {
			t.Fatalf("Parse(%q) = %v, %v; want %v, nil", a.String(), got, err, a)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const dev = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	for _, s := range []string{
		"",
		"1",
		"1:2",
		"::",
		"x:0:" + dev,
		"-1:0:" + dev,
		"18446744073709551616:0:" + dev, // timestamp overflows uint64
		"1:x:" + dev,
		"1:-1:" + dev,
		"1:4294967296:" + dev, // counter overflows uint32
		"1:0:",
		"1:0:not-a-uuid",
		"1:0:" + dev + "0",
		" 1:0:" + dev,
	} {
		got, err := hlc.Parse(s)
		if !errors.Is(err, hlc.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, %v; want an error wrapping ErrInvalid", s, got, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "hlc: ") {
			t.Errorf("Parse(%q) error %q lacks the package prefix", s, err)
		}
	}
}

// TestZeroSizeField checks that the `_ struct{} cbor:",toarray"` field in HLC
// costs nothing: HLC stays comparable with == and usable as a map key, keyed
// literals work, and CBOR writes the protocol's 3-element array.
func TestZeroSizeField(t *testing.T) {
	a := hlc.HLC{Timestamp: 5, Counter: 1, DeviceID: devA}
	b := hlc.HLC{DeviceID: devA, Counter: 1, Timestamp: 5}
	if a != b {
		t.Fatalf("keyed literals %v and %v differ", a, b)
	}
	m := map[hlc.HLC]int{a: 1}
	if m[b] != 1 {
		t.Fatal("HLC as map key: equal value does not find the entry")
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("reflect.DeepEqual of equal HLCs is false")
	}
	if !reflect.TypeFor[hlc.HLC]().Comparable() {
		t.Fatal("HLC is not comparable")
	}

	f, ok := reflect.TypeFor[hlc.HLC]().FieldByName("_")
	if !ok || f.Type.Size() != 0 || f.Tag.Get("cbor") != ",toarray" {
		t.Fatalf("HLC's `_` field = %+v, want a zero-size field tagged cbor:\",toarray\"", f)
	}

	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	x := h(1764130555123, 7, uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"))
	got, err := em.Marshal(x)
	if err != nil {
		t.Fatalf("cbor.Marshal(%v): %v", x, err)
	}
	want := append([]byte{
		0x83,                                                 // array(3)
		0x1b, 0x00, 0x00, 0x01, 0x9a, 0xbe, 0x60, 0x04, 0xf3, // uint64 1764130555123
		0x07, // uint 7
		0x50, // bytes(16)
	}, x.DeviceID[:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("cbor.Marshal(%v) = %x, want %x ([timestamp, counter, device_id])", x, got, want)
	}
	var back hlc.HLC
	if err := cbor.Unmarshal(got, &back); err != nil || back != x {
		t.Fatalf("cbor.Unmarshal(%x) = %v, %v; want %v, nil", got, back, err, x)
	}
}

// TestImports is the negative dependency test: the clock is a leaf package
// that every other package uses, so it imports only the standard library and
// the UUID type.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		if strings.Contains(first, ".") && imp != "github.com/google/uuid" {
			t.Errorf("package hlc imports %q; it may import only the standard library and github.com/google/uuid", imp)
		}
	}
}
