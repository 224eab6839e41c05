package badgerstore

import (
	"bytes"
	"fmt"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// Key layout. Every key starts with one kind byte; this file is the only
// place that declares them. Notation: lib16 is a library UUID, id16 a record
// ID, origin16/member16/device16/from16 device UUIDs (16 raw bytes each),
// hlc28 is hlc.HLC.AppendKey (timestamp 8, counter 4, device 16, big-endian:
// byte order is HLC order), model is the model type's bytes followed by 0x00.
// Model types never contain NUL (store.ValidateModelType), so "model 0x00"
// ends exactly where the model type does: a prefix scan for "a" never sees
// "ab", and keys order by model type as Go strings do.
//
//	'S'                                          schema version        -> fmt 1 | uint32 BE
//	'r' lib16 model 0x00 id16                    record                -> record head (flags, version)
//	'i' lib16 model 0x00 origin16 hlc28 id16     stream version index  -> the record's data; user meta: flags
//	'l' lib16 model 0x00 origin16 hlc28          log entry             -> logValue
//	'w' lib16 model 0x00 origin16                watermark             -> fmt 1 | hlc28
//	'a' lib16 model 0x00 origin16 member16       acknowledgement       -> fmt 1 | hlc28
//	'p' lib16 model 0x00 origin16                prune point           -> fmt 1 | log hlc28 | tombstones hlc28
//	'q' lib16 hlc28 from16                       quarantined message   -> fmt 1 | message bytes
//	'c'                                          clock bound           -> fmt 1 | uint64 BE
//	'L' lib16                                    library               -> CBOR map with int keys
//	'm' lib16 device16                           member                -> CBOR map with int keys
//	'M' key                                      node-wide meta value  -> fmt 1 | the bytes
//	'F'                                          record filter nonce   -> fmt 1 | 16 random bytes
//	'n' lib16 model 0x00                         record count          -> fmt 1 | uint64 BE (never 0)
//
// The index entry of a record is derived from its value (origin and hlc28
// are its version): Apply keeps the two in step in one transaction, so the
// index of stream s, scanned in key order, is s's records in (version, ID)
// order. The index entry holds the record's data, so that a page of a
// stream is one scan; the record key holds what a lookup by ID needs first
// (the version, for last-writer-wins), small enough to stay in Badger's tree
// while the data goes to its value log. The flags in the index entry's
// Badger user meta let PurgeTombstones skip live records without reading
// their data. (Schema 1 kept the data under the record key and the flags as
// the index entry's value; values.go reads both.)
const (
	kindSchema     byte = 'S'
	kindRecord     byte = 'r'
	kindIndex      byte = 'i'
	kindLog        byte = 'l'
	kindWatermark  byte = 'w'
	kindAck        byte = 'a'
	kindPrune      byte = 'p'
	kindQuarantine byte = 'q'
	kindClock      byte = 'c'
	kindLibrary    byte = 'L'
	kindMember     byte = 'm'
	kindMeta       byte = 'M'
	kindFilter     byte = 'F'
	kindCount      byte = 'n'
)

// kindName names a key kind in error messages.
func kindName(kind byte) string {
	switch kind {
	case kindSchema:
		return "schema version"
	case kindRecord:
		return "record"
	case kindIndex:
		return "index entry"
	case kindLog:
		return "log entry"
	case kindWatermark:
		return "watermark"
	case kindAck:
		return "acknowledgement"
	case kindPrune:
		return "prune point"
	case kindQuarantine:
		return "quarantined message"
	case kindClock:
		return "clock bound"
	case kindLibrary:
		return "library"
	case kindMember:
		return "member"
	case kindMeta:
		return "meta value"
	case kindFilter:
		return "record filter nonce"
	case kindCount:
		return "record count"
	}
	return fmt.Sprintf("unknown kind %q", kind)
}

// Fixed sizes.
const (
	idSize = 16
	// maxStreamPrefix is the longest stream prefix: kind, library, model
	// type, NUL, origin.
	maxStreamPrefix = 1 + idSize + store.MaxModelTypeLen + 1 + idSize
)

var (
	schemaKey = []byte{kindSchema}
	clockKey  = []byte{kindClock}
	filterKey = []byte{kindFilter}
)

// libPrefix is kind | lib16.
func libPrefix(dst []byte, kind byte, lib uuid.UUID) []byte {
	dst = append(dst, kind)
	return append(dst, lib[:]...)
}

// modelPrefix is kind | lib16 | model | 0x00.
func modelPrefix(dst []byte, kind byte, lib uuid.UUID, model string) []byte {
	dst = libPrefix(dst, kind, lib)
	dst = append(dst, model...)
	return append(dst, 0)
}

// streamPrefix is kind | lib16 | model | 0x00 | origin16: the key of a
// watermark or prune point, and the prefix of a stream's index, log and
// acknowledgements.
func streamPrefix(dst []byte, kind byte, s store.Stream) []byte {
	dst = modelPrefix(dst, kind, s.Library, s.ModelType)
	return append(dst, s.Origin[:]...)
}

func recordKey(dst []byte, lib uuid.UUID, model string, id uuid.UUID) []byte {
	dst = modelPrefix(dst, kindRecord, lib, model)
	return append(dst, id[:]...)
}

// indexKey is the index entry of a record with version v: the stream is
// (lib, model, v.DeviceID).
func indexKey(dst []byte, lib uuid.UUID, model string, v hlc.HLC, id uuid.UUID) []byte {
	dst = modelPrefix(dst, kindIndex, lib, model)
	dst = append(dst, v.DeviceID[:]...)
	dst = v.AppendKey(dst)
	return append(dst, id[:]...)
}

func logKey(dst []byte, e *store.LogEntry) []byte {
	dst = modelPrefix(dst, kindLog, e.Library, e.ModelType)
	dst = append(dst, e.HLC.DeviceID[:]...)
	return e.HLC.AppendKey(dst)
}

func ackKey(dst []byte, a *store.Ack) []byte {
	dst = streamPrefix(dst, kindAck, a.Stream)
	return append(dst, a.Member[:]...)
}

func quarantineKey(dst []byte, k store.QuarantineKey) []byte {
	dst = libPrefix(dst, kindQuarantine, k.Library)
	dst = k.HLC.AppendKey(dst)
	return append(dst, k.From[:]...)
}

func memberKey(dst []byte, lib, device uuid.UUID) []byte {
	dst = libPrefix(dst, kindMember, lib)
	return append(dst, device[:]...)
}

func metaKey(dst []byte, k string) []byte {
	dst = append(dst, kindMeta)
	return append(dst, k...)
}

// successor returns the smallest key greater than every key that has prefix
// p (nil when there is none: p is all 0xff). It reuses p's array.
func successor(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			p = p[:i+1]
			p[i]++
			return p
		}
	}
	return nil
}

// Key parsing. Each parser is given a whole key of its kind and returns an
// error naming the kind when the key is malformed (never a panic).

func corruptKey(kind byte, key []byte, what string) error {
	return fmt.Errorf("%w: %s key %x: %s", store.ErrCorrupt, kindName(kind), key, what)
}

// splitModel reads "lib16 model 0x00" after the kind byte of key and
// returns the library, the model type and the rest of the key.
func splitModel(key []byte) (lib uuid.UUID, model string, rest []byte, err error) {
	if len(key) < 1+idSize+2 {
		kind := byte(0)
		if len(key) > 0 {
			kind = key[0]
		}
		return lib, "", nil, corruptKey(kind, key, "too short")
	}
	copy(lib[:], key[1:1+idSize])
	tail := key[1+idSize:]
	n := bytes.IndexByte(tail, 0)
	if n <= 0 {
		return lib, "", nil, corruptKey(key[0], key, "no model type")
	}
	return lib, string(tail[:n]), tail[n+1:], nil
}

// parseStreamKey reads a key that is a stream prefix followed by extra bytes.
func parseStreamKey(key []byte, extra int) (s store.Stream, rest []byte, err error) {
	lib, model, rest, err := splitModel(key)
	if err != nil {
		return s, nil, err
	}
	if len(rest) != idSize+extra {
		return s, nil, corruptKey(key[0], key, fmt.Sprintf("%d bytes after the model type, want %d", len(rest), idSize+extra))
	}
	s = store.Stream{Library: lib, ModelType: model}
	copy(s.Origin[:], rest)
	return s, rest[idSize:], nil
}
