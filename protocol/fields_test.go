package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// fieldStateExample is the state of a note: "title" written by device A,
// "colour" by device B, "size" removed by device B, after a delete by A.
func fieldStateExample() (FieldState, HLC) {
	return FieldState{
		Deleted: hlcA(100, 0),
		Fields: map[string]FieldVersion{
			"title":  {HLC: hlcA(200, 0), Value: mustCBOR("Holidays")},
			"colour": {HLC: hlcB(300, 1), Value: mustCBOR("blue")},
			"size":   {HLC: hlcB(300, 1)},
		},
	}, hlcB(300, 1)
}

func TestFieldStateRoundTrip(t *testing.T) {
	st, v := fieldStateExample()
	b, err := EncodeFieldState(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFieldState(b, v)
	if err != nil {
		t.Fatalf("decoding %x: %v", b, err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, st)
	}
	b2, err := EncodeFieldState(got)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding: %x, want %x (%v)", b2, b, err)
	}
}

func TestFieldStateInvalid(t *testing.T) {
	st, v := fieldStateExample()
	good, _ := EncodeFieldState(st)
	for _, tc := range []struct {
		name    string
		data    []byte
		version HLC
	}{
		{"a map", mustCBOR(map[string]int{"a": 1}), v},
		{"version below a field", good, hlcB(250, 0)},
		{"version at the delete", good, hlcA(100, 0)},
		{"unused version", mustCBOR([]any{nil, []HLC{hlcA(1, 0)}, map[string]any{}}), v},
		{"versions not increasing", mustCBOR([]any{nil, []HLC{hlcA(2, 0), hlcA(1, 0)}, map[string]any{"a": []int{0}, "b": []int{1}}}), v},
		{"index out of range", mustCBOR([]any{nil, []HLC{hlcA(1, 0)}, map[string]any{"a": []int{1}}}), v},
		{"field of three elements", mustCBOR([]any{nil, []HLC{hlcA(1, 0)}, map[string]any{"a": []int{0, 1, 2}}}), v},
		{"undefined value", append(mustCBOR([]any{nil, []HLC{hlcA(1, 0)}})[:0:0], 0x83, 0xf6, 0x81, 0x83, 0x1b, 0, 0, 1, 0x9a, 0xbe, 0x60, 0x04, 0x7a, 0, 0x50, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x4a, 0xaa, 0x8a, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xa1, 0x61, 'a', 0x82, 0x00, 0xf7), v},
		{"zero delete", mustCBOR([]any{HLC{}, []HLC{}, map[string]any{}}), v},
		{"delete with a zero timestamp", mustCBOR([]any{HLC{Counter: 1, DeviceID: hlcA(1, 0).DeviceID}, []HLC{}, map[string]any{}}), v},
		{"version with a nil device", mustCBOR([]any{nil, []HLC{{Timestamp: 5}}, map[string]any{"a": []int{0}}}), v},
		{"duplicate field name", []byte{0x83, 0xf6, 0x80, 0xa2, 0x61, 'a', 0x81, 0x00, 0x61, 'a', 0x81, 0x00}, v},
	} {
		if _, err := DecodeFieldState(tc.data, tc.version); !errors.Is(err, ErrFieldPayload) {
			t.Errorf("%s: %v, want ErrFieldPayload", tc.name, err)
		}
	}
}

func TestFieldPatch(t *testing.T) {
	p := map[string]cbor.RawMessage{"title": mustCBOR("x"), "size": Undefined}
	b, err := EncodeFieldPatch(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFieldPatch(b)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range [][]byte{mustCBOR([]int{1}), mustCBOR(map[int]int{1: 1}), mustCBOR(map[string]any{"a": nil}), {0xa1, 0x61}} {
		if _, err := DecodeFieldPatch(bad); !errors.Is(err, ErrFieldPayload) {
			t.Errorf("patch %x: %v, want ErrFieldPayload", bad, err)
		}
	}
}

// A patch nests at most MaxPatchNesting levels, so that the state it
// becomes (two levels deeper) fits a page; a patch with a name twice is
// refused.
func TestFieldPatchLimits(t *testing.T) {
	nested := func(levels int) []byte { // {"a": [[...[1]...]]}, levels deep
		b := []byte{0x01}
		for range levels - 1 {
			b = append([]byte{0x81}, b...)
		}
		return append([]byte{0xa1, 0x61, 'a'}, b...)
	}
	if _, err := DecodeFieldPatch(nested(MaxPatchNesting)); err != nil {
		t.Errorf("a patch %d levels deep: %v", MaxPatchNesting, err)
	}
	if _, err := DecodeFieldPatch(nested(MaxPatchNesting + 1)); !errors.Is(err, ErrFieldPayload) {
		t.Errorf("a patch %d levels deep: %v, want ErrFieldPayload", MaxPatchNesting+1, err)
	}
	p, err := DecodeFieldPatch(nested(MaxPatchNesting))
	if err != nil {
		t.Fatal(err)
	}
	fs := FieldState{Fields: map[string]FieldVersion{"a": {HLC: hlcA(1, 0), Value: p["a"]}}}
	b, err := EncodeFieldState(fs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFieldState(b, hlcA(1, 0)); err != nil {
		t.Errorf("the state of the deepest patch does not decode: %v", err)
	}
	if _, err := DecodeFieldPatch([]byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}); !errors.Is(err, ErrFieldPayload) {
		t.Errorf("a patch with a field named twice: %v, want ErrFieldPayload", err)
	}
}

// FuzzDecodeFieldPatch: any input decodes or fails with ErrFieldPayload,
// and what decodes encodes to a patch that decodes to the same.
func FuzzDecodeFieldPatch(f *testing.F) {
	f.Add([]byte(mustCBOR(map[string]any{"title": "x", "n": 1})))
	f.Add([]byte{0xa1, 0x61, 'a', 0xf7})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := DecodeFieldPatch(in)
		if err != nil {
			if !errors.Is(err, ErrFieldPayload) {
				t.Fatalf("error %v is not ErrFieldPayload", err)
			}
			return
		}
		b, err := EncodeFieldPatch(p)
		if err != nil {
			t.Fatalf("encoding a decoded patch: %v", err)
		}
		q, err := DecodeFieldPatch(b)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("re-decoding %x: %v %v", b, q, err)
		}
	})
}

// FuzzDecodeFieldState: any input decodes or fails with ErrFieldPayload,
// and what decodes re-encodes deterministically to a state that decodes to
// the same.
func FuzzDecodeFieldState(f *testing.F) {
	st, v := fieldStateExample()
	b, _ := EncodeFieldState(st)
	f.Add(b, v.Timestamp, v.Counter)
	f.Add([]byte{0x83, 0xf6, 0x80, 0xa0}, uint64(1), uint32(0))
	f.Fuzz(func(t *testing.T, in []byte, ts uint64, counter uint32) {
		version := HLC{Timestamp: ts, Counter: counter, DeviceID: exDevB}
		s, err := DecodeFieldState(in, version)
		if err != nil {
			if !errors.Is(err, ErrFieldPayload) {
				t.Fatalf("error %v is not ErrFieldPayload", err)
			}
			return
		}
		b, err := EncodeFieldState(s)
		if err != nil {
			t.Fatalf("encoding a decoded state: %v", err)
		}
		s2, err := DecodeFieldState(b, version)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-decoding %x: %+v %v", b, s2, err)
		}
		b2, err := EncodeFieldState(s2)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not deterministic: %x then %x", b, b2)
		}
	})
}
