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
//
// Every implementation follows the same rules, which store/storetest checks:
//
//   - Model types are 1 to MaxModelTypeLen bytes without a NUL byte, and
//     library, device and record IDs are never uuid.Nil. A read or a Batch
//     that breaks these rules fails with ErrInvalid and changes nothing; so
//     does a limit that is not positive.
//   - Orderings: UUIDs order as their 16 bytes, model types as Go strings
//     (bytewise), HLCs as hlc.HLC.Compare. Lists of per-stream values order by
//     model type, then origin, then (for acknowledgements) member.
//   - Slices returned belong to the caller and slices passed in are copied:
//     neither side can alias the other's data. A byte slice of length zero is
//     returned as nil.
package store

import (
	"errors"
	"fmt"
	"strings"

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
	// ErrTooBig means a Batch is larger than MaxBatchSize (see Batch.Size).
	// Nothing was written; the caller should write smaller pages.
	ErrTooBig = errors.New("store: batch too big")
)

// Limits every Store enforces (Batch.Validate checks them).
const (
	// MaxModelTypeLen is the longest model type, in bytes.
	MaxModelTypeLen = 255
	// MaxMetaKeyLen is the longest Meta key, in bytes.
	MaxMetaKeyLen = 255
	// MaxBatchSize bounds Batch.Size. Every Store accepts any valid batch up
	// to this size in one transaction; a larger one fails with ErrTooBig.
	// As a guide, a page of 1,000 records with a model type of 10 bytes
	// costs about 1 MB plus the payload bytes.
	MaxBatchSize = 8 << 20
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
// returned belong to the caller. Implementations are safe for concurrent use.
type Reader interface {
	// Record returns one record (live or tombstone), or ErrNotFound.
	Record(k RecordKey) (Record, error)
	// List returns up to limit records (tombstones included) of one library
	// and model type with IDs greater than after, in ID order.
	List(library uuid.UUID, modelType string, after uuid.UUID, limit int) ([]Record, error)
	// StatePage returns up to limit records of stream s (tombstones included)
	// with versions greater than after, in version order, with the stream's
	// watermark and prune point from the same snapshot (PrunePoint.Stream is
	// s even when none is stored). Records sharing a version order by ID; a
	// page can end inside such a run, and paging on with after = the last
	// version then skips the rest of the run, so give every write its own
	// HLC (hlc.Clock does).
	StatePage(s Stream, after hlc.HLC, limit int) (StatePage, error)
	// LogPage returns up to limit log entries of stream s with HLCs greater
	// than after, in HLC order, with the stream's watermark and prune point.
	LogPage(s Stream, after hlc.HLC, limit int) (LogPage, error)
	// Streams lists every stream of a library that has records, log entries,
	// a watermark or a prune point, ordered by model type then origin bytes.
	Streams(library uuid.UUID) ([]Stream, error)
	// Watermark returns a stream's watermark (zero if none is stored).
	Watermark(s Stream) (hlc.HLC, error)
	// Watermarks returns every stored watermark of a library, ordered by
	// model type then origin.
	Watermarks(library uuid.UUID) ([]Mark, error)
	// Acks returns every stored acknowledgement of a library, ordered by
	// model type, origin, then member.
	Acks(library uuid.UUID) ([]Ack, error)
	// PrunePoints returns every stored prune point of a library, ordered by
	// model type then origin.
	PrunePoints(library uuid.UUID) ([]PrunePoint, error)
	// Quarantined returns up to limit quarantined messages of a library in
	// HLC order, then sender (From) order.
	Quarantined(library uuid.UUID, limit int) ([]Quarantined, error)
	// CountQuarantined returns how many messages of a library are quarantined.
	CountQuarantined(library uuid.UUID) (int, error)
	// CountLog returns how many shared changes of a library its log keeps
	// (every stream), without reading them.
	CountLog(library uuid.UUID) (int, error)
	// ClockBound returns the persisted clock lease (0 if none).
	ClockBound() (uint64, error)
	// Libraries returns every library, in ID order.
	Libraries() ([]Library, error)
	// Members returns every member of a library, in device ID order.
	Members(library uuid.UUID) ([]Member, error)
	// Meta returns a node-wide value stored under key, or ErrNotFound. The
	// key is 1 to MaxMetaKeyLen bytes.
	Meta(key string) ([]byte, error)
}

// RecordCounter is a Reader that counts records without reading them. Mem
// and the Badger store implement it; callers that need a count check for it
// and fall back to a scan (List) otherwise.
type RecordCounter interface {
	// CountRecords returns how many records, tombstones included, a library
	// holds of each model type (model types with none are absent), at a cost
	// that does not grow with the number of records.
	CountRecords(library uuid.UUID) (map[string]int, error)
}

// RecordTallier is a Reader that tells a library's live records of one
// model type from its tombstones without reading their data. The Badger
// store reads only each record's head (its flags and version, kept in the
// LSM tree), never its payload (in the value log): a count that List would
// make by reading every payload, at random places of the value log, which a
// device short of memory must fetch from disk one page at a time. Mem and
// the Badger store implement it; callers check for it and fall back to List.
type RecordTallier interface {
	// TallyRecords returns how many live records and how many tombstones
	// of modelType library holds. Its cost grows with their number.
	TallyRecords(library uuid.UUID, modelType string) (live, deleted int, err error)
}

// Batch is one atomic write. Apply writes all of its fields in one
// transaction, except PruneLog, PurgeTombstones and PurgeLibraries, which
// are deletions that may run after it in several smaller transactions (they
// are idempotent, and the prune points that make the first two safe are set
// by the atomic part first).
//
// Apply validates the whole batch first (see Validate): an invalid element
// fails the batch with ErrInvalid, a batch over MaxBatchSize with ErrTooBig,
// and nothing is written. The fields then apply in the order they are
// declared, and the elements of one field in slice order, so a later element
// wins over an earlier one for the same key (a record in both PutRecords and
// DropRecords ends up dropped; a key in both PutMeta and DropMeta, dropped).
type Batch struct {
	// PutRecords replaces each record's stored state (and moves it in its
	// stream's version index). The caller has already decided that the write
	// wins; the store does not compare versions. Library, ID and Version are
	// non-zero; a tombstone (Deleted) carries no Data.
	PutRecords []Record
	// Replaced, if not nil, holds one version per record of PutRecords: the
	// version of the record that PutRecords[i] replaces (tombstones
	// included), or the zero HLC when no record is stored under its key, as
	// the batch finds the store (an earlier element of PutRecords counts).
	// The caller knows it from the read that decided the write wins, and a
	// store then moves index entries without reading each record again.
	// The caller must be sure: it is the store's only writer of records. Mem
	// checks every element and fails the batch with ErrInvalid on a wrong
	// one; badgerstore trusts it (a wrong one would leave a stale entry in
	// the version index). Nil: the store reads what each record replaces.
	Replaced []hlc.HLC
	// DropRecords removes records entirely (no tombstone is kept).
	DropRecords []RecordKey
	// AppendLog adds entries to their streams' logs (an existing entry with
	// the same HLC is overwritten). HLC and RecordID are non-zero and
	// ChangeType is "Insert", "Update" or "Delete"; Prev may be zero.
	AppendLog []LogEntry
	// SetWatermarks, SetAcks and SetPrunePoints store each value, replacing
	// what was stored for the same stream (and member).
	SetWatermarks  []Mark
	SetAcks        []Ack
	SetPrunePoints []PrunePoint
	// PutQuarantine and DropQuarantine add and remove quarantined messages
	// (HLC and From are non-zero).
	PutQuarantine  []Quarantined
	DropQuarantine []QuarantineKey
	// ClockBound, when non-zero, replaces the persisted clock lease. It never
	// moves backwards: a smaller value than the stored one is ignored.
	ClockBound uint64
	// PutLibraries, PutMembers and DropMembers change configuration.
	PutLibraries []Library
	PutMembers   []Member
	DropMembers  []MemberKey
	// DropLibraries removes each library's configuration: its Library entry
	// and all of its members (Libraries and Members no longer list them).
	// It leaves the library's data (records, logs, marks, quarantine): a
	// dropped library's data stays readable by key until PurgeLibraries
	// deletes it. IDs are non-nil; an unknown library is fine.
	DropLibraries []uuid.UUID
	// PutMeta and DropMeta change node-wide values (keys of 1 to
	// MaxMetaKeyLen bytes). PutMeta applies before DropMeta.
	PutMeta  map[string][]byte
	DropMeta []string

	// PruneLog deletes log entries of each stream at or below the mark.
	PruneLog []Mark
	// PurgeTombstones drops tombstones (and only tombstones) of each stream
	// with versions at or below the mark, as DropRecords would.
	PurgeTombstones []Mark
	// PurgeLibraries deletes every key of each library except its
	// configuration (see DropLibraries, usually applied first or in the same
	// batch): records, the stream index, log entries, watermarks,
	// acknowledgements, prune points and quarantined messages. Once it has
	// run, every per-library read of the library returns nothing; other
	// libraries are untouched. Like PruneLog it may run after the atomic
	// part, in several transactions, even after Apply returns: a later
	// write to the library may be deleted or survive, in part. Write to it
	// again only once the purge is done (badgerstore: WaitPruned). IDs are
	// non-nil; purging an unknown or already purged library is fine.
	PurgeLibraries []uuid.UUID
}

// Empty reports whether the batch writes nothing.
func (b *Batch) Empty() bool {
	return len(b.PutRecords) == 0 && len(b.Replaced) == 0 && len(b.DropRecords) == 0 && len(b.AppendLog) == 0 &&
		len(b.SetWatermarks) == 0 && len(b.SetAcks) == 0 && len(b.SetPrunePoints) == 0 &&
		len(b.PutQuarantine) == 0 && len(b.DropQuarantine) == 0 && b.ClockBound == 0 &&
		len(b.PutLibraries) == 0 && len(b.PutMembers) == 0 && len(b.DropMembers) == 0 &&
		len(b.DropLibraries) == 0 && len(b.PutMeta) == 0 && len(b.DropMeta) == 0 &&
		len(b.PruneLog) == 0 && len(b.PurgeTombstones) == 0 && len(b.PurgeLibraries) == 0
}

// Store is a Reader that can also write.
type Store interface {
	Reader
	// Apply writes b atomically (see Batch). When it returns nil, the atomic
	// part is durable. An error wrapping ErrInvalid or ErrTooBig means nothing
	// was written. An error from PruneLog, PurgeTombstones or PurgeLibraries
	// comes after the atomic part was written; asking for the same deletions
	// again is safe. An implementation may also run them after Apply
	// returns (badgerstore does, in the background): then a read right after
	// Apply can still see what they delete, and their errors are not Apply's.
	Apply(b *Batch) error
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// ValidateModelType returns an error wrapping ErrInvalid unless m is 1 to
// MaxModelTypeLen bytes without a NUL byte (stores keep model types in keys
// followed by a NUL, which keeps prefix scans exact).
func ValidateModelType(m string) error {
	switch {
	case m == "":
		return fmt.Errorf("%w: empty model type", ErrInvalid)
	case len(m) > MaxModelTypeLen:
		return fmt.Errorf("%w: model type of %d bytes, limit %d", ErrInvalid, len(m), MaxModelTypeLen)
	case strings.IndexByte(m, 0) >= 0:
		return fmt.Errorf("%w: model type %q contains a NUL byte", ErrInvalid, m)
	}
	return nil
}

// Validate returns an error wrapping ErrInvalid unless s names a stream: a
// non-nil library and origin and a valid model type.
func (s Stream) Validate() error {
	if s.Library == uuid.Nil {
		return fmt.Errorf("%w: stream with nil library", ErrInvalid)
	}
	if s.Origin == uuid.Nil {
		return fmt.Errorf("%w: stream with nil origin", ErrInvalid)
	}
	return ValidateModelType(s.ModelType)
}

// Validate returns an error wrapping ErrInvalid unless k names a record: a
// non-nil library and ID and a valid model type.
func (k RecordKey) Validate() error {
	if k.Library == uuid.Nil {
		return fmt.Errorf("%w: record key with nil library", ErrInvalid)
	}
	if k.ID == uuid.Nil {
		return fmt.Errorf("%w: record key with nil ID", ErrInvalid)
	}
	return ValidateModelType(k.ModelType)
}

func validateMetaKey(k string) error {
	if k == "" || len(k) > MaxMetaKeyLen {
		return fmt.Errorf("%w: meta key of %d bytes, want 1 to %d", ErrInvalid, len(k), MaxMetaKeyLen)
	}
	return nil
}

// Validate checks every element of b against the rules of Batch's fields and
// its size against MaxBatchSize. It returns nil, an error wrapping ErrInvalid
// that names the first bad element, or one wrapping ErrTooBig. Apply calls it
// before writing anything.
func (b *Batch) Validate() error {
	for i, r := range b.PutRecords {
		if err := (RecordKey{r.Library, r.ModelType, r.ID}).Validate(); err != nil {
			return fmt.Errorf("PutRecords[%d]: %w", i, err)
		}
		if r.Version.IsZero() || r.Version.DeviceID == uuid.Nil {
			return fmt.Errorf("PutRecords[%d]: %w: version %s has no device", i, ErrInvalid, r.Version)
		}
		if r.Deleted && len(r.Data) > 0 {
			return fmt.Errorf("PutRecords[%d]: %w: tombstone with %d bytes of data", i, ErrInvalid, len(r.Data))
		}
	}
	if b.Replaced != nil && len(b.Replaced) != len(b.PutRecords) {
		return fmt.Errorf("%w: %d Replaced versions for %d PutRecords", ErrInvalid, len(b.Replaced), len(b.PutRecords))
	}
	for i, k := range b.DropRecords {
		if err := k.Validate(); err != nil {
			return fmt.Errorf("DropRecords[%d]: %w", i, err)
		}
	}
	for i, e := range b.AppendLog {
		if err := e.Stream().Validate(); err != nil {
			return fmt.Errorf("AppendLog[%d]: %w", i, err)
		}
		if e.RecordID == uuid.Nil {
			return fmt.Errorf("AppendLog[%d]: %w: nil record ID", i, ErrInvalid)
		}
		switch e.ChangeType {
		case "Insert", "Update", "Delete":
		default:
			return fmt.Errorf("AppendLog[%d]: %w: change type %q", i, ErrInvalid, e.ChangeType)
		}
	}
	for i, m := range b.SetWatermarks {
		if err := m.Stream.Validate(); err != nil {
			return fmt.Errorf("SetWatermarks[%d]: %w", i, err)
		}
	}
	for i, a := range b.SetAcks {
		if err := a.Stream.Validate(); err != nil {
			return fmt.Errorf("SetAcks[%d]: %w", i, err)
		}
		if a.Member == uuid.Nil {
			return fmt.Errorf("SetAcks[%d]: %w: nil member", i, ErrInvalid)
		}
	}
	for i, p := range b.SetPrunePoints {
		if err := p.Stream.Validate(); err != nil {
			return fmt.Errorf("SetPrunePoints[%d]: %w", i, err)
		}
	}
	for i, q := range b.PutQuarantine {
		if err := validateQuarantineKey(q.Key()); err != nil {
			return fmt.Errorf("PutQuarantine[%d]: %w", i, err)
		}
	}
	for i, k := range b.DropQuarantine {
		if err := validateQuarantineKey(k); err != nil {
			return fmt.Errorf("DropQuarantine[%d]: %w", i, err)
		}
	}
	for i, l := range b.PutLibraries {
		if l.ID == uuid.Nil {
			return fmt.Errorf("PutLibraries[%d]: %w: nil library ID", i, ErrInvalid)
		}
	}
	for i, m := range b.PutMembers {
		if m.Library == uuid.Nil || m.DeviceID == uuid.Nil {
			return fmt.Errorf("PutMembers[%d]: %w: nil library or device ID", i, ErrInvalid)
		}
	}
	for i, m := range b.DropMembers {
		if m.Library == uuid.Nil || m.DeviceID == uuid.Nil {
			return fmt.Errorf("DropMembers[%d]: %w: nil library or device ID", i, ErrInvalid)
		}
	}
	for i, id := range b.DropLibraries {
		if id == uuid.Nil {
			return fmt.Errorf("DropLibraries[%d]: %w: nil library ID", i, ErrInvalid)
		}
	}
	for k := range b.PutMeta {
		if err := validateMetaKey(k); err != nil {
			return fmt.Errorf("PutMeta: %w", err)
		}
	}
	for i, k := range b.DropMeta {
		if err := validateMetaKey(k); err != nil {
			return fmt.Errorf("DropMeta[%d]: %w", i, err)
		}
	}
	for i, m := range b.PruneLog {
		if err := m.Stream.Validate(); err != nil {
			return fmt.Errorf("PruneLog[%d]: %w", i, err)
		}
	}
	for i, m := range b.PurgeTombstones {
		if err := m.Stream.Validate(); err != nil {
			return fmt.Errorf("PurgeTombstones[%d]: %w", i, err)
		}
	}
	for i, id := range b.PurgeLibraries {
		if id == uuid.Nil {
			return fmt.Errorf("PurgeLibraries[%d]: %w: nil library ID", i, ErrInvalid)
		}
	}
	if n := b.Size(); n > MaxBatchSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooBig, n, MaxBatchSize)
	}
	return nil
}

func validateQuarantineKey(k QuarantineKey) error {
	if k.Library == uuid.Nil || k.From == uuid.Nil || k.HLC.IsZero() {
		return fmt.Errorf("%w: quarantine key needs a library, an HLC and a sender", ErrInvalid)
	}
	return nil
}

// keyCost is what Size charges for each key a store writes or deletes: a
// bound on a store's per-entry overhead (Badger's is at most 96 bytes) plus
// up to 128 bytes of fixed-size key and value parts (IDs, HLCs, flags).
const keyCost = 96 + 128

// EntryCost is what Size charges for storing one received record
// (device-owned: the record and its two index keys) or shared change (the
// same, plus its log entry). Senders and receivers of batches use it to keep
// a message within what one Batch may hold.
func EntryCost(modelType string, changeType string, dataLen int, shared bool) int {
	n := 3*(keyCost+len(modelType)) + dataLen
	if shared {
		n += keyCost + len(modelType) + len(changeType) + dataLen
	}
	return n
}

// DropCost is what Size charges for dropping one record of a model type.
func DropCost(modelType string) int { return 2 * (keyCost + len(modelType)) }

// dropLibraryMembers is how many members Size charges for each library of
// DropLibraries.
const dropLibraryMembers = 16

// Size returns the cost of the atomic part of b in bytes, as MaxBatchSize
// counts it: an upper bound, for every Store, of what the batch takes in one
// transaction. Each written or deleted key costs keyCost plus its variable
// parts (model type, payload, names); a put record touches three keys (the
// record, its new index entry, its old one), a dropped record two. PruneLog
// and PurgeTombstones cost nothing: they run in transactions of their own;
// so does PurgeLibraries. A dropped library costs its Library entry and
// dropLibraryMembers members: a library's members are not known before the
// transaction reads them, and a store keeps a margin above MaxBatchSize for
// any beyond that (badgerstore's is 1 MiB, thousands of members).
func (b *Batch) Size() int {
	n := 0
	for _, r := range b.PutRecords {
		n += 3*(keyCost+len(r.ModelType)) + len(r.Data)
	}
	for _, k := range b.DropRecords {
		n += 2 * (keyCost + len(k.ModelType))
	}
	for _, e := range b.AppendLog {
		n += keyCost + len(e.ModelType) + len(e.ChangeType) + len(e.Data)
	}
	for _, m := range b.SetWatermarks {
		n += keyCost + len(m.ModelType)
	}
	for _, a := range b.SetAcks {
		n += keyCost + len(a.ModelType)
	}
	for _, p := range b.SetPrunePoints {
		n += keyCost + len(p.ModelType)
	}
	for _, q := range b.PutQuarantine {
		n += keyCost + len(q.Message)
	}
	n += keyCost * len(b.DropQuarantine)
	if b.ClockBound != 0 {
		n += keyCost
	}
	for _, l := range b.PutLibraries {
		n += keyCost + len(l.Name) + len(l.Secret)
	}
	for _, m := range b.PutMembers {
		n += keyCost + len(m.PeerID) + len(m.Name)
	}
	n += keyCost * len(b.DropMembers)
	n += (1 + dropLibraryMembers) * keyCost * len(b.DropLibraries)
	for k, v := range b.PutMeta {
		n += keyCost + len(k) + len(v)
	}
	for _, k := range b.DropMeta {
		n += keyCost + len(k)
	}
	return n
}
