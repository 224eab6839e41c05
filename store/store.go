// Package store defines what a syncnode keeps durably and the contract of a
// store that keeps it: records (device-owned and shared, with tombstones),
// the per-stream log of shared changes, watermarks, acknowledgements, prune
// points, quarantined messages, the clock's lease, libraries and members.
//
// The package is pure: it holds the vocabulary, the Store interface, the
// atomic Batch every write goes through, and Mem, an in-memory Store with the
// same atomicity that simulations and tests use. The Badger implementation is
// in store/badgerstore; store/storetest checks both against one suite.
//
// A stream is (library, model type, origin device). Every record belongs to
// the stream of its version's device: for a device-owned record that is its
// owner, for a shared record the device that wrote the winning change.
// Watermarks, logs, acknowledgements and prune points are all per stream.
package store

import (
	"errors"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// Errors returned by every Store. Implementations translate their own errors
// to these at the boundary; callers test with errors.Is.
var (
	// ErrNotFound means the key asked for is not stored.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt means a stored value could not be decoded.
	ErrCorrupt = errors.New("store: corrupt value")
	// ErrSchema means the data on disk was written by an incompatible schema.
	ErrSchema = errors.New("store: unsupported schema version")
	// ErrInvalid means a Batch or argument breaks the store's rules (an empty
	// model type, a record whose version is zero, ...).
	ErrInvalid = errors.New("store: invalid argument")
)

// Stream names one (library, model type, origin device) stream.
type Stream struct {
	Library   uuid.UUID
	ModelType string
	Origin    uuid.UUID
}

// Record is the current state of one record. Its stream is (Library,
// ModelType, Version.DeviceID).
type Record struct {
	Library   uuid.UUID
	ModelType string
	ID        uuid.UUID
	// Version is the HLC of the write that produced this state.
	Version hlc.HLC
	// Deleted marks a tombstone; Data is then nil.
	Deleted bool
	// Data is the payload as CBOR. The store owns the slice it returns.
	Data []byte
}

// Stream returns the stream the record belongs to.
func (r Record) Stream() Stream {
	return Stream{Library: r.Library, ModelType: r.ModelType, Origin: r.Version.DeviceID}
}

// RecordKey names a record.
type RecordKey struct {
	Library   uuid.UUID
	ModelType string
	ID        uuid.UUID
}

// LogEntry is one shared change kept in its origin's log. Its stream is
// (Library, ModelType, HLC.DeviceID).
type LogEntry struct {
	Library   uuid.UUID
	ModelType string
	HLC       hlc.HLC
	RecordID  uuid.UUID
	// ChangeType is "Insert", "Update" or "Delete".
	ChangeType string
	Data       []byte
	// Prev is the origin's previous change in the stream (zero: none known).
	Prev hlc.HLC
}

// Stream returns the stream the entry belongs to.
func (e LogEntry) Stream() Stream {
	return Stream{Library: e.Library, ModelType: e.ModelType, Origin: e.HLC.DeviceID}
}

// Mark is an HLC bound for one stream: a watermark, or the bound of a prune.
type Mark struct {
	Stream
	HLC hlc.HLC
}

// Ack records that Member holds the stream up to HLC.
type Ack struct {
	Stream
	Member uuid.UUID
	HLC    hlc.HLC
}

// PrunePoint says how far a stream's history has been dropped: log entries at
// or below Log, and tombstones at or below Tombstones.
type PrunePoint struct {
	Stream
	Log        hlc.HLC
	Tombstones hlc.HLC
}

// Quarantined is a received message that was not applied because its HLC was
// too far in the future. It is retried when the wall clock catches up.
type Quarantined struct {
	Library uuid.UUID
	// HLC is the newest HLC in the message; entries are ordered by it.
	HLC hlc.HLC
	// From is the authenticated device that sent the message.
	From uuid.UUID
	// Message is the encoded protocol message.
	Message []byte
}

// QuarantineKey names a quarantined message.
type QuarantineKey struct {
	Library uuid.UUID
	HLC     hlc.HLC
	From    uuid.UUID
}

// Key returns the key of q.
func (q Quarantined) Key() QuarantineKey {
	return QuarantineKey{Library: q.Library, HLC: q.HLC, From: q.From}
}

// Library is one library's configuration.
type Library struct {
	ID   uuid.UUID
	Name string
	// Secret is the library's shared secret (may be empty until pairing).
	Secret []byte
	// CreatedAt is in ms since the epoch.
	CreatedAt uint64
}

// Member is one device of a library.
type Member struct {
	Library  uuid.UUID
	DeviceID uuid.UUID
	// PeerID is the device's libp2p peer ID in its string form.
	PeerID string
	Name   string
	// AddedBy is the member that added this one (zero for the creator).
	AddedBy uuid.UUID
	// AddedAt and LastSeen are in ms since the epoch.
	AddedAt  uint64
	LastSeen uint64
}

// MemberKey names a member.
type MemberKey struct {
	Library  uuid.UUID
	DeviceID uuid.UUID
}

// StatePage is one page of a stream's records, read in one snapshot together
// with the stream's watermark and prune point at that moment.
type StatePage struct {
	Records    []Record
	Watermark  hlc.HLC
	PrunePoint PrunePoint
}

// LogPage is one page of a stream's log, read in one snapshot together with
// the stream's watermark and prune point at that moment.
type LogPage struct {
	Entries    []LogEntry
	Watermark  hlc.HLC
	PrunePoint PrunePoint
}

// Reader reads a store. Every method reads one consistent snapshot; slices
// returned belong to the caller.
type Reader interface {
	// Record returns one record (live or tombstone), or ErrNotFound.
	Record(k RecordKey) (Record, error)
	// List returns up to limit records (tombstones included) of one library
	// and model type with IDs greater than after, in ID order.
	List(library uuid.UUID, modelType string, after uuid.UUID, limit int) ([]Record, error)
	// StatePage returns up to limit records of stream s with versions greater
	// than after, in version order, with the stream's watermark and prune
	// point from the same snapshot.
	StatePage(s Stream, after hlc.HLC, limit int) (StatePage, error)
	// LogPage returns up to limit log entries of stream s with HLCs greater
	// than after, in HLC order, with the stream's watermark and prune point.
	LogPage(s Stream, after hlc.HLC, limit int) (LogPage, error)
	// Streams lists every stream of a library that has records, log entries,
	// a watermark or a prune point, ordered by model type then origin bytes.
	Streams(library uuid.UUID) ([]Stream, error)
	// Watermark returns a stream's watermark (zero if none is stored).
	Watermark(s Stream) (hlc.HLC, error)
	// Watermarks returns every stored watermark of a library.
	Watermarks(library uuid.UUID) ([]Mark, error)
	// Acks returns every stored acknowledgement of a library.
	Acks(library uuid.UUID) ([]Ack, error)
	// PrunePoints returns every stored prune point of a library.
	PrunePoints(library uuid.UUID) ([]PrunePoint, error)
	// Quarantined returns up to limit quarantined messages of a library in
	// HLC order.
	Quarantined(library uuid.UUID, limit int) ([]Quarantined, error)
	// CountQuarantined returns how many messages of a library are quarantined.
	CountQuarantined(library uuid.UUID) (int, error)
	// ClockBound returns the persisted clock lease (0 if none).
	ClockBound() (uint64, error)
	// Libraries returns every library, in ID order.
	Libraries() ([]Library, error)
	// Members returns every member of a library, in device ID order.
	Members(library uuid.UUID) ([]Member, error)
	// Meta returns a node-wide value stored under key, or ErrNotFound.
	Meta(key string) ([]byte, error)
}

// Batch is one atomic write. Apply writes all of its fields in one
// transaction, except PruneLog and PurgeTombstones, which are deletions that
// may run after it in several smaller transactions (they are idempotent, and
// the prune points that make them safe are set by the atomic part first).
type Batch struct {
	// PutRecords replaces each record's stored state (and moves it in its
	// stream's version index). The caller has already decided that the write
	// wins; the store does not compare versions.
	PutRecords []Record
	// DropRecords removes records entirely (no tombstone is kept).
	DropRecords []RecordKey
	// AppendLog adds entries to their streams' logs (an existing entry with
	// the same HLC is overwritten).
	AppendLog []LogEntry
	// SetWatermarks, SetAcks and SetPrunePoints store each value, replacing
	// what was stored for the same stream (and member).
	SetWatermarks  []Mark
	SetAcks        []Ack
	SetPrunePoints []PrunePoint
	// PutQuarantine and DropQuarantine add and remove quarantined messages.
	PutQuarantine  []Quarantined
	DropQuarantine []QuarantineKey
	// ClockBound, when non-zero, replaces the persisted clock lease. It never
	// moves backwards: a smaller value than the stored one is ignored.
	ClockBound uint64
	// PutLibraries, PutMembers and DropMembers change configuration.
	PutLibraries []Library
	PutMembers   []Member
	DropMembers  []MemberKey
	// PutMeta and DropMeta change node-wide values.
	PutMeta  map[string][]byte
	DropMeta []string

	// PruneLog deletes log entries of each stream at or below the mark.
	PruneLog []Mark
	// PurgeTombstones drops tombstones of each stream with versions at or
	// below the mark.
	PurgeTombstones []Mark
}

// Empty reports whether the batch writes nothing.
func (b *Batch) Empty() bool {
	return len(b.PutRecords) == 0 && len(b.DropRecords) == 0 && len(b.AppendLog) == 0 &&
		len(b.SetWatermarks) == 0 && len(b.SetAcks) == 0 && len(b.SetPrunePoints) == 0 &&
		len(b.PutQuarantine) == 0 && len(b.DropQuarantine) == 0 && b.ClockBound == 0 &&
		len(b.PutLibraries) == 0 && len(b.PutMembers) == 0 && len(b.DropMembers) == 0 &&
		len(b.PutMeta) == 0 && len(b.DropMeta) == 0 && len(b.PruneLog) == 0 && len(b.PurgeTombstones) == 0
}

// Store is a Reader that can also write.
type Store interface {
	Reader
	// Apply writes b atomically (see Batch). When it returns nil, the atomic
	// part is durable.
	Apply(b *Batch) error
	// Close releases the store; later calls return ErrClosed.
	Close() error
}
