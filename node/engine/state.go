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

// streamKey names a stream within one library.
type streamKey struct {
	model  string
	origin uuid.UUID
}

func keyOf(s store.Stream) streamKey { return streamKey{model: s.ModelType, origin: s.Origin} }

func (k streamKey) in(lib uuid.UUID) store.Stream {
	return store.Stream{Library: lib, ModelType: k.model, Origin: k.origin}
}

func lessKey(a, b streamKey) bool {
	if a.model != b.model {
		return a.model < b.model
	}
	return lessUUID(a.origin, b.origin)
}

type ackKey struct {
	member uuid.UUID
	s      streamKey
}

// library is the in-memory state of one library.
type library struct {
	info       store.Library
	members    map[uuid.UUID]store.Member
	peers      map[uuid.UUID]*peer
	acks       map[ackKey]hlc.HLC
	quarantine map[store.QuarantineKey]bool
	// pending is the catch-up request in flight per strategy: one at a
	// time, so that two peers never send the same missed changes.
	pending [3]uint64
	// owned are the device-owned catch-up requests in flight to the owners
	// themselves, for their own streams only (StateRequest device_id), by
	// owner: they select disjoint streams, so several run at once and a
	// device that joins a library of many gets each member's records from
	// that member. They never overlap pending[DeviceOwned] (maybeCatchUp).
	owned map[uuid.UUID]uint64
	// ahead is, per shared stream, the newest log entry this engine stored
	// beyond the watermark: the chain walk (extendChain) has nothing to do
	// while the watermark is at or past it. Lost on restart, which only
	// leaves such entries to be confirmed by catch-up.
	ahead map[streamKey]hlc.HLC
	// wms mirrors this node's stored watermarks.
	wms map[streamKey]hlc.HLC
	// qmax is the newest quarantined HLC per stream: what a peer has beyond
	// it is not worth a catch-up until the quarantine is released.
	qmax map[streamKey]hlc.HLC
	// fieldStable is, per SharedFields model type, the stable point of the
	// last prune (zero until then): removed fields and record deletes at or
	// below it are dropped from merge states (fields.go).
	fieldStable map[string]hlc.HLC
	// fieldDone is, per stream of a SharedFields type, the version up to
	// which its records were compacted at fieldStable.
	fieldDone map[streamKey]hlc.HLC
	// fieldPruned is, per stream of a SharedFields type, what this engine
	// pruned of its log by the ack rule (its prune point may be ahead).
	fieldPruned map[streamKey]hlc.HLC
	// origins holds, per stream, what its origin last said of it directly.
	origins map[streamKey]originClock
}

// originClock is an origin's statement about its own stream: its last write
// there is last, and it will never write at or below clock (> last).
type originClock struct {
	last, clock hlc.HLC
}

func newLibrary(l store.Library) *library {
	return &library{
		info:        l,
		members:     make(map[uuid.UUID]store.Member),
		peers:       make(map[uuid.UUID]*peer),
		acks:        make(map[ackKey]hlc.HLC),
		quarantine:  make(map[store.QuarantineKey]bool),
		origins:     make(map[streamKey]originClock),
		qmax:        make(map[streamKey]hlc.HLC),
		fieldStable: make(map[string]hlc.HLC),
		fieldDone:   make(map[streamKey]hlc.HLC),
		fieldPruned: make(map[streamKey]hlc.HLC),
		wms:         make(map[streamKey]hlc.HLC),
		ahead:       make(map[streamKey]hlc.HLC),
		owned:       make(map[uuid.UUID]uint64),
	}
}

// peer is what this node knows of one member's session.
type peer struct {
	device    uuid.UUID
	connected bool
	helloSeen bool
	lastHeard time.Time
	lastBeat  time.Time // last Heartbeat sent
	// wms are the peer's watermarks as it last reported them.
	wms map[streamKey]hlc.HLC
	// ackSent is the watermark last reported to the peer per stream.
	ackSent map[streamKey]hlc.HLC
	lastAck time.Time
	// Per strategy (indexed by Strategy): the outstanding request, model
	// types with a detected gap, and the earliest next request.
	pending [3]uint64
	want    [3]map[string]bool
	nextTry [3]time.Time
}

func newPeer(device uuid.UUID) *peer {
	p := &peer{device: device, wms: make(map[streamKey]hlc.HLC), ackSent: make(map[streamKey]hlc.HLC)}
	for i := range p.want {
		p.want[i] = make(map[string]bool)
	}
	return p
}

// recState is a record write pending in an overlay.
type recState struct {
	rec     store.Record
	dropped bool
	// replaced is the version of the record in the store (or in the
	// overlay in flight, which is stored first) when this overlay first
	// wrote it: the batch's store.Batch.Replaced.
	replaced hlc.HLC
}

// overlay holds writes not yet durable, so that the engine reads its own
// writes, and turns them into one store.Batch.
type overlay struct {
	records     map[store.RecordKey]recState
	recOrder    []store.RecordKey
	wms         map[store.Stream]hlc.HLC
	wmOrder     []store.Stream
	log         map[store.Stream][]store.LogEntry
	logOrder    []store.Stream
	acks        map[store.Stream]map[uuid.UUID]hlc.HLC
	ackOrder    []store.Ack
	prune       map[store.Stream]store.PrunePoint
	pruneOrd    []store.Stream
	pruneLog    []store.Mark
	purge       []store.Mark
	qPut        []store.Quarantined
	qDrop       []store.QuarantineKey
	libraries   []store.Library
	members     []store.Member
	dropMembers []store.MemberKey
	// dropLibraries are libraries this node left; purgeLibraries those
	// whose data it deletes.
	dropLibraries  []uuid.UUID
	purgeLibraries []uuid.UUID

	clockBound uint64
	// alive is the time to store under MetaAlive (zero: none).
	alive uint64
}

func newOverlay() *overlay {
	return &overlay{
		records: make(map[store.RecordKey]recState),
		wms:     make(map[store.Stream]hlc.HLC),
		log:     make(map[store.Stream][]store.LogEntry),
		acks:    make(map[store.Stream]map[uuid.UUID]hlc.HLC),
		prune:   make(map[store.Stream]store.PrunePoint),
	}
}

func (o *overlay) empty() bool {
	return len(o.records) == 0 && len(o.wms) == 0 && len(o.log) == 0 && len(o.ackOrder) == 0 &&
		len(o.prune) == 0 && len(o.pruneLog) == 0 && len(o.purge) == 0 && len(o.qPut) == 0 &&
		len(o.qDrop) == 0 && len(o.libraries) == 0 && len(o.members) == 0 && len(o.dropMembers) == 0 &&
		len(o.dropLibraries) == 0 && len(o.purgeLibraries) == 0 &&
		o.clockBound == 0 && o.alive == 0
}

// putRecord writes r, which replaces the record at version replaced (zero:
// none) as the engine reads it (Engine.record). A record the overlay wrote
// before keeps the version it replaced then: the batch writes it once.
func (o *overlay) putRecord(r store.Record, replaced hlc.HLC) {
	k := store.RecordKey{Library: r.Library, ModelType: r.ModelType, ID: r.ID}
	if old, ok := o.records[k]; ok {
		replaced = old.replaced
	} else {
		o.recOrder = append(o.recOrder, k)
	}
	o.records[k] = recState{rec: r, replaced: replaced}
}

// dropRecord drops the record at version replaced as the engine reads it
// (Engine.record); like putRecord, a record the overlay wrote before keeps
// the version it replaced then, so that a later put in the same batch
// replaces what the store holds.
func (o *overlay) dropRecord(k store.RecordKey, replaced hlc.HLC) {
	if old, ok := o.records[k]; ok {
		replaced = old.replaced
	} else {
		o.recOrder = append(o.recOrder, k)
	}
	o.records[k] = recState{dropped: true, replaced: replaced}
}

func (o *overlay) setWatermark(s store.Stream, h hlc.HLC) {
	if _, ok := o.wms[s]; !ok {
		o.wmOrder = append(o.wmOrder, s)
	}
	o.wms[s] = h
}

func (o *overlay) appendLog(e store.LogEntry) {
	s := e.Stream()
	entries, ok := o.log[s]
	if !ok {
		o.logOrder = append(o.logOrder, s)
	}
	i := sort.Search(len(entries), func(i int) bool { return !entries[i].HLC.Less(e.HLC) })
	if i < len(entries) && entries[i].HLC == e.HLC {
		entries[i] = e
	} else {
		entries = append(entries, store.LogEntry{})
		copy(entries[i+1:], entries[i:])
		entries[i] = e
	}
	o.log[s] = entries
}

func (o *overlay) setAck(a store.Ack) {
	m, ok := o.acks[a.Stream]
	if !ok {
		m = make(map[uuid.UUID]hlc.HLC)
		o.acks[a.Stream] = m
	}
	m[a.Member] = a.HLC
	o.ackOrder = append(o.ackOrder, a)
}

func (o *overlay) setPrunePoint(p store.PrunePoint) {
	if _, ok := o.prune[p.Stream]; !ok {
		o.pruneOrd = append(o.pruneOrd, p.Stream)
	}
	o.prune[p.Stream] = p
}

// batch turns the overlay into one store.Batch, each key written once.
func (o *overlay) batch() store.Batch {
	var b store.Batch
	b.PutRecords = make([]store.Record, 0, len(o.recOrder))
	b.Replaced = make([]hlc.HLC, 0, len(o.recOrder))
	nlog := 0
	for _, s := range o.logOrder {
		nlog += len(o.log[s])
	}
	b.AppendLog = make([]store.LogEntry, 0, nlog)
	for _, k := range o.recOrder {
		st := o.records[k]
		if st.dropped {
			b.DropRecords = append(b.DropRecords, k)
		} else {
			b.PutRecords = append(b.PutRecords, st.rec)
			b.Replaced = append(b.Replaced, st.replaced)
		}
	}
	for _, s := range o.logOrder {
		b.AppendLog = append(b.AppendLog, o.log[s]...)
	}
	for _, s := range o.wmOrder {
		b.SetWatermarks = append(b.SetWatermarks, store.Mark{Stream: s, HLC: o.wms[s]})
	}
	seen := make(map[ackKey]bool)
	for i := len(o.ackOrder) - 1; i >= 0; i-- { // last write wins
		a := o.ackOrder[i]
		k := ackKey{member: a.Member, s: keyOf(a.Stream)}
		if seen[k] {
			continue
		}
		seen[k] = true
		b.SetAcks = append(b.SetAcks, a)
	}
	for _, s := range o.pruneOrd {
		b.SetPrunePoints = append(b.SetPrunePoints, o.prune[s])
	}
	b.PruneLog = o.pruneLog
	b.PurgeTombstones = o.purge
	b.PutQuarantine = o.qPut
	b.DropQuarantine = o.qDrop
	b.ClockBound = o.clockBound
	b.PutLibraries = o.libraries
	b.PutMembers = o.members
	b.DropMembers = o.dropMembers
	b.DropLibraries = o.dropLibraries
	b.PurgeLibraries = o.purgeLibraries
	if o.alive != 0 {
		b.PutMeta = map[string][]byte{MetaAlive: binary.BigEndian.AppendUint64(nil, o.alive)}
	}
	return b
}

// ---- reads through the overlays ----

func (e *Engine) overlays() []*overlay {
	if e.inflight != nil {
		return []*overlay{e.ov, e.inflight}
	}
	return []*overlay{e.ov}
}

// replacedBy returns what store.Batch.Replaced says of a record the engine
// read as (cur, exists) with record: the version a write of it replaces.
func replacedBy(cur store.Record, exists bool) hlc.HLC {
	if !exists {
		return hlc.HLC{}
	}
	return cur.Version
}

// record returns a record's current state as the engine sees it.
func (e *Engine) record(k store.RecordKey) (store.Record, bool, error) {
	for _, o := range e.overlays() {
		if st, ok := o.records[k]; ok {
			return st.rec, !st.dropped, nil
		}
	}
	r, err := e.st.Record(k)
	if isNotFound(err) {
		return store.Record{}, false, nil
	}
	if err != nil {
		return store.Record{}, false, fmt.Errorf("reading record %s/%s: %w", k.ModelType, k.ID, err)
	}
	return r, true, nil
}

// watermark returns this node's watermark for a stream, from the
// library's in-memory mirror (which Load fills and every write keeps).
func (e *Engine) watermark(s store.Stream) (hlc.HLC, error) {
	lib, ok := e.libs[s.Library]
	if !ok {
		return hlc.HLC{}, fmt.Errorf("%w %s", ErrUnknownLibrary, s.Library)
	}
	return lib.wms[keyOf(s)], nil
}

// setWM stores a stream's new watermark and mirrors it.
func (e *Engine) setWM(s store.Stream, h hlc.HLC) {
	e.ov.setWatermark(s, h)
	if lib, ok := e.libs[s.Library]; ok {
		lib.wms[keyOf(s)] = h
	}
}

// setWatermark raises a stream's watermark (never lowers it).
func (e *Engine) setWatermark(s store.Stream, h hlc.HLC) error {
	cur, err := e.watermark(s)
	if err != nil {
		return err
	}
	if h.After(cur) {
		e.setWM(s, h)
	}
	return nil
}

// watermarks returns a copy of every watermark of a library.
func (e *Engine) watermarks(libID uuid.UUID) (map[streamKey]hlc.HLC, error) {
	lib, ok := e.libs[libID]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownLibrary, libID)
	}
	out := make(map[streamKey]hlc.HLC, len(lib.wms))
	for k, h := range lib.wms {
		out[k] = h
	}
	return out, nil
}

// prunePoints returns every prune point of a library.
func (e *Engine) prunePoints(lib uuid.UUID) (map[streamKey]store.PrunePoint, error) {
	pps, err := e.st.PrunePoints(lib)
	if err != nil {
		return nil, fmt.Errorf("reading prune points: %w", err)
	}
	out := make(map[streamKey]store.PrunePoint, len(pps))
	for _, p := range pps {
		out[keyOf(p.Stream)] = p
	}
	os := e.overlays()
	for i := len(os) - 1; i >= 0; i-- {
		for s, p := range os[i].prune {
			if s.Library == lib {
				out[keyOf(s)] = p
			}
		}
	}
	return out, nil
}

// logNext returns the first log entry of s after the given HLC.
func (e *Engine) logNext(s store.Stream, after hlc.HLC) (store.LogEntry, bool, error) {
	page, err := e.st.LogPage(s, after, 1)
	if err != nil {
		return store.LogEntry{}, false, fmt.Errorf("reading log: %w", err)
	}
	var best store.LogEntry
	found := false
	if len(page.Entries) > 0 {
		best, found = page.Entries[0], true
	}
	for _, o := range e.overlays() {
		entries := o.log[s]
		i := sort.Search(len(entries), func(i int) bool { return entries[i].HLC.After(after) })
		if i < len(entries) && (!found || entries[i].HLC.Less(best.HLC)) {
			best, found = entries[i], true
		}
	}
	return best, found, nil
}

// recordsInRange returns the records of stream s, as the engine sees them,
// with versions in (after, handled], except those whose IDs skip holds;
// handled is upTo unless the range holds more than maxRecords such records
// or maxBytes of their payload: then it is the version up to which the
// records returned are all there are.
func (e *Engine) recordsInRange(s store.Stream, after, upTo hlc.HLC, skip map[uuid.UUID]bool, maxRecords, maxBytes int) ([]store.Record, hlc.HLC, error) {
	var out []store.Record
	seen := make(map[uuid.UUID]bool)
	cursor := after
	bytes := 0
	handled := upTo
scan:
	for {
		page, err := e.st.StatePage(s, cursor, 1000)
		if err != nil {
			return nil, hlc.HLC{}, fmt.Errorf("reading stream %s/%s: %w", s.ModelType, s.Origin, err)
		}
		for _, r := range page.Records {
			if r.Version.After(upTo) {
				break
			}
			if len(out) >= maxRecords || bytes >= maxBytes {
				// Enough for one batch: the range is handled up to the
				// record before this one.
				handled = cursor
				break scan
			}
			cursor = r.Version
			seen[r.ID] = true
			cur, ok, err := e.record(store.RecordKey{Library: r.Library, ModelType: r.ModelType, ID: r.ID})
			if err != nil {
				return nil, hlc.HLC{}, err
			}
			if ok && !skip[cur.ID] && cur.Stream() == s && cur.Version.After(after) && !cur.Version.After(upTo) {
				out = append(out, cur)
				bytes += len(cur.Data)
			}
		}
		if len(page.Records) < 1000 || page.Records[len(page.Records)-1].Version.After(upTo) {
			break
		}
		cursor = page.Records[len(page.Records)-1].Version
	}
	for _, o := range e.overlays() {
		for k, st := range o.records {
			if seen[k.ID] || k.Library != s.Library || k.ModelType != s.ModelType || st.dropped {
				continue
			}
			r := st.rec
			if r.Stream() == s && r.Version.After(after) && !r.Version.After(handled) {
				cur, ok, err := e.record(k)
				if err != nil {
					return nil, hlc.HLC{}, err
				}
				if ok && cur.Version == r.Version && !skip[k.ID] {
					seen[k.ID] = true
					out = append(out, cur)
				}
			}
		}
	}
	if handled != upTo { // a newer version the overlay holds may lie past it
		kept := out[:0]
		for _, r := range out {
			if !r.Version.After(handled) {
				kept = append(kept, r)
			}
		}
		out = kept
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version.Less(out[j].Version) })
	return out, handled, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, store.ErrNotFound)
}

// ---- the outbox ----

// outbox collects what the current Ready will ask the caller to do.
type outbox struct {
	msgs   []Envelope
	reqs   []Request
	disc   []Disconnect
	events []Event
}

func (o *outbox) empty() bool {
	return len(o.msgs) == 0 && len(o.reqs) == 0 && len(o.disc) == 0 && len(o.events) == 0
}

func (o *outbox) send(lib, to uuid.UUID, m protocol.Message) {
	o.msgs = append(o.msgs, Envelope{Library: lib, To: to, Message: m})
}

func (o *outbox) disconnect(d Disconnect) { o.disc = append(o.disc, d) }

func (o *outbox) event(ev Event) { o.events = append(o.events, ev) }

// take returns everything collected, with live changes to one peer
// coalesced: consecutive writes of one device-owned stream into a
// StateBatch, this node's shared changes into SharedChangeBatches, each
// within protocol.MaxRecordsPerMessage entries and maxBytes of payload.
func (o *outbox) take(maxBytes int) ([]Envelope, []Request, []Disconnect, []Event) {
	msgs := coalesce(o.msgs, maxBytes)
	reqs, disc, events := o.reqs, o.disc, o.events
	*o = outbox{}
	return msgs, reqs, disc, events
}

type groupKey struct {
	lib, to uuid.UUID
	model   string // "" for shared changes
	owner   uuid.UUID
}

type group struct {
	env     Envelope
	records []protocol.StateRecord
	prev    *hlc.HLC
	entries []protocol.SharedChangeEntry
	bytes   int
	cost    int // what the receiver's store batch takes (MessageStoreCost)
	n       int
}

// MaxMessageStoreCost bounds what one batch or page costs its receiver's
// store (store.EntryCost summed over its entries): half a store batch. The
// engine sends no batch or page above it, and the node refuses one that
// arrives above it instead of failing to store it.
const MaxMessageStoreCost = store.MaxBatchSize / 2

// MessageStoreCost is what storing m's records or entries costs the
// receiver's store batch (zero for messages that carry none).
func MessageStoreCost(m protocol.Message) int {
	c := 0
	switch m := m.(type) {
	case *protocol.StateChange:
		c = store.EntryCost(m.ModelType, "", len(m.Data), false)
	case *protocol.StateBatch:
		for _, r := range m.Records {
			c += store.EntryCost(m.ModelType, "", len(r.Data), false)
		}
	case *protocol.StateResponse:
		for _, r := range m.Records {
			c += store.EntryCost(m.ModelType, "", len(r.Data), false)
		}
	case *protocol.SharedChange:
		c = store.EntryCost(m.ModelType, string(m.ChangeType), len(m.Data), true)
	case *protocol.SharedChangeBatch:
		for _, e := range m.Entries {
			c += store.EntryCost(e.ModelType, string(e.ChangeType), len(e.Data), true)
		}
	case *protocol.SharedChangeResponse:
		for _, e := range m.Entries {
			c += store.EntryCost(e.ModelType, string(e.ChangeType), len(e.Data), true)
		}
	}
	return c
}

func coalesce(in []Envelope, maxBytes int) []Envelope {
	if len(in) < 2 {
		return in
	}
	type slot struct {
		env Envelope
		g   *group
	}
	var slots []slot
	open := make(map[groupKey]*group)
	for _, env := range in {
		switch m := env.Message.(type) {
		case *protocol.StateChange:
			k := groupKey{lib: env.Library, to: env.To, model: m.ModelType, owner: m.DeviceID}
			rec := protocol.StateRecord{RecordUUID: m.RecordUUID, Data: m.Data, Timestamp: m.Timestamp, Deleted: m.Deleted}
			g := open[k]
			cost := MessageStoreCost(m)
			if g != nil && g.n < protocol.MaxRecordsPerMessage && g.bytes+len(m.Data) <= maxBytes &&
				g.cost+cost <= MaxMessageStoreCost &&
				m.Prev != nil && *m.Prev == g.records[len(g.records)-1].Timestamp {
				for i := range g.records { // coalesce to the newest write of a record
					if g.records[i].RecordUUID == m.RecordUUID {
						g.records = append(g.records[:i], g.records[i+1:]...)
						break
					}
				}
				g.records = append(g.records, rec)
				g.bytes += len(m.Data)
				g.cost += cost
				g.n++
				continue
			}
			g = &group{env: env, records: []protocol.StateRecord{rec}, prev: m.Prev, bytes: len(m.Data), cost: cost, n: 1}
			open[k] = g
			slots = append(slots, slot{g: g})
		case *protocol.SharedChange:
			k := groupKey{lib: env.Library, to: env.To, owner: m.HLC.DeviceID}
			g := open[k]
			cost := MessageStoreCost(m)
			if g != nil && g.n < protocol.MaxRecordsPerMessage && g.bytes+len(m.Data) <= maxBytes &&
				g.cost+cost <= MaxMessageStoreCost &&
				g.entries[len(g.entries)-1].HLC.Less(m.HLC) {
				g.entries = append(g.entries, m.Entry())
				g.bytes += len(m.Data)
				g.cost += cost
				g.n++
				continue
			}
			g = &group{env: env, entries: []protocol.SharedChangeEntry{m.Entry()}, bytes: len(m.Data), cost: cost, n: 1}
			open[k] = g
			slots = append(slots, slot{g: g})
		default:
			slots = append(slots, slot{env: env})
		}
	}
	out := make([]Envelope, 0, len(slots))
	for _, s := range slots {
		if s.g == nil {
			out = append(out, s.env)
			continue
		}
		g := s.g
		switch m := g.env.Message.(type) {
		case *protocol.StateChange:
			if len(g.records) == 1 && g.n == 1 {
				out = append(out, g.env)
				continue
			}
			out = append(out, Envelope{Library: g.env.Library, To: g.env.To, Message: &protocol.StateBatch{
				LibraryID: m.LibraryID, ModelType: m.ModelType, DeviceID: m.DeviceID, Records: g.records, Prev: g.prev,
			}})
		case *protocol.SharedChange:
			if len(g.entries) == 1 {
				out = append(out, g.env)
				continue
			}
			out = append(out, Envelope{Library: g.env.Library, To: g.env.To, Message: &protocol.SharedChangeBatch{
				LibraryID: m.LibraryID, Entries: g.entries,
			}})
		}
	}
	return out
}
