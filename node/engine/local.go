package engine

import (
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// MaxPayloadSize is the largest payload of one record, in bytes, so that a
// single change always fits in a frame of the default size.
const MaxPayloadSize = 1 << 20

// payloadMode checks payloads: one well-formed CBOR value, nested no deeper
// than what leaves room for the message around it within protocol.MaxNesting.
var payloadMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		MaxNestedLevels:  protocol.MaxNesting - 8,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
		IndefLength:      cbor.IndefLengthForbidden,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic("engine: payload decode options: " + err.Error())
	}
	return m
}()

// CheckPayload returns an error wrapping ErrInvalidWrite unless data is one
// well-formed CBOR value of at most MaxPayloadSize bytes.
func CheckPayload(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty payload", ErrInvalidWrite)
	}
	if len(data) > MaxPayloadSize {
		return fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrInvalidWrite, len(data), MaxPayloadSize)
	}
	if err := payloadMode.Wellformed(data); err != nil {
		return fmt.Errorf("%w: payload is not one well-formed CBOR value: %v", ErrInvalidWrite, err)
	}
	return nil
}

// checkLocal validates a local write's library, model type and record ID.
func (e *Engine) checkLocal(libID uuid.UUID, model string, want Strategy, id uuid.UUID) (*library, error) {
	lib, err := e.libraryFor(libID)
	if err != nil {
		return nil, err
	}
	t, err := e.reg.Lookup(model)
	if err != nil {
		return nil, err
	}
	if t.Strategy.kind() != want {
		return nil, fmt.Errorf("%w: %q is %s", ErrWrongStrategy, model, t.Strategy)
	}
	if id == uuid.Nil {
		return nil, fmt.Errorf("%w: record ID is nil", ErrInvalidWrite)
	}
	return lib, nil
}

// PutOwned writes a device-owned record of this device. The returned HLC is
// the record's new version; the write is done once the Ready that carries it
// is persisted.
func (e *Engine) PutOwned(now time.Time, libID uuid.UUID, model string, id uuid.UUID, data []byte) (hlc.HLC, error) {
	if err := CheckPayload(data); err != nil {
		return hlc.HLC{}, err
	}
	return e.write(now, libID, model, DeviceOwned, id, data, false)
}

// DeleteOwned deletes a device-owned record of this device, leaving a
// tombstone. Deleting a record that does not exist (or is deleted) returns
// ErrNotFound.
func (e *Engine) DeleteOwned(now time.Time, libID uuid.UUID, model string, id uuid.UUID) (hlc.HLC, error) {
	return e.write(now, libID, model, DeviceOwned, id, nil, true)
}

// PutShared inserts or updates a shared record. The returned HLC is the
// change's; the write is done once the Ready that carries it is persisted.
//
// For a SharedFields type, data is the record's whole CBOR map: fields the
// record shows and data lacks are removed by the change (see PatchShared).
func (e *Engine) PutShared(now time.Time, libID uuid.UUID, model string, id uuid.UUID, data []byte) (hlc.HLC, error) {
	if e.reg.FieldMerge(model) {
		return e.writeFields(now, libID, model, id, data, true)
	}
	if err := CheckPayload(data); err != nil {
		return hlc.HLC{}, err
	}
	return e.write(now, libID, model, Shared, id, data, false)
}

// DeleteShared deletes a shared record, leaving a tombstone. Deleting a
// record that does not exist (or is deleted) returns ErrNotFound.
func (e *Engine) DeleteShared(now time.Time, libID uuid.UUID, model string, id uuid.UUID) (hlc.HLC, error) {
	return e.write(now, libID, model, Shared, id, nil, true)
}

// write makes one local write of either strategy: it stamps the record with
// a new HLC (greater than every merged one, so the write wins here), links it
// to this device's previous write in the stream, and pushes it live. A shared
// change also lands in this device's log; a device-owned record must be this
// device's own.
func (e *Engine) write(now time.Time, libID uuid.UUID, model string, kind Strategy, id uuid.UUID, data []byte, deleted bool) (hlc.HLC, error) {
	lib, err := e.checkLocal(libID, model, kind, id)
	if err != nil {
		return hlc.HLC{}, err
	}
	e.setNow(now)
	cur, exists, err := e.record(store.RecordKey{Library: libID, ModelType: model, ID: id})
	if err != nil {
		return hlc.HLC{}, err
	}
	if kind == DeviceOwned && exists && cur.Version.DeviceID != e.cfg.Device {
		return hlc.HLC{}, fmt.Errorf("%w: record %s of %q belongs to device %s", protocol.ErrOwnership, id, model, cur.Version.DeviceID)
	}
	if deleted && (!exists || cur.Deleted) {
		return hlc.HLC{}, fmt.Errorf("%w: %s %s", ErrNotFound, model, id)
	}
	s := store.Stream{Library: libID, ModelType: model, Origin: e.cfg.Device}
	prev, err := e.watermark(s)
	if err != nil {
		return hlc.HLC{}, err
	}
	h := e.clock.Now()
	rec := store.Record{Library: libID, ModelType: model, ID: id, Version: h, Deleted: deleted, Data: data}
	var msg protocol.Message
	if kind == DeviceOwned {
		msg = &protocol.StateChange{LibraryID: libID, ModelType: model, RecordUUID: id, DeviceID: e.cfg.Device,
			Data: data, Timestamp: h, Deleted: deleted, Prev: optHLC(prev)}
	} else {
		ct := protocol.Update
		switch {
		case deleted:
			ct = protocol.Delete
		case !exists || cur.Deleted:
			ct = protocol.Insert
		}
		e.ov.appendLog(store.LogEntry{Library: libID, ModelType: model, HLC: h, RecordID: id, ChangeType: string(ct), Data: data, Prev: prev})
		msg = &protocol.SharedChange{LibraryID: libID, HLC: h, ModelType: model, RecordUUID: id, ChangeType: ct, Data: data, Prev: optHLC(prev)}
	}
	e.ov.putRecord(rec, replacedBy(cur, exists))
	e.setWM(s, h)
	e.emitRecordEvent(rec)
	e.broadcast(lib, msg)
	return h, nil
}

// broadcast queues a live push to every connected member.
func (e *Engine) broadcast(lib *library, m protocol.Message) {
	for _, id := range sortedIDs(lib.peers) {
		if p := lib.peers[id]; p.connected {
			e.out.send(lib.info.ID, id, m)
		}
	}
}

func (e *Engine) emitRecordEvent(r store.Record) {
	e.out.event(Event{
		Library: r.Library, ModelType: r.ModelType, ID: r.ID, Deleted: r.Deleted,
		By: r.Version.DeviceID, Version: r.Version, Data: r.Data,
	})
}

// optHLC returns nil for the zero HLC and a pointer to a copy otherwise.
func optHLC(h hlc.HLC) *hlc.HLC {
	if h.IsZero() {
		return nil
	}
	return &h
}

// derefHLC returns the zero HLC for nil.
func derefHLC(h *hlc.HLC) hlc.HLC {
	if h == nil {
		return hlc.HLC{}
	}
	return *h
}
