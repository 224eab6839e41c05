package protocol

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

// Validate (of each message) checks the protocol's rules and limits on a
// single message. It does not look at payload bytes beyond "absent, or present
// and not null": Decode has already checked that a received payload is
// well-formed, and Encode checks it before sending. Errors wrap ErrInvalid and
// name the field, as in
// "protocol: invalid message: StateBatch.records[3].timestamp: ...".

// invalidError is a Validate failure. Field is built lazily: lists prefix the
// element's index only when an element fails, so that valid messages cost no
// formatting.
type invalidError struct {
	msg, field, reason string
}

func (e *invalidError) Error() string {
	return ErrInvalid.Error() + ": " + e.msg + "." + e.field + ": " + e.reason
}

func (e *invalidError) Unwrap() error { return ErrInvalid }

// invalid returns an error wrapping ErrInvalid for field of message msg.
func invalid(msg, field, format string, args ...any) error {
	return &invalidError{msg: msg, field: field, reason: fmt.Sprintf(format, args...)}
}

// within prefixes the field of a Validate error with element i of list.
func within(err error, list string, i int) error {
	var ie *invalidError
	if errors.As(err, &ie) {
		ie.field = fmt.Sprintf("%s[%d].%s", list, i, ie.field)
	}
	return err
}

// at names element i of list.
func at(list string, i int) string { return fmt.Sprintf("%s[%d]", list, i) }

func checkUUID(msg, field string, id uuid.UUID) error {
	if id == uuid.Nil {
		return invalid(msg, field, "nil UUID")
	}
	return nil
}

// checkModelType enforces the model type rules: non-empty, at most
// MaxModelTypeLen bytes, valid UTF-8, no control characters (NUL included).
func checkModelType(msg, field, s string) error {
	switch {
	case s == "":
		return invalid(msg, field, "empty model type")
	case len(s) > MaxModelTypeLen:
		return invalid(msg, field, "model type of %d bytes, limit %d", len(s), MaxModelTypeLen)
	case !utf8.ValidString(s):
		return invalid(msg, field, "model type is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalid(msg, field, "model type contains control character %U", r)
		}
	}
	return nil
}

// checkHLC checks an HLC that must be set: a non-zero timestamp and a non-nil
// device.
func checkHLC(msg, field string, h HLC) error {
	if h.Timestamp == 0 {
		return invalid(msg, field, "HLC %s has a zero timestamp", h)
	}
	if h.DeviceID == uuid.Nil {
		return invalid(msg, field, "HLC %s has a nil device", h)
	}
	return nil
}

// checkOwnHLC checks a required HLC that must have been issued by device.
func checkOwnHLC(msg, field string, h HLC, device uuid.UUID) error {
	if err := checkHLC(msg, field, h); err != nil {
		return err
	}
	if h.DeviceID != device {
		return invalid(msg, field, "HLC %s is not of device %s", h, device)
	}
	return nil
}

// checkPrev checks an optional prev link of a change stamped at, by the
// same device.
func checkPrev(msg, field string, prev *HLC, at HLC) error {
	if prev == nil {
		return nil
	}
	if err := checkOwnHLC(msg, field, *prev, at.DeviceID); err != nil {
		return err
	}
	if !prev.Less(at) {
		return invalid(msg, field, "prev %s is not before %s", *prev, at)
	}
	return nil
}

// checkBound checks the up_to or complete bound of a response page: zero only
// when allowed (up_to: when the page is empty; complete: always, since a relay
// may hold records of a stream without being complete for any of it),
// otherwise an HLC of the stream's origin.
func checkBound(msg, field string, h HLC, origin uuid.UUID, empty bool) error {
	if h.IsZero() {
		if !empty {
			return invalid(msg, field, "zero, but the page has entries")
		}
		return nil
	}
	return checkOwnHLC(msg, field, h, origin)
}

// checkPayload applies the data/deleted rule: data present, and not null,
// exactly when the record is not deleted.
func checkPayload(msg, field string, data cbor.RawMessage, deleted bool) error {
	switch {
	case deleted && len(data) != 0:
		return invalid(msg, field, "a delete carries data")
	case !deleted && len(data) == 0:
		return invalid(msg, field, "missing data")
	case len(data) == 1 && data[0] == cborNull:
		return invalid(msg, field, "null data (leave data out instead)")
	}
	return nil
}

// checkWatermarks checks a list of watermarks: at most MaxWatermarks, each
// valid, no stream twice, and, if only is not empty, only model types in it.
func checkWatermarks(msg string, ws []Watermark, only []string) error {
	if len(ws) > MaxWatermarks {
		return invalid(msg, "watermarks", "%d watermarks, limit %d", len(ws), MaxWatermarks)
	}
	if len(ws) == 0 {
		return nil
	}
	var allowed map[string]struct{}
	if len(only) > 0 {
		allowed = make(map[string]struct{}, len(only))
		for _, mt := range only {
			allowed[mt] = struct{}{}
		}
	}
	type stream struct {
		device    uuid.UUID
		modelType string
	}
	seen := make(map[stream]struct{}, len(ws))
	for i := range ws {
		w := &ws[i]
		if err := checkWatermark(msg, w, allowed); err != nil {
			return within(err, "watermarks", i)
		}
		s := stream{w.DeviceID, w.ModelType}
		if _, dup := seen[s]; dup {
			return within(invalid(msg, "device_id", "second watermark for stream (%s, %q)", w.DeviceID, w.ModelType), "watermarks", i)
		}
		seen[s] = struct{}{}
	}
	return nil
}

// checkWatermark checks one watermark; allowed, if not nil, holds the model
// types it may name.
func checkWatermark(msg string, w *Watermark, allowed map[string]struct{}) error {
	if err := checkUUID(msg, "device_id", w.DeviceID); err != nil {
		return err
	}
	if err := checkModelType(msg, "model_type", w.ModelType); err != nil {
		return err
	}
	if !w.HLC.IsZero() {
		if err := checkOwnHLC(msg, "hlc", w.HLC, w.DeviceID); err != nil {
			return err
		}
	}
	if allowed != nil {
		if _, ok := allowed[w.ModelType]; !ok {
			return invalid(msg, "model_type", "%q is not in model_types", w.ModelType)
		}
	}
	return nil
}

// checkModelTypes checks a request's model type list: at most MaxModelTypes,
// each valid, none twice.
func checkModelTypes(msg string, mts []string) error {
	if len(mts) > MaxModelTypes {
		return invalid(msg, "model_types", "%d model types, limit %d", len(mts), MaxModelTypes)
	}
	seen := make(map[string]struct{}, len(mts))
	for i, mt := range mts {
		if err := checkModelType(msg, at("model_types", i), mt); err != nil {
			return err
		}
		if _, dup := seen[mt]; dup {
			return invalid(msg, at("model_types", i), "%q listed twice", mt)
		}
		seen[mt] = struct{}{}
	}
	return nil
}

func checkLimit(msg string, limit uint32) error {
	if limit == 0 || limit > MaxRecordsPerMessage {
		return invalid(msg, "limit", "%d, want 1..%d", limit, MaxRecordsPerMessage)
	}
	return nil
}

// checkRecords checks the records of a StateBatch or StateResponse: each of
// owner, with a record UUID and the data/deleted rule, versions strictly
// increasing, no record twice, none above upTo (unless upTo is nil).
func checkRecords(msg string, rs []StateRecord, owner uuid.UUID, upTo *HLC) error {
	seen := make(map[uuid.UUID]struct{}, len(rs))
	for i := range rs {
		r := &rs[i]
		if err := checkRecord(msg, r, owner); err != nil {
			return within(err, "records", i)
		}
		if i > 0 && !rs[i-1].Timestamp.Less(r.Timestamp) {
			return within(invalid(msg, "timestamp", "version %s does not follow %s", r.Timestamp, rs[i-1].Timestamp), "records", i)
		}
		if upTo != nil && upTo.Less(r.Timestamp) {
			return within(invalid(msg, "timestamp", "version %s is above up_to %s", r.Timestamp, *upTo), "records", i)
		}
		if _, dup := seen[r.RecordUUID]; dup {
			return within(invalid(msg, "record_uuid", "record %s appears twice", r.RecordUUID), "records", i)
		}
		seen[r.RecordUUID] = struct{}{}
	}
	return nil
}

// checkRecord checks one record of owner on its own.
func checkRecord(msg string, r *StateRecord, owner uuid.UUID) error {
	if err := checkUUID(msg, "record_uuid", r.RecordUUID); err != nil {
		return err
	}
	if err := checkHLC(msg, "timestamp", r.Timestamp); err != nil {
		return err
	}
	if r.Timestamp.DeviceID != owner {
		return invalid(msg, "timestamp", "mixed records in a batch: version %s is not of device_id %s", r.Timestamp, owner)
	}
	return checkPayload(msg, "data", r.Data, r.Deleted)
}

// checkEntry checks one shared change (alone or in a list).
func checkEntry(msg string, e *SharedChangeEntry) error {
	if err := checkHLC(msg, "hlc", e.HLC); err != nil {
		return err
	}
	if err := checkModelType(msg, "model_type", e.ModelType); err != nil {
		return err
	}
	if err := checkUUID(msg, "record_uuid", e.RecordUUID); err != nil {
		return err
	}
	switch e.ChangeType {
	case Insert, Update, Delete:
	default:
		return invalid(msg, "change_type", "%q, want Insert, Update or Delete", truncateUTF8(string(e.ChangeType), 64))
	}
	if err := checkPayload(msg, "data", e.Data, e.ChangeType == Delete); err != nil {
		return err
	}
	return checkPrev(msg, "prev", e.Prev, e.HLC)
}

// checkEntries checks the entries of a SharedChangeBatch or
// SharedChangeResponse: each valid, all of one origin, HLCs strictly
// increasing.
func checkEntries(msg string, es []SharedChangeEntry, origin uuid.UUID) error {
	for i := range es {
		e := &es[i]
		if err := checkEntry(msg, e); err != nil {
			return within(err, "entries", i)
		}
		if e.HLC.DeviceID != origin {
			return within(invalid(msg, "hlc", "entries of several origins: %s is not of device %s", e.HLC, origin), "entries", i)
		}
		if i > 0 && !es[i-1].HLC.Less(e.HLC) {
			return within(invalid(msg, "hlc", "%s does not follow %s", e.HLC, es[i-1].HLC), "entries", i)
		}
	}
	return nil
}

// Validate implements Message. Timestamp is the owner's write: its device is
// DeviceID.
func (m *StateChange) Validate() error {
	const n = "StateChange"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if err := checkModelType(n, "model_type", m.ModelType); err != nil {
		return err
	}
	if err := checkUUID(n, "record_uuid", m.RecordUUID); err != nil {
		return err
	}
	if err := checkUUID(n, "device_id", m.DeviceID); err != nil {
		return err
	}
	if err := checkOwnHLC(n, "timestamp", m.Timestamp, m.DeviceID); err != nil {
		return err
	}
	if err := checkPayload(n, "data", m.Data, m.Deleted); err != nil {
		return err
	}
	return checkPrev(n, "prev", m.Prev, m.Timestamp)
}

// Validate implements Message: 1..MaxRecordsPerMessage records of DeviceID in
// strictly increasing versions, no record twice, Prev before the first.
func (m *StateBatch) Validate() error {
	const n = "StateBatch"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if err := checkModelType(n, "model_type", m.ModelType); err != nil {
		return err
	}
	if err := checkUUID(n, "device_id", m.DeviceID); err != nil {
		return err
	}
	if len(m.Records) == 0 || len(m.Records) > MaxRecordsPerMessage {
		return invalid(n, "records", "%d records, want 1..%d", len(m.Records), MaxRecordsPerMessage)
	}
	if err := checkRecords(n, m.Records, m.DeviceID, nil); err != nil {
		return err
	}
	return checkPrev(n, "prev", m.Prev, m.Records[0].Timestamp)
}

// Validate implements Message.
func (m *StateRequest) Validate() error {
	const n = "StateRequest"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if err := checkModelTypes(n, m.ModelTypes); err != nil {
		return err
	}
	if m.DeviceID != nil {
		if err := checkUUID(n, "device_id", *m.DeviceID); err != nil {
			return err
		}
	}
	if m.Since != nil {
		if err := checkHLC(n, "since", *m.Since); err != nil {
			return err
		}
	}
	if err := checkLimit(n, m.Limit); err != nil {
		return err
	}
	if err := checkCompressions(n, m.Compression); err != nil {
		return err
	}
	if err := checkWatermarks(n, m.Watermarks, m.ModelTypes); err != nil {
		return err
	}
	if m.DeviceID != nil {
		for i, w := range m.Watermarks {
			if w.DeviceID != *m.DeviceID {
				return invalid(n, at("watermarks", i)+".device_id", "%s is not the requested device_id %s", w.DeviceID, *m.DeviceID)
			}
		}
	}
	return nil
}

// isEndPage reports whether a response page is the end marker of a response
// that had no stream to send: no stream named, no entries, no more pages, no
// bounds.
func isEndPage(device uuid.UUID, modelType string, entries int, hasMore bool, upTo, complete HLC) bool {
	return device == uuid.Nil && modelType == "" && entries == 0 && !hasMore && upTo.IsZero() && complete.IsZero()
}

// Validate implements Message: records of DeviceID in strictly increasing
// versions, none above UpTo, no record twice; UpTo zero only in an empty page,
// Complete zero whenever the responder is complete for none of the stream,
// and both otherwise HLCs of DeviceID. A page with nil DeviceID,
// empty ModelType, no records, HasMore false and zero bounds is the end
// marker of a response with nothing to send.
func (m *StateResponse) Validate() error {
	const n = "StateResponse"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if !m.Snapshot && isEndPage(m.DeviceID, m.ModelType, len(m.Records), m.HasMore, m.UpTo, m.Complete) {
		return nil
	}
	if err := checkModelType(n, "model_type", m.ModelType); err != nil {
		return err
	}
	if err := checkUUID(n, "device_id", m.DeviceID); err != nil {
		return err
	}
	if len(m.Records) > MaxRecordsPerMessage {
		return invalid(n, "records", "%d records, limit %d", len(m.Records), MaxRecordsPerMessage)
	}
	if err := checkBound(n, "up_to", m.UpTo, m.DeviceID, len(m.Records) == 0); err != nil {
		return err
	}
	if err := checkBound(n, "complete", m.Complete, m.DeviceID, true); err != nil {
		return err
	}
	return checkRecords(n, m.Records, m.DeviceID, &m.UpTo)
}

// Validate implements Message.
func (m *SharedChange) Validate() error {
	const n = "SharedChange"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	e := m.Entry()
	return checkEntry(n, &e)
}

// Validate implements Message: 1..MaxRecordsPerMessage entries of one origin
// in strictly increasing HLC order.
func (m *SharedChangeBatch) Validate() error {
	const n = "SharedChangeBatch"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if len(m.Entries) == 0 || len(m.Entries) > MaxRecordsPerMessage {
		return invalid(n, "entries", "%d entries, want 1..%d", len(m.Entries), MaxRecordsPerMessage)
	}
	return checkEntries(n, m.Entries, m.Entries[0].HLC.DeviceID)
}

// Validate implements Message.
func (m *SharedChangeRequest) Validate() error {
	const n = "SharedChangeRequest"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if m.SinceHLC != nil {
		if err := checkHLC(n, "since_hlc", *m.SinceHLC); err != nil {
			return err
		}
	}
	if err := checkLimit(n, m.Limit); err != nil {
		return err
	}
	if err := checkModelTypes(n, m.ModelTypes); err != nil {
		return err
	}
	if err := checkCompressions(n, m.Compression); err != nil {
		return err
	}
	return checkWatermarks(n, m.Watermarks, m.ModelTypes)
}

// Validate implements Message: entries of the stream (DeviceID, ModelType) in
// strictly increasing HLC order, none above UpTo, bounds as in StateResponse;
// in a snapshot page no record twice. The end marker is as in StateResponse.
func (m *SharedChangeResponse) Validate() error {
	const n = "SharedChangeResponse"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if !m.Snapshot && isEndPage(m.DeviceID, m.ModelType, len(m.Entries), m.HasMore, m.UpTo, m.Complete) {
		return nil
	}
	if err := checkUUID(n, "device_id", m.DeviceID); err != nil {
		return err
	}
	if err := checkModelType(n, "model_type", m.ModelType); err != nil {
		return err
	}
	if len(m.Entries) > MaxRecordsPerMessage {
		return invalid(n, "entries", "%d entries, limit %d", len(m.Entries), MaxRecordsPerMessage)
	}
	if err := checkBound(n, "up_to", m.UpTo, m.DeviceID, len(m.Entries) == 0); err != nil {
		return err
	}
	if err := checkBound(n, "complete", m.Complete, m.DeviceID, true); err != nil {
		return err
	}
	if err := checkEntries(n, m.Entries, m.DeviceID); err != nil {
		return err
	}
	var seen map[uuid.UUID]struct{}
	if m.Snapshot {
		seen = make(map[uuid.UUID]struct{}, len(m.Entries))
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.ModelType != m.ModelType {
			return within(invalid(n, "model_type", "%q is not the page's model type %q", e.ModelType, m.ModelType), "entries", i)
		}
		if m.UpTo.Less(e.HLC) {
			return within(invalid(n, "hlc", "%s is above up_to %s", e.HLC, m.UpTo), "entries", i)
		}
		if seen != nil {
			if _, dup := seen[e.RecordUUID]; dup {
				return within(invalid(n, "record_uuid", "record %s appears twice in a snapshot page", e.RecordUUID), "entries", i)
			}
			seen[e.RecordUUID] = struct{}{}
		}
	}
	return nil
}

// Validate implements Message.
func (m *AckSharedChanges) Validate() error {
	const n = "AckSharedChanges"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if err := checkUUID(n, "from_device", m.FromDevice); err != nil {
		return err
	}
	if err := checkHLC(n, "up_to_hlc", m.UpToHLC); err != nil {
		return err
	}
	return checkModelType(n, "model_type", m.ModelType)
}

// checkClock checks the clock of a Hello or Heartbeat: zero, or an HLC of
// the sender.
func checkClock(msg string, clock HLC, device uuid.UUID) error {
	if clock.IsZero() {
		return nil
	}
	return checkOwnHLC(msg, "clock", clock, device)
}

// Validate implements Message.
func (m *Hello) Validate() error {
	const n = "Hello"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if err := checkUUID(n, "device_id", m.DeviceID); err != nil {
		return err
	}
	if len(m.Versions) == 0 || len(m.Versions) > MaxVersions {
		return invalid(n, "versions", "%d versions, want 1..%d", len(m.Versions), MaxVersions)
	}
	for i, v := range m.Versions {
		if v == 0 {
			return invalid(n, at("versions", i), "version 0")
		}
		for _, w := range m.Versions[:i] {
			if v == w {
				return invalid(n, at("versions", i), "version %d listed twice", v)
			}
		}
	}
	if err := checkClock(n, m.Clock, m.DeviceID); err != nil {
		return err
	}
	if err := checkCompressions(n, m.Compression); err != nil {
		return err
	}
	return checkWatermarks(n, m.Watermarks, nil)
}

// Validate implements Message.
func (m *Heartbeat) Validate() error {
	const n = "Heartbeat"
	if err := checkUUID(n, "library_id", m.LibraryID); err != nil {
		return err
	}
	if err := checkUUID(n, "device_id", m.DeviceID); err != nil {
		return err
	}
	if err := checkClock(n, m.Clock, m.DeviceID); err != nil {
		return err
	}
	return checkWatermarks(n, m.Watermarks, nil)
}

// Validate implements Message. LibraryID may be nil (no library known) and
// Code may be any value, also one this package does not know.
func (m *Error) Validate() error {
	const n = "Error"
	if len(m.Message) > MaxErrorMessageLen {
		return invalid(n, "message", "%d bytes, limit %d", len(m.Message), MaxErrorMessageLen)
	}
	if !utf8.ValidString(m.Message) {
		return invalid(n, "message", "not valid UTF-8")
	}
	if m.RemovedDevice != nil || m.Removal != nil {
		switch {
		case m.RemovedDevice == nil || m.Removal == nil:
			return invalid(n, "removed_device", "removed_device and removal come together")
		case m.Code != CodeNotMember:
			return invalid(n, "removed_device", "only a not_member Error carries it, this one is code %d", m.Code)
		case m.LibraryID == uuid.Nil:
			return invalid(n, "removed_device", "the Error names no library")
		case *m.RemovedDevice == uuid.Nil:
			return invalid(n, "removed_device", "nil")
		case m.Removal.IsZero() || m.Removal.DeviceID == uuid.Nil:
			return invalid(n, "removal", "zero, or of no device")
		}
	}
	return nil
}
