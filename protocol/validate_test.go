package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

// Valid base messages; each call returns a fresh one to mutate.

func vStateChange() *StateChange {
	return &StateChange{LibraryID: exLibrary, ModelType: "location", RecordUUID: exRec1, DeviceID: exDevA,
		Data: mustCBOR("x"), Timestamp: hlcA(10, 0), Prev: ptr(hlcA(5, 0))}
}

func vRecords() []StateRecord {
	return []StateRecord{
		{RecordUUID: exRec1, Data: mustCBOR(1), Timestamp: hlcA(10, 0)},
		{RecordUUID: exRec2, Data: mustCBOR(2), Timestamp: hlcA(10, 1)},
		{RecordUUID: exRec3, Timestamp: hlcA(11, 0), Deleted: true},
	}
}

func vStateBatch() *StateBatch {
	return &StateBatch{LibraryID: exLibrary, ModelType: "entry", DeviceID: exDevA, Records: vRecords(), Prev: ptr(hlcA(5, 0))}
}

func vStateRequest() *StateRequest {
	return &StateRequest{LibraryID: exLibrary, ModelTypes: []string{"location", "entry"}, DeviceID: ptr(exDevA),
		Since: ptr(hlcA(0, 0)), Limit: 100,
		Watermarks: []Watermark{{DeviceID: exDevA, ModelType: "entry", HLC: hlcA(3, 0)}, {DeviceID: exDevA, ModelType: "location"}}}
}

func vStateResponse() *StateResponse {
	return &StateResponse{LibraryID: exLibrary, ModelType: "entry", DeviceID: exDevA, Records: vRecords(),
		HasMore: true, UpTo: hlcA(11, 0), Complete: hlcA(20, 0)}
}

func vSharedChange() *SharedChange {
	return &SharedChange{LibraryID: exLibrary, HLC: hlcB(20, 0), ModelType: "tag", RecordUUID: exRec1,
		ChangeType: Insert, Data: mustCBOR(map[string]any{"name": "x"}), Prev: ptr(hlcB(10, 0))}
}

func vEntries() []SharedChangeEntry {
	return []SharedChangeEntry{
		{HLC: hlcB(20, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Insert, Data: mustCBOR(1)},
		{HLC: hlcB(20, 1), ModelType: "tag", RecordUUID: exRec1, ChangeType: Update, Data: mustCBOR(2), Prev: ptr(hlcB(20, 0))},
		{HLC: hlcB(21, 0), ModelType: "tag", RecordUUID: exRec2, ChangeType: Delete},
	}
}

func vSharedChangeBatch() *SharedChangeBatch {
	return &SharedChangeBatch{LibraryID: exLibrary, Entries: vEntries()}
}

func vSharedChangeRequest() *SharedChangeRequest {
	return &SharedChangeRequest{LibraryID: exLibrary, SinceHLC: ptr(hlcA(1, 0)), Limit: 100, ModelTypes: []string{"tag", "album"},
		Watermarks: []Watermark{{DeviceID: exDevA, ModelType: "tag", HLC: hlcA(3, 0)}, {DeviceID: exDevB, ModelType: "tag"}}}
}

func vSharedChangeResponse() *SharedChangeResponse {
	return &SharedChangeResponse{LibraryID: exLibrary, Entries: vEntries(), HasMore: true, DeviceID: exDevB,
		ModelType: "tag", UpTo: hlcB(21, 0), Complete: hlcB(21, 0)}
}

func vAck() *AckSharedChanges {
	return &AckSharedChanges{LibraryID: exLibrary, FromDevice: exDevA, UpToHLC: hlcB(21, 0), ModelType: "tag"}
}

func vWatermarks() []Watermark {
	return []Watermark{{DeviceID: exDevA, ModelType: "entry", HLC: hlcA(3, 0)}, {DeviceID: exDevB, ModelType: "tag"}}
}

func vHello() *Hello {
	return &Hello{LibraryID: exLibrary, DeviceID: exDevA, Versions: []uint32{2, 3}, Clock: hlcA(100, 0), Watermarks: vWatermarks()}
}

func vHeartbeat() *Heartbeat {
	return &Heartbeat{LibraryID: exLibrary, DeviceID: exDevA, Clock: hlcA(100, 0), Watermarks: vWatermarks()}
}

func vError() *Error { return &Error{LibraryID: exLibrary, Code: CodeInvalid, Message: "bad"} }

func with[M any](m M, mutate func(M)) M {
	mutate(m)
	return m
}

func manyWatermarks(n int) []Watermark {
	ws := make([]Watermark, n)
	for i := range ws {
		var d uuid.UUID
		d[0], d[1], d[2] = byte(i>>16), byte(i>>8), byte(i)
		d[15] = 1
		ws[i] = Watermark{DeviceID: d, ModelType: "tag"}
	}
	return ws
}

func manyRecords(n int) []StateRecord {
	rs := make([]StateRecord, n)
	for i := range rs {
		var r uuid.UUID
		r[0], r[1], r[15] = byte(i>>8), byte(i), 1
		rs[i] = StateRecord{RecordUUID: r, Data: cbor.RawMessage{0x01}, Timestamp: hlcA(uint64(i), 0)}
	}
	return rs
}

func manyEntries(n int) []SharedChangeEntry {
	es := make([]SharedChangeEntry, n)
	for i := range es {
		es[i] = SharedChangeEntry{HLC: hlcB(uint64(i), 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Update, Data: cbor.RawMessage{0x01}}
	}
	return es
}

func modelTypes(n int) []string {
	mts := make([]string, n)
	for i := range mts {
		mts[i] = "type" + strings.Repeat("x", i%100) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return mts
}

// TestValidateAccepts lists messages at the edges of the rules that are
// valid; each must also survive Encode and Decode.
func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"StateChange without prev", with(vStateChange(), func(m *StateChange) { m.Prev = nil })},
		{"StateChange delete", with(vStateChange(), func(m *StateChange) { m.Deleted, m.Data = true, nil })},
		{"model type of MaxModelTypeLen bytes", with(vStateChange(), func(m *StateChange) { m.ModelType = strings.Repeat("é", MaxModelTypeLen/2) })},
		{"model type with spaces and symbols", with(vStateChange(), func(m *StateChange) { m.ModelType = "user metadata/v2 ✓" })},
		{"StateBatch of MaxRecordsPerMessage", with(vStateBatch(), func(m *StateBatch) { m.Records, m.Prev = manyRecords(MaxRecordsPerMessage), nil })},
		{"StateBatch of one", with(vStateBatch(), func(m *StateBatch) { m.Records = m.Records[:1] })},
		{"StateRequest minimal", &StateRequest{LibraryID: exLibrary, Limit: 1}},
		{"StateRequest limit MaxRecordsPerMessage", with(vStateRequest(), func(m *StateRequest) { m.Limit = MaxRecordsPerMessage })},
		{"StateRequest of MaxModelTypes", with(vStateRequest(), func(m *StateRequest) { m.ModelTypes, m.Watermarks = modelTypes(MaxModelTypes), nil })},
		{"StateRequest of MaxWatermarks", &StateRequest{LibraryID: exLibrary, Limit: 1, Watermarks: manyWatermarks(MaxWatermarks)}},
		{"StateResponse empty page with bounds", with(vStateResponse(), func(m *StateResponse) { m.Records = nil })},
		{"StateResponse empty page without bounds", with(vStateResponse(), func(m *StateResponse) { m.Records, m.UpTo, m.Complete = nil, HLC{}, HLC{} })},
		{"StateResponse end marker", &StateResponse{LibraryID: exLibrary}},
		{"StateResponse complete below up_to", with(vStateResponse(), func(m *StateResponse) { m.Complete = hlcA(1, 0) })},
		{"StateResponse snapshot", with(vStateResponse(), func(m *StateResponse) { m.Snapshot = true })},
		// A relay may hold records of a stream without being complete for
		// any of it.
		{"StateResponse records with zero complete", with(vStateResponse(), func(m *StateResponse) { m.Complete = HLC{} })},
		{"SharedChangeResponse entries with zero complete", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.Complete = HLC{} })},
		{"SharedChange update", with(vSharedChange(), func(m *SharedChange) { m.ChangeType = Update })},
		{"SharedChange delete", with(vSharedChange(), func(m *SharedChange) { m.ChangeType, m.Data = Delete, nil })},
		{"SharedChangeBatch of MaxRecordsPerMessage", &SharedChangeBatch{LibraryID: exLibrary, Entries: manyEntries(MaxRecordsPerMessage)}},
		{"SharedChangeBatch of several model types", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries[2].ModelType = "album" })},
		{"SharedChangeRequest minimal", &SharedChangeRequest{LibraryID: exLibrary, Limit: 1}},
		{"SharedChangeResponse log page with a record twice", vSharedChangeResponse()},
		{"SharedChangeResponse end marker", &SharedChangeResponse{LibraryID: exLibrary}},
		{"AckSharedChanges", vAck()},
		{"Hello with zero clock and no watermarks", with(vHello(), func(m *Hello) { m.Clock, m.Watermarks = HLC{}, nil })},
		{"Hello of MaxVersions", with(vHello(), func(m *Hello) {
			m.Versions = nil
			for v := range uint32(MaxVersions) {
				m.Versions = append(m.Versions, v+1)
			}
		})},
		{"Heartbeat", vHeartbeat()},
		{"Error without library", with(vError(), func(m *Error) { m.LibraryID = uuid.Nil })},
		{"Error of MaxErrorMessageLen", with(vError(), func(m *Error) { m.Message = strings.Repeat("ü", MaxErrorMessageLen/2) })},
		{"Error with code 0", with(vError(), func(m *Error) { m.Code, m.Message = 0, "" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Validate(); err != nil {
				t.Fatalf("Validate: got %v, want nil", err)
			}
			b, err := Encode(tc.m)
			if err != nil {
				t.Fatalf("Encode: got %v, want nil", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: got %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Fatalf("Decode(Encode(m)) differs from m:\n got %+v\nwant %+v", got, tc.m)
			}
		})
	}
}

// TestValidateRejects checks every rule: Validate and Encode refuse the
// message with ErrInvalid naming the field, and Decode refuses its unchecked
// encoding (what a faulty peer would send) with wire (ErrInvalid unless said).
func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		want string // the error names this (message.field: reason)
		wire error  // Decode's error; nil means ErrInvalid
	}{
		// model type rules, on StateChange
		{"nil library", with(vStateChange(), func(m *StateChange) { m.LibraryID = uuid.Nil }), "StateChange.library_id: nil UUID", nil},
		{"empty model type", with(vStateChange(), func(m *StateChange) { m.ModelType = "" }), "StateChange.model_type: empty model type", nil},
		{"model type too long", with(vStateChange(), func(m *StateChange) { m.ModelType = strings.Repeat("x", MaxModelTypeLen+1) }), "model type of 129 bytes, limit 128", nil},
		{"model type not UTF-8", with(vStateChange(), func(m *StateChange) { m.ModelType = "a\xffb" }), "model_type: model type is not valid UTF-8", ErrMalformed},
		{"model type with NUL", with(vStateChange(), func(m *StateChange) { m.ModelType = "a\x00b" }), "control character U+0000", nil},
		{"model type with newline", with(vStateChange(), func(m *StateChange) { m.ModelType = "a\nb" }), "control character U+000A", nil},
		{"model type with DEL", with(vStateChange(), func(m *StateChange) { m.ModelType = "a\x7fb" }), "control character U+007F", nil},
		{"model type with C1 control", with(vStateChange(), func(m *StateChange) { m.ModelType = "a\u0085b" }), "control character U+0085", nil},

		// StateChange
		{"StateChange nil record", with(vStateChange(), func(m *StateChange) { m.RecordUUID = uuid.Nil }), "StateChange.record_uuid: nil UUID", nil},
		{"StateChange nil device", with(vStateChange(), func(m *StateChange) { m.DeviceID = uuid.Nil }), "StateChange.device_id: nil UUID", nil},
		{"StateChange zero timestamp", with(vStateChange(), func(m *StateChange) { m.Timestamp = HLC{}; m.Prev = nil }), "StateChange.timestamp: HLC 0:0:00000000-0000-0000-0000-000000000000 has a zero timestamp", nil},
		{"StateChange timestamp without device", with(vStateChange(), func(m *StateChange) { m.Timestamp.DeviceID = uuid.Nil }), "StateChange.timestamp: HLC", nil},
		{"StateChange stamped by another device", with(vStateChange(), func(m *StateChange) { m.Timestamp = hlcB(10, 0) }), "StateChange.timestamp: HLC " + hlcB(10, 0).String() + " is not of device " + exDevA.String(), nil},
		{"StateChange delete with data", with(vStateChange(), func(m *StateChange) { m.Deleted = true }), "StateChange.data: a delete carries data", nil},
		{"StateChange write without data", with(vStateChange(), func(m *StateChange) { m.Data = nil }), "StateChange.data: missing data", nil},
		{"StateChange null data", with(vStateChange(), func(m *StateChange) { m.Data = cbor.RawMessage{0xf6} }), "StateChange.data: null data", nil},
		{"StateChange prev of another device", with(vStateChange(), func(m *StateChange) { m.Prev = ptr(hlcB(5, 0)) }), "StateChange.prev: HLC", nil},
		{"StateChange prev equal", with(vStateChange(), func(m *StateChange) { m.Prev = ptr(m.Timestamp) }), "StateChange.prev: prev", nil},
		{"StateChange prev after", with(vStateChange(), func(m *StateChange) { m.Prev = ptr(hlcA(11, 0)) }), "is not before", nil},
		{"StateChange prev zero", with(vStateChange(), func(m *StateChange) { m.Prev = &HLC{} }), "StateChange.prev: HLC", nil},

		// StateBatch
		{"StateBatch empty", with(vStateBatch(), func(m *StateBatch) { m.Records = nil }), "StateBatch.records: 0 records, want 1..10000", nil},
		{"StateBatch too many", with(vStateBatch(), func(m *StateBatch) { m.Records, m.Prev = manyRecords(MaxRecordsPerMessage+1), nil }), "StateBatch.records: 10001 records", nil},
		{"StateBatch nil device", with(vStateBatch(), func(m *StateBatch) { m.DeviceID = uuid.Nil }), "StateBatch.device_id: nil UUID", nil},
		{"StateBatch bad model type", with(vStateBatch(), func(m *StateBatch) { m.ModelType = "" }), "StateBatch.model_type", nil},
		{"StateBatch mixed records", with(vStateBatch(), func(m *StateBatch) { m.Records[1].Timestamp = hlcB(10, 1) }), "StateBatch.records[1].timestamp: mixed records in a batch", nil},
		{"StateBatch equal versions", with(vStateBatch(), func(m *StateBatch) { m.Records[1].Timestamp = m.Records[0].Timestamp }), "StateBatch.records[1].timestamp: version", nil},
		{"StateBatch decreasing versions", with(vStateBatch(), func(m *StateBatch) { m.Records[2].Timestamp = hlcA(1, 0) }), "StateBatch.records[2].timestamp: version", nil},
		{"StateBatch record twice", with(vStateBatch(), func(m *StateBatch) { m.Records[2].RecordUUID = exRec1 }), "StateBatch.records[2].record_uuid: record " + exRec1.String() + " appears twice", nil},
		{"StateBatch nil record", with(vStateBatch(), func(m *StateBatch) { m.Records[0].RecordUUID = uuid.Nil }), "StateBatch.records[0].record_uuid: nil UUID", nil},
		{"StateBatch record zero version", with(vStateBatch(), func(m *StateBatch) { m.Records[0].Timestamp = HLC{} }), "StateBatch.records[0].timestamp", nil},
		{"StateBatch delete with data", with(vStateBatch(), func(m *StateBatch) { m.Records[2].Data = mustCBOR(3) }), "StateBatch.records[2].data: a delete carries data", nil},
		{"StateBatch write without data", with(vStateBatch(), func(m *StateBatch) { m.Records[0].Data = nil }), "StateBatch.records[0].data: missing data", nil},
		{"StateBatch prev not before first", with(vStateBatch(), func(m *StateBatch) { m.Prev = ptr(hlcA(10, 0)) }), "StateBatch.prev: prev", nil},
		{"StateBatch prev of another device", with(vStateBatch(), func(m *StateBatch) { m.Prev = ptr(hlcB(5, 0)) }), "StateBatch.prev: HLC", nil},

		// StateRequest
		{"StateRequest nil library", with(vStateRequest(), func(m *StateRequest) { m.LibraryID = uuid.Nil }), "StateRequest.library_id", nil},
		{"StateRequest limit 0", with(vStateRequest(), func(m *StateRequest) { m.Limit = 0 }), "StateRequest.limit: 0, want 1..10000", nil},
		{"StateRequest limit too large", with(vStateRequest(), func(m *StateRequest) { m.Limit = MaxRecordsPerMessage + 1 }), "StateRequest.limit: 10001", nil},
		{"StateRequest too many model types", with(vStateRequest(), func(m *StateRequest) { m.ModelTypes, m.Watermarks = modelTypes(MaxModelTypes+1), nil }), "StateRequest.model_types: 257 model types, limit 256", nil},
		{"StateRequest model type twice", with(vStateRequest(), func(m *StateRequest) { m.ModelTypes = []string{"entry", "entry"} }), `StateRequest.model_types[1]: "entry" listed twice`, nil},
		{"StateRequest bad model type", with(vStateRequest(), func(m *StateRequest) { m.ModelTypes[0] = "" }), "StateRequest.model_types[0]: empty model type", nil},
		{"StateRequest nil device", with(vStateRequest(), func(m *StateRequest) { m.DeviceID = &uuid.Nil }), "StateRequest.device_id: nil UUID", nil},
		{"StateRequest zero since", with(vStateRequest(), func(m *StateRequest) { m.Since = &HLC{DeviceID: exDevA} }), "StateRequest.since: HLC", nil},
		{"StateRequest too many watermarks", &StateRequest{LibraryID: exLibrary, Limit: 1, Watermarks: manyWatermarks(MaxWatermarks + 1)}, "StateRequest.watermarks: 16385 watermarks, limit 16384", ErrMalformed},
		{"StateRequest watermark nil device", with(vStateRequest(), func(m *StateRequest) { m.DeviceID = nil; m.Watermarks[1].DeviceID = uuid.Nil }), "StateRequest.watermarks[1].device_id: nil UUID", nil},
		{"StateRequest watermark bad model type", with(vStateRequest(), func(m *StateRequest) { m.Watermarks[0].ModelType = "a\x00" }), "StateRequest.watermarks[0].model_type", nil},
		{"StateRequest watermark of an unrequested type", with(vStateRequest(), func(m *StateRequest) { m.Watermarks[0].ModelType = "volume" }), `StateRequest.watermarks[0].model_type: "volume" is not in model_types`, nil},
		{"StateRequest watermark HLC of another device", with(vStateRequest(), func(m *StateRequest) { m.Watermarks[0].HLC = hlcB(3, 0) }), "StateRequest.watermarks[0].hlc: HLC", nil},
		{"StateRequest watermark HLC without timestamp", with(vStateRequest(), func(m *StateRequest) { m.Watermarks[0].HLC = HLC{Counter: 1, DeviceID: exDevA} }), "StateRequest.watermarks[0].hlc: HLC 0:1:", nil},
		{"StateRequest stream twice", with(vStateRequest(), func(m *StateRequest) { m.Watermarks[1].ModelType = "entry" }), "StateRequest.watermarks[1].device_id: second watermark for stream", nil},
		{"StateRequest watermark of an unrequested device", with(vStateRequest(), func(m *StateRequest) { m.Watermarks[1].DeviceID = exDevB }), "StateRequest.watermarks[1].device_id: " + exDevB.String() + " is not the requested device_id", nil},

		// StateResponse
		{"StateResponse nil library", with(vStateResponse(), func(m *StateResponse) { m.LibraryID = uuid.Nil }), "StateResponse.library_id", nil},
		{"StateResponse nil device", with(vStateResponse(), func(m *StateResponse) { m.DeviceID = uuid.Nil }), "StateResponse.device_id: nil UUID", nil},
		{"StateResponse bad model type", with(vStateResponse(), func(m *StateResponse) { m.ModelType = "" }), "StateResponse.model_type: empty", nil},
		{"StateResponse too many", with(vStateResponse(), func(m *StateResponse) {
			m.Records = manyRecords(MaxRecordsPerMessage + 1)
			m.UpTo = m.Records[len(m.Records)-1].Timestamp
		}), "StateResponse.records: 10001 records, limit 10000", nil},
		{"StateResponse zero up_to", with(vStateResponse(), func(m *StateResponse) { m.UpTo = HLC{} }), "StateResponse.up_to: zero, but the page has entries", nil},
		{"StateResponse up_to of another device", with(vStateResponse(), func(m *StateResponse) { m.UpTo = hlcB(50, 0) }), "StateResponse.up_to: HLC", nil},
		{"StateResponse complete of another device", with(vStateResponse(), func(m *StateResponse) { m.Records, m.Complete = nil, hlcB(50, 0) }), "StateResponse.complete: HLC", nil},
		{"StateResponse record above up_to", with(vStateResponse(), func(m *StateResponse) { m.UpTo = hlcA(10, 1) }), "StateResponse.records[2].timestamp: version " + hlcA(11, 0).String() + " is above up_to", nil},
		{"StateResponse mixed records", with(vStateResponse(), func(m *StateResponse) { m.Records[0].Timestamp = hlcB(1, 0) }), "StateResponse.records[0].timestamp: mixed records", nil},
		{"StateResponse unordered", with(vStateResponse(), func(m *StateResponse) { m.Records[0], m.Records[1] = m.Records[1], m.Records[0] }), "StateResponse.records[1].timestamp: version", nil},
		{"StateResponse record twice", with(vStateResponse(), func(m *StateResponse) { m.Records[1].RecordUUID = exRec1 }), "StateResponse.records[1].record_uuid: record", nil},
		{"StateResponse end marker with more", &StateResponse{LibraryID: exLibrary, HasMore: true}, "StateResponse.model_type: empty", nil},
		{"StateResponse snapshot end marker", &StateResponse{LibraryID: exLibrary, Snapshot: true}, "StateResponse.model_type: empty", nil},

		// SharedChange
		{"SharedChange nil library", with(vSharedChange(), func(m *SharedChange) { m.LibraryID = uuid.Nil }), "SharedChange.library_id: nil UUID", nil},
		{"SharedChange zero HLC", with(vSharedChange(), func(m *SharedChange) { m.HLC = HLC{}; m.Prev = nil }), "SharedChange.hlc: HLC", nil},
		{"SharedChange HLC without device", with(vSharedChange(), func(m *SharedChange) { m.HLC.DeviceID = uuid.Nil; m.Prev = nil }), "SharedChange.hlc: HLC", nil},
		{"SharedChange bad model type", with(vSharedChange(), func(m *SharedChange) { m.ModelType = "" }), "SharedChange.model_type: empty", nil},
		{"SharedChange nil record", with(vSharedChange(), func(m *SharedChange) { m.RecordUUID = uuid.Nil }), "SharedChange.record_uuid: nil UUID", nil},
		{"SharedChange unknown change type", with(vSharedChange(), func(m *SharedChange) { m.ChangeType = "Upsert" }), `SharedChange.change_type: "Upsert", want Insert, Update or Delete`, nil},
		{"SharedChange lower-case change type", with(vSharedChange(), func(m *SharedChange) { m.ChangeType = "insert" }), "SharedChange.change_type", nil},
		{"SharedChange empty change type", with(vSharedChange(), func(m *SharedChange) { m.ChangeType = "" }), "SharedChange.change_type", nil},
		{"SharedChange delete with data", with(vSharedChange(), func(m *SharedChange) { m.ChangeType = Delete }), "SharedChange.data: a delete carries data", nil},
		{"SharedChange insert without data", with(vSharedChange(), func(m *SharedChange) { m.Data = nil }), "SharedChange.data: missing data", nil},
		{"SharedChange update without data", with(vSharedChange(), func(m *SharedChange) { m.ChangeType, m.Data = Update, nil }), "SharedChange.data: missing data", nil},
		{"SharedChange prev of another device", with(vSharedChange(), func(m *SharedChange) { m.Prev = ptr(hlcA(1, 0)) }), "SharedChange.prev: HLC", nil},
		{"SharedChange prev not before", with(vSharedChange(), func(m *SharedChange) { m.Prev = ptr(hlcB(20, 0)) }), "SharedChange.prev: prev", nil},

		// SharedChangeBatch
		{"SharedChangeBatch nil library", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.LibraryID = uuid.Nil }), "SharedChangeBatch.library_id", nil},
		{"SharedChangeBatch empty", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries = nil }), "SharedChangeBatch.entries: 0 entries, want 1..10000", nil},
		{"SharedChangeBatch too many", &SharedChangeBatch{LibraryID: exLibrary, Entries: manyEntries(MaxRecordsPerMessage + 1)}, "SharedChangeBatch.entries: 10001 entries", nil},
		{"SharedChangeBatch two origins", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries[2].HLC = hlcA(30, 0) }), "SharedChangeBatch.entries[2].hlc: entries of several origins", nil},
		{"SharedChangeBatch equal HLCs", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries[2].HLC = m.Entries[1].HLC }), "SharedChangeBatch.entries[2].hlc:", nil},
		{"SharedChangeBatch decreasing", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries[0].HLC = hlcB(25, 0) }), "SharedChangeBatch.entries[1].hlc", nil},
		{"SharedChangeBatch bad entry", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries[1].ChangeType = "Upsert" }), "SharedChangeBatch.entries[1].change_type", nil},
		{"SharedChangeBatch entry without data", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries[0].Data = nil }), "SharedChangeBatch.entries[0].data: missing data", nil},
		{"SharedChangeBatch entry bad prev", with(vSharedChangeBatch(), func(m *SharedChangeBatch) { m.Entries[1].Prev = ptr(hlcB(20, 1)) }), "SharedChangeBatch.entries[1].prev", nil},

		// SharedChangeRequest
		{"SharedChangeRequest nil library", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.LibraryID = uuid.Nil }), "SharedChangeRequest.library_id", nil},
		{"SharedChangeRequest limit 0", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.Limit = 0 }), "SharedChangeRequest.limit: 0", nil},
		{"SharedChangeRequest limit too large", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.Limit = 1 << 20 }), "SharedChangeRequest.limit: 1048576", nil},
		{"SharedChangeRequest bad since", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.SinceHLC = &HLC{Timestamp: 1} }), "SharedChangeRequest.since_hlc: HLC", nil},
		{"SharedChangeRequest model type twice", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.ModelTypes = []string{"tag", "album", "tag"} }), `SharedChangeRequest.model_types[2]: "tag" listed twice`, nil},
		{"SharedChangeRequest too many model types", &SharedChangeRequest{LibraryID: exLibrary, Limit: 1, ModelTypes: modelTypes(MaxModelTypes + 1)}, "SharedChangeRequest.model_types: 257", nil},
		{"SharedChangeRequest stream twice", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.Watermarks[1].DeviceID = exDevA }), "SharedChangeRequest.watermarks[1].device_id: second watermark", nil},
		{"SharedChangeRequest watermark of an unrequested type", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.Watermarks[1].ModelType = "device" }), `SharedChangeRequest.watermarks[1].model_type: "device" is not in model_types`, nil},
		{"SharedChangeRequest watermark of another device", with(vSharedChangeRequest(), func(m *SharedChangeRequest) { m.Watermarks[0].HLC = hlcB(3, 0) }), "SharedChangeRequest.watermarks[0].hlc", nil},

		// SharedChangeResponse
		{"SharedChangeResponse nil library", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.LibraryID = uuid.Nil }), "SharedChangeResponse.library_id", nil},
		{"SharedChangeResponse nil device", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.DeviceID = uuid.Nil }), "SharedChangeResponse.device_id: nil UUID", nil},
		{"SharedChangeResponse bad model type", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.ModelType = "" }), "SharedChangeResponse.model_type: empty", nil},
		{"SharedChangeResponse too many", with(vSharedChangeResponse(), func(m *SharedChangeResponse) {
			m.Entries = manyEntries(MaxRecordsPerMessage + 1)
			m.UpTo = m.Entries[len(m.Entries)-1].HLC
		}), "SharedChangeResponse.entries: 10001 entries, limit 10000", nil},
		{"SharedChangeResponse entry of another origin", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.DeviceID, m.UpTo, m.Complete = exDevA, hlcA(50, 0), hlcA(50, 0) }), "SharedChangeResponse.entries[0].hlc: entries of several origins", nil},
		{"SharedChangeResponse entry of another model type", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.Entries[1].ModelType = "album" }), `SharedChangeResponse.entries[1].model_type: "album" is not the page's model type "tag"`, nil},
		{"SharedChangeResponse entry above up_to", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.UpTo = hlcB(20, 5) }), "SharedChangeResponse.entries[2].hlc: " + hlcB(21, 0).String() + " is above up_to", nil},
		{"SharedChangeResponse unordered", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.Entries[2].HLC = hlcB(1, 0) }), "SharedChangeResponse.entries[2].hlc", nil},
		{"SharedChangeResponse zero up_to", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.UpTo = HLC{} }), "SharedChangeResponse.up_to: zero, but the page has entries", nil},
		{"SharedChangeResponse up_to of another device", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.Entries, m.UpTo = nil, hlcA(1, 0) }), "SharedChangeResponse.up_to: HLC", nil},
		{"SharedChangeResponse snapshot with a record twice", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.Snapshot = true }), "SharedChangeResponse.entries[1].record_uuid: record " + exRec1.String() + " appears twice in a snapshot page", nil},
		{"SharedChangeResponse snapshot end marker", &SharedChangeResponse{LibraryID: exLibrary, Snapshot: true}, "SharedChangeResponse.device_id: nil UUID", nil},
		{"SharedChangeResponse end marker with more", &SharedChangeResponse{LibraryID: exLibrary, HasMore: true}, "SharedChangeResponse.device_id: nil UUID", nil},
		{"SharedChangeResponse bad entry", with(vSharedChangeResponse(), func(m *SharedChangeResponse) { m.Entries[0].RecordUUID = uuid.Nil }), "SharedChangeResponse.entries[0].record_uuid: nil UUID", nil},

		// AckSharedChanges
		{"Ack nil library", with(vAck(), func(m *AckSharedChanges) { m.LibraryID = uuid.Nil }), "AckSharedChanges.library_id: nil UUID", nil},
		{"Ack nil from_device", with(vAck(), func(m *AckSharedChanges) { m.FromDevice = uuid.Nil }), "AckSharedChanges.from_device: nil UUID", nil},
		{"Ack zero up_to_hlc", with(vAck(), func(m *AckSharedChanges) { m.UpToHLC = HLC{} }), "AckSharedChanges.up_to_hlc: HLC", nil},
		{"Ack up_to_hlc without device", with(vAck(), func(m *AckSharedChanges) { m.UpToHLC.DeviceID = uuid.Nil }), "AckSharedChanges.up_to_hlc: HLC", nil},
		{"Ack bad model type", with(vAck(), func(m *AckSharedChanges) { m.ModelType = "\t" }), "AckSharedChanges.model_type: model type contains control character U+0009", nil},

		// Hello
		{"Hello nil library", with(vHello(), func(m *Hello) { m.LibraryID = uuid.Nil }), "Hello.library_id: nil UUID", nil},
		{"Hello nil device", with(vHello(), func(m *Hello) { m.DeviceID = uuid.Nil }), "Hello.device_id: nil UUID", nil},
		{"Hello no versions", with(vHello(), func(m *Hello) { m.Versions = nil }), "Hello.versions: 0 versions, want 1..16", nil},
		{"Hello too many versions", with(vHello(), func(m *Hello) { m.Versions = make([]uint32, MaxVersions+1) }), "Hello.versions: 17 versions", nil},
		{"Hello version 0", with(vHello(), func(m *Hello) { m.Versions = []uint32{2, 0} }), "Hello.versions[1]: version 0", nil},
		{"Hello version twice", with(vHello(), func(m *Hello) { m.Versions = []uint32{2, 3, 2} }), "Hello.versions[2]: version 2 listed twice", nil},
		{"Hello clock of another device", with(vHello(), func(m *Hello) { m.Clock = hlcB(1, 0) }), "Hello.clock: HLC", nil},
		{"Hello clock without timestamp", with(vHello(), func(m *Hello) { m.Clock = HLC{DeviceID: exDevA} }), "Hello.clock: HLC", nil},
		{"Hello stream twice", with(vHello(), func(m *Hello) { m.Watermarks = append(m.Watermarks, m.Watermarks[0]) }), "Hello.watermarks[2].device_id: second watermark for stream", nil},
		{"Hello watermark of another device", with(vHello(), func(m *Hello) { m.Watermarks[1].HLC = hlcA(1, 0) }), "Hello.watermarks[1].hlc: HLC", nil},
		{"Hello watermark nil device", with(vHello(), func(m *Hello) { m.Watermarks[1].DeviceID = uuid.Nil }), "Hello.watermarks[1].device_id: nil UUID", nil},
		{"Hello watermark bad model type", with(vHello(), func(m *Hello) { m.Watermarks[1].ModelType = "" }), "Hello.watermarks[1].model_type: empty", nil},
		{"Hello too many watermarks", with(vHello(), func(m *Hello) { m.Watermarks = manyWatermarks(MaxWatermarks + 1) }), "Hello.watermarks: 16385 watermarks", ErrMalformed},

		// Heartbeat
		{"Heartbeat nil library", with(vHeartbeat(), func(m *Heartbeat) { m.LibraryID = uuid.Nil }), "Heartbeat.library_id: nil UUID", nil},
		{"Heartbeat nil device", with(vHeartbeat(), func(m *Heartbeat) { m.DeviceID = uuid.Nil }), "Heartbeat.device_id: nil UUID", nil},
		{"Heartbeat clock of another device", with(vHeartbeat(), func(m *Heartbeat) { m.Clock = hlcB(1, 0) }), "Heartbeat.clock: HLC", nil},
		{"Heartbeat stream twice", with(vHeartbeat(), func(m *Heartbeat) { m.Watermarks[1] = m.Watermarks[0] }), "Heartbeat.watermarks[1].device_id: second watermark", nil},
		{"Heartbeat bad watermark", with(vHeartbeat(), func(m *Heartbeat) { m.Watermarks[0].HLC = HLC{Timestamp: 5} }), "Heartbeat.watermarks[0].hlc: HLC", nil},

		// Error
		{"Error message too long", with(vError(), func(m *Error) { m.Message = strings.Repeat("x", MaxErrorMessageLen+1) }), "Error.message: 4097 bytes, limit 4096", nil},
		{"Error message not UTF-8", with(vError(), func(m *Error) { m.Message = "\xff" }), "Error.message: not valid UTF-8", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate:\n got %v\nwant ErrInvalid mentioning %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "protocol: invalid message: "+tc.m.Name()+".") {
				t.Fatalf("Validate error %q does not start with the message and field", err)
			}
			if CodeOf(err) != CodeInvalid {
				t.Fatalf("CodeOf(%v) = %v, want invalid", err, CodeOf(err))
			}
			if b, err := Encode(tc.m); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Encode: got (%x, %v), want ErrInvalid", b, err)
			}
			wire := tc.wire
			if wire == nil {
				wire = ErrInvalid
			}
			if m, err := Decode(encodeUnchecked(tc.m)); !errors.Is(err, wire) {
				t.Fatalf("Decode of the unchecked encoding: got (%+v, %v), want %v", m, err, wire)
			}
		})
	}
}
