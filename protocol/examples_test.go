package protocol

import (
	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

// Fixed identities of the examples, readable in hex dumps.
var (
	exLibrary = uuid.MustParse("11111111-1111-4111-8111-111111111111")
	exDevA    = uuid.MustParse("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
	exDevB    = uuid.MustParse("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
	exRec1    = uuid.MustParse("01010101-0101-4101-8101-010101010101")
	exRec2    = uuid.MustParse("02020202-0202-4202-8202-020202020202")
	exRec3    = uuid.MustParse("03030303-0303-4303-8303-030303030303")
)

// hlcA returns an HLC of device A at ms 1764130555000+ms.
func hlcA(ms uint64, counter uint32) HLC {
	return HLC{Timestamp: 1764130555000 + ms, Counter: counter, DeviceID: exDevA}
}

func hlcB(ms uint64, counter uint32) HLC {
	return HLC{Timestamp: 1764130555000 + ms, Counter: counter, DeviceID: exDevB}
}

// mustCBOR encodes v deterministically, for payloads.
func mustCBOR(v any) cbor.RawMessage {
	b, err := encMode.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// example is one message of docs/PROTOCOL.md's examples section.
type example struct {
	// title is a short description, shown above the example in the doc.
	title string
	msg   Message
}

// examples returns the example messages: at least one of every variant.
// They are the round-trip corpus of the tests, the fuzzers' seeds and the
// examples of docs/PROTOCOL.md (regenerate it with
// `go test ./protocol -run TestDocExamples -update`).
func examples() []example {
	return []example{
		{"StateChange: device A writes location record 1 (its first write in the stream)", &StateChange{
			LibraryID: exLibrary, ModelType: "location", RecordUUID: exRec1, DeviceID: exDevA,
			Data:      mustCBOR(map[string]any{"name": "Photos", "path": "/home/a/Photos"}),
			Timestamp: hlcA(0, 0),
		}},
		{"StateChange: device A deletes location record 1; prev links to its previous write in the stream", &StateChange{
			LibraryID: exLibrary, ModelType: "location", RecordUUID: exRec1, DeviceID: exDevA,
			Timestamp: hlcA(2000, 0), Deleted: true, Prev: ptr(hlcA(1000, 3)),
		}},
		{"StateBatch: two writes and a delete of device A's entry records", &StateBatch{
			LibraryID: exLibrary, ModelType: "entry", DeviceID: exDevA,
			Records: []StateRecord{
				{RecordUUID: exRec1, Data: mustCBOR(map[string]any{"name": "a.jpg", "size": 1024}), Timestamp: hlcA(10, 0)},
				{RecordUUID: exRec2, Data: mustCBOR(map[string]any{"name": "b.jpg", "size": 2048}), Timestamp: hlcA(10, 1)},
				{RecordUUID: exRec3, Timestamp: hlcA(11, 0), Deleted: true},
			},
			Prev: ptr(hlcA(5, 0)),
		}},
		{"StateRequest: catch-up of every device-owned stream, with one watermark; unlisted streams start at the beginning; the response frames may be compressed with snappy", &StateRequest{
			LibraryID: exLibrary, Limit: 1000,
			Watermarks:  []Watermark{{DeviceID: exDevA, ModelType: "entry", HLC: hlcA(10, 1)}},
			Compression: []string{CompressionSnappy},
		}},
		{"StateRequest: device A's locations and entries since a given HLC", &StateRequest{
			LibraryID: exLibrary, ModelTypes: []string{"location", "entry"}, DeviceID: ptr(exDevA),
			Since: ptr(hlcA(0, 0)), Limit: 500,
		}},
		{"StateResponse: one page of device A's entries; more pages follow", &StateResponse{
			LibraryID: exLibrary, ModelType: "entry", DeviceID: exDevA,
			Records: []StateRecord{
				{RecordUUID: exRec2, Data: mustCBOR(map[string]any{"name": "b.jpg", "size": 2048}), Timestamp: hlcA(10, 1)},
				{RecordUUID: exRec3, Timestamp: hlcA(11, 0), Deleted: true},
			},
			HasMore: true, UpTo: hlcA(11, 0), Complete: hlcA(11, 0),
		}},
		{"StateResponse: a snapshot page of device A's locations (tombstones purged past the requester's position): the receiver drops its records of the stream in the range that the page does not list", &StateResponse{
			LibraryID: exLibrary, ModelType: "location", DeviceID: exDevA, Snapshot: true,
			Records: []StateRecord{
				{RecordUUID: exRec2, Data: mustCBOR(map[string]any{"name": "Music", "path": "/home/a/Music"}), Timestamp: hlcA(3000, 0)},
			},
			UpTo: hlcA(3000, 0), Complete: hlcA(3000, 0),
		}},
		{"StateResponse: the end marker of a response with nothing to send", &StateResponse{
			LibraryID: exLibrary,
		}},
		{"SharedChange: device B inserts a tag", &SharedChange{
			LibraryID: exLibrary, HLC: hlcB(20, 0), ModelType: "tag", RecordUUID: exRec1,
			ChangeType: Insert, Data: mustCBOR(map[string]any{"name": "holiday", "color": "#ffaa00"}),
		}},
		{"SharedChange: device B deletes the tag; prev links to its previous change in the stream", &SharedChange{
			LibraryID: exLibrary, HLC: hlcB(30, 0), ModelType: "tag", RecordUUID: exRec1,
			ChangeType: Delete, Prev: ptr(hlcB(20, 0)),
		}},
		{"SharedChangeBatch: two changes of device B, to a tag and an album", &SharedChangeBatch{
			LibraryID: exLibrary,
			Entries: []SharedChangeEntry{
				{HLC: hlcB(40, 0), ModelType: "tag", RecordUUID: exRec2, ChangeType: Update, Data: mustCBOR(map[string]any{"name": "work"}), Prev: ptr(hlcB(30, 0))},
				{HLC: hlcB(40, 1), ModelType: "album", RecordUUID: exRec3, ChangeType: Insert, Data: mustCBOR(map[string]any{"title": "2025"})},
			},
		}},
		{"SharedChangeRequest: catch-up of tags and albums from per-stream positions", &SharedChangeRequest{
			LibraryID: exLibrary, Limit: 1000, ModelTypes: []string{"tag", "album"},
			Watermarks: []Watermark{
				{DeviceID: exDevA, ModelType: "tag", HLC: hlcA(5, 0)},
				{DeviceID: exDevB, ModelType: "tag", HLC: hlcB(20, 0)},
			},
		}},
		{"SharedChangeRequest: every shared stream since a given HLC; the response frames may be compressed with snappy", &SharedChangeRequest{
			LibraryID: exLibrary, SinceHLC: ptr(hlcA(0, 0)), Limit: 200, Compression: []string{CompressionSnappy},
		}},
		{"SharedChangeResponse: the last page of device B's tag log", &SharedChangeResponse{
			LibraryID: exLibrary, DeviceID: exDevB, ModelType: "tag",
			Entries: []SharedChangeEntry{
				{HLC: hlcB(30, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Delete, Prev: ptr(hlcB(20, 0))},
				{HLC: hlcB(40, 0), ModelType: "tag", RecordUUID: exRec2, ChangeType: Update, Data: mustCBOR(map[string]any{"name": "work"}), Prev: ptr(hlcB(30, 0))},
			},
			UpTo: hlcB(40, 0), Complete: hlcB(40, 0),
		}},
		{"SharedChangeResponse: a snapshot page of device B's tags (the log was pruned); the delete is a tombstone", &SharedChangeResponse{
			LibraryID: exLibrary, DeviceID: exDevB, ModelType: "tag", Snapshot: true, HasMore: true,
			Entries: []SharedChangeEntry{
				{HLC: hlcB(30, 0), ModelType: "tag", RecordUUID: exRec1, ChangeType: Delete},
				{HLC: hlcB(40, 0), ModelType: "tag", RecordUUID: exRec2, ChangeType: Update, Data: mustCBOR(map[string]any{"name": "work"})},
			},
			UpTo: hlcB(40, 0), Complete: hlcB(50, 0),
		}},
		{"AckSharedChanges: device A holds every tag change of device B up to an HLC", &AckSharedChanges{
			LibraryID: exLibrary, FromDevice: exDevA, UpToHLC: hlcB(40, 0), ModelType: "tag",
		}},
		{"Hello: device A opens a session, speaking version 2, with its watermarks; it accepts frames compressed with snappy", &Hello{
			LibraryID: exLibrary, DeviceID: exDevA, Versions: []uint32{Version}, Clock: hlcA(100, 0),
			Watermarks: []Watermark{
				{DeviceID: exDevA, ModelType: "entry", HLC: hlcA(11, 0)},
				{DeviceID: exDevB, ModelType: "tag", HLC: hlcB(40, 0)},
				{DeviceID: exDevB, ModelType: "album"},
			},
			Compression: []string{CompressionSnappy},
		}},
		{"Heartbeat: device B is alive; it has nothing of any stream yet", &Heartbeat{
			LibraryID: exLibrary, DeviceID: exDevB, Clock: hlcB(10000, 0),
		}},
		{"Error: the sender is not a member of the library", NewError(exLibrary, ErrNotMember)},
		{"Error: a code from a newer peer, unknown to this one, with no library", &Error{
			Code: 99, Message: "something new",
		}},
		{"Error: device B, removed from the library by device A, is refused and told so (§7.7)", &Error{
			LibraryID: exLibrary, Code: CodeNotMember, Message: "device B was removed from the library",
			RemovedDevice: &exDevB, Removal: ptr(hlcA(500, 0)),
		}},
	}
}

func ptr[T any](v T) *T { return &v }

// messageNames lists every variant name.
var messageNames = []string{
	"StateChange", "StateBatch", "StateRequest", "StateResponse",
	"SharedChange", "SharedChangeBatch", "SharedChangeRequest", "SharedChangeResponse",
	"AckSharedChanges", "Hello", "Heartbeat", "Error",
}
