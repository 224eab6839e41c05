package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/store"
)

// MaxRecordSize is the largest value of one record, in bytes of CBOR
// (1 MiB): a write of a larger one is refused. The CLI, the API and the
// documents state this one constant.
const MaxRecordSize = engine.MaxPayloadSize

// Member is a device of a library, bound to its libp2p peer.
type Member struct {
	Device uuid.UUID
	Peer   peer.ID
	Name   string
	// Addrs, if known, are where the peer can be reached; they are stored.
	Addrs []ma.Multiaddr
}

// AddLibrary creates (or updates) a library on this node with its members.
// This device is added to the members if it is missing. Until pairing exists
// (see the membership issue), this is how members are configured.
func (n *Node) AddLibrary(ctx context.Context, id uuid.UUID, name string, members ...Member) (*Library, error) {
	if id == uuid.Nil {
		return nil, errors.New("node: library ID is nil")
	}
	if err := n.ready(); err != nil {
		return nil, err
	}
	var ms []store.Member
	self := false
	for _, m := range members {
		if m.Device == uuid.Nil || m.Peer == "" {
			return nil, fmt.Errorf("node: member %q needs a device ID and a peer ID", m.Name)
		}
		self = self || m.Device == n.device
		ms = append(ms, store.Member{Library: id, DeviceID: m.Device, PeerID: m.Peer.String(), Name: m.Name})
	}
	if !self {
		ms = append(ms, store.Member{Library: id, DeviceID: n.device, PeerID: n.host.ID().String(), Name: "this device"})
	}
	err := n.do(ctx, func(now time.Time) error {
		if err := n.eng.AddLibrary(now, store.Library{ID: id, Name: name, CreatedAt: uint64(now.UnixMilli())}, ms); err != nil {
			return err
		}
		n.refreshMembers()
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if len(m.Addrs) > 0 && m.Device != n.device {
			n.host.Peerstore().AddAddrs(m.Peer, m.Addrs, peerstore.PermanentAddrTTL)
			for _, a := range m.Addrs {
				n.rememberAddr(m.Peer, a.String())
			}
		}
	}
	n.kickDialer()
	return &Library{n: n, id: id}, nil
}

// Library returns a handle on a library this node holds. Its methods fail
// with ErrUnknownLibrary if the node does not hold it.
func (n *Node) Library(id uuid.UUID) *Library { return &Library{n: n, id: id} }

// Library is a handle on one library of a node: its records, its peers and
// its events. It is safe for concurrent use.
type Library struct {
	n  *Node
	id uuid.UUID
}

// ID returns the library's ID.
func (l *Library) ID() uuid.UUID { return l.id }

// Record is one record as stored on this node.
type Record struct {
	ModelType string
	ID        uuid.UUID
	// Version is the HLC of the write that made this state; its DeviceID is
	// the device that wrote it (the owner, for device-owned records).
	Version hlc.HLC
	Deleted bool
	// Data is the payload as CBOR (nil when deleted). For a shared-fields
	// model type, the fields the record shows, as a CBOR map.
	Data []byte
	// Fields, for a shared-fields model type only, holds the version of
	// each field the record shows: the HLC of the write that set it.
	Fields map[string]hlc.HLC
}

// recordOf returns what an app sees of a stored record: for a shared-fields
// type, its fields rather than their merge state.
func recordOf(reg *engine.Registry, r store.Record) Record {
	out := Record{ModelType: r.ModelType, ID: r.ID, Version: r.Version, Deleted: r.Deleted, Data: r.Data}
	if reg.FieldMerge(r.ModelType) && !r.Deleted {
		data, versions, err := engine.VisibleFields(r)
		if err == nil {
			out.Data, out.Fields = data, versions
		}
	}
	return out
}

// PutOwned writes a device-owned record of this device and pushes it to
// every connected member. It returns once the write is durable, with the
// record's new version. data is copied: the caller may reuse it at once.
func (l *Library) PutOwned(ctx context.Context, model string, id uuid.UUID, data []byte) (hlc.HLC, error) {
	// The engine keeps the slice in the live push, sent after this returns.
	data = bytes.Clone(data)
	return l.write(ctx, writeCost(model, data), func(now time.Time) (hlc.HLC, error) { return l.n.eng.PutOwned(now, l.id, model, id, data) })
}

// DeleteOwned deletes a device-owned record of this device (a tombstone).
func (l *Library) DeleteOwned(ctx context.Context, model string, id uuid.UUID) (hlc.HLC, error) {
	return l.write(ctx, writeCost(model, nil), func(now time.Time) (hlc.HLC, error) { return l.n.eng.DeleteOwned(now, l.id, model, id) })
}

// PutShared inserts or updates a shared record (last writer wins by HLC)
// and pushes the change to every connected member. It returns once the change
// is durable, with its HLC. data is copied: the caller may reuse it at once.
//
// For a shared-fields model type, data is a CBOR map: the record's whole
// set of fields (fields it lacks are removed).
func (l *Library) PutShared(ctx context.Context, model string, id uuid.UUID, data []byte) (hlc.HLC, error) {
	data = bytes.Clone(data) // see PutOwned
	return l.write(ctx, writeCost(model, data), func(now time.Time) (hlc.HLC, error) { return l.n.eng.PutShared(now, l.id, model, id, data) })
}

// PatchShared writes some fields of a record of a shared-fields model type:
// patch is a CBOR map of the fields it sets; a field whose value is CBOR
// undefined (protocol.Undefined) is removed; the others are kept. A patch of
// a missing or deleted record creates it with the patch's fields.
func (l *Library) PatchShared(ctx context.Context, model string, id uuid.UUID, patch []byte) (hlc.HLC, error) {
	patch = bytes.Clone(patch) // see PutOwned
	return l.write(ctx, writeCost(model, patch), func(now time.Time) (hlc.HLC, error) {
		return l.n.eng.PatchShared(now, l.id, model, id, patch)
	})
}

// DeleteShared deletes a shared record (a tombstone, which wins over any
// older write).
func (l *Library) DeleteShared(ctx context.Context, model string, id uuid.UUID) (hlc.HLC, error) {
	return l.write(ctx, writeCost(model, nil), func(now time.Time) (hlc.HLC, error) { return l.n.eng.DeleteShared(now, l.id, model, id) })
}

func (l *Library) write(ctx context.Context, cost int, fn func(now time.Time) (hlc.HLC, error)) (hlc.HLC, error) {
	if err := l.n.removedError(l.id); err != nil {
		return hlc.HLC{}, err
	}
	var h hlc.HLC
	err := l.n.doCost(ctx, cost, func(now time.Time) error {
		var err error
		h, err = fn(now)
		return err
	})
	if errors.Is(err, engine.ErrNotFound) {
		err = fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return h, err
}

// Get returns one record (a deleted one too, with Deleted set), or
// ErrNotFound.
func (l *Library) Get(ctx context.Context, model string, id uuid.UUID) (Record, error) {
	if err := l.check(ctx); err != nil {
		return Record{}, err
	}
	r, err := l.n.st.Record(store.RecordKey{Library: l.id, ModelType: model, ID: id})
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, fmt.Errorf("%w: %s %s", ErrNotFound, model, id)
	}
	if err != nil {
		return Record{}, fmt.Errorf("node: reading %s %s: %w", model, id, err)
	}
	return recordOf(l.n.cfg.Registry, r), nil
}

// ListOptions selects records for List.
type ListOptions struct {
	// Owner, if set, keeps only records whose current version was written
	// by that device (for device-owned records: its owner).
	Owner uuid.UUID
	// After continues a listing after this record ID.
	After uuid.UUID
	// Limit is the most records returned; default and maximum 1000.
	Limit int
	// IncludeDeleted returns tombstones too.
	IncludeDeleted bool
}

// List returns records of one model type in ID order, one page at a time:
// pass the last ID as After for the next page. An empty page is the end.
func (l *Library) List(ctx context.Context, model string, opts ListOptions) ([]Record, error) {
	if err := l.check(ctx); err != nil {
		return nil, err
	}
	if opts.Limit <= 0 || opts.Limit > 1000 {
		opts.Limit = 1000
	}
	var out []Record
	after := opts.After
	for len(out) < opts.Limit {
		recs, err := l.n.st.List(l.id, model, after, opts.Limit)
		if err != nil {
			return nil, fmt.Errorf("node: listing %s: %w", model, err)
		}
		for _, r := range recs {
			if (!r.Deleted || opts.IncludeDeleted) && (opts.Owner == uuid.Nil || r.Version.DeviceID == opts.Owner) {
				out = append(out, recordOf(l.n.cfg.Registry, r))
				if len(out) == opts.Limit {
					break
				}
			}
		}
		if len(recs) < opts.Limit {
			break
		}
		after = recs[len(recs)-1].ID
	}
	return out, nil
}

func (l *Library) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := l.n
	n.mu.Lock()
	started, closed := n.started && n.st != nil, n.closed
	n.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case !started:
		return ErrNotStarted
	}
	libs, err := n.st.Libraries()
	if err != nil {
		return fmt.Errorf("node: reading libraries: %w", err)
	}
	for _, lib := range libs {
		if lib.ID == l.id {
			return nil
		}
	}
	return fmt.Errorf("%w %s", ErrUnknownLibrary, l.id)
}

// RequestState asks one member for device-owned state, from this node's
// watermarks, for the given model types (all if none): the seed's
// StateRequest to a specific peer. It returns once the request is sent; the
// pages arrive and are stored in the background.
func (l *Library) RequestState(ctx context.Context, device uuid.UUID, modelTypes ...string) error {
	return l.n.do(ctx, func(now time.Time) error {
		return l.n.eng.CatchUp(now, l.id, device, engine.DeviceOwned, modelTypes...)
	})
}

// RequestSharedChanges asks one member for the shared changes this node
// lacks, from its per-stream watermarks: the seed's SharedChangeRequest to a
// specific peer.
func (l *Library) RequestSharedChanges(ctx context.Context, device uuid.UUID, modelTypes ...string) error {
	return l.n.do(ctx, func(now time.Time) error {
		return l.n.eng.CatchUp(now, l.id, device, engine.Shared, modelTypes...)
	})
}

// PeerState is the sync state of one member as this node sees it.
type PeerState struct {
	Device uuid.UUID
	Peer   peer.ID
	// State is "connecting", "catching up", "live" or "offline".
	State string
	// Pages and Records count the catch-up in flight, if any.
	Pages, Records int
	// Lag is how far behind the peer's reported watermarks this node is
	// (the largest gap of one stream), zero when caught up.
	Lag       time.Duration
	LastHeard time.Time
	// Reach is how the node reaches the peer: the path now, the
	// addresses known, the last dial and hole punch.
	Reach Reach
}

// Peers returns the state of every member of the library but this device.
func (l *Library) Peers(ctx context.Context) ([]PeerState, error) {
	var out []PeerState
	err := l.n.do(ctx, func(time.Time) error {
		ms, err := l.n.eng.Members(l.id)
		if err != nil {
			return err
		}
		states, err := l.n.eng.Peers(l.id)
		if err != nil {
			return err
		}
		byDevice := make(map[uuid.UUID]engine.PeerState, len(states))
		for _, s := range states {
			byDevice[s.Device] = s
		}
		for _, m := range ms {
			if m.DeviceID == l.n.device {
				continue
			}
			pid, _ := peer.Decode(m.PeerID)
			ps := PeerState{Device: m.DeviceID, Peer: pid, State: "offline"}
			if s, ok := byDevice[m.DeviceID]; ok {
				ps.LastHeard = s.LastHeard
				ps.Lag = time.Duration(s.BehindMillis) * time.Millisecond
				switch {
				case s.CatchingUp != nil:
					ps.State, ps.Pages, ps.Records = "catching up", s.CatchingUp.Pages, s.CatchingUp.Records
				case s.Live:
					ps.State = "live"
				case s.Connected:
					ps.State = "connecting"
				}
			}
			out = append(out, ps)
		}
		return nil
	})
	for i := range out {
		out[i].Reach = l.n.reach(out[i].Peer)
	}
	return out, err
}

// ---- events ----

// Event says that a record changed on this node, by a local write or by
// sync.
type Event struct {
	Library   uuid.UUID
	ModelType string
	ID        uuid.UUID
	// Deleted is true when the record is now deleted.
	Deleted bool
	// By is the device whose write this is.
	By uuid.UUID
	// Version is the record's new version (zero if a snapshot dropped it).
	Version hlc.HLC
	// Data is the new payload (nil when deleted); do not modify it. For a
	// shared-fields model type, the fields the record shows.
	Data []byte
	// Fields, for a shared-fields model type only, names the fields whose
	// shown value this change set, changed or removed.
	Fields []string
	// Seq numbers the node's events in the order it published them, from 1
	// since it started (Node.Boot names the run); SubscribeSince resumes
	// after one.
	Seq uint64
	// Missed counts the events this subscriber lost, just before this one,
	// because it did not keep up. A subscriber that sees Missed > 0 should
	// re-read what it cares about with Get or List (or resume with
	// SubscribeSince from the last Seq it handled).
	Missed int
}

type subscriber struct {
	lib    uuid.UUID
	ch     chan Event
	missed int
	done   chan struct{}
}

func (s *subscriber) close() {
	select {
	case <-s.done:
	default:
		close(s.done)
		close(s.ch)
	}
}

// The event log keeps each library's latest events in memory, so that a
// subscriber that reconnects misses none of them (SubscribeSince): at most
// eventLogLen events and eventLogBytes of payload per library.
const (
	eventLogLen   = 10000
	eventLogBytes = 8 << 20
)

// eventLog is one library's latest events, oldest first: events[start:].
// Dropping the oldest only moves start; the slice is compacted once start
// passes half of it, so that adding an event costs O(1) amortized.
type eventLog struct {
	events []Event
	start  int
	bytes  int
	// dropped is the Seq of the newest event that left the log (0: none).
	dropped uint64
}

// held returns the events the log holds, oldest first (shared: do not
// modify).
func (l *eventLog) held() []Event { return l.events[l.start:] }

func (l *eventLog) add(ev Event) {
	l.events = append(l.events, ev)
	l.bytes += len(ev.Data)
	for n := len(l.events) - l.start; n > eventLogLen || (l.bytes > eventLogBytes && n > 1); n-- {
		old := &l.events[l.start]
		l.bytes -= len(old.Data)
		l.dropped = old.Seq
		*old = Event{} // let its payload go
		l.start++
	}
	if l.start > 0 && l.start >= len(l.events)/2 {
		k := copy(l.events, l.events[l.start:])
		clear(l.events[k:])
		l.events, l.start = l.events[:k], 0
	}
}

// Boot names this run of the node (random, made by New): the Seq of events
// counts within it.
func (n *Node) Boot() string { return n.boot }

// Subscribe returns a channel of the library's record events, closed when
// ctx ends or the node closes. A slow subscriber cannot slow sync down: when
// its buffer (1024 events) is full, events are dropped and counted in the
// next event's Missed.
func (l *Library) Subscribe(ctx context.Context) (<-chan Event, error) {
	_, _, ch, err := l.subscribe(ctx, 0, false)
	return ch, err
}

// SubscribeSince is Subscribe for a subscriber that resumes: it returns
// first the events of the library after Seq since that the node still holds
// in its event log (backlog, oldest first), then the channel of the later
// ones, with nothing missed and nothing twice in between. complete is false
// when events after since have left the log already (the subscriber should
// re-read what it cares about). since 0 returns the whole log.
func (l *Library) SubscribeSince(ctx context.Context, since uint64) (backlog []Event, complete bool, ch <-chan Event, err error) {
	return l.subscribe(ctx, since, true)
}

func (l *Library) subscribe(ctx context.Context, since uint64, replay bool) ([]Event, bool, <-chan Event, error) {
	if err := l.check(ctx); err != nil {
		return nil, false, nil, err
	}
	s := &subscriber{lib: l.id, ch: make(chan Event, 1024), done: make(chan struct{})}
	n := l.n
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, false, nil, ErrClosed
	}
	var backlog []Event
	complete := true
	if replay {
		if lg := n.events[l.id]; lg != nil {
			complete = since >= lg.dropped
			for _, ev := range lg.held() {
				if ev.Seq > since {
					backlog = append(backlog, ev)
				}
			}
		}
	}
	n.subs[s] = struct{}{}
	n.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
			return
		}
		n.mu.Lock()
		_, ok := n.subs[s]
		delete(n.subs, s)
		if ok {
			s.close()
		}
		n.mu.Unlock()
	}()
	return backlog, complete, s.ch, nil
}

// publish numbers events, keeps them in the event log and hands them to
// subscribers without ever blocking.
func (n *Node) publish(events []engine.Event) {
	n.countReceived(events)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ev := range events {
		n.seq++
		e := Event{Library: ev.Library, ModelType: ev.ModelType, ID: ev.ID, Deleted: ev.Deleted, By: ev.By,
			Version: ev.Version, Data: ev.Data, Fields: ev.Fields, Seq: n.seq}
		lg := n.events[ev.Library]
		if lg == nil {
			lg = &eventLog{}
			n.events[ev.Library] = lg
		}
		lg.add(e)
		for s := range n.subs {
			if e.Library != s.lib {
				continue
			}
			e.Missed = s.missed
			select {
			case s.ch <- e:
				s.missed = 0
			default:
				s.missed++
			}
		}
	}
}
