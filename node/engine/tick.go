package engine

import (
	"bytes"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Tick moves the engine's time to now and does what is due: heartbeats,
// timeouts of silent peers, coalesced acknowledgements, retries of catch-up
// and of quarantined changes, and pruning. Call it regularly (every few
// hundred milliseconds is plenty).
func (e *Engine) Tick(now time.Time) error {
	if !e.loaded {
		return ErrNotReady
	}
	e.setNow(now)
	if gap := now.Sub(e.lastTick); gap > e.cfg.PeerTimeout {
		e.skipGap(gap, now)
	}
	e.lastTick = now
	if due(now, e.lastAlive, e.cfg.LastSeenResolution) {
		e.lastAlive = now
		e.ov.alive = uint64(now.UnixMilli())
	}
	for _, libID := range sortedIDs(e.libs) {
		lib := e.libs[libID]
		if err := e.tickPeers(lib, now); err != nil {
			return err
		}
		if err := e.releaseQuarantine(lib); err != nil {
			return err
		}
	}
	if due(now, e.lastPrune, e.cfg.PruneInterval) {
		e.lastPrune = now
		for _, libID := range sortedIDs(e.libs) {
			if err := e.prune(e.libs[libID], now); err != nil {
				return err
			}
		}
	}
	return nil
}

// skipGap handles a gap of time this node did not observe: between two Ticks
// longer than PeerTimeout (the machine slept, or its wall clock jumped
// ahead), or while it was down (see MetaAlive). That time does not count as
// its peers' silence: a connected peer is not timed out for it, and no
// member comes nearer the horizon by it (which would prune logs past what it
// acknowledged and serve it snapshots): each member's stored last-seen time
// moves forward by the gap, up to now.
func (e *Engine) skipGap(gap time.Duration, now time.Time) {
	for _, libID := range sortedIDs(e.libs) {
		lib := e.libs[libID]
		for _, id := range sortedIDs(lib.members) {
			m := lib.members[id]
			seen := e.lastSeen(lib, m).Add(gap)
			if seen.After(now) {
				seen = now
			}
			if ms := uint64(seen.UnixMilli()); ms > m.LastSeen {
				m.LastSeen = ms
				lib.members[id] = m
				e.ov.members = append(e.ov.members, m)
			}
		}
		for _, p := range lib.peers {
			heard := p.lastHeard.Add(gap)
			if heard.After(now) {
				heard = now
			}
			if heard.After(p.lastHeard) {
				p.lastHeard = heard
			}
		}
	}
}

// due reports whether a timer last fired at last with period interval is due
// at now. A wall clock that stepped back (now before last) makes it due, so
// that no timer stalls until the clock catches up again.
func due(now, last time.Time, interval time.Duration) bool {
	return now.Sub(last) >= interval || now.Before(last)
}

func (e *Engine) tickPeers(lib *library, now time.Time) error {
	var wms []protocol.Watermark // built once, when a heartbeat is due
	for _, id := range sortedIDs(lib.peers) {
		p := lib.peers[id]
		if !p.connected {
			continue
		}
		if now.Sub(p.lastHeard) > e.cfg.PeerTimeout {
			e.out.disconnect(Disconnect{Library: lib.info.ID, Device: id,
				Reason: fmt.Errorf("%w: no message for %v", protocol.ErrTimeout, now.Sub(p.lastHeard).Round(time.Millisecond))})
			e.dropPeer(lib, id)
			continue
		}
		if due(now, p.lastBeat, e.cfg.HeartbeatInterval) {
			if wms == nil {
				var err error
				if wms, err = e.watermarkList(lib.info.ID); err != nil {
					return err
				}
			}
			p.lastBeat, p.lastAck = now, now
			e.out.send(lib.info.ID, id, &protocol.Heartbeat{LibraryID: lib.info.ID, DeviceID: e.cfg.Device, Clock: e.clock.Now(), Watermarks: wms})
			for _, w := range wms {
				p.ackSent[streamKey{model: w.ModelType, origin: w.DeviceID}] = w.HLC
			}
		} else if due(now, p.lastAck, e.cfg.AckInterval) {
			e.sendAcks(lib, p)
		}
		if err := e.maybeCatchUp(lib, p); err != nil {
			return err
		}
	}
	return nil
}

// sendAcks reports the shared streams whose watermark moved since the last
// report to p, one AckSharedChanges per stream, in stream order.
func (e *Engine) sendAcks(lib *library, p *peer) {
	p.lastAck = e.now()
	var keys []streamKey
	for k, h := range lib.wms {
		if h.After(p.ackSent[k]) && e.reg.Strategy(k.model) == Shared {
			keys = append(keys, k)
		}
	}
	sortKeys(keys)
	for _, k := range keys {
		h := lib.wms[k]
		p.ackSent[k] = h
		e.out.send(lib.info.ID, p.device, &protocol.AckSharedChanges{
			LibraryID: lib.info.ID, FromDevice: e.cfg.Device, UpToHLC: h, ModelType: k.model,
		})
	}
}

// lastSeen returns when a member was last heard of (or added), time this
// node did not observe left out (see skipGap).
func (e *Engine) lastSeen(lib *library, m store.Member) time.Time {
	t := m.LastSeen
	if m.AddedAt > t {
		t = m.AddedAt
	}
	seen := time.UnixMilli(int64(t))
	if p, ok := lib.peers[m.DeviceID]; ok && p.lastHeard.After(seen) {
		seen = p.lastHeard
	}
	return seen
}

// prune drops history that no member needs any more. Two rules:
//
//   - Log entries of a stream are dropped at or below the least watermark
//     of that stream among this node and the active members (heard from
//     within the horizon). A member silent for longer holds nothing back; on
//     its return it is served snapshot pages.
//   - Tombstones of a model type are dropped at or below its stable point:
//     the least watermark, over every member (silent ones included) and over
//     every stream of the type that anyone reported. Below it no older write
//     of any record can still arrive anywhere, so a dropped tombstone cannot
//     let an older write resurrect its record. A stream's origin counts as
//     holding its own stream entirely.
func (e *Engine) prune(lib *library, now time.Time) error {
	mine, err := e.watermarks(lib.info.ID)
	if err != nil {
		return err
	}
	pps, err := e.prunePoints(lib.info.ID)
	if err != nil {
		return err
	}
	members := sortedIDs(lib.members)
	active := make(map[uuid.UUID]bool, len(members))
	for _, id := range members {
		active[id] = id != e.cfg.Device && now.Sub(e.lastSeen(lib, lib.members[id])) <= e.cfg.Horizon
	}
	// Every stream anyone reported, and every member's stream of every type
	// (a stream this node has not heard of may still hold old writes).
	known := make(map[streamKey]bool, len(mine))
	for _, id := range members {
		for _, model := range e.reg.Ordered(0) {
			known[streamKey{model: model, origin: id}] = true
		}
	}
	for k := range mine {
		known[k] = true
	}
	for ak := range lib.acks {
		known[ak.s] = true
	}
	for _, p := range lib.peers {
		for k := range p.wms {
			known[k] = true
		}
	}
	keys := make([]streamKey, 0, len(known))
	for k := range known {
		if e.reg.Strategy(k.model) != 0 {
			keys = append(keys, k)
		}
	}
	sortKeys(keys)
	held := func(member uuid.UUID, k streamKey) (hlc.HLC, bool) {
		switch {
		case member == k.origin:
			return hlc.HLC{}, false // an origin holds all of its own stream
		case member == e.cfg.Device:
			return mine[k], true
		default:
			return lib.acks[ackKey{member: member, s: k}], true
		}
	}
	// effective extends what a member holds of a quiet stream: holding the
	// origin's last write means holding everything up to the origin's clock.
	effective := func(member uuid.UUID, k streamKey) (hlc.HLC, bool) {
		h, ok := held(member, k)
		if oc, known := lib.origins[k]; ok && known && !h.Less(oc.last) && oc.clock.After(h) {
			h = oc.clock
		}
		if k.origin == e.cfg.Device && ok {
			// This node knows its own stream exactly: nothing after its
			// last write, and nothing up to its clock.
			if own := e.clock.Last(); !h.Less(mine[k]) && own.After(h) {
				h = own
			}
		}
		return h, ok
	}
	// Stable points per model type, over every member and stream.
	stable := make(map[string]hlc.HLC)
	for _, k := range keys {
		for _, id := range members {
			h, ok := effective(id, k)
			if !ok {
				continue
			}
			if cur, seen := stable[k.model]; !seen || h.Less(cur) {
				stable[k.model] = h
			}
		}
	}
	if err := e.compactFieldStreams(lib, keys, mine, stable); err != nil {
		return err
	}
	moved := false
	for _, k := range keys {
		if _, ok := mine[k]; !ok {
			continue // nothing of it stored here
		}
		s := k.in(lib.info.ID)
		pp := pps[k]
		pp.Stream = s
		changed := false
		if e.reg.Strategy(k.model) == Shared {
			p := mine[k]
			for _, id := range members {
				if !active[id] {
					continue
				}
				if h, ok := held(id, k); ok {
					p = hlc.Min(p, h)
				}
			}
			if p.After(pp.Log) {
				pp.Log = p
				e.ov.pruneLog = append(e.ov.pruneLog, store.Mark{Stream: s, HLC: p})
				changed = true
			} else if e.reg.FieldMerge(k.model) && p.After(lib.fieldPruned[k]) {
				// The prune point of a shared-fields stream may be ahead
				// of what was pruned (markLogIncomplete): drop the entries
				// that every member holds.
				e.ov.pruneLog = append(e.ov.pruneLog, store.Mark{Stream: s, HLC: p})
			}
			if e.reg.FieldMerge(k.model) && p.After(lib.fieldPruned[k]) {
				lib.fieldPruned[k] = p
			}
		}
		// Tombstones of this stream are purged up to the stable point,
		// lowered to what every member (and this node) acknowledged of the
		// stream. Every tombstone the stable point lets go is at or below
		// those acks (an origin writes nothing between its last write and
		// its clock), so this purges the same tombstones and records a
		// truthful mark: a current member's position is never behind it,
		// and only a device that was no member, or is past the horizon of
		// the log, is served a snapshot.
		t := stable[k.model]
		for _, id := range members {
			if h, ok := held(id, k); ok {
				t = hlc.Min(t, h)
			}
		}
		if t.After(pp.Tombstones) {
			pp.Tombstones = t
			e.ov.purge = append(e.ov.purge, store.Mark{Stream: s, HLC: t})
			changed = true
		}
		if changed {
			e.ov.setPrunePoint(pp)
			moved = true
		}
	}
	if moved {
		e.stats.Pruned++
	}
	return nil
}

// maxCompact bounds the records one prune rewrites to drop their field
// tombstones; the rest follow at the next prunes.
const maxCompact = 1000

// compactFieldStreams drops, from the merge states of SharedFields records,
// the removed fields and record deletes at or below the model type's stable
// point (the rule that purges record tombstones): for each stream, the
// records whose versions lie in what the previous prunes did not cover yet
// (every part of a merge state is at or below the record's version), and
// from then on every state this node merges (joinInto).
func (e *Engine) compactFieldStreams(lib *library, keys []streamKey, mine map[streamKey]hlc.HLC, stable map[string]hlc.HLC) error {
	budget := maxCompact
	for _, k := range keys {
		if !e.reg.FieldMerge(k.model) {
			continue
		}
		if st := stable[k.model]; st.After(lib.fieldStable[k.model]) {
			lib.fieldStable[k.model] = st
		}
		bound := lib.fieldStable[k.model]
		if _, ok := mine[k]; !ok || budget <= 0 || !bound.After(lib.fieldDone[k]) {
			continue
		}
		s := k.in(lib.info.ID)
		recs, handled, err := e.recordsInRange(s, lib.fieldDone[k], bound, nil, budget, maxDropPayload)
		if err != nil {
			return err
		}
		budget -= len(recs)
		for _, rec := range recs {
			if rec.Deleted {
				continue
			}
			f, err := fieldOf(rec, true)
			if err != nil {
				return err
			}
			c, err := compactFields(f, bound).toRecord(store.RecordKey{Library: rec.Library, ModelType: rec.ModelType, ID: rec.ID})
			if err != nil {
				return err
			}
			if !bytes.Equal(c.Data, rec.Data) {
				e.ov.putRecord(c, rec.Version)
			}
		}
		lib.fieldDone[k] = handled
	}
	return nil
}
