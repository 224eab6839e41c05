package engine

import (
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Serve checks a catch-up request (a *protocol.StateRequest or
// *protocol.SharedChangeRequest) from the authenticated device from and
// returns a Responder that produces the response frames. The Responder only
// reads the store, so it may run on any goroutine, concurrently with the
// engine. An error (wrapping a protocol sentinel) means the request is
// refused and nothing of the library may be sent.
func (e *Engine) Serve(now time.Time, from uuid.UUID, m protocol.Message) (*Responder, error) {
	if !e.loaded {
		return nil, ErrNotReady
	}
	e.setNow(now)
	lib, err := e.libraryFor(m.Library())
	if err != nil {
		return nil, e.refuse(err)
	}
	if _, ok := lib.members[from]; !ok || from == e.cfg.Device {
		return nil, e.refuse(fmt.Errorf("%w: device %s in library %s", protocol.ErrNotMember, from, lib.info.ID))
	}
	if err := m.Validate(); err != nil {
		return nil, e.refuse(err)
	}
	r := &Responder{st: e.st, lib: lib.info.ID, positions: make(map[streamKey]hlc.HLC), budget: e.cfg.MaxBatchBytes, reg: e.reg}
	var types []string
	var wms []protocol.Watermark
	switch m := m.(type) {
	case *protocol.StateRequest:
		r.kind, types, wms, r.limit = DeviceOwned, m.ModelTypes, m.Watermarks, int(m.Limit)
		r.since = derefHLC(m.Since)
		if m.DeviceID != nil {
			r.owner = *m.DeviceID
		}
	case *protocol.SharedChangeRequest:
		r.kind, types, wms, r.limit = Shared, m.ModelTypes, m.Watermarks, int(m.Limit)
		r.since = derefHLC(m.SinceHLC)
	default:
		return nil, e.refuse(fmt.Errorf("%w: %s is not a request", protocol.ErrUnexpected, m.Name()))
	}
	if r.limit > e.cfg.PageSize {
		r.limit = e.cfg.PageSize
	}
	// Model types this node does not sync with the requested strategy are
	// skipped (a newer peer may know more), not refused.
	want := make(map[string]bool, len(types))
	for _, t := range types {
		want[t] = true
	}
	for _, t := range e.reg.Ordered(r.kind) {
		if len(types) == 0 || want[t] {
			r.types = append(r.types, t)
		}
	}
	for _, w := range wms {
		r.positions[streamKey{model: w.ModelType, origin: w.DeviceID}] = w.HLC
	}
	return r, nil
}

// Responder produces the response frames of one catch-up request: the
// selected streams one after the other, model types in dependency order, each
// stream's pages in HLC order, each page read in one store snapshot.
type Responder struct {
	st        store.Reader
	lib       uuid.UUID
	kind      Strategy
	types     []string
	owner     uuid.UUID // device-owned requests: one owner, or Nil for all
	since     hlc.HLC
	positions map[streamKey]hlc.HLC
	limit     int
	// budget is the most payload bytes of one page (at least one record is
	// always sent), so that a page fits in a frame, and its records with
	// their log entries in one store batch at the receiver.
	budget int

	streams []store.Stream // of the current model type, not yet served
	reg     *Registry
	// snapModel is set while every stream of the current model type is
	// served as a snapshot: a SharedFields type one of whose streams the
	// requester is behind (PROTOCOL.md §11.4).
	snapModel bool
	typeIdx   int
	cur       *store.Stream
	cursor    hlc.HLC
	snap      bool

	next  protocol.Message // look-ahead, so that HasMore is known
	ended bool

	// Sent counts the entries sent so far.
	Sent int
}

// Next returns the next response frame, or io.EOF after the last one (whose
// HasMore is false). A request with nothing to send still gets one empty
// page.
func (r *Responder) Next() (protocol.Message, error) {
	if r.ended && r.next == nil {
		return nil, io.EOF
	}
	if r.next == nil && !r.ended {
		m, err := r.page()
		if err != nil {
			return nil, err
		}
		if m == nil {
			r.ended = true
			return r.emptyPage(), nil
		}
		r.next = m
	}
	cur := r.next
	r.next = nil
	if !r.ended {
		m, err := r.page()
		if err != nil {
			return nil, err
		}
		if m == nil {
			r.ended = true
		} else {
			r.next = m
		}
	}
	setHasMore(cur, r.next != nil)
	return cur, nil
}

// emptyPage is the end marker of a response with nothing to send: no stream
// (nil device, empty model type), no records, zero bounds.
func (r *Responder) emptyPage() protocol.Message {
	if r.kind == DeviceOwned {
		return &protocol.StateResponse{LibraryID: r.lib}
	}
	return &protocol.SharedChangeResponse{LibraryID: r.lib}
}

func setHasMore(m protocol.Message, more bool) {
	switch m := m.(type) {
	case *protocol.StateResponse:
		m.HasMore = more
	case *protocol.SharedChangeResponse:
		m.HasMore = more
	}
}

// page produces the next non-empty page, or nil when everything was sent.
func (r *Responder) page() (protocol.Message, error) {
	for {
		if r.cur == nil {
			s, ok, err := r.nextStream()
			if err != nil || !ok {
				return nil, err
			}
			r.cur = &s
			r.cursor = r.since
			if h, ok := r.positions[keyOf(s)]; ok {
				r.cursor = h
			}
			snap, err := r.behindPrune(s)
			if err != nil {
				return nil, err
			}
			snap = snap || r.snapModel
			// A requester behind the prune point may hold records whose
			// deletes it missed, at or below its position: the snapshot
			// restarts the stream from the beginning, so that its exact
			// pages cover every version.
			r.snap = snap
			if snap {
				r.cursor = hlc.HLC{}
			}
		}
		m, more, err := r.readPage(*r.cur)
		if err != nil {
			return nil, err
		}
		if !more {
			r.cur = nil
		}
		if m != nil {
			return m, nil
		}
	}
}

// nextStream returns the next stream to serve.
func (r *Responder) nextStream() (store.Stream, bool, error) {
	for len(r.streams) == 0 {
		if r.typeIdx >= len(r.types) {
			return store.Stream{}, false, nil
		}
		model := r.types[r.typeIdx]
		r.typeIdx++
		all, err := r.st.Streams(r.lib)
		if err != nil {
			return store.Stream{}, false, fmt.Errorf("listing streams: %w", err)
		}
		for _, s := range all {
			if s.ModelType == model && (r.owner == uuid.Nil || s.Origin == r.owner) {
				r.streams = append(r.streams, s)
			}
		}
		r.snapModel = false
		if r.kind == Shared && r.reg != nil && r.reg.FieldMerge(model) {
			// A record is listed under the stream of its latest write
			// only, with the writes of every stream merged in: if one
			// stream is served as a snapshot, all are, so that each of
			// its records reaches the requester whole.
			for _, s := range r.streams {
				r.cursor = r.since
				if h, ok := r.positions[keyOf(s)]; ok {
					r.cursor = h
				}
				behind, err := r.behindPrune(s)
				if err != nil {
					return store.Stream{}, false, err
				}
				if behind {
					r.snapModel = true
					break
				}
			}
		}
	}
	s := r.streams[0]
	r.streams = r.streams[1:]
	return s, true, nil
}

// behindPrune reports whether the cursor is behind what stream s still
// keeps: its log (shared) or its tombstones (both strategies).
func (r *Responder) behindPrune(s store.Stream) (bool, error) {
	sp, err := r.st.StatePage(s, r.cursor, 1)
	if err != nil {
		return false, fmt.Errorf("reading prune point: %w", err)
	}
	pp := sp.PrunePoint
	if r.cursor.Less(pp.Tombstones) {
		return true, nil
	}
	return r.kind == Shared && r.cursor.Less(pp.Log), nil
}

// readPage reads one page of stream s after the cursor. It returns the page
// (nil if there is nothing worth sending) and whether the stream has more.
func (r *Responder) readPage(s store.Stream) (protocol.Message, bool, error) {
	var (
		complete hlc.HLC
		last     hlc.HLC
		n        int
		msg      protocol.Message
	)
	useLog := false
	if r.kind == Shared && !r.snap {
		lp, err := r.st.LogPage(s, r.cursor, r.limit)
		if err != nil {
			return nil, false, fmt.Errorf("reading log page: %w", err)
		}
		if r.cursor.Less(lp.PrunePoint.Log) {
			// Pruned between two pages: restart the stream as a snapshot.
			r.snap, r.cursor = true, hlc.HLC{}
		} else {
			useLog = true
			complete, n = lp.Watermark, len(lp.Entries)
			ens := make([]protocol.SharedChangeEntry, n)
			for i, le := range lp.Entries {
				ens[i] = protocol.SharedChangeEntry{HLC: le.HLC, ModelType: le.ModelType, RecordUUID: le.RecordID,
					ChangeType: protocol.ChangeType(le.ChangeType), Data: le.Data, Prev: optHLC(le.Prev)}
				if ens[i].ChangeType == protocol.Delete {
					ens[i].Data = nil
				}
			}
			if n > 0 {
				last = ens[n-1].HLC
			}
			msg = &protocol.SharedChangeResponse{LibraryID: r.lib, Entries: ens, DeviceID: s.Origin, ModelType: s.ModelType}
		}
	}
	if !useLog {
		sp, err := r.st.StatePage(s, r.cursor, r.limit)
		if err != nil {
			return nil, false, fmt.Errorf("reading state page: %w", err)
		}

		complete, n = sp.Watermark, len(sp.Records)
		if n > 0 {
			last = sp.Records[n-1].Version
		}
		if r.kind == DeviceOwned {
			recs := make([]protocol.StateRecord, n)
			for i, rec := range sp.Records {
				recs[i] = protocol.StateRecord{RecordUUID: rec.ID, Data: rec.Data, Timestamp: rec.Version, Deleted: rec.Deleted}
			}
			msg = &protocol.StateResponse{LibraryID: r.lib, ModelType: s.ModelType, DeviceID: s.Origin, Records: recs, Snapshot: r.snap}
		} else {
			ens := make([]protocol.SharedChangeEntry, n)
			for i, rec := range sp.Records {
				ens[i] = protocol.SharedChangeEntry{HLC: rec.Version, ModelType: rec.ModelType, RecordUUID: rec.ID, ChangeType: protocol.Update, Data: rec.Data}
				if rec.Deleted {
					ens[i].ChangeType, ens[i].Data = protocol.Delete, nil
				}
			}
			msg = &protocol.SharedChangeResponse{LibraryID: r.lib, Entries: ens, DeviceID: s.Origin, ModelType: s.ModelType, Snapshot: r.snap}
		}
	}
	more := n == r.limit
	if cut := r.cutByBytes(msg); cut < n {
		n, more = cut, true
		last = truncatePage(msg, cut)
	}
	upTo := last
	if !more && complete.After(upTo) {
		upTo = complete
	}
	if n == 0 && !upTo.After(r.cursor) {
		return nil, false, nil // nothing new in this stream
	}
	r.cursor = upTo
	r.Sent += n
	switch m := msg.(type) {
	case *protocol.StateResponse:
		m.UpTo, m.Complete = upTo, complete
	case *protocol.SharedChangeResponse:
		m.UpTo, m.Complete = upTo, complete
	}
	return msg, more, nil
}

// cutByBytes returns how many entries of a page fit in the byte budget
// and in what one page may cost the receiver's store (at least one).
func (r *Responder) cutByBytes(m protocol.Message) int {
	var sizes, costs []int
	switch m := m.(type) {
	case *protocol.StateResponse:
		for _, rec := range m.Records {
			sizes = append(sizes, len(rec.Data)+64)
			costs = append(costs, store.EntryCost(m.ModelType, "", len(rec.Data), false))
		}
	case *protocol.SharedChangeResponse:
		for _, en := range m.Entries {
			sizes = append(sizes, len(en.Data)+96)
			costs = append(costs, store.EntryCost(en.ModelType, string(en.ChangeType), len(en.Data), true))
		}
	}
	total, cost := 0, 0
	for i, sz := range sizes {
		total += sz
		cost += costs[i]
		if (total > r.budget || cost > MaxMessageStoreCost) && i > 0 {
			return i
		}
	}
	return len(sizes)
}

// truncatePage keeps the first n entries of a page and returns the HLC of
// the last one kept.
func truncatePage(m protocol.Message, n int) hlc.HLC {
	switch m := m.(type) {
	case *protocol.StateResponse:
		m.Records = m.Records[:n]
		return m.Records[n-1].Timestamp
	case *protocol.SharedChangeResponse:
		m.Entries = m.Entries[:n]
		return m.Entries[n-1].HLC
	}
	return hlc.HLC{}
}
