package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Config tunes an Engine. Zero durations and sizes mean their defaults.
type Config struct {
	// Device is this node's device ID. Required.
	Device uuid.UUID
	// Registry declares the model types; default DefaultRegistry().
	Registry *Registry
	// PageSize is the most records a catch-up page asks for; default 1000,
	// at most protocol.MaxRecordsPerMessage.
	PageSize int
	// HeartbeatInterval is how often a Heartbeat goes to each connected peer;
	// default 10 s.
	HeartbeatInterval time.Duration
	// PeerTimeout is how long a connected peer may stay silent before it is
	// treated as gone; default 30 s.
	PeerTimeout time.Duration
	// AckInterval is the least time between two acknowledgements of one
	// stream to one peer; default 1 s.
	AckInterval time.Duration
	// RetryInterval is the least time between two catch-up requests of one
	// kind to one peer when no new gap was seen; default 2 s.
	RetryInterval time.Duration
	// PruneInterval is how often logs and tombstones are pruned; default 1 min.
	PruneInterval time.Duration
	// Horizon is how long a member may stay silent before it stops holding
	// pruning back; default 30 days.
	Horizon time.Duration
	// LastSeenResolution is how stale the stored LastSeen of a member may
	// get; default 1 min.
	LastSeenResolution time.Duration
	// MaxDrift is how far ahead of local wall time a change may be stamped
	// before it is quarantined; default hlc.DefaultMaxDrift.
	MaxDrift time.Duration
	// MaxQuarantine is the most messages quarantined per library; beyond it
	// skewed messages are refused without being stored (their changes come
	// back through catch-up). Default 10,000.
	MaxQuarantine int
	// MaxBatchBytes is the payload budget of one outgoing batch; default
	// 1 MiB.
	MaxBatchBytes int
}

func (c *Config) setDefaults() {
	if c.Registry == nil {
		c.Registry = DefaultRegistry()
	}
	if c.PageSize <= 0 {
		c.PageSize = 1000
	}
	if c.PageSize > protocol.MaxRecordsPerMessage {
		c.PageSize = protocol.MaxRecordsPerMessage
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatInterval, 10*time.Second)
	def(&c.PeerTimeout, 30*time.Second)
	def(&c.AckInterval, time.Second)
	def(&c.RetryInterval, 2*time.Second)
	def(&c.PruneInterval, time.Minute)
	def(&c.Horizon, 30*24*time.Hour)
	def(&c.LastSeenResolution, time.Minute)
	def(&c.MaxDrift, hlc.DefaultMaxDrift)
	if c.MaxQuarantine <= 0 {
		c.MaxQuarantine = 10000
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 1 << 20
	}
}

// Errors of the local API. Wire refusals use the protocol package's
// sentinels (protocol.ErrNotMember, ...), so that protocol.CodeOf maps them.
var (
	// ErrUnknownLibrary is returned for a library the engine does not hold.
	ErrUnknownLibrary = fmt.Errorf("engine: %w", protocol.ErrUnknownLibrary)
	// ErrNotFound is returned when deleting a record that does not exist.
	ErrNotFound = errors.New("engine: record not found")
	// ErrWrongStrategy is returned when a local write uses the operation of
	// the other strategy (PutOwned on a shared model type, ...).
	ErrWrongStrategy = errors.New("engine: wrong strategy for model type")
	// ErrInvalidWrite is returned for a local write with a nil ID or a
	// payload that is not one well-formed CBOR value within the limits.
	ErrInvalidWrite = errors.New("engine: invalid write")
	// ErrNotReady is returned when an input arrives before Load.
	ErrNotReady = errors.New("engine: not loaded")
)

// Envelope is a message to send on the session stream to one peer.
type Envelope struct {
	Library uuid.UUID
	To      uuid.UUID
	Message protocol.Message
}

// Request is a catch-up request to send to one peer on a new short stream.
// Feed each response frame to StepResponse with the same ID and call
// RequestDone when the stream ends.
type Request struct {
	ID      uint64
	Library uuid.UUID
	To      uuid.UUID
	// Message is a *protocol.StateRequest or *protocol.SharedChangeRequest.
	Message protocol.Message
}

// Event tells the app that a record changed.
type Event struct {
	Library   uuid.UUID
	ModelType string
	ID        uuid.UUID
	// Deleted is true when the record is now deleted (a tombstone, or
	// dropped because a snapshot showed it deleted).
	Deleted bool
	// By is the device whose write produced the new state.
	By uuid.UUID
	// Version is the new state's HLC (zero when a snapshot dropped it).
	Version hlc.HLC
	// Data is the new payload (nil when deleted). The slice is shared: do
	// not modify it. For a SharedFields type it is the fields the record
	// shows, as a CBOR map.
	Data []byte
	// Fields, for a SharedFields type only (nil otherwise), names the
	// fields whose shown value changed (set, changed or removed), sorted.
	Fields []string
}

// Disconnect asks the caller to close the session with a peer.
type Disconnect struct {
	Library uuid.UUID
	Device  uuid.UUID
	Reason  error
}

// Ready is what the engine asks its caller to do, in this order:
//
//  1. Persist Batch atomically (store.Store.Apply). Nothing below may happen
//     before it is durable: messages carry HLCs and watermarks that the store
//     must already hold, and local writes count as done only now.
//  2. Send Messages on the peers' session streams, in order per peer.
//  3. Open a short stream per Request and send its message.
//  4. Close the sessions in Disconnects.
//  5. Deliver Events to subscribers.
//  6. Call Advance.
type Ready struct {
	Batch       store.Batch
	Messages    []Envelope
	Requests    []Request
	Disconnects []Disconnect
	Events      []Event
}

// Empty reports whether there is nothing to do.
func (r *Ready) Empty() bool {
	return r.Batch.Empty() && len(r.Messages) == 0 && len(r.Requests) == 0 &&
		len(r.Disconnects) == 0 && len(r.Events) == 0
}

// Engine is the sync state machine of one node. It is not safe for
// concurrent use: one goroutine owns it and feeds it every input.
type Engine struct {
	cfg   Config
	reg   *Registry
	st    store.Reader
	wall  *hlc.ManualClock
	clock *hlc.Clock

	loaded  bool
	libs    map[uuid.UUID]*library
	reqs    map[uint64]*request
	nextReq uint64

	ov       *overlay // writes of the Ready being built
	inflight *overlay // writes handed out by Ready, not yet Advanced
	out      outbox

	lastPrune time.Time
	lastTick  time.Time // of the last Tick (or Load): see skipGap
	lastAlive time.Time // last persisted MetaAlive
	stats     Stats
}

// Stats counts what the engine did since it was created.
type Stats struct {
	// Refused counts messages refused, by protocol error code name.
	Refused map[string]int
	// Quarantined counts messages put in quarantine.
	Quarantined int
	// Released counts quarantined messages applied after the clock caught up.
	Released int
	// PagesApplied and RecordsApplied count catch-up pages and the records
	// or entries in them.
	PagesApplied   int
	RecordsApplied int
	// Pruned counts prune rounds that moved a prune point.
	Pruned int
}

// New returns an engine over st for cfg.Device. It reads nothing and starts
// nothing; call Load before any other input.
func New(cfg Config, st store.Reader) (*Engine, error) {
	if cfg.Device == uuid.Nil {
		return nil, errors.New("engine: Config.Device is required")
	}
	if st == nil {
		return nil, errors.New("engine: a store is required")
	}
	cfg.setDefaults()
	wall := hlc.NewManualClock(time.UnixMilli(0))
	e := &Engine{
		cfg:   cfg,
		reg:   cfg.Registry,
		st:    st,
		wall:  wall,
		clock: hlc.NewClock(cfg.Device, wall, hlc.Config{MaxDrift: cfg.MaxDrift}),
		libs:  make(map[uuid.UUID]*library),
		reqs:  make(map[uint64]*request),
		ov:    newOverlay(),
		stats: Stats{Refused: make(map[string]int)},
	}
	return e, nil
}

// Device returns this node's device ID.
func (e *Engine) Device() uuid.UUID { return e.cfg.Device }

// Registry returns the engine's model types.
func (e *Engine) Registry() *Registry { return e.reg }

// Clock returns the newest HLC issued or merged.
func (e *Engine) Clock() hlc.HLC { return e.clock.Last() }

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Refused = make(map[string]int, len(e.stats.Refused))
	for k, v := range e.stats.Refused {
		s.Refused[k] = v
	}
	return s
}

// setNow moves the engine's notion of wall time. Time given by the caller
// may step backwards; the HLC copes.
func (e *Engine) setNow(now time.Time) { e.wall.Set(now) }

func (e *Engine) now() time.Time { return e.wall.Now() }

// Load reads the persisted state: the clock's lease, the libraries, their
// members, acknowledgements and quarantine.
func (e *Engine) Load(now time.Time) error {
	e.setNow(now)
	bound, err := e.st.ClockBound()
	if err != nil {
		return fmt.Errorf("loading clock bound: %w", err)
	}
	e.clock.Restore(bound)
	libs, err := e.st.Libraries()
	if err != nil {
		return fmt.Errorf("loading libraries: %w", err)
	}
	for _, l := range libs {
		if err := e.loadLibrary(l); err != nil {
			return err
		}
	}
	e.loaded = true
	e.lastPrune, e.lastTick, e.lastAlive = now, now, now
	// The time this node was down does not count as its members' silence
	// (see skipGap), nor does a step of its wall clock while it was down.
	alive, err := e.st.Meta(MetaAlive)
	switch {
	case err == nil && len(alive) == 8:
		last := time.UnixMilli(int64(binary.BigEndian.Uint64(alive)))
		if gap := now.Sub(last); gap > e.cfg.PeerTimeout {
			e.skipGap(gap, now)
		}
	case err != nil && !isNotFound(err):
		return fmt.Errorf("loading the time this node was last alive: %w", err)
	}
	e.ov.alive = uint64(now.UnixMilli())
	return nil
}

// MetaAlive is the store.Meta key under which the engine keeps, as 8 bytes
// big-endian of ms since the epoch, the last time it was running (written by
// Load and then at most once per LastSeenResolution).
const MetaAlive = "engine/alive"

func (e *Engine) loadLibrary(l store.Library) error {
	lib := newLibrary(l)
	members, err := e.st.Members(l.ID)
	if err != nil {
		return fmt.Errorf("loading members of %s: %w", l.ID, err)
	}
	for _, m := range members {
		lib.members[m.DeviceID] = m
	}
	wms, err := e.st.Watermarks(l.ID)
	if err != nil {
		return fmt.Errorf("loading watermarks of %s: %w", l.ID, err)
	}
	for _, w := range wms {
		lib.wms[keyOf(w.Stream)] = w.HLC
	}
	acks, err := e.st.Acks(l.ID)
	if err != nil {
		return fmt.Errorf("loading acks of %s: %w", l.ID, err)
	}
	for _, a := range acks {
		lib.acks[ackKey{member: a.Member, s: keyOf(a.Stream)}] = a.HLC
	}
	q, err := e.st.Quarantined(l.ID, e.cfg.MaxQuarantine)
	if err != nil {
		return fmt.Errorf("loading quarantine of %s: %w", l.ID, err)
	}
	for _, m := range q {
		lib.quarantine[m.Key()] = true
	}
	e.libs[l.ID] = lib
	return nil
}

// Ready returns what the caller must do now (see Ready for the order) and
// hands the pending writes over: until Advance they stay visible to the
// engine. Call Advance once the Ready has been handled, before the next
// Ready.
func (e *Engine) Ready() Ready {
	var rd Ready
	if bound, changed := e.clock.Lease(); changed {
		e.ov.clockBound = bound
	}
	rd.Batch = e.ov.batch()
	rd.Messages, rd.Requests, rd.Disconnects, rd.Events = e.out.take(e.cfg.MaxBatchBytes)
	e.inflight = e.ov
	e.ov = newOverlay()
	return rd
}

// HasReady reports whether Ready would return anything.
func (e *Engine) HasReady() bool {
	return !e.ov.empty() || !e.out.empty()
}

// Advance tells the engine that the last Ready was handled: its batch is
// durable and readable through the store.
func (e *Engine) Advance() { e.inflight = nil }

// libraryFor returns the library of id or ErrUnknownLibrary.
func (e *Engine) libraryFor(id uuid.UUID) (*library, error) {
	if !e.loaded {
		return nil, ErrNotReady
	}
	l, ok := e.libs[id]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownLibrary, id)
	}
	return l, nil
}

// AddLibrary creates or updates a library and replaces its member list. The
// members should include this device.
func (e *Engine) AddLibrary(now time.Time, l store.Library, members []store.Member) error {
	if !e.loaded {
		return ErrNotReady
	}
	e.setNow(now)
	if l.ID == uuid.Nil {
		return fmt.Errorf("%w: library ID is nil", ErrInvalidWrite)
	}
	lib, ok := e.libs[l.ID]
	if !ok {
		lib = newLibrary(l)
		e.libs[l.ID] = lib
	}
	lib.info = l
	e.ov.libraries = append(e.ov.libraries, l)
	return e.SetMembers(now, l.ID, members)
}

// SetMembers replaces a library's member list. Sessions with devices that
// are no longer members are closed.
func (e *Engine) SetMembers(now time.Time, libID uuid.UUID, members []store.Member) error {
	lib, err := e.libraryFor(libID)
	if err != nil {
		return err
	}
	e.setNow(now)
	next := make(map[uuid.UUID]store.Member, len(members))
	for _, m := range members {
		if m.DeviceID == uuid.Nil {
			return fmt.Errorf("%w: member with a nil device ID", ErrInvalidWrite)
		}
		m.Library = libID
		if m.AddedAt == 0 {
			m.AddedAt = uint64(now.UnixMilli())
		}
		if old, ok := lib.members[m.DeviceID]; ok && old.LastSeen > m.LastSeen {
			m.LastSeen = old.LastSeen
		} else if !ok && m.LastSeen < uint64(now.UnixMilli()) {
			// A member this node lists anew counts as heard of now, by this
			// node's clock: its AddedAt comes from the clock of the device
			// that added it, which may run behind this one by more than the
			// horizon (the member would count as silent from the start).
			m.LastSeen = uint64(now.UnixMilli())
		}
		next[m.DeviceID] = m
		e.ov.members = append(e.ov.members, m)
	}
	for _, id := range sortedIDs(lib.members) {
		if _, keep := next[id]; keep {
			continue
		}
		e.ov.dropMembers = append(e.ov.dropMembers, store.MemberKey{Library: libID, DeviceID: id})
		if p, ok := lib.peers[id]; ok && p.connected {
			e.out.disconnect(Disconnect{Library: libID, Device: id, Reason: fmt.Errorf("%w: device %s was removed", protocol.ErrNotMember, id)})
			e.dropPeer(lib, id)
		}
	}
	lib.members = next
	if len(e.ov.dropMembers) > 0 {
		// Streams of a removed member can only be completed from the
		// others now: ask every peer for them (see wantOrphans).
		for _, id := range sortedIDs(lib.peers) {
			if p := lib.peers[id]; p.connected {
				e.wantOrphans(lib, p)
			}
		}
	}
	return nil
}

// Members returns a library's member devices in ID order.
func (e *Engine) Members(libID uuid.UUID) ([]store.Member, error) {
	lib, err := e.libraryFor(libID)
	if err != nil {
		return nil, err
	}
	out := make([]store.Member, 0, len(lib.members))
	for _, id := range sortedIDs(lib.members) {
		out = append(out, lib.members[id])
	}
	return out, nil
}

// IsMember reports whether device is a member of library libID.
func (e *Engine) IsMember(libID, device uuid.UUID) bool {
	lib, ok := e.libs[libID]
	if !ok {
		return false
	}
	_, ok = lib.members[device]
	return ok
}

// Libraries returns the IDs of the libraries the engine holds, sorted.
func (e *Engine) Libraries() []uuid.UUID {
	return sortedIDs(e.libs)
}

func sortedIDs[V any](m map[uuid.UUID]V) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return lessUUID(out[i], out[j]) })
	return out
}

func lessUUID(a, b uuid.UUID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func (e *Engine) refuse(err error) error {
	e.stats.Refused[protocol.CodeOf(err).String()]++
	return err
}

// RemoveLibrary forgets a library: its sessions are closed and its
// catch-ups dropped, and the engine refuses its messages from then on. Its
// Ready's batch drops the library's configuration from the store
// (store.Batch.DropLibraries) and, with purge, all its data too
// (store.Batch.PurgeLibraries).
func (e *Engine) RemoveLibrary(now time.Time, libID uuid.UUID, purge bool) error {
	lib, err := e.libraryFor(libID)
	if err != nil {
		return err
	}
	e.setNow(now)
	for _, id := range sortedIDs(lib.peers) {
		if lib.peers[id].connected {
			e.out.disconnect(Disconnect{Library: libID, Device: id, Reason: fmt.Errorf("%w: this device left the library", protocol.ErrShuttingDown)})
		}
		e.dropPeer(lib, id)
	}
	for id, r := range e.reqs {
		if r.lib == libID {
			delete(e.reqs, id)
		}
	}
	delete(e.libs, libID)
	e.ov.dropLibraries = append(e.ov.dropLibraries, libID)
	if purge {
		e.ov.purgeLibraries = append(e.ov.purgeLibraries, libID)
	}
	return nil
}

// Acked returns what member device last reported holding of the stream
// (model, origin) in a library (the zero HLC if nothing).
func (e *Engine) Acked(libID, device uuid.UUID, model string, origin uuid.UUID) hlc.HLC {
	lib, ok := e.libs[libID]
	if !ok {
		return hlc.HLC{}
	}
	return lib.acks[ackKey{member: device, s: streamKey{model: model, origin: origin}}]
}
