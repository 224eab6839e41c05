package badgerstore

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// Value encodings. The hot values (records, index entries, log entries) and
// the small fixed ones use a hand-rolled binary form that starts with a
// format byte; a later schema can add a format (for example a record with
// per-field clocks for field-level merge) and still read format 1, so old
// history needs no migration. Libraries and members are CBOR maps with
// integer keys, which grow by adding keys.
//
//	record (format 2):    0x02 | flags | version hlc28 (the record's head;
//	                      its data is the value of its index entry)
//	                      flags bit 0: tombstone (data is then empty)
//	index entry:          data... (the record's payload; Badger's user meta
//	                      byte holds indexV2 | the record's flags)
//	record (format 1):    0x01 | flags | version hlc28 | data... (schema 1;
//	                      read, never written)
//	index entry (fmt 1):  flags (user meta 0; schema 1, read, never written)
//	log entry (format 1): 0x01 | change type (1 Insert, 2 Update, 3 Delete) |
//	                      record id16 | prev hlc28 | data...
//	watermark, ack:       0x01 | hlc28
//	prune point:          0x01 | log hlc28 | tombstones hlc28
//	quarantined message:  0x01 | message...
//	clock bound:          0x01 | uint64 BE
//	schema version:       0x01 | uint32 BE
//
// A value that does not decode yields an error wrapping store.ErrCorrupt
// that names the kind of key and the key.
const (
	format1 = 1
	format2 = 2

	flagTombstone = 1 << 0
	// indexV2 marks, in an index entry's Badger user meta, an entry of
	// schema 2: its value is the record's data and the rest of the user
	// meta its flags. Schema 1 wrote user meta 0 and the flags as the value.
	indexV2 = 1 << 7

	recordHeader = 2 + hlc.KeySize
	logHeader    = 2 + idSize + hlc.KeySize
)

func corruptValue(key []byte, format string, args ...any) error {
	kind := byte(0)
	if len(key) > 0 {
		kind = key[0]
	}
	return fmt.Errorf("%w: %s key %x: %s", store.ErrCorrupt, kindName(kind), key, fmt.Sprintf(format, args...))
}

func recordFlags(r *store.Record) byte {
	if r.Deleted {
		return flagTombstone
	}
	return 0
}

// appendRecordHead appends the value of a record's key (format 2): its
// flags and version. Its data goes to its index entry.
func appendRecordHead(dst []byte, r *store.Record) []byte {
	dst = append(dst, format2, recordFlags(r))
	return r.Version.AppendKey(dst)
}

// recordVersion reads only the version of a record value (format 1 or 2).
func recordVersion(key, v []byte) (hlc.HLC, error) {
	if len(v) < recordHeader || (v[0] != format1 && v[0] != format2) || (v[0] == format2 && len(v) != recordHeader) {
		return hlc.HLC{}, corruptValue(key, "record value of %d bytes, format %d", len(v), first(v))
	}
	h, _ := hlc.FromKey(v[2:])
	return h, nil
}

func first(v []byte) int {
	if len(v) == 0 {
		return -1
	}
	return int(v[0])
}

// decodeRecord fills r (whose key fields the caller set) from a record
// value, copying the data. For format 2 the data is the index entry's:
// inIndex says that the record is live and its data must be read from there
// (indexData).
func decodeRecord(key, v []byte, r *store.Record) (inIndex bool, err error) {
	if len(v) < recordHeader || (v[0] != format1 && v[0] != format2) {
		return false, corruptValue(key, "record value of %d bytes, format %d", len(v), first(v))
	}
	flags := v[1]
	if flags&^flagTombstone != 0 {
		return false, corruptValue(key, "record flags %#x", flags)
	}
	r.Deleted = flags&flagTombstone != 0
	r.Version, _ = hlc.FromKey(v[2:])
	r.Data = nil
	data := v[recordHeader:]
	if v[0] == format2 {
		if len(data) > 0 {
			return false, corruptValue(key, "record head with %d bytes after it", len(data))
		}
		return !r.Deleted, nil
	}
	if len(data) > 0 {
		if r.Deleted {
			return false, corruptValue(key, "tombstone with %d bytes of data", len(data))
		}
		r.Data = append([]byte(nil), data...)
	}
	return false, nil
}

// indexFlags returns the flags of an index entry read as item, and whether
// it is of schema 2 (its value is then the record's data). A schema 1 entry's
// flags are its value, which it reads.
func indexFlags(key []byte, item *badger.Item) (flags byte, v2 bool, err error) {
	if um := item.UserMeta(); um&indexV2 != 0 {
		if um&^(indexV2|flagTombstone) != 0 {
			return 0, false, corruptValue(key, "index entry flags %#x", um)
		}
		return um &^ indexV2, true, nil
	}
	err = item.Value(func(v []byte) error {
		if len(v) != 1 || v[0]&^flagTombstone != 0 {
			return corruptValue(key, "index value of %d bytes, %x", len(v), v)
		}
		flags = v[0]
		return nil
	})
	return flags, false, err
}

// indexData sets r.Data from the value of r's schema 2 index entry (item),
// copying it.
func indexData(key []byte, item *badger.Item, r *store.Record) error {
	return item.Value(func(v []byte) error {
		if r.Deleted && len(v) > 0 {
			return corruptValue(key, "index entry of a tombstone with %d bytes of data", len(v))
		}
		r.Data = nil
		if len(v) > 0 {
			r.Data = append([]byte(nil), v...)
		}
		return nil
	})
}

var changeTypes = [...]string{1: "Insert", 2: "Update", 3: "Delete"}

func changeTypeCode(s string) byte {
	for i, c := range changeTypes {
		if i > 0 && c == s {
			return byte(i)
		}
	}
	return 0 // unreachable after Batch.Validate
}

func appendLogValue(dst []byte, e *store.LogEntry) []byte {
	dst = append(dst, format1, changeTypeCode(e.ChangeType))
	dst = append(dst, e.RecordID[:]...)
	dst = e.Prev.AppendKey(dst)
	return append(dst, e.Data...)
}

func decodeLogValue(key, v []byte, e *store.LogEntry) error {
	if len(v) < logHeader || v[0] != format1 {
		return corruptValue(key, "log value of %d bytes, format %d", len(v), first(v))
	}
	if v[1] == 0 || int(v[1]) >= len(changeTypes) {
		return corruptValue(key, "change type %d", v[1])
	}
	e.ChangeType = changeTypes[v[1]]
	copy(e.RecordID[:], v[2:2+idSize])
	e.Prev, _ = hlc.FromKey(v[2+idSize:])
	e.Data = nil
	if data := v[logHeader:]; len(data) > 0 {
		e.Data = append([]byte(nil), data...)
	}
	return nil
}

func appendHLCValue(dst []byte, hs ...hlc.HLC) []byte {
	dst = append(dst, format1)
	for _, h := range hs {
		dst = h.AppendKey(dst)
	}
	return dst
}

// decodeHLCs reads a value of n HLCs.
func decodeHLCs(key, v []byte, hs ...*hlc.HLC) error {
	if len(v) != 1+len(hs)*hlc.KeySize || v[0] != format1 {
		return corruptValue(key, "value of %d bytes, format %d, want %d HLCs", len(v), first(v), len(hs))
	}
	for i, h := range hs {
		*h, _ = hlc.FromKey(v[1+i*hlc.KeySize:])
	}
	return nil
}

func appendUint64Value(dst []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, format1), n)
}

func decodeUint64(key, v []byte) (uint64, error) {
	if len(v) != 9 || v[0] != format1 {
		return 0, corruptValue(key, "value of %d bytes, format %d, want a uint64", len(v), first(v))
	}
	return binary.BigEndian.Uint64(v[1:]), nil
}

func appendSchemaValue(dst []byte, version uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, format1), version)
}

func decodeSchema(key, v []byte) (uint32, error) {
	if len(v) != 5 || v[0] != format1 {
		return 0, corruptValue(key, "value of %d bytes, format %d, want a uint32", len(v), first(v))
	}
	return binary.BigEndian.Uint32(v[1:]), nil
}

func appendBytesValue(dst, b []byte) []byte {
	return append(append(dst, format1), b...)
}

func decodeBytesValue(key, v []byte) ([]byte, error) {
	if len(v) < 1 || v[0] != format1 {
		return nil, corruptValue(key, "value of %d bytes, format %d", len(v), first(v))
	}
	if len(v) == 1 {
		return nil, nil
	}
	return append([]byte(nil), v[1:]...), nil
}

// libraryValue and memberValue are the CBOR forms; the key holds the IDs.
type libraryValue struct {
	Name      string `cbor:"1,keyasint,omitempty"`
	Secret    []byte `cbor:"2,keyasint,omitempty"`
	CreatedAt uint64 `cbor:"3,keyasint,omitempty"`
}

type memberValue struct {
	PeerID   string    `cbor:"1,keyasint,omitempty"`
	Name     string    `cbor:"2,keyasint,omitempty"`
	AddedBy  uuid.UUID `cbor:"3,keyasint"`
	AddedAt  uint64    `cbor:"4,keyasint,omitempty"`
	LastSeen uint64    `cbor:"5,keyasint,omitempty"`
}

var (
	encMode = mustEncMode()
	decMode = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustDecMode() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  4,
		MaxArrayElements: 1 << 16,
		MaxMapPairs:      64,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

func encodeLibrary(l *store.Library) ([]byte, error) {
	return encMode.Marshal(libraryValue{Name: l.Name, Secret: l.Secret, CreatedAt: l.CreatedAt})
}

// checkCBORMap fails unless v starts with a CBOR map header (major type 5),
// the only item encodeLibrary and encodeMember write. Unmarshal into a struct
// accepts null and undefined as "no change" and reads through unknown tags,
// so without this check such a value would decode as an empty library or
// member instead of as corrupt.
func checkCBORMap(key, v []byte) error {
	if len(v) == 0 || v[0]>>5 != 5 {
		return corruptValue(key, "value of %d bytes, initial byte %d, want a CBOR map", len(v), first(v))
	}
	return nil
}

func decodeLibrary(key, v []byte, l *store.Library) error {
	if err := checkCBORMap(key, v); err != nil {
		return err
	}
	var lv libraryValue
	if err := decMode.Unmarshal(v, &lv); err != nil {
		return corruptValue(key, "%v", err)
	}
	l.Name, l.CreatedAt = lv.Name, lv.CreatedAt
	l.Secret = nil
	if len(lv.Secret) > 0 {
		l.Secret = lv.Secret
	}
	return nil
}

func encodeMember(m *store.Member) ([]byte, error) {
	return encMode.Marshal(memberValue{PeerID: m.PeerID, Name: m.Name, AddedBy: m.AddedBy, AddedAt: m.AddedAt, LastSeen: m.LastSeen})
}

func decodeMember(key, v []byte, m *store.Member) error {
	if err := checkCBORMap(key, v); err != nil {
		return err
	}
	var mv memberValue
	if err := decMode.Unmarshal(v, &mv); err != nil {
		return corruptValue(key, "%v", err)
	}
	m.PeerID, m.Name, m.AddedBy, m.AddedAt, m.LastSeen = mv.PeerID, mv.Name, mv.AddedBy, mv.AddedAt, mv.LastSeen
	return nil
}
