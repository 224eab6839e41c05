package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// This file holds the two payload forms of a shared-fields model type
// (docs/PROTOCOL.md §11): the field patch, the data of its Insert and Update
// changes, and the field state, the data of its entries in snapshot pages
// (and what a node stores as the record's value). Both are CBOR; neither is a
// message of its own.

// Undefined is the CBOR simple value undefined (0xf7). As the value of a
// field in a field patch it removes the field.
var Undefined = cbor.RawMessage{0xf7}

// ErrFieldPayload is wrapped by the errors of DecodeFieldPatch and
// DecodeFieldState.
var ErrFieldPayload = errors.New("protocol: invalid shared-fields payload")

// FieldVersion is one top-level field of a shared-fields record: the HLC of
// the write that set it and its value, or, for a removed field (a field
// tombstone), no value.
type FieldVersion struct {
	HLC HLC
	// Value is the field's CBOR value as its writer encoded it; nil for a
	// removed field.
	Value cbor.RawMessage
}

// Removed reports whether the field is a tombstone.
func (f FieldVersion) Removed() bool { return f.Value == nil }

// FieldState is the merge state of a live shared-fields record. The record's
// version (the HLC of the entry that carries it) is its latest insert or
// update; every field version is at or below it and above Deleted.
type FieldState struct {
	// Deleted is the greatest record delete known (zero: none, or purged).
	Deleted HLC
	// Fields maps each top-level field name to its latest write.
	Fields map[string]FieldVersion
}

// fieldMode decodes a field state, like a message body's payload (no tags,
// no indefinite lengths, valid UTF-8, no duplicate map keys): at most 28
// levels, so that it fits at level 5 of a page (PROTOCOL.md §4.2).
// patchMode decodes a field patch the same way, two levels shallower: the
// state a patch becomes nests each value two levels deeper than the patch
// (state array, fields map, [index, value]), and must fit a page too
// (PROTOCOL.md §11.2).
var (
	fieldMode = mustDecMode(MaxNesting - 4)
	patchMode = mustDecMode(MaxNesting - 6)
)

// MaxPatchNesting is the deepest nesting of a field patch, the map itself
// counted as one level.
const MaxPatchNesting = MaxNesting - 6

// DecodeFieldPatch decodes the data of a shared-fields Insert or Update: a
// CBOR map with text keys, each value the field's new value, or Undefined
// to remove the field. The values alias b.
func DecodeFieldPatch(b []byte) (map[string]cbor.RawMessage, error) {
	if len(b) == 0 || b[0]>>5 != 5 {
		return nil, fmt.Errorf("%w: a field patch is a CBOR map", ErrFieldPayload)
	}
	var m map[string]cbor.RawMessage
	if err := patchMode.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: field patch: %v", ErrFieldPayload, err)
	}
	for k, v := range m {
		if len(v) == 0 || (v[0] == 0xf6 && len(v) == 1) {
			return nil, fmt.Errorf("%w: field %q: null is no value (remove a field with undefined)", ErrFieldPayload, truncateUTF8(k, 64))
		}
	}
	if m == nil {
		m = map[string]cbor.RawMessage{}
	}
	return m, nil
}

// EncodeFieldPatch encodes a field patch deterministically; the values are
// copied as they are.
func EncodeFieldPatch(p map[string]cbor.RawMessage) ([]byte, error) {
	return encMode.Marshal(p)
}

// wireFieldState is the CBOR form of a FieldState:
// [deleted / null, [* hlc], {* tstr => [uint] / [uint, any]}].
type wireFieldState struct {
	_        struct{} `cbor:",toarray"`
	Deleted  *HLC
	Versions []HLC
	Fields   map[string][]cbor.RawMessage
}

// IsFieldState reports whether data has the shape of a field state (a CBOR
// array) rather than of a field patch (a map). It does not validate it.
func IsFieldState(data []byte) bool { return len(data) > 0 && data[0]>>5 == 4 }

// EncodeFieldState encodes s deterministically: versions sorted and each
// used, field names in deterministic order, values copied as they are.
func EncodeFieldState(s FieldState) ([]byte, error) {
	idx := make(map[HLC]uint64, 4)
	var versions []HLC
	for _, f := range s.Fields {
		if _, ok := idx[f.HLC]; !ok {
			idx[f.HLC] = 0
			versions = append(versions, f.HLC)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i].Less(versions[j]) })
	for i, h := range versions {
		idx[h] = uint64(i)
	}
	w := wireFieldState{Versions: versions, Fields: make(map[string][]cbor.RawMessage, len(s.Fields))}
	if !s.Deleted.IsZero() {
		d := s.Deleted
		w.Deleted = &d
	}
	for name, f := range s.Fields {
		i, err := encMode.Marshal(idx[f.HLC])
		if err != nil {
			return nil, err
		}
		if f.Removed() {
			w.Fields[name] = []cbor.RawMessage{i}
		} else {
			w.Fields[name] = []cbor.RawMessage{i, f.Value}
		}
	}
	return encMode.Marshal(&w)
}

// DecodeFieldState decodes and checks a field state carried by an entry (or
// a record) whose version is version: every field version at or below it,
// the delete below it and below every field version, the version table
// strictly increasing with each element used. The values alias b.
func DecodeFieldState(b []byte, version HLC) (FieldState, error) {
	if !IsFieldState(b) {
		return FieldState{}, fmt.Errorf("%w: a field state is a CBOR array", ErrFieldPayload)
	}
	var w wireFieldState
	if err := fieldMode.Unmarshal(b, &w); err != nil {
		return FieldState{}, fmt.Errorf("%w: field state: %v", ErrFieldPayload, err)
	}
	s := FieldState{Fields: make(map[string]FieldVersion, len(w.Fields))}
	if w.Deleted != nil {
		if w.Deleted.IsZero() {
			return FieldState{}, fmt.Errorf("%w: field state: zero delete HLC (write null)", ErrFieldPayload)
		}
		if err := checkHLC("field state", "deleted", *w.Deleted); err != nil {
			return FieldState{}, fmt.Errorf("%w: %w", ErrFieldPayload, err)
		}
		s.Deleted = *w.Deleted
	}
	if !s.Deleted.Less(version) {
		return FieldState{}, fmt.Errorf("%w: field state: delete %s not below the record's version %s", ErrFieldPayload, s.Deleted, version)
	}
	for i, h := range w.Versions {
		if err := checkHLC("field state", "versions", h); err != nil {
			return FieldState{}, fmt.Errorf("%w: %w", ErrFieldPayload, err)
		}
		if h.After(version) || !h.After(s.Deleted) {
			return FieldState{}, fmt.Errorf("%w: field state: version %s not in (delete, record version]", ErrFieldPayload, h)
		}
		if i > 0 && !h.After(w.Versions[i-1]) {
			return FieldState{}, fmt.Errorf("%w: field state: versions not strictly increasing", ErrFieldPayload)
		}
	}
	used := make([]bool, len(w.Versions))
	for name, f := range w.Fields {
		if len(f) != 1 && len(f) != 2 {
			return FieldState{}, fmt.Errorf("%w: field %q: [index] or [index, value]", ErrFieldPayload, truncateUTF8(name, 64))
		}
		var i uint64
		if err := fieldMode.Unmarshal(f[0], &i); err != nil || i >= uint64(len(w.Versions)) {
			return FieldState{}, fmt.Errorf("%w: field %q: bad version index", ErrFieldPayload, truncateUTF8(name, 64))
		}
		used[i] = true
		fv := FieldVersion{HLC: w.Versions[i]}
		if len(f) == 2 {
			if bytes.Equal(f[1], Undefined) || (len(f[1]) == 1 && f[1][0] == 0xf6) {
				return FieldState{}, fmt.Errorf("%w: field %q: value is undefined or null", ErrFieldPayload, truncateUTF8(name, 64))
			}
			fv.Value = f[1]
		}
		s.Fields[name] = fv
	}
	for _, u := range used {
		if !u {
			return FieldState{}, fmt.Errorf("%w: field state: a version no field uses", ErrFieldPayload)
		}
	}
	return s, nil
}
