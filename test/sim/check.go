package sim

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/badgerstore"
)

func errorsIsNotFound(err error) bool { return errors.Is(err, engine.ErrNotFound) }

// snapshot is every record (tombstones included) a node holds, by key.
type snapshot map[store.RecordKey]store.Record

func (s *Sim) snapshotOf(n *node) snapshot {
	out := make(snapshot)
	for _, model := range allModels() {
		after := uuid.Nil
		for {
			recs, err := n.st.List(s.lib.ID, model, after, 1000)
			if err != nil {
				s.fail("n%d list: %v", n.idx, err)
				return out
			}
			for _, r := range recs {
				out[store.RecordKey{Library: r.Library, ModelType: r.ModelType, ID: r.ID}] = r
			}
			if len(recs) < 1000 {
				break
			}
			after = recs[len(recs)-1].ID
		}
	}
	return out
}

// purgedAt returns the tombstone prune point of a stream at a node.
func (s *Sim) purgedAt(n *node, st store.Stream) hlc.HLC {
	pps, err := n.st.PrunePoints(st.Library)
	if err != nil {
		s.fail("n%d prune points: %v", n.idx, err)
		return hlc.HLC{}
	}
	for _, p := range pps {
		if p.Stream == st {
			return p.Tombstones
		}
	}
	return hlc.HLC{}
}

// purgedAnywhere reports whether any member purged the tombstones of a
// stream up to v: the tombstone was stable, so its absence is safe on every
// node (a node that caught up from a snapshot never had it).
func (s *Sim) purgedAnywhere(st store.Stream, v hlc.HLC) bool {
	for _, n := range s.finalMembers() {
		if !s.purgedAt(n, st).Less(v) {
			return true
		}
	}
	return false
}

// unreachable reports whether node n may lack record r for good: r is a
// write of a device removed from the library, beyond n's watermark of its
// stream. Such a write reached some members out of order (or from
// quarantine) and sits beyond their watermarks; with its origin gone, the
// engine has no way to tell the others it exists (docs/SIMULATION.md, "Known
// and not fixed").
func (s *Sim) unreachable(n *node, r store.Record) bool {
	i := s.indexOf(r.Version.DeviceID)
	if i < 0 || !s.removed[i] {
		return false
	}
	wm, err := n.st.Watermark(r.Stream())
	if err != nil {
		s.fail("n%d watermark: %v", n.idx, err)
		return false
	}
	return wm.Less(r.Version)
}

// diff compares two nodes' records. Live records must be identical. A
// tombstone may be missing where a member has purged it.
func (s *Sim) diff(a, b *node, sa, sb snapshot) string {
	keys := make(map[store.RecordKey]bool)
	for k := range sa {
		keys[k] = true
	}
	for k := range sb {
		keys[k] = true
	}
	sorted := make([]store.RecordKey, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].ModelType != sorted[j].ModelType {
			return sorted[i].ModelType < sorted[j].ModelType
		}
		return bytes.Compare(sorted[i].ID[:], sorted[j].ID[:]) < 0
	})
	for _, k := range sorted {
		ra, oka := sa[k]
		rb, okb := sb[k]
		switch {
		case oka && okb && ra.Version.Less(rb.Version) && s.unreachable(a, rb):
		case oka && okb && rb.Version.Less(ra.Version) && s.unreachable(b, ra):
		case oka && okb:
			if ra.Version != rb.Version || ra.Deleted != rb.Deleted || !s.sameData(ra, rb) && !s.unreachableFields(a, b, ra, rb) {
				return fmt.Sprintf("%s/%s: n%d has %s del=%v%s, n%d has %s del=%v%s", k.ModelType, k.ID, a.idx, ra.Version, ra.Deleted, shows(ra), b.idx, rb.Version, rb.Deleted, shows(rb))
			}
		case oka && !okb:
			if s.unreachable(b, ra) {
				continue
			}
			if !ra.Deleted || !s.purgedAnywhere(ra.Stream(), ra.Version) {
				return fmt.Sprintf("%s/%s: n%d has %s del=%v, n%d has nothing", k.ModelType, k.ID, a.idx, ra.Version, ra.Deleted, b.idx)
			}
		case okb && !oka:
			if s.unreachable(a, rb) {
				continue
			}
			if !rb.Deleted || !s.purgedAnywhere(rb.Stream(), rb.Version) {
				return fmt.Sprintf("%s/%s: n%d has %s del=%v, n%d has nothing", k.ModelType, k.ID, b.idx, rb.Version, rb.Deleted, a.idx)
			}
		}
	}
	return ""
}

// unreachableFields reports whether two nodes' states of one shared-fields
// record differ only in fields whose newer write, shown by one node, is a
// write of a device removed from the library beyond the other node's
// watermark of its stream: as for whole records (unreachable), nobody can
// tell that node it exists.
func (s *Sim) unreachableFields(a, b *node, ra, rb store.Record) bool {
	if !Registry().FieldMerge(ra.ModelType) || ra.Deleted || rb.Deleted {
		return false
	}
	da, va, errA := engine.VisibleFields(ra)
	db, vb, errB := engine.VisibleFields(rb)
	if errA != nil || errB != nil {
		return false
	}
	var ma, mb map[string]cbor.RawMessage
	if cbor.Unmarshal(da, &ma) != nil || cbor.Unmarshal(db, &mb) != nil {
		return false
	}
	// missing reports whether n lacks the write of a field at h for good.
	missing := func(n *node, model string, h hlc.HLC) bool {
		return s.unreachable(n, store.Record{Library: ra.Library, ModelType: model, ID: ra.ID, Version: h})
	}
	for name := range keyUnion(ma, mb) {
		xa, inA := ma[name]
		xb, inB := mb[name]
		if inA && inB && va[name] == vb[name] && bytes.Equal(xa, xb) {
			continue
		}
		ha, hb := va[name], vb[name] // zero where not shown
		switch {
		case inA && (!inB || hb.Less(ha)) && missing(b, ra.ModelType, ha):
		case inB && (!inA || ha.Less(hb)) && missing(a, rb.ModelType, hb):
		default:
			return false
		}
	}
	return true
}

// sameData compares two nodes' payloads of one record at one version. For a
// shared-fields record it compares what an app sees, with each field's
// version: the merge states may still differ in field tombstones that one
// node has purged (at its stable point) and the other not yet.
func (s *Sim) sameData(a, b store.Record) bool {
	if !Registry().FieldMerge(a.ModelType) || a.Deleted {
		return bytes.Equal(a.Data, b.Data)
	}
	da, va, errA := engine.VisibleFields(a)
	db, vb, errB := engine.VisibleFields(b)
	return errA == nil && errB == nil && bytes.Equal(da, db) && fmt.Sprint(va) == fmt.Sprint(vb)
}

// shows describes what a shared-fields record shows, with the versions
// (empty for other records).
func shows(r store.Record) string {
	if !Registry().FieldMerge(r.ModelType) || r.Deleted {
		return ""
	}
	data, versions, err := engine.VisibleFields(r)
	if err != nil {
		return " (" + err.Error() + ")"
	}
	var m map[string]any
	_ = cbor.Unmarshal(data, &m)
	return fmt.Sprintf(" showing %v at %v", m, versions)
}

// finalMembers are the nodes that are members at the end: the ones that
// must converge.
func (s *Sim) finalMembers() []*node {
	var out []*node
	for i, n := range s.nodes {
		if s.isMember(i) {
			out = append(out, n)
		}
	}
	return out
}

// converged reports whether every member is up, idle and holds the same
// records, with nothing left in quarantine.
func (s *Sim) converged() bool {
	ms := s.finalMembers()
	first := ms[0]
	if !first.up {
		return false
	}
	base := s.snapshotOf(first)
	for _, n := range ms {
		if !n.up || n.eng.QuarantineCount(s.lib.ID) > 0 || len(n.eng.CatchUps()) > 0 {
			return false
		}
		if n != first && s.diff(first, n, base, s.snapshotOf(n)) != "" {
			return false
		}
	}
	return true
}

// check verifies the invariants after the run. Every loop over what the
// run produced counts what it checked, and a run that produced something
// must have checked something.
func (s *Sim) check() {
	ms := s.finalMembers()
	if len(ms) < 2 {
		s.fail("the run ends with %d members; the checks need two", len(ms))
		return
	}
	snaps := make([]snapshot, len(ms))
	for i, n := range ms {
		if !n.up {
			s.fail("n%d is down at the end", n.idx)
			return
		}
		snaps[i] = s.snapshotOf(n)
	}
	// 1. Convergence: same records, versions and tombstones (but purged ones).
	for i := 1; i < len(ms); i++ {
		if d := s.diff(ms[0], ms[i], snaps[0], snaps[i]); d != "" {
			s.fail("invariant 1 (convergence): %s", d)
			return
		}
		s.Stats.RecordsCompared += len(snaps[i])
	}
	s.Stats.InvariantsChecked++
	// 5. Skew: nothing left in quarantine once the clocks caught up, in the
	// engine or in the store.
	for _, n := range ms {
		if c := n.eng.QuarantineCount(s.lib.ID); c > 0 {
			s.fail("invariant 5 (skew): n%d still has %d quarantined messages", n.idx, c)
			return
		}
		c, err := n.st.CountQuarantined(s.lib.ID)
		if err != nil {
			s.fail("n%d counting quarantine: %v", n.idx, err)
			return
		}
		if c > 0 {
			s.fail("invariant 5 (skew): n%d's store still holds %d quarantined messages; its engine counts none", n.idx, c)
			return
		}
	}
	s.Stats.InvariantsChecked++
	// The final state of each record, from any member that holds it.
	final := make(map[store.RecordKey]store.Record)
	for _, snap := range snaps {
		for k, r := range snap {
			if cur, ok := final[k]; !ok || cur.Version.Less(r.Version) {
				final[k] = r
			}
		}
	}
	// 2, 3 and 6, per acknowledged write of a member (a device removed
	// before its writes could spread carries no promise).
	checked, expected := 0, 0
	for _, w := range s.writes {
		k := store.RecordKey{Library: s.lib.ID, ModelType: w.model, ID: w.id}
		r, ok := final[k]
		if !w.acked || !s.isMember(w.node) {
			continue
		}
		expected++
		if !ok {
			// Gone everywhere: only a purged tombstone may explain it, so a
			// delete at least as new as this write must exist.
			if !s.deletedSince(k, w.version) {
				s.fail("invariant 2 (no lost write): %s/%s written at %s by n%d is gone everywhere, with no later delete", w.model, w.id, w.version, w.node)
				return
			}
			checked++
			continue
		}
		if r.Version.Less(w.version) {
			s.fail("invariant 2 (no lost write): %s/%s ends at %s, older than the acknowledged write %s by n%d", w.model, w.id, r.Version, w.version, w.node)
			return
		}
		if r.Version == w.version && (r.Deleted != w.deleted || (!w.patch && !bytes.Equal(r.Data, w.data))) {
			s.fail("invariant 2: %s/%s at %s holds other data than was written", w.model, w.id, w.version)
			return
		}
		if r.Version != w.version {
			if _, real := s.issued[r.Version]; !real {
				s.fail("%s/%s ends at %s, which nobody wrote", w.model, w.id, r.Version)
				return
			}
		}
		if w.deleted && !r.Deleted && !w.version.Less(r.Version) {
			s.fail("invariant 3 (no resurrection): %s/%s deleted at %s is live at %s", w.model, w.id, w.version, r.Version)
			return
		}
		checked++
	}
	if checked != expected || (s.Stats.Acked > 0 && expected == 0 && len(s.removed) == 0) {
		s.fail("checked %d of %d acknowledged writes (%d acknowledged in all)", checked, expected, s.Stats.Acked)
		return
	}
	s.Stats.WritesChecked += checked
	s.Stats.InvariantsChecked += 3
	// Every record a member holds was written by someone, with that data.
	for k, r := range final {
		if w, ok := s.issued[r.Version]; !ok || w.model != k.ModelType || w.id != k.ID || w.deleted != r.Deleted || (!w.patch && !bytes.Equal(w.data, r.Data)) {
			s.fail("%s/%s is held at %s, which is no write made of it", k.ModelType, k.ID, r.Version)
			return
		}
	}
	// The field invariant (shared-fields records), against the history.
	if !s.checkFields(ms, snaps) {
		return
	}
	s.Stats.InvariantsChecked++
	// 6. Ownership: device-owned records carry their owner's versions only.
	owned := 0
	for k, r := range final {
		if Registry().Strategy(k.ModelType) != engine.DeviceOwned {
			continue
		}
		owned++
		owner, ok := s.ownerOf[k.ID]
		if !ok || s.nodes[owner].id != r.Version.DeviceID {
			s.fail("invariant 6 (ownership): %s/%s has version %s, but its owner is n%d", k.ModelType, k.ID, r.Version, owner)
			return
		}
	}
	s.Stats.OwnedChecked += owned
	s.Stats.InvariantsChecked++
	// 4. Monotonic clocks were checked on every issue; 4 counts here.
	s.Stats.InvariantsChecked++
	// 10. Pruning made progress: with every member connected and quiet, each
	// member's log of each shared stream is pruned up to what every member
	// holds of it, and keeps nothing at or below that.
	if !s.checkPruneProgress(ms, final) {
		return
	}
	s.Stats.InvariantsChecked++
}

// checkPruneProgress checks that pruning happened where every member holds
// the stream (invariant 10's other half), and that it checked something if
// any shared record exists.
func (s *Sim) checkPruneProgress(ms []*node, final map[store.RecordKey]store.Record) bool {
	type wmKey struct {
		node int
		s    store.Stream
	}
	wms := make(map[wmKey]hlc.HLC)
	streams := make(map[store.Stream]bool)
	for _, n := range ms {
		if bs, ok := n.st.(*badgerstore.Store); ok {
			if err := bs.WaitPruned(); err != nil {
				s.fail("n%d pruning: %v", n.idx, err)
				return false
			}
		}
		marks, err := n.st.Watermarks(s.lib.ID)
		if err != nil {
			s.fail("n%d watermarks: %v", n.idx, err)
			return false
		}
		for _, m := range marks {
			if Registry().Strategy(m.ModelType) == engine.Shared {
				wms[wmKey{n.idx, m.Stream}] = m.HLC
				streams[m.Stream] = true
			}
		}
	}
	checked := 0
	for st := range streams {
		var target hlc.HLC
		first := true
		for _, n := range ms {
			if n.id == st.Origin {
				continue // an origin holds all of its stream
			}
			if h := wms[wmKey{n.idx, st}]; first || h.Less(target) {
				target, first = h, false
			}
		}
		for _, n := range ms {
			mine := wms[wmKey{n.idx, st}]
			want := hlc.Min(target, mine)
			if first {
				want = mine
			}
			if want.IsZero() {
				continue
			}
			pp := s.prunePoint(n, st)
			if pp.Log.Less(want) {
				s.fail("invariant 10 (pruning progress): every member holds %s/%s up to %s, but n%d pruned its log only up to %s", st.ModelType, st.Origin.String()[:8], want, n.idx, pp.Log)
				return false
			}
			page, err := n.st.LogPage(st, hlc.HLC{}, 1)
			if err != nil {
				s.fail("n%d log page: %v", n.idx, err)
				return false
			}
			if len(page.Entries) > 0 && !page.Entries[0].HLC.After(want) {
				s.fail("invariant 10 (pruning progress): n%d still keeps the log entry %s of %s/%s at or below its prune point %s", n.idx, page.Entries[0].HLC, st.ModelType, st.Origin.String()[:8], pp.Log)
				return false
			}
			checked++
		}
	}
	s.Stats.PruneProgress += checked
	if checked == 0 {
		for k := range final {
			if Registry().Strategy(k.ModelType) == engine.Shared {
				s.fail("invariant 10 (pruning progress): shared records exist but no member's log was checked")
				return false
			}
		}
	}
	return true
}

// prunePoint returns a node's prune point of a stream.
func (s *Sim) prunePoint(n *node, st store.Stream) store.PrunePoint {
	pps, err := n.st.PrunePoints(st.Library)
	if err != nil {
		s.fail("n%d prune points: %v", n.idx, err)
		return store.PrunePoint{}
	}
	for _, p := range pps {
		if p.Stream == st {
			return p
		}
	}
	return store.PrunePoint{Stream: st}
}

// deletedSince reports whether a delete of k at or after v was written.
func (s *Sim) deletedSince(k store.RecordKey, v hlc.HLC) bool {
	for _, w := range s.writes {
		if w.acked && w.model == k.ModelType && w.id == k.ID && w.deleted && !w.version.Less(v) {
			return true
		}
	}
	return false
}

// checkFields checks every member's shared-fields records against the
// history of acknowledged writes (the model): a record exists iff its
// greatest patch is newer than its greatest delete, and then shows, per
// field, the greatest-HLC write of the field if that is a value written
// after the delete, with that write's HLC as the field's version.
//
// The model is built from the writes of members. A device removed before its
// writes could spread carries no promise (as for invariant 2): each of its
// writes may or may not have reached the members, so where one is newer than
// what the members' writes say, the record may show either (convergence
// checks that every member shows the same).
func (s *Sim) checkFields(ms []*node, snaps []snapshot) bool {
	type model struct {
		live, del hlc.HLC
		last      map[string]protocol.FieldVersion
		// Of removed devices: patches (live, and per field) and deletes.
		optLive map[hlc.HLC]bool
		optDel  []hlc.HLC
		optLast map[string][]protocol.FieldVersion
	}
	hist := make(map[store.RecordKey]*model)
	for _, w := range s.writes {
		if !w.acked || !Registry().FieldMerge(w.model) {
			continue
		}
		k := store.RecordKey{Library: s.lib.ID, ModelType: w.model, ID: w.id}
		m := hist[k]
		if m == nil {
			m = &model{last: make(map[string]protocol.FieldVersion), optLive: make(map[hlc.HLC]bool), optLast: make(map[string][]protocol.FieldVersion)}
			hist[k] = m
		}
		member := s.isMember(w.node)
		if w.deleted {
			if member {
				m.del = hlc.Max(m.del, w.version)
			} else {
				m.optDel = append(m.optDel, w.version)
			}
			continue
		}
		p, err := protocol.DecodeFieldPatch(w.data)
		if err != nil {
			s.fail("a patch the simulation wrote does not decode: %v", err)
			return false
		}
		if !member {
			m.optLive[w.version] = true
		} else {
			m.live = hlc.Max(m.live, w.version)
		}
		for name, v := range p {
			fv := protocol.FieldVersion{HLC: w.version}
			if !bytes.Equal(v, protocol.Undefined) {
				fv.Value = v
			}
			if !member {
				m.optLast[name] = append(m.optLast[name], fv)
				continue
			}
			if cur, ok := m.last[name]; ok && !w.version.After(cur.HLC) {
				continue
			}
			m.last[name] = fv
		}
	}
	// newerDel reports whether a removed device deleted the record after h.
	newerDel := func(m *model, h hlc.HLC) bool {
		for _, d := range m.optDel {
			if d.After(h) {
				return true
			}
		}
		return false
	}
	for k, m := range hist {
		exists := m.live.After(m.del)
		want := map[string]string{}
		if exists {
			for name, fv := range m.last {
				if fv.HLC.After(m.del) && !fv.Removed() {
					want[name] = fmt.Sprintf("%x@%s", []byte(fv.Value), fv.HLC)
				}
			}
		}
		for i, n := range ms {
			r, ok := snaps[i][k]
			if !ok || r.Deleted {
				if exists && !newerDel(m, m.live) {
					s.fail("field invariant: %s/%s should show %v, n%d holds it deleted or not at all", k.ModelType, k.ID, want, n.idx)
					return false
				}
				s.Stats.FieldsChecked++
				continue
			}
			if !r.Version.After(m.del) || (r.Version != m.live && !(m.optLive[r.Version] && r.Version.After(m.live))) {
				if !exists || !r.Version.After(m.del) {
					s.fail("field invariant: %s/%s is deleted at %s (newest patch %s), n%d holds it live at %s", k.ModelType, k.ID, m.del, m.live, n.idx, r.Version)
					return false
				}
				s.fail("field invariant: n%d's %s/%s has version %s, its newest patch is %s", n.idx, k.ModelType, k.ID, r.Version, m.live)
				return false
			}
			data, versions, err := engine.VisibleFields(r)
			if err != nil {
				s.fail("field invariant: n%d's %s/%s: %v", n.idx, k.ModelType, k.ID, err)
				return false
			}
			var shown map[string]cbor.RawMessage
			if err := cbor.Unmarshal(data, &shown); err != nil {
				s.fail("field invariant: n%d's %s/%s shows no map: %v", n.idx, k.ModelType, k.ID, err)
				return false
			}
			got := map[string]string{}
			for name, v := range shown {
				got[name] = fmt.Sprintf("%x@%s", []byte(v), versions[name])
			}
			if fmt.Sprint(got) != fmt.Sprint(want) && !s.optExplains(got, want, m.last, m.del, m.optLast, m.optDel) {
				s.fail("field invariant: n%d's %s/%s shows\n  %v\nthe history says\n  %v", n.idx, k.ModelType, k.ID, got, want)
				return false
			}
			s.Stats.FieldsChecked++
		}
	}
	return true
}

// optExplains reports whether a record showing got, where the members'
// writes say want, is explained field by field by writes of removed devices
// (opt, optDel) that are newer than the members' last write of the field:
// a field shows the members' last value, or a newer value of a removed
// device; it is absent where the members' last write removed it (or is
// older than their last delete del) or a removed device's newer write
// removed it or deleted the record.
func (s *Sim) optExplains(got, want map[string]string, last map[string]protocol.FieldVersion, del hlc.HLC, opt map[string][]protocol.FieldVersion, optDel []hlc.HLC) bool {
	if len(opt) == 0 && len(optDel) == 0 {
		return false
	}
	for name := range keyUnion(got, want) {
		g, shown := got[name]
		w, wanted := want[name]
		if shown && wanted && g == w {
			continue
		}
		base := del // what a removed device's write must be newer than
		if fv, ok := last[name]; ok && fv.HLC.After(base) {
			base = fv.HLC
		}
		ok := false
		if shown {
			for _, fv := range opt[name] {
				if !fv.Removed() && fv.HLC.After(base) && g == fmt.Sprintf("%x@%s", []byte(fv.Value), fv.HLC) {
					ok = true
				}
			}
		} else {
			for _, fv := range opt[name] {
				if fv.Removed() && fv.HLC.After(base) {
					ok = true
				}
			}
			for _, d := range optDel {
				if d.After(base) {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// keyUnion returns the set of the keys of a and b.
func keyUnion[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
