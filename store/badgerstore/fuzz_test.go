package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// Input bounds of the fuzz targets. The decoders read a fixed header and copy
// the rest, and the parsers scan for one NUL, so longer inputs reach no new
// code; but a longer input takes more loop iterations (in fmt, strings and
// the copies), which the fuzzer counts as new coverage, and Go's minimizer is
// quadratic in the length of an input it minimizes: one such input stalls a
// worker for the whole of a 20 s run. maxFuzzKey is the longest key the store
// writes (an index entry with the longest model type) plus one byte.
const (
	maxFuzzKey   = maxStreamPrefix + hlc.KeySize + idSize + 1
	maxFuzzValue = 256
)

// Fuzz seeds: one value of each kind the store writes, with the key it is
// stored under.
func fuzzSeeds(f *testing.F) (keys, values [][]byte) {
	f.Helper()
	v1 := hlc.HLC{Timestamp: 1764130555123, Counter: 7, DeviceID: devA}
	v2 := hlc.HLC{Timestamp: 1764130555999, Counter: 0, DeviceID: devB}
	recID := uuid.UUID{0x5e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	st := store.Stream{Library: lib, ModelType: model, Origin: devA}
	add := func(k, v []byte) {
		keys = append(keys, k)
		values = append(values, v)
	}
	mustCBOR := func(b []byte, err error) []byte {
		if err != nil {
			f.Fatal(err)
		}
		return b
	}

	live := store.Record{Library: lib, ModelType: model, ID: recID, Version: v1, Data: []byte{0xa1, 0x61, 0x61, 0x01}}
	tomb := store.Record{Library: lib, ModelType: model, ID: recID, Version: v2, Deleted: true}
	rk := recordKey(nil, lib, model, recID)
	add(rk, appendRecordValue(nil, &live))
	add(rk, appendRecordValue(nil, &tomb))
	add(rk, appendRecordValue(nil, &store.Record{Version: v1})) // live, no data
	add(rk, appendRecordHead(nil, &live))
	add(rk, appendRecordHead(nil, &tomb))

	for _, e := range []store.LogEntry{
		{Library: lib, ModelType: model, HLC: v1, RecordID: recID, ChangeType: "Insert", Data: []byte{0xa0}},
		{Library: lib, ModelType: model, HLC: v2, RecordID: recID, ChangeType: "Update", Data: []byte{0xa1, 0x61, 0x62, 0x02}, Prev: v1},
		{Library: lib, ModelType: model, HLC: v2, RecordID: recID, ChangeType: "Delete", Prev: v1},
	} {
		add(logKey(nil, &e), appendLogValue(nil, &e))
	}

	add(streamPrefix(nil, kindWatermark, st), appendHLCValue(nil, v1))
	add(ackKey(nil, &store.Ack{Stream: st, Member: devB}), appendHLCValue(nil, v2))
	add(streamPrefix(nil, kindPrune, st), appendHLCValue(nil, v1, v2))
	add(clockKey, appendUint64Value(nil, 1764130555123))
	add(schemaKey, appendSchemaValue(nil, 1))
	add(quarantineKey(nil, store.QuarantineKey{Library: lib, HLC: v1, From: devB}), appendBytesValue(nil, []byte("a message")))
	add(metaKey(nil, "peer.key"), appendBytesValue(nil, nil))
	add(libPrefix(nil, kindLibrary, lib), mustCBOR(encodeLibrary(&store.Library{ID: lib, Name: "notes", Secret: []byte{1, 2, 3, 4}, CreatedAt: 1764130555123})))
	add(libPrefix(nil, kindLibrary, lib), mustCBOR(encodeLibrary(&store.Library{ID: lib})))
	add(memberKey(nil, lib, devB), mustCBOR(encodeMember(&store.Member{Library: lib, DeviceID: devB, PeerID: "12D3KooWExample", Name: "laptop", AddedBy: devA, AddedAt: 1, LastSeen: 2})))
	add(memberKey(nil, lib, devA), mustCBOR(encodeMember(&store.Member{Library: lib, DeviceID: devA})))
	return keys, values
}

// checkCorrupt fails unless err wraps store.ErrCorrupt and names the key's
// kind and the key.
func checkCorrupt(t *testing.T, what string, key []byte, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("%s(%x): error %v does not wrap ErrCorrupt", what, key, err)
	}
	kind := byte(0)
	if len(key) > 0 {
		kind = key[0]
	}
	msg := err.Error()
	if !strings.Contains(msg, kindName(kind)) || !strings.Contains(msg, fmt.Sprintf("key %x", key)) {
		t.Fatalf("%s(%x): error %q does not name the %s key", what, key, msg, kindName(kind))
	}
}

// checkOwned decodes a private copy of v with decode, scribbles over the copy
// and decodes v again: the two results must be equal, or the decoded value
// shares memory with the input (Badger's value buffers are reused once
// item.Value returns).
func checkOwned[T any](t *testing.T, what string, v []byte, decode func([]byte) (T, error)) {
	t.Helper()
	c := bytes.Clone(v)
	got, err := decode(c)
	if err != nil {
		t.Fatalf("%s: decoding a copy failed: %v", what, err)
	}
	for i := range c {
		c[i] ^= 0xff
	}
	want, _ := decode(v)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s(%x): decoded value changed with its input: %+v, want %+v", what, v, got, want)
	}
}

// isCBORMap reports whether v starts with a CBOR map header (major type 5),
// the only item encodeLibrary and encodeMember write.
func isCBORMap(v []byte) bool { return len(v) > 0 && v[0]>>5 == 5 }

// FuzzValueDecoders feeds arbitrary key and value bytes to every value
// decoder. None may panic; each either succeeds or fails with an error
// wrapping store.ErrCorrupt that names the key. What decodes must not share
// the input's memory, and re-encodes with its encoder to bytes that decode to
// the same value: for the hand-rolled binary forms, to the very same bytes
// (each has one encoding of a value); for the CBOR forms (which accept
// non-canonical input) to the canonical encoding, which is a fixed point.
// appendRecordValue appends a record value of format 1, as schema 1 wrote
// it (data and all under the record key); tests write it to check that it is
// still read.
func appendRecordValue(dst []byte, r *store.Record) []byte {
	dst = append(dst, format1, recordFlags(r))
	dst = r.Version.AppendKey(dst)
	return append(dst, r.Data...)
}

func FuzzValueDecoders(f *testing.F) {
	keys, values := fuzzSeeds(f)
	for i, v := range values {
		k := keys[i]
		f.Add(k, v)
		if len(v) > 0 {
			f.Add(k, v[:len(v)-1])       // truncated
			f.Add(k, v[:len(v)/2])       // cut in half
			f.Add(k, bytes.Clone(v[1:])) // no format byte
		}
		f.Add(k, append(bytes.Clone(v), 0))                // over-long
		f.Add(k, append(bytes.Clone(v), v...))             // doubled
		f.Add(k, append([]byte{2}, v[min(1, len(v)):]...)) // unknown format
	}
	f.Add([]byte{}, []byte{})
	f.Add([]byte(nil), []byte{format1})
	f.Add([]byte{kindRecord}, []byte{format1, flagTombstone | 2})
	f.Add([]byte{kindLog}, append([]byte{format1, 4}, make([]byte, logHeader)...))
	// CBOR that is valid but not canonical, or not valid for the schema.
	f.Add([]byte{kindLibrary}, []byte{0xbf, 0x01, 0x61, 0x78, 0xff})             // indefinite-length map
	f.Add([]byte{kindLibrary}, []byte{0xa2, 0x01, 0x61, 0x78, 0x01, 0x61, 0x79}) // duplicate key
	f.Add([]byte{kindLibrary}, []byte{0xa1, 0x03, 0x3a, 0, 0, 0, 1})             // negative CreatedAt
	f.Add([]byte{kindMember}, []byte{0xa1, 0x03, 0x43, 1, 2, 3})                 // 3-byte AddedBy
	f.Add([]byte{kindMember}, []byte{0xa1, 0x03, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{kindMember}, []byte{0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{kindMember}, []byte{0xf6})                          // null
	f.Add([]byte{kindLibrary}, []byte{0xc6, 0xa1, 0x01, 0x61, 0x78}) // tagged map

	f.Fuzz(func(t *testing.T, key, v []byte) {
		if len(key) > maxFuzzKey || len(v) > maxFuzzValue {
			return
		}
		// Records.
		{
			r := store.Record{Data: []byte("stale"), Deleted: true}
			inIndex, err := decodeRecord(key, v, &r)
			ver, verr := recordVersion(key, v)
			if verr != nil {
				checkCorrupt(t, "recordVersion", key, verr)
			}
			if err != nil {
				checkCorrupt(t, "decodeRecord", key, err)
			} else {
				if verr != nil || ver != r.Version {
					t.Fatalf("decodeRecord(%x) version %v, recordVersion %v, %v", v, r.Version, ver, verr)
				}
				if r.Data != nil && len(r.Data) == 0 {
					t.Fatalf("decodeRecord(%x): empty non-nil data", v)
				}
				if r.Deleted && r.Data != nil {
					t.Fatalf("decodeRecord(%x): tombstone with data %x", v, r.Data)
				}
				enc := appendRecordValue(nil, &r)
				if v[0] == format2 {
					enc = appendRecordHead(nil, &r)
					if inIndex == r.Deleted || r.Data != nil {
						t.Fatalf("decodeRecord(%x) of a record head: %+v, data in the index %v", v, r, inIndex)
					}
				} else if inIndex {
					t.Fatalf("decodeRecord(%x) of format 1 says the data is in the index", v)
				}
				if !bytes.Equal(enc, v) {
					t.Fatalf("decodeRecord(%x) = %+v, which encodes as %x", v, r, enc)
				}
				checkOwned(t, "decodeRecord", v, func(b []byte) (store.Record, error) {
					var r store.Record
					_, err := decodeRecord(key, b, &r)
					return r, err
				})
			}
		}

		// Log entries.
		{
			e := store.LogEntry{Data: []byte("stale"), ChangeType: "stale"}
			if err := decodeLogValue(key, v, &e); err != nil {
				checkCorrupt(t, "decodeLogValue", key, err)
			} else {
				if e.Data != nil && len(e.Data) == 0 {
					t.Fatalf("decodeLogValue(%x): empty non-nil data", v)
				}
				if changeTypeCode(e.ChangeType) == 0 {
					t.Fatalf("decodeLogValue(%x): change type %q", v, e.ChangeType)
				}
				if enc := appendLogValue(nil, &e); !bytes.Equal(enc, v) {
					t.Fatalf("decodeLogValue(%x) = %+v, which encodes as %x", v, e, enc)
				}
				checkOwned(t, "decodeLogValue", v, func(b []byte) (store.LogEntry, error) {
					var e store.LogEntry
					return e, decodeLogValue(key, b, &e)
				})
			}
		}

		// Watermarks and acks (one HLC), prune points (two).
		{
			var h hlc.HLC
			if err := decodeHLCs(key, v, &h); err != nil {
				checkCorrupt(t, "decodeHLCs/1", key, err)
			} else if enc := appendHLCValue(nil, h); !bytes.Equal(enc, v) {
				t.Fatalf("decodeHLCs(%x) = %v, which encodes as %x", v, h, enc)
			}
			var a, b hlc.HLC
			if err := decodeHLCs(key, v, &a, &b); err != nil {
				checkCorrupt(t, "decodeHLCs/2", key, err)
			} else if enc := appendHLCValue(nil, a, b); !bytes.Equal(enc, v) {
				t.Fatalf("decodeHLCs(%x) = %v, %v, which encodes as %x", v, a, b, enc)
			}
			if err := decodeHLCs(key, v); err != nil {
				checkCorrupt(t, "decodeHLCs/0", key, err)
			} else if !bytes.Equal(v, []byte{format1}) {
				t.Fatalf("decodeHLCs(%x) of no HLCs succeeded", v)
			}
		}

		// Clock bound and schema version.
		if n, err := decodeUint64(key, v); err != nil {
			checkCorrupt(t, "decodeUint64", key, err)
		} else if enc := appendUint64Value(nil, n); !bytes.Equal(enc, v) {
			t.Fatalf("decodeUint64(%x) = %d, which encodes as %x", v, n, enc)
		}
		if n, err := decodeSchema(key, v); err != nil {
			checkCorrupt(t, "decodeSchema", key, err)
		} else if enc := appendSchemaValue(nil, n); !bytes.Equal(enc, v) {
			t.Fatalf("decodeSchema(%x) = %d, which encodes as %x", v, n, enc)
		}

		// Quarantined messages and meta values.
		if b, err := decodeBytesValue(key, v); err != nil {
			checkCorrupt(t, "decodeBytesValue", key, err)
		} else {
			if b != nil && len(b) == 0 {
				t.Fatalf("decodeBytesValue(%x): empty non-nil bytes", v)
			}
			if enc := appendBytesValue(nil, b); !bytes.Equal(enc, v) {
				t.Fatalf("decodeBytesValue(%x) = %x, which encodes as %x", v, b, enc)
			}
			checkOwned(t, "decodeBytesValue", v, func(b []byte) ([]byte, error) { return decodeBytesValue(key, b) })
		}

		// Libraries.
		{
			l := store.Library{ID: lib, Name: "stale", Secret: []byte("stale"), CreatedAt: 9}
			if err := decodeLibrary(key, v, &l); err != nil {
				checkCorrupt(t, "decodeLibrary", key, err)
			} else {
				if l.ID != lib {
					t.Fatalf("decodeLibrary(%x) changed the ID to %v", v, l.ID)
				}
				if !isCBORMap(v) {
					t.Fatalf("decodeLibrary(%x) = %+v from a value that is not a CBOR map", v, l)
				}
				if l.Secret != nil && len(l.Secret) == 0 {
					t.Fatalf("decodeLibrary(%x): empty non-nil secret", v)
				}
				enc, err := encodeLibrary(&l)
				if err != nil {
					t.Fatalf("decodeLibrary(%x) = %+v, which does not encode: %v", v, l, err)
				}
				l2 := store.Library{ID: lib}
				if err := decodeLibrary(key, enc, &l2); err != nil || !reflect.DeepEqual(l2, l) {
					t.Fatalf("decodeLibrary(%x) = %+v, encodes as %x, which decodes as %+v, %v", v, l, enc, l2, err)
				}
				if enc2, _ := encodeLibrary(&l2); !bytes.Equal(enc2, enc) {
					t.Fatalf("library %+v encodes as %x, then as %x", l, enc, enc2)
				}
				checkOwned(t, "decodeLibrary", v, func(b []byte) (store.Library, error) {
					var l store.Library
					return l, decodeLibrary(key, b, &l)
				})
			}
		}

		// Members.
		{
			m := store.Member{Library: lib, DeviceID: devA, PeerID: "stale", Name: "stale", AddedBy: devB, AddedAt: 9, LastSeen: 9}
			if err := decodeMember(key, v, &m); err != nil {
				checkCorrupt(t, "decodeMember", key, err)
			} else {
				if m.Library != lib || m.DeviceID != devA {
					t.Fatalf("decodeMember(%x) changed the key fields: %+v", v, m)
				}
				if !isCBORMap(v) {
					t.Fatalf("decodeMember(%x) = %+v from a value that is not a CBOR map", v, m)
				}
				enc, err := encodeMember(&m)
				if err != nil {
					t.Fatalf("decodeMember(%x) = %+v, which does not encode: %v", v, m, err)
				}
				m2 := store.Member{Library: lib, DeviceID: devA}
				if err := decodeMember(key, enc, &m2); err != nil || m2 != m {
					t.Fatalf("decodeMember(%x) = %+v, encodes as %x, which decodes as %+v, %v", v, m, enc, m2, err)
				}
				if enc2, _ := encodeMember(&m2); !bytes.Equal(enc2, enc) {
					t.Fatalf("member %+v encodes as %x, then as %x", m, enc, enc2)
				}
			}
		}
	})
}

// streamKeyExtras are the lengths after the origin that the store's stream
// keys have: watermark and prune point (0), acknowledgement (member16), log
// entry (hlc28), index entry (hlc28 id16).
var streamKeyExtras = []int{0, idSize, hlc.KeySize, hlc.KeySize + idSize}

// FuzzKeyParsers feeds arbitrary bytes to the key parsers (splitModel, and
// parseStreamKey with each length the store's keys use). Neither may panic;
// each either succeeds or fails with an error wrapping store.ErrCorrupt that
// names the kind and the key. What parses re-encodes, with the key builders,
// to the same bytes.
func FuzzKeyParsers(f *testing.F) {
	keys, _ := fuzzSeeds(f)
	v1 := hlc.HLC{Timestamp: 1764130555123, Counter: 7, DeviceID: devA}
	recID := uuid.UUID{0x5e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	keys = append(keys,
		indexKey(nil, lib, model, v1, recID),
		recordKey(nil, lib, "a.longer/model-type", recID),
		modelPrefix(nil, kindLog, lib, model),
		libPrefix(nil, kindWatermark, lib),
		append(libPrefix(nil, kindWatermark, lib), 0, 0), // empty model type
		append(libPrefix(nil, kindAck, lib), 'x', 'y'),   // no NUL
		[]byte{kindWatermark},
	)
	for _, k := range keys {
		f.Add(k)
		if len(k) > 0 {
			f.Add(k[:len(k)-1])
		}
		f.Add(append(bytes.Clone(k), 0xff))
	}

	f.Fuzz(func(t *testing.T, key []byte) {
		if len(key) > maxFuzzKey {
			return
		}
		plib, pmodel, rest, err := splitModel(key)
		if err != nil {
			checkCorrupt(t, "splitModel", key, err)
		} else {
			if pmodel == "" || strings.IndexByte(pmodel, 0) >= 0 {
				t.Fatalf("splitModel(%x): model type %q", key, pmodel)
			}
			if enc := append(modelPrefix(nil, key[0], plib, pmodel), rest...); !bytes.Equal(enc, key) {
				t.Fatalf("splitModel(%x) = %v, %q, %x, which encodes as %x", key, plib, pmodel, rest, enc)
			}
		}
		for _, extra := range streamKeyExtras {
			what := fmt.Sprintf("parseStreamKey/%d", extra)
			st, srest, serr := parseStreamKey(key, extra)
			if want := err == nil && len(rest) == idSize+extra; want != (serr == nil) {
				t.Fatalf("%s(%x): error %v, but splitModel gives %d bytes after the model type, %v", what, key, serr, len(rest), err)
			}
			if serr != nil {
				checkCorrupt(t, what, key, serr)
				continue
			}
			if len(srest) != extra {
				t.Fatalf("%s(%x): %d bytes after the origin", what, key, len(srest))
			}
			enc := append(streamPrefix(nil, key[0], st), srest...)
			if !bytes.Equal(enc, key) {
				t.Fatalf("%s(%x) = %+v, %x, which encodes as %x", what, key, st, srest, enc)
			}
			// The builders of the key kinds with this shape give the same bytes.
			switch extra {
			case 0:
				enc = streamPrefix(nil, key[0], st)
			case idSize:
				enc = ackKey(nil, &store.Ack{Stream: st, Member: uuid.UUID(srest)})
				enc[0] = key[0]
			case hlc.KeySize:
				h, _ := hlc.FromKey(srest)
				if h.DeviceID != st.Origin {
					continue // not a log key of its stream; the reader checks the prefix
				}
				enc = logKey(nil, &store.LogEntry{Library: st.Library, ModelType: st.ModelType, HLC: h})
				enc[0] = key[0]
			case hlc.KeySize + idSize:
				h, _ := hlc.FromKey(srest)
				if h.DeviceID != st.Origin {
					continue
				}
				enc = indexKey(nil, st.Library, st.ModelType, h, uuid.UUID(srest[hlc.KeySize:]))
				enc[0] = key[0]
			}
			if !bytes.Equal(enc, key) {
				t.Fatalf("%s(%x) = %+v, %x, which the key builder encodes as %x", what, key, st, srest, enc)
			}
		}
	})
}
