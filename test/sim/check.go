package sim

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/store"
)

func errorsIsNotFound(err error) bool { return errors.Is(err, engine.ErrNotFound) }

// snapshot is every record (tombstones included) a node holds, by key.
type snapshot map[store.RecordKey]store.Record

func (s *Sim) snapshotOf(n *node) snapshot {
	out := make(snapshot)
	for _, model := range append(append([]string{}, models.owned...), models.shared...) {
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

// diff compares two nodes' records. Live records must be identical. A
// tombstone may be missing where that node has purged it.
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
		case oka && okb:
			if ra.Version != rb.Version || ra.Deleted != rb.Deleted || !bytes.Equal(ra.Data, rb.Data) {
				return fmt.Sprintf("%s/%s: n%d has %s del=%v, n%d has %s del=%v", k.ModelType, k.ID, a.idx, ra.Version, ra.Deleted, b.idx, rb.Version, rb.Deleted)
			}
		case oka && !okb:
			if !ra.Deleted || s.purgedAt(b, ra.Stream()).Less(ra.Version) {
				return fmt.Sprintf("%s/%s: n%d has %s del=%v, n%d has nothing", k.ModelType, k.ID, a.idx, ra.Version, ra.Deleted, b.idx)
			}
		case okb && !oka:
			if !rb.Deleted || s.purgedAt(a, rb.Stream()).Less(rb.Version) {
				return fmt.Sprintf("%s/%s: n%d has %s del=%v, n%d has nothing", k.ModelType, k.ID, b.idx, rb.Version, rb.Deleted, a.idx)
			}
		}
	}
	return ""
}

// converged reports whether every node is up, idle and holds the same
// records, with nothing left in quarantine.
func (s *Sim) converged() bool {
	first := s.nodes[0]
	if !first.up {
		return false
	}
	base := s.snapshotOf(first)
	for _, n := range s.nodes {
		if !n.up || n.eng.QuarantineCount(s.lib.ID) > 0 || len(n.eng.CatchUps()) > 0 {
			return false
		}
		if n != first && s.diff(first, n, base, s.snapshotOf(n)) != "" {
			return false
		}
	}
	return true
}

// check verifies the invariants after the run.
func (s *Sim) check() {
	snaps := make([]snapshot, len(s.nodes))
	for i, n := range s.nodes {
		snaps[i] = s.snapshotOf(n)
	}
	// 1. Convergence: same records, versions and tombstones (but purged ones).
	for i := 1; i < len(s.nodes); i++ {
		if d := s.diff(s.nodes[0], s.nodes[i], snaps[0], snaps[i]); d != "" {
			s.fail("invariant 1 (convergence): %s", d)
			return
		}
	}
	s.Stats.InvariantsChecked++
	// 5. Skew: nothing left in quarantine once the clocks caught up.
	for _, n := range s.nodes {
		if c := n.eng.QuarantineCount(s.lib.ID); c > 0 {
			s.fail("invariant 5 (skew): n%d still has %d quarantined messages", n.idx, c)
			return
		}
	}
	s.Stats.InvariantsChecked++
	// The final state of each record, from any node that holds it.
	final := make(map[store.RecordKey]store.Record)
	for _, snap := range snaps {
		for k, r := range snap {
			if cur, ok := final[k]; !ok || cur.Version.Less(r.Version) {
				final[k] = r
			}
		}
	}
	// 2, 3 and 6, per acknowledged write.
	for _, w := range s.writes {
		k := store.RecordKey{Library: s.lib.ID, ModelType: w.model, ID: w.id}
		r, ok := final[k]
		if !w.acked {
			continue
		}
		if !ok {
			// Gone everywhere: only a purged tombstone may explain it, so a
			// delete at least as new as this write must exist.
			if !s.deletedSince(k, w.version) {
				s.fail("invariant 2 (no lost write): %s/%s written at %s by n%d is gone everywhere, with no later delete", w.model, w.id, w.version, w.node)
				return
			}
			continue
		}
		if r.Version.Less(w.version) {
			s.fail("invariant 2 (no lost write): %s/%s ends at %s, older than the acknowledged write %s by n%d", w.model, w.id, r.Version, w.version, w.node)
			return
		}
		if r.Version == w.version && (r.Deleted != w.deleted || !bytes.Equal(r.Data, w.data)) {
			s.fail("invariant 2: %s/%s at %s holds other data than was written", w.model, w.id, w.version)
			return
		}
		if r.Version != w.version {
			if _, real := s.byVer[r.Version]; !real {
				s.fail("%s/%s ends at %s, which nobody wrote", w.model, w.id, r.Version)
				return
			}
		}
		if w.deleted && !r.Deleted && !w.version.Less(r.Version) {
			s.fail("invariant 3 (no resurrection): %s/%s deleted at %s is live at %s", w.model, w.id, w.version, r.Version)
			return
		}
	}
	s.Stats.InvariantsChecked += 3
	// 6. Ownership: device-owned records carry their owner's versions only.
	for k, r := range final {
		if Registry().Strategy(k.ModelType) != engine.DeviceOwned {
			continue
		}
		owner, ok := s.ownerOf[k.ID]
		if !ok || s.nodes[owner].id != r.Version.DeviceID {
			s.fail("invariant 6 (ownership): %s/%s has version %s, but its owner is n%d", k.ModelType, k.ID, r.Version, owner)
			return
		}
	}
	s.Stats.InvariantsChecked++
	// 4. Monotonic clocks were checked on every issue; 4 counts here.
	s.Stats.InvariantsChecked++
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
