package engine

import (
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// request is an outstanding catch-up request of this node.
type request struct {
	id    uint64
	lib   uuid.UUID
	peer  uuid.UUID
	kind  Strategy
	types map[string]bool
	// owner, if not Nil, is the one origin whose streams are selected (a
	// device-owned request to that owner for its own records).
	owner uuid.UUID
	// positions are this node's watermarks when it sent the request.
	positions map[streamKey]hlc.HLC
	// cur is the stream whose pages are arriving, and cursor the UpTo of its
	// last page (or its position before the first).
	cur     streamKey
	started bool
	cursor  hlc.HLC
	// frozen is set once entries of the current stream were quarantined:
	// the stream's watermark must stay below them for this request.
	frozen bool
	// snap is set once the current stream is served as a snapshot.
	snap    bool
	done    map[streamKey]bool
	pages   int
	records int
	// fieldModel is the shared-fields model type whose pages are arriving,
	// fieldSnap the watermarks its snapshot pages reached, and fieldMixed set
	// if a page of it was no snapshot, or a snapshot page's tail quarantined
	// for clock skew was not kept. A snapshot of one stream of such a
	// type does not list the records last written in other streams, whose
	// states carry its writes: its watermarks are set only once the response
	// moved past the type with every stream of it served as a snapshot
	// (PROTOCOL.md §11.4).
	fieldModel string
	fieldSnap  map[streamKey]hlc.HLC
	fieldMixed bool
}

// Progress describes a catch-up in flight.
type Progress struct {
	Library uuid.UUID
	Peer    uuid.UUID
	Kind    Strategy
	Pages   int
	Records int
}

// CatchUps returns the catch-ups in flight, by request ID.
func (e *Engine) CatchUps() []Progress {
	ids := make([]uint64, 0, len(e.reqs))
	for id := range e.reqs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := make([]Progress, 0, len(ids))
	for _, id := range ids {
		r := e.reqs[id]
		out = append(out, Progress{Library: r.lib, Peer: r.peer, Kind: r.kind, Pages: r.pages, Records: r.records})
	}
	return out
}

// maxOwnerRequests bounds the device-owned requests to owners for their
// own streams in flight at once per library.
const maxOwnerRequests = 4

// maybeCatchUp asks peer p, for each strategy with no request outstanding,
// for the streams where p is ahead of this node or where a gap was seen.
// Device-owned streams of p itself are asked of p alone (a request with
// p as device_id), beside such requests to other owners; every other
// catch-up is one request per strategy at a time, and a device-owned one
// waits until no request to an owner is in flight (and holds them back
// while it runs), so that no two requests ever select the same stream.
func (e *Engine) maybeCatchUp(lib *library, p *peer) error {
	if !p.connected {
		return nil
	}
	for _, kind := range []Strategy{DeviceOwned, Shared} {
		// Not before nextTry, unless the wall clock stepped back since.
		if p.pending[kind] != 0 || (e.now().Before(p.nextTry[kind]) && p.nextTry[kind].Sub(e.now()) <= e.cfg.RetryInterval) {
			continue
		}
		if kind == DeviceOwned && lib.pending[kind] == 0 && len(p.want[kind]) == 0 && len(lib.owned) < maxOwnerRequests {
			if types := e.ownAhead(lib, p); len(types) > 0 {
				e.sendRequest(lib, p, kind, types, lib.wms, p.device)
				continue
			}
		}
		if lib.pending[kind] != 0 || (kind == DeviceOwned && len(lib.owned) > 0) {
			continue
		}
		var types map[string]bool
		for m := range p.want[kind] {
			if types == nil {
				types = make(map[string]bool)
			}
			types[m] = true
		}
		for k, h := range p.wms {
			if k.origin == e.cfg.Device || e.reg.Strategy(k.model) != kind {
				continue
			}
			if h.After(lib.wms[k]) && h.After(lib.qmax[k]) {
				if types == nil {
					types = make(map[string]bool)
				}
				types[k.model] = true
			}
		}
		if len(types) == 0 {
			continue
		}
		e.sendRequest(lib, p, kind, types, lib.wms, uuid.Nil)
	}
	return nil
}

// askOthers runs maybeCatchUp for every connected peer but except, in
// device order.
func (e *Engine) askOthers(lib *library, except uuid.UUID) {
	for _, id := range sortedIDs(lib.peers) {
		if q := lib.peers[id]; id != except && q.connected {
			_ = e.maybeCatchUp(lib, q)
		}
	}
}

// ownAhead returns the device-owned model types of p's own streams where p
// is ahead of this node.
func (e *Engine) ownAhead(lib *library, p *peer) map[string]bool {
	var types map[string]bool
	for k, h := range p.wms {
		if k.origin != p.device || e.reg.Strategy(k.model) != DeviceOwned {
			continue
		}
		if h.After(lib.wms[k]) && h.After(lib.qmax[k]) {
			if types == nil {
				types = make(map[string]bool)
			}
			types[k.model] = true
		}
	}
	return types
}

// sendRequest sends a catch-up request to p for the streams of the given
// model types, of every origin or (owner not Nil) of owner only, from the
// positions mine.
func (e *Engine) sendRequest(lib *library, p *peer, kind Strategy, types map[string]bool, mine map[streamKey]hlc.HLC, owner uuid.UUID) {
	e.nextReq++
	r := &request{
		id: e.nextReq, lib: lib.info.ID, peer: p.device, kind: kind, types: types, owner: owner,
		positions: make(map[streamKey]hlc.HLC), done: make(map[streamKey]bool),
	}
	var names []string
	for _, n := range e.reg.Ordered(kind) {
		if types[n] {
			names = append(names, n)
		}
	}
	var wms []protocol.Watermark
	keys := make([]streamKey, 0, len(mine))
	for k := range mine {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		if !types[k.model] || mine[k].IsZero() || len(wms) == protocol.MaxWatermarks || (owner != uuid.Nil && k.origin != owner) {
			continue
		}
		r.positions[k] = mine[k]
		wms = append(wms, protocol.Watermark{DeviceID: k.origin, ModelType: k.model, HLC: mine[k]})
	}
	var msg protocol.Message
	if kind == DeviceOwned {
		m := &protocol.StateRequest{LibraryID: lib.info.ID, ModelTypes: names, Limit: uint32(e.cfg.PageSize), Watermarks: wms}
		if owner != uuid.Nil {
			m.DeviceID = &owner
		}
		msg = m
	} else {
		msg = &protocol.SharedChangeRequest{LibraryID: lib.info.ID, ModelTypes: names, Limit: uint32(e.cfg.PageSize), Watermarks: wms}
	}
	e.reqs[r.id] = r
	p.pending[kind] = r.id
	if owner != uuid.Nil {
		lib.owned[owner] = r.id
	} else {
		lib.pending[kind] = r.id
	}
	clear(p.want[kind])
	e.out.reqs = append(e.out.reqs, Request{ID: r.id, Library: lib.info.ID, To: p.device, Message: msg})
}

func sortKeys(keys []streamKey) {
	sort.Slice(keys, func(i, j int) bool { return lessKey(keys[i], keys[j]) })
}

// StepResponse feeds one response frame of request id. The engine takes
// ownership of m and its payloads. An error means the
// response is refused: the caller resets the request stream and calls
// RequestDone.
func (e *Engine) StepResponse(now time.Time, id uint64, m protocol.Message) error {
	e.setNow(now)
	r, ok := e.reqs[id]
	if !ok {
		return e.refuse(fmt.Errorf("%w: response to request %d, which is not open", protocol.ErrUnexpected, id))
	}
	lib, err := e.libraryFor(r.lib)
	if err != nil {
		return e.refuse(err)
	}
	if err := m.Validate(); err != nil {
		return e.refuse(err)
	}
	if m.Library() != r.lib {
		return e.refuse(fmt.Errorf("%w: response names library %s, request was for %s", protocol.ErrUnexpected, m.Library(), r.lib))
	}
	if p := lib.peers[r.peer]; p != nil {
		p.lastHeard = now
	}
	switch m := m.(type) {
	case *protocol.StateResponse:
		if r.kind != DeviceOwned {
			return e.refuse(fmt.Errorf("%w: StateResponse to a SharedChangeRequest", protocol.ErrUnexpected))
		}
		entries := make([]pageEntry, len(m.Records))
		for i, rec := range m.Records {
			entries[i] = pageEntry{state: rec, hlc: rec.Timestamp}
		}
		return e.applyPage(lib, r, streamKey{model: m.ModelType, origin: m.DeviceID}, entries, m.UpTo, m.Complete, m.Snapshot, m)
	case *protocol.SharedChangeResponse:
		if r.kind != Shared {
			return e.refuse(fmt.Errorf("%w: SharedChangeResponse to a StateRequest", protocol.ErrUnexpected))
		}
		entries := make([]pageEntry, len(m.Entries))
		for i, en := range m.Entries {
			if e.reg.FieldMerge(en.ModelType) {
				if err := checkFieldEntry(en, true); err != nil {
					return e.refuse(err)
				}
			}
			entries[i] = pageEntry{shared: en, hlc: en.HLC}
		}
		if err := e.applyPage(lib, r, streamKey{model: m.ModelType, origin: m.DeviceID}, entries, m.UpTo, m.Complete, m.Snapshot, m); err != nil {
			return err
		}
		if !m.HasMore {
			return e.commitFieldSnap(lib, r)
		}
		return nil
	case *protocol.Error:
		e.stats.Refused["peer:"+m.Code.String()]++
		return fmt.Errorf("peer refused request: %w: %s", protocol.ErrorOf(m.Code), m.Message)
	default:
		return e.refuse(fmt.Errorf("%w: %s on a request stream", protocol.ErrUnexpected, m.Name()))
	}
}

type pageEntry struct {
	state  protocol.StateRecord
	shared protocol.SharedChangeEntry
	hlc    hlc.HLC
}

// applyPage applies one page of stream k. The rule: the responder holds
// nothing of the stream in (cursor, upTo] beyond this page and the stream's
// earlier pages, and holds everything up to complete; this node already held
// everything up to its position. So it now holds everything up to
// min(upTo, complete), and stores that as its watermark with the page.
func (e *Engine) applyPage(lib *library, r *request, k streamKey, entries []pageEntry, upTo, complete hlc.HLC, exact bool, m protocol.Message) error {
	if len(entries) == 0 && upTo.IsZero() && complete.IsZero() {
		return nil // the single empty page of a request with nothing to send
	}
	kind := e.reg.Strategy(k.model)
	if kind != r.kind || (len(r.types) > 0 && !r.types[k.model]) || (r.owner != uuid.Nil && k.origin != r.owner) {
		return e.refuse(fmt.Errorf("%w: page of stream %s/%s, which was not requested", protocol.ErrUnexpected, k.model, k.origin))
	}
	if !r.started || r.cur != k {
		if r.done[k] {
			return e.refuse(fmt.Errorf("%w: stream %s/%s resumed after it ended", protocol.ErrUnexpected, k.model, k.origin))
		}
		if r.started {
			r.done[r.cur] = true
		}
		r.cur, r.started, r.cursor, r.frozen, r.snap = k, true, r.positions[k], false, false
	}
	if kind == Shared && k.model != r.fieldModel {
		if err := e.commitFieldSnap(lib, r); err != nil {
			return err
		}
		if e.reg.FieldMerge(k.model) {
			r.fieldModel = k.model
		}
	}
	if kind == Shared && !exact && k.model == r.fieldModel {
		r.fieldMixed = true
	}
	if exact && !r.snap {
		// A snapshot restarts the stream from the beginning (also when the
		// responder pruned its log between two pages).
		r.snap, r.cursor = true, hlc.HLC{}
	}
	for _, en := range entries {
		if !en.hlc.After(r.cursor) {
			return e.refuse(fmt.Errorf("%w: page entry %s is not after the stream's position %s", protocol.ErrUnexpected, en.hlc, r.cursor))
		}
	}
	// The responder holds the stream up to complete: what it says now, page
	// in hand, replaces a greater watermark it claimed before (a lie, or a
	// stream it purged), so that the claim is not asked for at every retry.
	if p := lib.peers[r.peer]; p != nil && complete.Less(p.wms[k]) {
		p.wms[k] = complete
	}
	r.pages++
	r.records += len(entries)
	e.stats.PagesApplied++
	e.stats.RecordsApplied += len(entries)
	from := r.cursor
	if upTo.After(r.cursor) {
		r.cursor = upTo
	}
	if k.origin == e.cfg.Device {
		// This node is the authority on its own streams. But a
		// shared-fields record listed under one of them carries writes of
		// other streams, whose own pages do not list it (PROTOCOL.md
		// §11.4): merge its state.
		if kind == Shared && e.reg.FieldMerge(k.model) {
			for _, en := range entries {
				if en.shared.ChangeType == protocol.Delete || !protocol.IsFieldState(en.shared.Data) || e.clock.CheckDrift(en.hlc) != nil {
					continue
				}
				k := store.RecordKey{Library: lib.info.ID, ModelType: k.model, ID: en.shared.RecordUUID}
				if err := e.mergeFields(k, en.shared); err != nil {
					return err
				}
			}
		}
		return nil
	}
	s := k.in(lib.info.ID)

	// Entries too far in the future are a suffix (HLC order): quarantine
	// them, and cap the watermark below the first of them.
	good := len(entries)
	if len(entries) > 0 && e.clock.CheckDrift(entries[len(entries)-1].hlc) != nil {
		for i, en := range entries {
			if e.clock.CheckDrift(en.hlc) != nil {
				good = i
				break
			}
		}
	}
	bound := hlc.Min(upTo, complete)
	if good < len(entries) {
		bound = hlc.Min(bound, from)
		if good > 0 {
			bound = hlc.Min(upTo, hlc.Min(complete, entries[good-1].hlc))
		}
		// The tail follows on from bound when the page vouches for it
		// (complete reaches past it, and the page is no snapshot, whose
		// drops the tail's range would also need).
		var after *hlc.HLC
		if last := entries[len(entries)-1].hlc; !r.frozen && !exact && !complete.Less(last) {
			b := bound
			after = &b
		}
		if r.frozen {
			bound = hlc.HLC{}
		}
		r.frozen = true
		stored, err := e.quarantinePage(lib, r.peer, s, entries[good:], m, after)
		if err != nil {
			return err
		}
		if !stored && exact && kind == Shared && e.reg.FieldMerge(k.model) {
			// The tail's states, which may carry other streams' writes,
			// were not kept: the type's snapshot is not whole.
			r.fieldMixed = true
		}
		entries = entries[:good]
	} else if r.frozen {
		bound = hlc.HLC{}
	}
	if len(entries) > 0 {
		_ = e.clock.Update(entries[len(entries)-1].hlc) // the newest applied; within drift
	}
	for _, en := range entries {
		var err error
		if kind == DeviceOwned {
			err = e.applyOwned(s, en.state)
		} else {
			err = e.applyShared(s, en.shared)
		}
		if err != nil {
			return err
		}
	}
	if exact && bound.After(from) {
		handled, err := e.dropMissing(s, from, bound, entries)
		if err != nil {
			return err
		}
		if handled.Less(bound) {
			// Too many drops for one batch: the watermark stops where they
			// stop, and stays there for the rest of this request.
			bound, r.frozen = handled, true
		}
	}
	if exact && kind == Shared && e.reg.FieldMerge(k.model) {
		// Held back until every stream of the type is served (see
		// request.fieldSnap).
		if r.fieldSnap == nil {
			r.fieldSnap = make(map[streamKey]hlc.HLC)
		}
		if bound.After(r.fieldSnap[k]) {
			r.fieldSnap[k] = bound
		}
		return nil
	}
	if err := e.setWatermark(s, bound); err != nil {
		return err
	}
	if kind == Shared {
		return e.extendChain(s)
	}
	return nil
}

// commitFieldSnap ends the shared-fields model type whose pages request r
// received: if every stream of it came as snapshot pages, this node now holds
// each up to the bound its pages reached, and sets those watermarks. It holds
// them as merged states, not as a log: its log lacks the stream's writes that
// arrived inside records listed under other streams. So it also serves each
// stream up to there as a snapshot (PROTOCOL.md §11.4), as if it had pruned
// its log. If a page of the type was a log page (the responder pruned between
// two pages), the snapshot pages are kept but move no watermark: the next
// catch-up is served the whole type as a snapshot.
func (e *Engine) commitFieldSnap(lib *library, r *request) error {
	pending, mixed := r.fieldSnap, r.fieldMixed
	r.fieldModel, r.fieldSnap, r.fieldMixed = "", nil, false
	if mixed || len(pending) == 0 {
		return nil
	}
	keys := make([]streamKey, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		s := k.in(lib.info.ID)
		if err := e.setWatermark(s, pending[k]); err != nil {
			return err
		}
		if err := e.markLogIncomplete(s, pending[k]); err != nil {
			return err
		}
		if err := e.extendChain(s); err != nil {
			return err
		}
	}
	return nil
}

// markLogIncomplete raises the log prune point of a shared-fields stream to
// h: its log is incomplete up to there, so a requester behind it is served
// snapshots. The entries stay until the log is pruned by the usual rule.
func (e *Engine) markLogIncomplete(s store.Stream, h hlc.HLC) error {
	pps, err := e.prunePoints(s.Library)
	if err != nil {
		return err
	}
	pp := pps[keyOf(s)]
	if !h.After(pp.Log) {
		return nil
	}
	pp.Stream, pp.Log = s, h
	e.ov.setPrunePoint(pp)
	return nil
}

// Bounds of one page's drops: their store cost (with the page itself, at
// most MaxMessageStoreCost, and what shares its group, they stay within a
// store batch), and the payload of the records read to find them (memory).
const (
	maxDropCost    = MaxMessageStoreCost / 2
	maxDropPayload = 16 << 20
)

// dropMissing removes this node's records of stream s in (from, upTo] that
// an exact page does not list: the responder purged their tombstones, so they
// were deleted. It returns the version up to which it did: upTo, or less
// when the range holds more records than one batch may drop; the caller must
// then not let the watermark pass it (the rest is dropped by a later
// catch-up, which the responder again serves as a snapshot).
func (e *Engine) dropMissing(s store.Stream, from, upTo hlc.HLC, entries []pageEntry) (hlc.HLC, error) {
	listed := make(map[uuid.UUID]bool, len(entries))
	for _, en := range entries {
		if en.shared.RecordUUID != uuid.Nil {
			listed[en.shared.RecordUUID] = true
		} else {
			listed[en.state.RecordUUID] = true
		}
	}
	recs, handled, err := e.recordsInRange(s, from, upTo, listed, maxDropCost/store.DropCost(s.ModelType), maxDropPayload)
	if err != nil {
		return hlc.HLC{}, err
	}
	for _, rec := range recs {
		if listed[rec.ID] {
			continue
		}
		if !rec.Deleted && e.reg.FieldMerge(rec.ModelType) {
			// A merge state may hold field writes of other streams that
			// the responder lacks: keep it (PROTOCOL.md §11.4).
			continue
		}
		k := store.RecordKey{Library: rec.Library, ModelType: rec.ModelType, ID: rec.ID}
		e.ov.dropRecord(k, rec.Version)
		if !rec.Deleted {
			e.out.event(Event{Library: rec.Library, ModelType: rec.ModelType, ID: rec.ID, Deleted: true, By: rec.Version.DeviceID})
		}
	}
	return handled, nil
}

// quarantinePage stores the skewed tail of a relayed page, so that it is
// applied once the clock has caught up. A device-owned tail that follows on
// from what this node holds of the stream (after, not nil) is stored as a
// StateBatch linked to it, so that its release moves the watermark as a live
// batch does; any other is stored as a response page, applied without moving
// watermarks (shared entries move it through their own prev links). Without
// the link, a tail whose origin is gone (removed from the library) would be
// held beyond the watermark for good, and no other member would ever ask for
// it.
func (e *Engine) quarantinePage(lib *library, from uuid.UUID, s store.Stream, entries []pageEntry, orig protocol.Message, after *hlc.HLC) (bool, error) {
	last := entries[len(entries)-1].hlc
	var m protocol.Message
	switch orig.(type) {
	case *protocol.StateResponse:
		recs := make([]protocol.StateRecord, len(entries))
		for i, en := range entries {
			recs[i] = en.state
		}
		if after != nil {
			m = &protocol.StateBatch{LibraryID: s.Library, ModelType: s.ModelType, DeviceID: s.Origin, Records: recs, Prev: optHLC(*after)}
			break
		}
		m = &protocol.StateResponse{LibraryID: s.Library, ModelType: s.ModelType, DeviceID: s.Origin, Records: recs, UpTo: last, Complete: last}
	default:
		ens := make([]protocol.SharedChangeEntry, len(entries))
		for i, en := range entries {
			ens[i] = en.shared
		}
		m = &protocol.SharedChangeResponse{LibraryID: s.Library, ModelType: s.ModelType, DeviceID: s.Origin, Entries: ens, UpTo: last, Complete: last}
	}
	return e.quarantine(lib, from, last, m, e.clock.CheckDrift(last))
}

// RequestDone tells the engine that the stream of request id ended, with
// err nil after the final page and non-nil if it failed. A failed catch-up is
// retried later; the pages stored so far are kept.
func (e *Engine) RequestDone(now time.Time, id uint64, err error) {
	e.setNow(now)
	r, ok := e.reqs[id]
	if !ok {
		return
	}
	delete(e.reqs, id)
	lib, ok := e.libs[r.lib]
	if !ok {
		return
	}
	if lib.pending[r.kind] == id {
		lib.pending[r.kind] = 0
	}
	if r.owner != uuid.Nil && lib.owned[r.owner] == id {
		delete(lib.owned, r.owner)
	}
	if r.kind == DeviceOwned {
		// The place it held goes to the next owner now, not at the next
		// tick; were it left to a tick, the first member in device order
		// that relays other owners' streams could be asked for every
		// owner's the moment no request to an owner is in flight.
		defer e.askOthers(lib, r.peer)
	}
	p := lib.peers[r.peer]
	if p == nil || p.pending[r.kind] != id {
		return
	}
	p.pending[r.kind] = 0
	p.nextTry[r.kind] = now.Add(e.cfg.RetryInterval)
	if err != nil {
		// Ask again for the same model types on the next try (a request
		// to an owner is asked again as one: the owner's watermarks it
		// claimed still stand).
		if r.owner == uuid.Nil {
			for t := range r.types {
				p.want[r.kind][t] = true
			}
		}
		return
	}
	// A requested stream the response sent no page of is one the responder
	// holds no further than this node's position: like a page's complete
	// (see applyPage), that replaces a greater watermark it claimed.
	for k, h := range p.wms {
		if r.types[k.model] && (r.owner == uuid.Nil || k.origin == r.owner) && !r.done[k] && (!r.started || r.cur != k) && r.positions[k].Less(h) {
			p.wms[k] = r.positions[k]
		}
	}
}

// CatchUp asks one connected peer for the streams of the given model types
// (all of the strategy if none are named), from this node's watermarks: the
// seed's "request state from a peer" and "request shared changes since a
// watermark". The request goes out with the next Ready, unless one of the
// same strategy is already in flight, in which case it follows that one.
func (e *Engine) CatchUp(now time.Time, libID, device uuid.UUID, kind Strategy, modelTypes ...string) error {
	lib, err := e.libraryFor(libID)
	if err != nil {
		return err
	}
	e.setNow(now)
	p, ok := lib.peers[device]
	if !ok || !p.connected {
		return fmt.Errorf("engine: no session with device %s in library %s", device, libID)
	}
	if kind != DeviceOwned && kind != Shared {
		return fmt.Errorf("engine: catch-up strategy must be device-owned or shared")
	}
	if len(modelTypes) == 0 {
		modelTypes = e.reg.Ordered(kind)
	}
	for _, m := range modelTypes {
		if e.reg.Strategy(m) != kind {
			return fmt.Errorf("%w: %q is not %s", ErrWrongStrategy, m, kind)
		}
		p.want[kind][m] = true
	}
	p.nextTry[kind] = time.Time{}
	return e.maybeCatchUp(lib, p)
}

// PeerState is what the engine knows of one member's session.
type PeerState struct {
	Device uuid.UUID
	// Connected is true while a session is open; Live once its Hello
	// arrived and no catch-up from it is in flight.
	Connected, Live bool
	// CatchingUp is the catch-up from this peer in flight, if any.
	CatchingUp *Progress
	// LastHeard is when the last frame from the peer arrived.
	LastHeard time.Time
	// Behind counts the streams where the peer reported a watermark greater
	// than this node's; BehindMillis is the largest gap, in HLC milliseconds.
	Behind       int
	BehindMillis uint64
}

// Peers returns the state of every member device this node has had a
// session with, in device order.
func (e *Engine) Peers(libID uuid.UUID) ([]PeerState, error) {
	lib, err := e.libraryFor(libID)
	if err != nil {
		return nil, err
	}
	var out []PeerState
	for _, id := range sortedIDs(lib.peers) {
		p := lib.peers[id]
		ps := PeerState{Device: id, Connected: p.connected, LastHeard: p.lastHeard}
		for _, rid := range p.pending {
			if r, ok := e.reqs[rid]; ok && rid != 0 {
				ps.CatchingUp = &Progress{Library: r.lib, Peer: r.peer, Kind: r.kind, Pages: r.pages, Records: r.records}
			}
		}
		ps.Live = p.connected && p.helloSeen && ps.CatchingUp == nil
		for k, h := range p.wms {
			if mine := lib.wms[k]; h.After(mine) && k.origin != e.cfg.Device {
				ps.Behind++
				if gap := h.Timestamp - mine.Timestamp; mine.Timestamp <= h.Timestamp && gap > ps.BehindMillis {
					ps.BehindMillis = gap
				}
			}
		}
		out = append(out, ps)
	}
	return out, nil
}
