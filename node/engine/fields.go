package engine

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Field-level merge of SharedFields model types (docs/PROTOCOL.md §11).
//
// A record's merge state is (live, deleted, fields): live is the greatest
// HLC of an insert or update of the record, deleted the greatest HLC of a
// record delete, and fields maps each top-level field to its greatest-HLC
// write, a value or a removal (a field tombstone). Every change is such a
// state (an update at h: live h and its fields at h; a delete at d: deleted
// d), and merging is the join: the greatest of each part, field by field.
// A join is commutative, associative and idempotent, so every node that saw
// the same changes holds the same state, whatever their order. A field
// written at or below deleted is gone (dropped from the state, which keeps
// the join exact: the dropped write would lose to the delete in any join);
// the record exists while live > deleted.
//
// In the store, a live record's Version is live and its Data the encoded
// protocol.FieldState (deleted and the fields); a record whose delete wins is
// an ordinary tombstone at the delete's HLC. Snapshot pages carry that Data
// as it is, so a receiver merges exactly. Removed fields, and deleted, are
// dropped once they are at or below the model type's stable point, the rule
// that purges record tombstones: no older write can arrive anywhere then.

// fieldRecord is a record's merge state.
type fieldRecord struct {
	live hlc.HLC
	st   protocol.FieldState
}

// fieldOf reads the merge state of a stored record.
func fieldOf(rec store.Record, exists bool) (fieldRecord, error) {
	switch {
	case !exists:
		return fieldRecord{}, nil
	case rec.Deleted:
		return fieldRecord{st: protocol.FieldState{Deleted: rec.Version}}, nil
	}
	st, err := protocol.DecodeFieldState(rec.Data, rec.Version)
	if err != nil {
		return fieldRecord{}, fmt.Errorf("stored record %s/%s: %w", rec.ModelType, rec.ID, err)
	}
	return fieldRecord{live: rec.Version, st: st}, nil
}

// fieldChange returns the merge state of one shared change: a delete, a
// field patch (Insert, Update), or a field state (an entry of a snapshot
// page, or such an entry relayed from a log).
func fieldChange(en protocol.SharedChangeEntry) (fieldRecord, error) {
	if en.ChangeType == protocol.Delete {
		return fieldRecord{st: protocol.FieldState{Deleted: en.HLC}}, nil
	}
	if protocol.IsFieldState(en.Data) {
		st, err := protocol.DecodeFieldState(en.Data, en.HLC)
		if err != nil {
			return fieldRecord{}, err
		}
		return fieldRecord{live: en.HLC, st: st}, nil
	}
	patch, err := protocol.DecodeFieldPatch(en.Data)
	if err != nil {
		return fieldRecord{}, err
	}
	return patchState(en.HLC, patch), nil
}

// patchState is the merge state of a field patch written at h.
func patchState(h hlc.HLC, patch map[string]cbor.RawMessage) fieldRecord {
	f := fieldRecord{live: h, st: protocol.FieldState{Fields: make(map[string]protocol.FieldVersion, len(patch))}}
	for name, v := range patch {
		fv := protocol.FieldVersion{HLC: h}
		if !bytes.Equal(v, protocol.Undefined) {
			fv.Value = v
		}
		f.st.Fields[name] = fv
	}
	return f
}

// checkFieldEntry checks the data of a change of a SharedFields model type:
// a field patch, or (only where snapshot states may come: catch-up pages)
// a field state.
func checkFieldEntry(en protocol.SharedChangeEntry, stateOK bool) error {
	if en.ChangeType == protocol.Delete {
		return nil
	}
	if protocol.IsFieldState(en.Data) && !stateOK {
		return fmt.Errorf("%w: a live change of shared-fields type %q carries a field state, not a patch", protocol.ErrInvalid, en.ModelType)
	}
	if _, err := fieldChange(en); err != nil {
		return fmt.Errorf("%w: change %s of %q: %w", protocol.ErrInvalid, en.HLC, en.ModelType, err)
	}
	return nil
}

// joinFields returns the join of two merge states, normalised: no field at
// or below the delete.
func joinFields(a, b fieldRecord) fieldRecord {
	out := fieldRecord{live: hlc.Max(a.live, b.live)}
	out.st.Deleted = hlc.Max(a.st.Deleted, b.st.Deleted)
	out.st.Fields = make(map[string]protocol.FieldVersion, len(a.st.Fields)+len(b.st.Fields))
	for _, src := range []map[string]protocol.FieldVersion{a.st.Fields, b.st.Fields} {
		for name, f := range src {
			if !f.HLC.After(out.st.Deleted) {
				continue
			}
			if cur, ok := out.st.Fields[name]; ok && !fieldWins(f, cur) {
				continue
			}
			out.st.Fields[name] = f
		}
	}
	if !out.live.After(out.st.Deleted) {
		out.live, out.st.Fields = hlc.HLC{}, nil
	}
	return out
}

// fieldWins reports whether write a of a field beats write b: the greater
// HLC, and for equal HLCs (the same change, unless a peer lies) the greater
// value bytewise, a removal least, so that the join stays deterministic.
func fieldWins(a, b protocol.FieldVersion) bool {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		return c > 0
	}
	return bytes.Compare(a.Value, b.Value) > 0
}

// compactFields drops removed fields and the delete at or below bound (the
// model type's stable point).
func compactFields(f fieldRecord, bound hlc.HLC) fieldRecord {
	if bound.IsZero() || f.live.IsZero() {
		return f
	}
	if !f.st.Deleted.After(bound) {
		f.st.Deleted = hlc.HLC{}
	}
	for name, fv := range f.st.Fields {
		if fv.Removed() && !fv.HLC.After(bound) {
			delete(f.st.Fields, name)
		}
	}
	return f
}

// toRecord returns the stored form of a merge state.
func (f fieldRecord) toRecord(k store.RecordKey) (store.Record, error) {
	rec := store.Record{Library: k.Library, ModelType: k.ModelType, ID: k.ID}
	if f.live.IsZero() {
		rec.Version, rec.Deleted = f.st.Deleted, true
		return rec, nil
	}
	data, err := protocol.EncodeFieldState(f.st)
	if err != nil {
		return store.Record{}, fmt.Errorf("encoding field state: %w", err)
	}
	rec.Version, rec.Data = f.live, data
	return rec, nil
}

// visible returns the fields an app sees, as a deterministic CBOR map (nil
// for a deleted record).
func (f fieldRecord) visible() ([]byte, error) {
	if f.live.IsZero() {
		return nil, nil
	}
	m := make(map[string]cbor.RawMessage, len(f.st.Fields))
	for name, fv := range f.st.Fields {
		if !fv.Removed() {
			m[name] = fv.Value
		}
	}
	return protocol.EncodeFieldPatch(m)
}

// changedFields returns, sorted, the fields whose visible value differs
// between two states.
func changedFields(a, b fieldRecord) []string {
	var out []string
	val := func(f fieldRecord, name string) []byte {
		if f.live.IsZero() {
			return nil
		}
		return f.st.Fields[name].Value
	}
	seen := make(map[string]bool)
	for _, src := range []fieldRecord{a, b} {
		for name := range src.st.Fields {
			if seen[name] {
				continue
			}
			seen[name] = true
			if !bytes.Equal(val(a, name), val(b, name)) {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// VisibleFields returns what an app sees of a stored SharedFields record:
// its fields as a CBOR map (nil for a tombstone), and each field's version.
func VisibleFields(rec store.Record) ([]byte, map[string]hlc.HLC, error) {
	f, err := fieldOf(rec, true)
	if err != nil {
		return nil, nil, err
	}
	data, err := f.visible()
	if err != nil {
		return nil, nil, err
	}
	versions := make(map[string]hlc.HLC, len(f.st.Fields))
	for name, fv := range f.st.Fields {
		if !fv.Removed() {
			versions[name] = fv.HLC
		}
	}
	return data, versions, nil
}

// mergeFields joins one change into a record of a SharedFields type and
// writes the result if it differs from what is stored.
func (e *Engine) mergeFields(k store.RecordKey, en protocol.SharedChangeEntry) error {
	in, err := fieldChange(en)
	if err != nil {
		return fmt.Errorf("%w: change %s of %q: %w", protocol.ErrInvalid, en.HLC, en.ModelType, err)
	}
	return e.joinInto(k, in, en.HLC.DeviceID)
}

// joinInto joins in into record k, compacts at the model's stable point,
// and writes and announces the result if it changed.
func (e *Engine) joinInto(k store.RecordKey, in fieldRecord, by uuid.UUID) error {
	cur, ok, err := e.record(k)
	if err != nil {
		return err
	}
	old, err := fieldOf(cur, ok)
	if err != nil {
		return err
	}
	merged, rec, err := e.joined(k, old, in)
	if err != nil {
		return err
	}
	return e.putJoined(cur, ok, old, merged, rec, by)
}

// joined returns the join of old and in, compacted at the model's stable
// point, and its stored form.
func (e *Engine) joined(k store.RecordKey, old, in fieldRecord) (fieldRecord, store.Record, error) {
	merged := joinFields(old, in)
	if lib := e.libs[k.Library]; lib != nil {
		merged = compactFields(merged, lib.fieldStable[k.ModelType])
	}
	rec, err := merged.toRecord(k)
	return merged, rec, err
}

// putJoined writes and announces rec, the stored form of merged, unless it
// is what the store holds already (cur, if ok).
func (e *Engine) putJoined(cur store.Record, ok bool, old, merged fieldRecord, rec store.Record, by uuid.UUID) error {
	if ok && rec.Version == cur.Version && rec.Deleted == cur.Deleted && bytes.Equal(rec.Data, cur.Data) {
		return nil
	}
	e.ov.putRecord(rec, replacedBy(cur, ok))
	return e.emitFieldEvent(rec, old, merged, by)
}

func (e *Engine) emitFieldEvent(rec store.Record, old, merged fieldRecord, by uuid.UUID) error {
	data, err := merged.visible()
	if err != nil {
		return err
	}
	changed := changedFields(old, merged)
	if changed == nil {
		changed = []string{}
	}
	e.out.event(Event{
		Library: rec.Library, ModelType: rec.ModelType, ID: rec.ID, Deleted: rec.Deleted,
		By: by, Version: rec.Version, Data: data, Fields: changed,
	})
	return nil
}

// PatchShared writes some fields of a record of a SharedFields model type:
// patch is a CBOR map of the fields it sets, a field whose value is
// protocol.Undefined being removed; the record's other fields are kept. A
// patch of a deleted or missing record creates it with the patch's fields.
// The returned HLC is the change's.
func (e *Engine) PatchShared(now time.Time, libID uuid.UUID, model string, id uuid.UUID, patch []byte) (hlc.HLC, error) {
	return e.writeFields(now, libID, model, id, patch, false)
}

// writeFields makes one local write of a SharedFields record. With replace
// (PutShared), fields the record shows and data lacks are removed, so that
// the record then shows data; without (PatchShared), they are kept.
func (e *Engine) writeFields(now time.Time, libID uuid.UUID, model string, id uuid.UUID, data []byte, replace bool) (hlc.HLC, error) {
	if err := CheckPayload(data); err != nil {
		return hlc.HLC{}, err
	}
	lib, err := e.checkLocal(libID, model, Shared, id)
	if err != nil {
		return hlc.HLC{}, err
	}
	if !e.reg.FieldMerge(model) {
		return hlc.HLC{}, fmt.Errorf("%w: %q is shared, not shared-fields: write the whole record", ErrWrongStrategy, model)
	}
	patch, err := protocol.DecodeFieldPatch(data)
	if err != nil {
		return hlc.HLC{}, fmt.Errorf("%w: %v", ErrInvalidWrite, err)
	}
	e.setNow(now)
	k := store.RecordKey{Library: libID, ModelType: model, ID: id}
	cur, exists, err := e.record(k)
	if err != nil {
		return hlc.HLC{}, err
	}
	old, err := fieldOf(cur, exists)
	if err != nil {
		return hlc.HLC{}, err
	}
	wire := data
	if replace && !old.live.IsZero() {
		added := false
		for name, fv := range old.st.Fields {
			if _, ok := patch[name]; !ok && !fv.Removed() {
				patch[name] = protocol.Undefined
				added = true
			}
		}
		if added {
			if wire, err = protocol.EncodeFieldPatch(patch); err != nil {
				return hlc.HLC{}, err
			}
			if err := CheckPayload(wire); err != nil {
				return hlc.HLC{}, err
			}
		}
	}
	s := store.Stream{Library: libID, ModelType: model, Origin: e.cfg.Device}
	prev, err := e.watermark(s)
	if err != nil {
		return hlc.HLC{}, err
	}
	h := e.clock.Now()
	// The record's state after the write must fit one payload, so that a
	// snapshot page can carry it (PROTOCOL.md §11.2).
	merged, rec, err := e.joined(k, old, patchState(h, patch))
	if err != nil {
		return hlc.HLC{}, err
	}
	if len(merged.st.Fields) > protocol.MaxCollectionSize {
		return hlc.HLC{}, fmt.Errorf("%w: the record would hold %d fields, more than %d", ErrInvalidWrite, len(merged.st.Fields), protocol.MaxCollectionSize)
	}
	if len(rec.Data) > MaxPayloadSize {
		return hlc.HLC{}, fmt.Errorf("%w: the record's field state would take %d bytes, more than %d", ErrInvalidWrite, len(rec.Data), MaxPayloadSize)
	}
	ct := protocol.Update
	if old.live.IsZero() {
		ct = protocol.Insert
	}
	e.ov.appendLog(store.LogEntry{Library: libID, ModelType: model, HLC: h, RecordID: id, ChangeType: string(ct), Data: wire, Prev: prev})
	if err := e.putJoined(cur, exists, old, merged, rec, e.cfg.Device); err != nil {
		return hlc.HLC{}, err
	}
	e.setWM(s, h)
	e.broadcast(lib, &protocol.SharedChange{LibraryID: libID, HLC: h, ModelType: model, RecordUUID: id, ChangeType: ct, Data: wire, Prev: optHLC(prev)})
	return h, nil
}
