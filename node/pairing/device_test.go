package pairing

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// exDevicePeer is a valid peer ID for device record tests.
const exDevicePeer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

// A device record's payload is deterministic CBOR: keys sorted by their
// encodings (name, peer_id, added_at, added_by), shortest heads.
func TestDeviceRecordIsDeterministic(t *testing.T) {
	d := DeviceRecord{PeerID: exDevicePeer, Name: "phone", AddedBy: "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", AddedAt: 1764130555000}
	got := d.Encode()
	want := cborMap(t,
		"name", "phone",
		"peer_id", exDevicePeer,
		"added_at", uint64(1764130555000),
		"added_by", "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode() = %x\nwant        %x (keys in deterministic order)", got, want)
	}
	// The creator's own record has no added_by.
	own := DeviceRecord{PeerID: exDevicePeer, Name: "laptop", AddedAt: 1764130555000}
	if got, want := own.Encode(), cborMap(t, "name", "laptop", "peer_id", exDevicePeer, "added_at", uint64(1764130555000)); !bytes.Equal(got, want) {
		t.Fatalf("Encode() without added_by = %x, want %x", got, want)
	}
}

// cborMap encodes the key/value pairs as one CBOR map in the order given.
func cborMap(t *testing.T, kv ...any) []byte {
	t.Helper()
	out := []byte{0xa0 | byte(len(kv)/2)}
	for _, v := range kv {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// Stores hold device records written before the payload was deterministic,
// with the keys in the struct's order: they still read.
func TestOldDeviceRecordStillReads(t *testing.T) {
	// {"peer_id": …, "name": "phone", "added_by": …, "added_at": 1764130555000}
	old := cborMap(t,
		"peer_id", exDevicePeer,
		"name", "phone",
		"added_by", "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
		"added_at", int64(1764130555000))
	d, err := DecodeDeviceRecord(old)
	if err != nil {
		t.Fatalf("DecodeDeviceRecord(%x): %v", old, err)
	}
	want := DeviceRecord{PeerID: exDevicePeer, Name: "phone", AddedBy: "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", AddedAt: 1764130555000}
	if d != want {
		t.Fatalf("read %+v, want %+v", d, want)
	}
	if bytes.Equal(d.Encode(), old) {
		t.Fatal("the old form is the new one; the test shows nothing")
	}
}

func TestDecodeDeviceRecordRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"not CBOR", []byte{0xff}},
		{"not a map", []byte{0x01}},
		{"no peer ID", cborMap(t, "name", "x", "added_at", 1)},
		{"a bad peer ID", cborMap(t, "name", "x", "peer_id", "not a peer", "added_at", 1)},
		{"a duplicate key", cborMap(t, "peer_id", exDevicePeer, "peer_id", exDevicePeer)},
		{"peer_id in another case", cborMap(t, "Peer_ID", exDevicePeer)},
	} {
		if d, err := DecodeDeviceRecord(tc.b); err == nil {
			t.Errorf("%s: DecodeDeviceRecord(%s) = %+v, want an error", tc.name, hex.EncodeToString(tc.b), d)
		}
	}
}

func FuzzDecodeDeviceRecord(f *testing.F) {
	f.Add(DeviceRecord{PeerID: exDevicePeer, Name: "phone", AddedAt: 1}.Encode())
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDeviceRecord(b)
		if err != nil {
			return
		}
		again, err := DecodeDeviceRecord(d.Encode())
		if err != nil || again != d {
			t.Fatalf("a decoded record does not survive encoding: %+v -> %+v, %v", d, again, err)
		}
	})
}
