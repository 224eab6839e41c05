package protocol

import (
	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// HLC is the wire form of a hybrid logical clock: the CBOR array
// [timestamp, counter, device_id].
type HLC = hlc.HLC

// ChangeType says what a shared change did to its record. On the wire it is
// the text of the variant name, as serde encodes a unit enum variant.
type ChangeType string

// The change types of the seed.
const (
	Insert ChangeType = "Insert"
	Update ChangeType = "Update"
	Delete ChangeType = "Delete"
)

// Message is one SyncMessage variant. Every variant names its library.
type Message interface {
	// Name returns the variant name that tags the message on the wire, for
	// example "StateChange".
	Name() string
	// Library returns the library the message belongs to.
	Library() uuid.UUID
	// Validate checks the message against the protocol's rules and limits,
	// returning an error that wraps ErrInvalid (or a more specific sentinel)
	// and says which field is wrong.
	Validate() error
}

// Watermark states, for one stream (one origin device and one model type),
// the HLC up to which a node holds every change of that stream: each change
// at or below HLC, or a newer change of the same record that supersedes it.
// A zero HLC means "nothing yet".
type Watermark struct {
	// DeviceID is the origin of the stream: the owner of device-owned
	// records, the writer of shared changes.
	DeviceID uuid.UUID `cbor:"device_id"`
	// ModelType is the stream's model type.
	ModelType string `cbor:"model_type"`
	// HLC is the bound.
	HLC HLC `cbor:"hlc"`
}

// ---- State-based (device-owned data) ----

// StateChange broadcasts one write (or delete) of a device-owned record by
// its owner.
type StateChange struct {
	LibraryID  uuid.UUID `cbor:"library_id"`
	ModelType  string    `cbor:"model_type"`
	RecordUUID uuid.UUID `cbor:"record_uuid"`
	// DeviceID is the owner; it must be the origin named in Timestamp.
	DeviceID uuid.UUID `cbor:"device_id"`
	// Data is the record's payload as embedded CBOR; absent for a delete.
	Data cbor.RawMessage `cbor:"data,omitempty"`
	// Timestamp is the owner's HLC at the write: the record's version.
	Timestamp HLC `cbor:"timestamp"`
	// Deleted marks a tombstone (an addition to the seed).
	Deleted bool `cbor:"deleted,omitempty"`
	// Prev is the owner's previous write in the same stream (same owner and
	// model type), or nil if this is the first. A receiver whose watermark
	// equals Prev may advance its watermark to Timestamp; any other value
	// reveals a gap (an addition to the seed).
	Prev *HLC `cbor:"prev,omitempty"`
}

// StateRecord is one device-owned record inside a StateBatch or
// StateResponse.
type StateRecord struct {
	RecordUUID uuid.UUID       `cbor:"record_uuid"`
	Data       cbor.RawMessage `cbor:"data,omitempty"`
	// Timestamp is the record's version: the owner's HLC at its last write.
	Timestamp HLC  `cbor:"timestamp"`
	Deleted   bool `cbor:"deleted,omitempty"`
}

// StateBatch broadcasts several writes of one owner to one model type. The
// records are the owner's writes in the stream after Prev, in version order,
// possibly coalesced to the newest write of each record.
type StateBatch struct {
	LibraryID uuid.UUID     `cbor:"library_id"`
	ModelType string        `cbor:"model_type"`
	DeviceID  uuid.UUID     `cbor:"device_id"`
	Records   []StateRecord `cbor:"records"`
	// Prev is the owner's write in this stream just before the first record,
	// or nil if there is none (an addition to the seed).
	Prev *HLC `cbor:"prev,omitempty"`
}

// StateRequest asks a peer for the current device-owned state of the streams
// selected by ModelTypes (empty: every device-owned type) and DeviceID (nil:
// every owner). For each selected stream the requester's position is its
// entry in Watermarks, or Since when the stream is not listed (nil Since: from
// the beginning). The peer answers with a sequence of StateResponse frames.
type StateRequest struct {
	LibraryID  uuid.UUID  `cbor:"library_id"`
	ModelTypes []string   `cbor:"model_types"`
	DeviceID   *uuid.UUID `cbor:"device_id"`
	Since      *HLC       `cbor:"since"`
	// Limit is the most records one StateResponse may carry (additions to the
	// seed from here on).
	Limit      uint32      `cbor:"limit"`
	Watermarks []Watermark `cbor:"watermarks,omitempty"`
	// Compression lists the frame compression algorithms the requester
	// accepts in the response frames (see CompressionSnappy); absent: none.
	Compression []string `cbor:"compression,omitempty"`
}

// StateResponse is one page of a stream's device-owned state, records in
// version order. The responder holds no record of the stream with a version in
// (the requested position, UpTo] other than those sent in this page and the
// pages of the same stream before it. Complete is the responder's watermark
// for the stream when it read the page; the receiver's watermark may advance
// to min(UpTo, Complete).
type StateResponse struct {
	LibraryID uuid.UUID     `cbor:"library_id"`
	ModelType string        `cbor:"model_type"`
	DeviceID  uuid.UUID     `cbor:"device_id"`
	Records   []StateRecord `cbor:"records"`
	// HasMore is true when more StateResponse frames follow for the request.
	HasMore  bool `cbor:"has_more"`
	UpTo     HLC  `cbor:"up_to"`
	Complete HLC  `cbor:"complete"`
	// Snapshot is true when the responder had purged tombstones of the stream
	// past the requested position: the page is then exact for its range, and
	// the receiver drops any record of the stream in the range (previous
	// UpTo, min(UpTo, Complete)] that the page does not list.
	Snapshot bool `cbor:"snapshot,omitempty"`
}

// ---- Log-based (shared resources) ----

// SharedChangeEntry is one change of a shared record: an entry of its
// origin's log. The origin is HLC.DeviceID.
type SharedChangeEntry struct {
	HLC        HLC             `cbor:"hlc"`
	ModelType  string          `cbor:"model_type"`
	RecordUUID uuid.UUID       `cbor:"record_uuid"`
	ChangeType ChangeType      `cbor:"change_type"`
	Data       cbor.RawMessage `cbor:"data,omitempty"`
	// Prev is the origin's previous change in the same stream (same origin
	// and model type), or nil if this is the origin's first change in the
	// stream; an origin persists its last HLC per stream to fill it (an
	// addition to the seed). A receiver treats nil as the zero HLC.
	Prev *HLC `cbor:"prev,omitempty"`
}

// SharedChange broadcasts one change of a shared record by its origin.
type SharedChange struct {
	LibraryID  uuid.UUID       `cbor:"library_id"`
	HLC        HLC             `cbor:"hlc"`
	ModelType  string          `cbor:"model_type"`
	RecordUUID uuid.UUID       `cbor:"record_uuid"`
	ChangeType ChangeType      `cbor:"change_type"`
	Data       cbor.RawMessage `cbor:"data,omitempty"`
	Prev       *HLC            `cbor:"prev,omitempty"`
}

// Entry returns the change as a log entry.
func (m *SharedChange) Entry() SharedChangeEntry {
	return SharedChangeEntry{HLC: m.HLC, ModelType: m.ModelType, RecordUUID: m.RecordUUID, ChangeType: m.ChangeType, Data: m.Data, Prev: m.Prev}
}

// SharedChangeBatch broadcasts several changes of one origin, in HLC order.
type SharedChangeBatch struct {
	LibraryID uuid.UUID           `cbor:"library_id"`
	Entries   []SharedChangeEntry `cbor:"entries"`
}

// SharedChangeRequest asks a peer for the shared changes of the streams
// selected by ModelTypes (empty: every shared type), from every origin. For
// each stream the requester's position is its entry in Watermarks, or SinceHLC
// when the stream is not listed (nil: from the beginning). The peer answers
// with a sequence of SharedChangeResponse frames.
type SharedChangeRequest struct {
	LibraryID uuid.UUID `cbor:"library_id"`
	SinceHLC  *HLC      `cbor:"since_hlc"`
	// Limit is the most entries one SharedChangeResponse may carry.
	Limit      uint32      `cbor:"limit"`
	ModelTypes []string    `cbor:"model_types,omitempty"`
	Watermarks []Watermark `cbor:"watermarks,omitempty"`
	// Compression is as in StateRequest.
	Compression []string `cbor:"compression,omitempty"`
}

// SharedChangeResponse is one page of one stream's shared changes in HLC
// order, with the same UpTo/Complete rule as StateResponse. When Snapshot is
// true the responder had pruned the log past the requested position and the
// entries are the current records of the stream instead (each as the change
// that last wrote it, deletes as tombstones): the page is then exact for its
// range, and, as for StateResponse, the receiver drops any record of the
// stream in the range (previous UpTo, min(UpTo, Complete)] that the page does
// not list.
type SharedChangeResponse struct {
	LibraryID uuid.UUID           `cbor:"library_id"`
	Entries   []SharedChangeEntry `cbor:"entries"`
	HasMore   bool                `cbor:"has_more"`
	// DeviceID and ModelType name the stream (additions to the seed).
	DeviceID  uuid.UUID `cbor:"device_id"`
	ModelType string    `cbor:"model_type"`
	UpTo      HLC       `cbor:"up_to"`
	Complete  HLC       `cbor:"complete"`
	Snapshot  bool      `cbor:"snapshot,omitempty"`
}

// AckSharedChanges reports that FromDevice holds every change of the stream
// (origin UpToHLC.DeviceID, ModelType) up to UpToHLC, so that members may
// prune their logs.
type AckSharedChanges struct {
	LibraryID  uuid.UUID `cbor:"library_id"`
	FromDevice uuid.UUID `cbor:"from_device"`
	UpToHLC    HLC       `cbor:"up_to_hlc"`
	ModelType  string    `cbor:"model_type"`
}

// ---- Session messages (additions to the seed) ----

// Hello opens a session: the first frame each side sends on a live stream.
type Hello struct {
	LibraryID uuid.UUID `cbor:"library_id"`
	DeviceID  uuid.UUID `cbor:"device_id"`
	// Versions lists the protocol major versions the sender speaks.
	Versions []uint32 `cbor:"versions"`
	// Clock is the sender's HLC when it sent the Hello.
	Clock HLC `cbor:"clock"`
	// Watermarks are the sender's watermarks for every stream it knows, of
	// both strategies; they also serve as acknowledgements.
	Watermarks []Watermark `cbor:"watermarks"`
	// Compression lists the frame compression algorithms the sender
	// accepts on this stream (see CompressionSnappy); absent: none.
	Compression []string `cbor:"compression,omitempty"`
}

// Heartbeat keeps a session alive and refreshes the peer's view of the
// sender's watermarks.
type Heartbeat struct {
	LibraryID  uuid.UUID   `cbor:"library_id"`
	DeviceID   uuid.UUID   `cbor:"device_id"`
	Clock      HLC         `cbor:"clock"`
	Watermarks []Watermark `cbor:"watermarks"`
}

// Error reports why a message was refused. Code is one of the Code values;
// Message is for people.
type Error struct {
	LibraryID uuid.UUID `cbor:"library_id"`
	Code      Code      `cbor:"code"`
	Message   string    `cbor:"message"`
	// RemovedDevice and Removal, on a not_member Error only, tell the
	// receiver that it was a member and was removed (docs/PROTOCOL.md
	// §7.7): RemovedDevice is the removed device (the receiver), Removal
	// the HLC of the tombstone of its device record, whose device is the
	// member that removed it (the device itself, if it left). Both or
	// neither. An addition of December 2026: older receivers ignore them.
	RemovedDevice *uuid.UUID `cbor:"removed_device,omitempty"`
	Removal       *HLC       `cbor:"removal,omitempty"`
}

// Name implements Message.
func (*StateChange) Name() string { return "StateChange" }

// Name implements Message.
func (*StateBatch) Name() string { return "StateBatch" }

// Name implements Message.
func (*StateRequest) Name() string { return "StateRequest" }

// Name implements Message.
func (*StateResponse) Name() string { return "StateResponse" }

// Name implements Message.
func (*SharedChange) Name() string { return "SharedChange" }

// Name implements Message.
func (*SharedChangeBatch) Name() string { return "SharedChangeBatch" }

// Name implements Message.
func (*SharedChangeRequest) Name() string { return "SharedChangeRequest" }

// Name implements Message.
func (*SharedChangeResponse) Name() string { return "SharedChangeResponse" }

// Name implements Message.
func (*AckSharedChanges) Name() string { return "AckSharedChanges" }

// Name implements Message.
func (*Hello) Name() string { return "Hello" }

// Name implements Message.
func (*Heartbeat) Name() string { return "Heartbeat" }

// Name implements Message.
func (*Error) Name() string { return "Error" }

// Library implements Message.
func (m *StateChange) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *StateBatch) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *StateRequest) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *StateResponse) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *SharedChange) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *SharedChangeBatch) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *SharedChangeRequest) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *SharedChangeResponse) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *AckSharedChanges) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *Hello) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *Heartbeat) Library() uuid.UUID { return m.LibraryID }

// Library implements Message.
func (m *Error) Library() uuid.UUID { return m.LibraryID }
