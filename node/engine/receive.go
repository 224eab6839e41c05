package engine

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Connected tells the engine that a session with device for library libID is
// open. The engine answers with a Hello. A non-member is refused.
func (e *Engine) Connected(now time.Time, libID, device uuid.UUID) error {
	lib, err := e.libraryFor(libID)
	if err != nil {
		return e.refuse(err)
	}
	e.setNow(now)
	if _, ok := lib.members[device]; !ok || device == e.cfg.Device {
		return e.refuse(fmt.Errorf("%w: device %s in library %s", protocol.ErrNotMember, device, libID))
	}
	p, ok := lib.peers[device]
	if !ok {
		p = newPeer(device)
		lib.peers[device] = p
	}
	p.connected = true
	p.helloSeen = false
	p.lastHeard = now
	p.lastBeat = now
	for i := range p.nextTry {
		p.nextTry[i] = time.Time{}
	}
	wms, err := e.watermarkList(libID)
	if err != nil {
		return err
	}
	e.out.send(libID, device, &protocol.Hello{
		LibraryID: libID, DeviceID: e.cfg.Device, Versions: []uint32{protocol.Version},
		Clock: e.clock.Now(), Watermarks: wms,
	})
	p.ackSent = make(map[streamKey]hlc.HLC)
	for _, w := range wms {
		p.ackSent[streamKey{model: w.ModelType, origin: w.DeviceID}] = w.HLC
	}
	return nil
}

// Disconnected tells the engine that the session with device is closed.
func (e *Engine) Disconnected(now time.Time, libID, device uuid.UUID) {
	e.setNow(now)
	lib, ok := e.libs[libID]
	if !ok {
		return
	}
	e.dropPeer(lib, device)
}

func (e *Engine) dropPeer(lib *library, device uuid.UUID) {
	p, ok := lib.peers[device]
	if !ok {
		return
	}
	p.connected = false
	for i, id := range p.pending {
		if id != 0 {
			delete(e.reqs, id)
			p.pending[i] = 0
			if lib.pending[i] == id {
				lib.pending[i] = 0
			}
			if lib.owned[device] == id {
				delete(lib.owned, device)
			}
		}
	}
}

// Connected reports whether a session with device is open.
func (e *Engine) IsConnected(libID, device uuid.UUID) bool {
	lib, ok := e.libs[libID]
	if !ok {
		return false
	}
	p, ok := lib.peers[device]
	return ok && p.connected
}

// watermarkList returns this node's watermarks of a library in stream order.
func (e *Engine) watermarkList(libID uuid.UUID) ([]protocol.Watermark, error) {
	wms, err := e.watermarks(libID)
	if err != nil {
		return nil, err
	}
	keys := make([]streamKey, 0, len(wms))
	for k := range wms {
		keys = append(keys, k)
	}
	sortKeys(keys)
	out := make([]protocol.Watermark, 0, len(keys))
	for _, k := range keys {
		if len(out) == protocol.MaxWatermarks {
			break
		}
		out = append(out, protocol.Watermark{DeviceID: k.origin, ModelType: k.model, HLC: wms[k]})
	}
	return out, nil
}

// Step feeds one message received on the session stream of the
// authenticated device from. The engine takes ownership of m and of the
// payloads in it: the caller must not modify them afterwards. It returns an error when the message is
// refused; the error wraps a protocol sentinel (protocol.CodeOf gives the
// wire code). For protocol.ErrUnknownModelType the caller answers with an
// Error frame and keeps the session; for every other error it sends an Error
// frame and resets the session. A change stamped too far in the future is not
// an error: it is quarantined and the engine itself answers with an Error.
func (e *Engine) Step(now time.Time, from uuid.UUID, m protocol.Message) error {
	if !e.loaded {
		return ErrNotReady
	}
	e.setNow(now)
	if m == nil {
		return e.refuse(fmt.Errorf("%w: nil message", protocol.ErrInvalid))
	}
	lib, err := e.libraryFor(m.Library())
	if err != nil {
		return e.refuse(err)
	}
	if _, ok := lib.members[from]; !ok || from == e.cfg.Device {
		return e.refuse(fmt.Errorf("%w: device %s in library %s", protocol.ErrNotMember, from, lib.info.ID))
	}
	if err := m.Validate(); err != nil {
		return e.refuse(err)
	}
	p := lib.peers[from]
	if p == nil {
		p = newPeer(from)
		lib.peers[from] = p
	}
	p.lastHeard = now
	switch m := m.(type) {
	case *protocol.Hello:
		return e.onHello(lib, p, m)
	case *protocol.Heartbeat:
		if m.DeviceID != from {
			return e.refuse(claimError("Heartbeat.device_id", m.DeviceID, from))
		}
		e.mergeClock(m.Clock)
		return e.learnWatermarks(lib, p, m.Watermarks, m.Clock)
	case *protocol.AckSharedChanges:
		if m.FromDevice != from {
			return e.refuse(claimError("AckSharedChanges.from_device", m.FromDevice, from))
		}
		if e.reg.Strategy(m.ModelType) == 0 {
			return e.refuse(fmt.Errorf("%w: %q", protocol.ErrUnknownModelType, m.ModelType))
		}
		e.learnAck(lib, p, streamKey{model: m.ModelType, origin: m.UpToHLC.DeviceID}, m.UpToHLC)
		return nil
	case *protocol.StateChange:
		if m.DeviceID != from {
			return e.refuse(claimError("StateChange.device_id", m.DeviceID, from))
		}
		rec := protocol.StateRecord{RecordUUID: m.RecordUUID, Data: m.Data, Timestamp: m.Timestamp, Deleted: m.Deleted}
		return e.onStateLive(lib, p, m.ModelType, m.DeviceID, m.Prev, []protocol.StateRecord{rec}, m)
	case *protocol.StateBatch:
		if m.DeviceID != from {
			return e.refuse(claimError("StateBatch.device_id", m.DeviceID, from))
		}
		return e.onStateLive(lib, p, m.ModelType, m.DeviceID, m.Prev, m.Records, m)
	case *protocol.SharedChange:
		if m.HLC.DeviceID != from {
			return e.refuse(claimError("SharedChange origin", m.HLC.DeviceID, from))
		}
		return e.onSharedLive(lib, p, []protocol.SharedChangeEntry{m.Entry()})
	case *protocol.SharedChangeBatch:
		for _, en := range m.Entries {
			if en.HLC.DeviceID != from {
				return e.refuse(claimError("SharedChangeBatch origin", en.HLC.DeviceID, from))
			}
		}
		return e.onSharedLive(lib, p, m.Entries)
	case *protocol.Error:
		e.stats.Refused["peer:"+m.Code.String()]++
		return nil
	default:
		return e.refuse(fmt.Errorf("%w: %s is not sent on a session stream", protocol.ErrUnexpected, m.Name()))
	}
}

func claimError(field string, claimed, actual uuid.UUID) error {
	return fmt.Errorf("%w: %s claims device %s but the stream is authenticated as %s", protocol.ErrOwnership, field, claimed, actual)
}

func (e *Engine) onHello(lib *library, p *peer, m *protocol.Hello) error {
	if m.DeviceID != p.device {
		return e.refuse(claimError("Hello.device_id", m.DeviceID, p.device))
	}
	ok := false
	for _, v := range m.Versions {
		if v == protocol.Version {
			ok = true
		}
	}
	if !ok {
		return e.refuse(fmt.Errorf("%w: peer speaks %v, this node speaks %d", protocol.ErrUnsupportedVersion, m.Versions, protocol.Version))
	}
	p.helloSeen = true
	e.mergeClock(m.Clock)
	e.wantOrphans(lib, p) // once per session
	return e.learnWatermarks(lib, p, m.Watermarks, m.Clock)
}

// mergeClock merges a peer's clock reading unless it is skewed.
func (e *Engine) mergeClock(h hlc.HLC) {
	if h.IsZero() {
		return
	}
	_ = e.clock.Update(h) // a skewed Hello/Heartbeat clock is simply not merged
}

// learnWatermarks records a peer's watermarks (they also count as acks),
// refreshes its last-seen time, and starts a catch-up if it is ahead.
//
// For the peer's own streams it remembers one thing more: the peer's
// watermark of its own stream is its last write L there, and clock is an HLC
// it issued after L, so it will never write in (L, clock]. Tombstone purging
// uses that (see prune); watermarks themselves move only with data.
func (e *Engine) learnWatermarks(lib *library, p *peer, wms []protocol.Watermark, clock hlc.HLC) error {
	own := make(map[string]hlc.HLC)
	for _, w := range wms {
		k := streamKey{model: w.ModelType, origin: w.DeviceID}
		if w.HLC.After(p.wms[k]) {
			p.wms[k] = w.HLC
		}
		e.learnAck(lib, p, k, w.HLC)
		if w.DeviceID == p.device {
			own[w.ModelType] = w.HLC
		}
	}
	// The list names every stream the peer holds, so a model type missing
	// from its own streams says: no write of that type up to its clock.
	if !clock.IsZero() && clock.DeviceID == p.device && e.clock.CheckDrift(clock) == nil && len(wms) < protocol.MaxWatermarks {
		for _, model := range e.reg.Ordered(0) {
			k := streamKey{model: model, origin: p.device}
			if last := own[model]; clock.After(last) && clock.After(lib.origins[k].clock) {
				lib.origins[k] = originClock{last: last, clock: clock}
			}
		}
	}
	e.touchMember(lib, p.device)
	return e.maybeCatchUp(lib, p)
}

// learnAck records that a member holds stream k up to h.
func (e *Engine) learnAck(lib *library, p *peer, k streamKey, h hlc.HLC) {
	if h.IsZero() || e.reg.Strategy(k.model) == 0 {
		return
	}
	if h.After(p.wms[k]) {
		p.wms[k] = h
	}
	ak := ackKey{member: p.device, s: k}
	if !h.After(lib.acks[ak]) {
		return
	}
	lib.acks[ak] = h
	e.ov.setAck(store.Ack{Stream: k.in(lib.info.ID), Member: p.device, HLC: h})
}

// touchMember refreshes a member's stored last-seen time, at most once per
// LastSeenResolution.
func (e *Engine) touchMember(lib *library, device uuid.UUID) {
	m, ok := lib.members[device]
	if !ok {
		return
	}
	now := uint64(e.now().UnixMilli())
	if now < m.LastSeen+uint64(e.cfg.LastSeenResolution.Milliseconds()) {
		return
	}
	m.LastSeen = now
	lib.members[device] = m
	e.ov.members = append(e.ov.members, m)
}

// ---- live pushes ----

// onStateLive handles a StateChange or StateBatch pushed by its owner.
func (e *Engine) onStateLive(lib *library, p *peer, model string, owner uuid.UUID, prev *hlc.HLC, recs []protocol.StateRecord, m protocol.Message) error {
	if e.reg.Strategy(model) != DeviceOwned {
		return e.refuse(fmt.Errorf("%w: %q is not a device-owned model type here", protocol.ErrUnknownModelType, model))
	}
	last := recs[len(recs)-1].Timestamp
	if err := e.clock.CheckDrift(last); err != nil {
		_, err = e.quarantine(lib, p.device, last, m, err)
		return err
	}
	return e.applyStateLive(lib, p, model, owner, prev, recs)
}

func (e *Engine) applyStateLive(lib *library, p *peer, model string, owner uuid.UUID, prev *hlc.HLC, recs []protocol.StateRecord) error {
	if owner == e.cfg.Device {
		return nil // nobody else writes this node's own records
	}
	s := store.Stream{Library: lib.info.ID, ModelType: model, Origin: owner}
	_ = e.clock.Update(recs[len(recs)-1].Timestamp) // the newest; drift was checked by the caller
	for _, r := range recs {
		if err := e.applyOwned(s, r); err != nil {
			return err
		}
	}
	wm, err := e.watermark(s)
	if err != nil {
		return err
	}
	last := recs[len(recs)-1].Timestamp
	switch {
	case !wm.Less(derefHLC(prev)):
		// Everything up to wm is held, and nothing lies between prev and
		// these records: the stream is held up to the last of them.
		return e.setWatermark(s, last)
	case last.After(wm) && p != nil:
		e.noteGap(lib, p, DeviceOwned, model)
	}
	return nil
}

// applyOwned applies one device-owned record of stream s if it is newer than
// what this node holds.
func (e *Engine) applyOwned(s store.Stream, r protocol.StateRecord) error {
	if held, err := e.holds(s, r.Timestamp); held || err != nil {
		return err
	}
	k := store.RecordKey{Library: s.Library, ModelType: s.ModelType, ID: r.RecordUUID}
	cur, ok, err := e.record(k)
	if err != nil {
		return err
	}
	if ok && cur.Version.DeviceID != s.Origin {
		// Invariant 6: a device-owned record belongs to the device that
		// wrote it first here; another device's write of the same record
		// ID (a collision, or a member trying to take it over) is ignored.
		e.stats.Refused["ownership"]++
		return nil
	}
	if ok && !r.Timestamp.After(cur.Version) {
		return nil
	}
	rec := store.Record{Library: s.Library, ModelType: s.ModelType, ID: r.RecordUUID, Version: r.Timestamp, Deleted: r.Deleted}
	if !r.Deleted {
		rec.Data = r.Data // the message is the engine's now (see Step); stores copy
	}
	e.ov.putRecord(rec, replacedBy(cur, ok))
	e.emitRecordEvent(rec)
	return nil
}

// onSharedLive handles shared changes pushed by their origin.
func (e *Engine) onSharedLive(lib *library, p *peer, entries []protocol.SharedChangeEntry) error {
	// Every entry's model type before any entry's field data (PROTOCOL.md
	// §8.1, checks 9 and 10).
	for _, en := range entries {
		if e.reg.Strategy(en.ModelType) != Shared {
			return e.refuse(fmt.Errorf("%w: %q is not a shared model type here", protocol.ErrUnknownModelType, en.ModelType))
		}
	}
	for _, en := range entries {
		if e.reg.FieldMerge(en.ModelType) {
			if err := checkFieldEntry(en, false); err != nil {
				return e.refuse(err)
			}
		}
	}
	// Entries are in HLC order, so the skewed ones are a suffix, and if the
	// last is fine they all are.
	if e.clock.CheckDrift(entries[len(entries)-1].HLC) == nil {
		return e.applySharedLive(lib, p, entries)
	}
	for i, en := range entries {
		if err := e.clock.CheckDrift(en.HLC); err != nil {
			if err := e.applySharedLive(lib, p, entries[:i]); err != nil {
				return err
			}
			rest := entries[i:]
			var m protocol.Message = &protocol.SharedChangeBatch{LibraryID: lib.info.ID, Entries: rest}
			_, err = e.quarantine(lib, p.device, rest[len(rest)-1].HLC, m, err)
			return err
		}
	}
	return e.applySharedLive(lib, p, entries)
}

func (e *Engine) applySharedLive(lib *library, p *peer, entries []protocol.SharedChangeEntry) error {
	if len(entries) == 0 {
		return nil
	}
	_ = e.clock.Update(entries[len(entries)-1].HLC) // the newest; drift was checked by the caller
	for _, en := range entries {
		s := store.Stream{Library: lib.info.ID, ModelType: en.ModelType, Origin: en.HLC.DeviceID}
		if s.Origin == e.cfg.Device {
			continue
		}
		if err := e.applyShared(s, en); err != nil {
			return err
		}
		wm, err := e.watermark(s)
		if err != nil {
			return err
		}
		switch {
		case !wm.Less(derefHLC(en.Prev)):
			if err := e.setWatermark(s, en.HLC); err != nil {
				return err
			}
			if err := e.extendChain(s); err != nil {
				return err
			}
		case en.HLC.After(wm) && p != nil:
			e.noteGap(lib, p, Shared, en.ModelType)
		}
	}
	return nil
}

// applyShared keeps a shared change in its origin's log (unless this node
// already holds the stream past it) and applies it if it wins by HLC.
func (e *Engine) applyShared(s store.Stream, en protocol.SharedChangeEntry) error {
	if held, err := e.holds(s, en.HLC); held || err != nil {
		if err == nil && e.reg.FieldMerge(s.ModelType) && en.ChangeType != protocol.Delete && protocol.IsFieldState(en.Data) {
			// A whole field state (a snapshot entry) at or below the
			// watermark still carries the writes of other streams that
			// this node may lack (PROTOCOL.md §11.4); joining it again is
			// harmless. It is not logged again.
			k := store.RecordKey{Library: s.Library, ModelType: s.ModelType, ID: en.RecordUUID}
			return e.mergeFields(k, en)
		}
		return err
	}
	{
		le := store.LogEntry{Library: s.Library, ModelType: s.ModelType, HLC: en.HLC, RecordID: en.RecordUUID,
			ChangeType: string(en.ChangeType), Prev: derefHLC(en.Prev)}
		if en.ChangeType != protocol.Delete {
			le.Data = en.Data
		}
		e.ov.appendLog(le)
		if lib := e.libs[s.Library]; lib != nil && en.HLC.After(lib.ahead[keyOf(s)]) {
			lib.ahead[keyOf(s)] = en.HLC
		}
	}
	k := store.RecordKey{Library: s.Library, ModelType: s.ModelType, ID: en.RecordUUID}
	if e.reg.FieldMerge(s.ModelType) {
		return e.mergeFields(k, en)
	}
	cur, ok, err := e.record(k)
	if err != nil {
		return err
	}
	if ok && !en.HLC.After(cur.Version) {
		return nil // older or equal: last writer wins, and a delete stays deleted
	}
	rec := store.Record{Library: s.Library, ModelType: s.ModelType, ID: en.RecordUUID, Version: en.HLC,
		Deleted: en.ChangeType == protocol.Delete}
	if !rec.Deleted {
		rec.Data = en.Data
	}
	e.ov.putRecord(rec, replacedBy(cur, ok))
	e.emitRecordEvent(rec)
	return nil
}

// holds reports whether this node already holds stream s up to h. Such a
// change is a duplicate or was superseded, possibly by a delete whose
// tombstone is purged by now, so it must not be applied again.
func (e *Engine) holds(s store.Stream, h hlc.HLC) (bool, error) {
	wm, err := e.watermark(s)
	if err != nil {
		return false, err
	}
	return !wm.Less(h), nil
}

// extendChain advances a shared stream's watermark through log entries that
// arrived out of order and now link up.
func (e *Engine) extendChain(s store.Stream) error {
	lib := e.libs[s.Library]
	for {
		wm, err := e.watermark(s)
		if err != nil {
			return err
		}
		if lib == nil || !lib.ahead[keyOf(s)].After(wm) {
			return nil // nothing stored beyond the watermark
		}
		next, ok, err := e.logNext(s, wm)
		if err != nil || !ok || wm.Less(next.Prev) {
			return err
		}
		if next.Prev.IsZero() {
			// No prev: an origin's first change, which moved the
			// watermark when it came (applySharedLive), or an entry of a
			// snapshot page, which lists records, not their history, and
			// may be relayed on with no prev. Either way it links to
			// nothing this walk may cross.
			return nil
		}
		e.setWM(s, next.HLC)
	}
}

// noteGap remembers that a stream of the peer's is ahead of what this node
// provably holds, and asks the peer for it.
func (e *Engine) noteGap(lib *library, p *peer, kind Strategy, model string) {
	p.want[kind][model] = true
	p.nextTry[kind] = time.Time{}
	_ = e.maybeCatchUp(lib, p)
}

// ---- quarantine ----

// quarantine stores a message whose newest HLC is too far ahead, and tells
// the sender (once per message). It reports whether it stored m: not if a
// message with the same key (the same one, or another with the same newest
// HLC from the same peer) is in quarantine already, nor if the quarantine
// is full (catch-up brings it again later).
func (e *Engine) quarantine(lib *library, from uuid.UUID, newest hlc.HLC, m protocol.Message, skew error) (bool, error) {
	q := store.Quarantined{Library: lib.info.ID, HLC: newest, From: from}
	key := q.Key()
	if lib.quarantine[key] {
		return false, nil
	}
	e.out.send(lib.info.ID, from, protocol.NewError(lib.info.ID, skew))
	if len(lib.quarantine) >= e.cfg.MaxQuarantine {
		e.stats.Refused[protocol.CodeOf(skew).String()]++
		return false, nil
	}
	body, err := protocol.Encode(m)
	if err != nil {
		return false, fmt.Errorf("encoding quarantined %s: %w", m.Name(), err)
	}
	q.Message = body
	lib.quarantine[key] = true
	e.ov.qPut = append(e.ov.qPut, q)
	e.stats.Quarantined++
	for _, k := range streamsOf(m) {
		if newest.After(lib.qmax[k]) {
			lib.qmax[k] = newest
		}
	}
	return true, nil
}

// streamsOf lists the streams a change-carrying message touches.
func streamsOf(m protocol.Message) []streamKey {
	switch m := m.(type) {
	case *protocol.StateChange:
		return []streamKey{{model: m.ModelType, origin: m.DeviceID}}
	case *protocol.StateBatch:
		return []streamKey{{model: m.ModelType, origin: m.DeviceID}}
	case *protocol.StateResponse:
		return []streamKey{{model: m.ModelType, origin: m.DeviceID}}
	case *protocol.SharedChangeResponse:
		return []streamKey{{model: m.ModelType, origin: m.DeviceID}}
	case *protocol.SharedChangeBatch:
		var out []streamKey
		for _, en := range m.Entries {
			out = append(out, streamKey{model: en.ModelType, origin: en.HLC.DeviceID})
		}
		return out
	}
	return nil
}

// wantOrphans asks peer p, with its next catch-up, for every stream whose
// origin is no member any more: such a stream can only be completed from the
// other members, and what p holds of it beyond this node's watermark (a
// removed device's changes that reached some members out of order) would
// reach this node no other way.
func (e *Engine) wantOrphans(lib *library, p *peer) {
	for k := range lib.wms {
		if _, member := lib.members[k.origin]; !member && k.origin != e.cfg.Device {
			if kind := e.reg.Strategy(k.model); kind != 0 {
				p.want[kind][k.model] = true
			}
		}
	}
}

// QuarantineCount returns how many messages of a library wait in quarantine.
func (e *Engine) QuarantineCount(libID uuid.UUID) int {
	if lib, ok := e.libs[libID]; ok {
		return len(lib.quarantine)
	}
	return 0
}

// releaseQuarantine applies quarantined messages whose HLC is no longer too
// far ahead.
func (e *Engine) releaseQuarantine(lib *library) error {
	if len(lib.quarantine) == 0 {
		return nil
	}
	qs, err := e.st.Quarantined(lib.info.ID, 100)
	if err != nil {
		return fmt.Errorf("reading quarantine: %w", err)
	}
	pending := append([]store.Quarantined(nil), qs...)
	for _, o := range e.overlays() {
		pending = append(pending, o.qPut...)
	}
	for _, q := range pending {
		key := q.Key()
		if !lib.quarantine[key] || q.Library != lib.info.ID {
			continue
		}
		if e.clock.CheckDrift(q.HLC) != nil {
			continue
		}
		delete(lib.quarantine, key)
		e.ov.qDrop = append(e.ov.qDrop, key)
		if len(lib.quarantine) == 0 {
			lib.qmax = make(map[streamKey]hlc.HLC)
		}
		m, err := protocol.Decode(q.Message)
		if err != nil {
			continue // cannot happen for what this node encoded; drop it
		}
		e.stats.Released++
		p := lib.peers[q.From]
		switch m := m.(type) {
		case *protocol.StateChange:
			rec := protocol.StateRecord{RecordUUID: m.RecordUUID, Data: m.Data, Timestamp: m.Timestamp, Deleted: m.Deleted}
			err = e.applyStateLive(lib, p, m.ModelType, m.DeviceID, m.Prev, []protocol.StateRecord{rec})
		case *protocol.StateBatch:
			err = e.applyStateLive(lib, p, m.ModelType, m.DeviceID, m.Prev, m.Records)
		case *protocol.SharedChangeBatch:
			err = e.applySharedLive(lib, p, m.Entries)
		case *protocol.StateResponse: // the tail of a relayed page
			s := store.Stream{Library: lib.info.ID, ModelType: m.ModelType, Origin: m.DeviceID}
			_ = e.clock.Update(q.HLC)
			for _, rec := range m.Records {
				if err = e.applyOwned(s, rec); err != nil {
					break
				}
			}
		case *protocol.SharedChangeResponse: // the tail of a relayed page
			s := store.Stream{Library: lib.info.ID, ModelType: m.ModelType, Origin: m.DeviceID}
			_ = e.clock.Update(q.HLC)
			for _, en := range m.Entries {
				if err = e.applyShared(s, en); err != nil {
					break
				}
			}
			if err == nil {
				err = e.extendChain(s)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
