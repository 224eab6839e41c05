package sim

import (
	"time"

	"github.com/fxamacker/cbor/v2"
)

// scheduleMore schedules the faults and workload of issue 12 (none of them in
// a legacy run): clock skews of every kind, tied writes, joins, a removal
// and a byzantine member's forgeries.
func (s *Sim) scheduleMore() {
	chaos := s.cfg.Chaos
	used := make(map[int]bool)
	for _, kind := range s.cfg.Skews {
		n := s.nodes[s.rng.Intn(len(s.nodes))]
		for tries := 0; used[n.idx] && tries < 8; tries++ {
			n = s.nodes[s.rng.Intn(len(s.nodes))]
		}
		used[n.idx] = true
		var skew time.Duration
		near := time.Duration(10+s.rng.Intn(int((maxDrift-20*time.Second)/time.Second))) * time.Second
		far := maxDrift + time.Duration(10+s.rng.Intn(120))*time.Second
		switch kind {
		case FarAhead:
			skew = far
		case NearAhead:
			skew = near
		case NearBehind:
			skew = -near
		case FarBehind:
			skew = -far
		}
		at := time.Duration(s.rng.Int63n(int64(chaos) / 2))
		kind := kind
		s.at(at, func() {
			s.Stats.count(&s.Stats.Skews, kind.String())
			s.tracef("n%d clock steps %v (%s)", n.idx, skew, kind)
			s.setSkew(n, skew)
			s.at(chaos/3, func() {
				s.tracef("n%d clock is set right (steps %v)", n.idx, -skew)
				s.setSkew(n, 0)
			})
		})
	}
	if s.cfg.Ties {
		for k := 0; k < 1+s.rng.Intn(3); k++ {
			s.at(time.Duration(s.rng.Int63n(int64(chaos))), s.tieWrite)
		}
	}
	for j := s.cfg.Nodes - s.cfg.Joins; j < s.cfg.Nodes; j++ {
		n := s.nodes[j]
		at := time.Duration(s.rng.Int63n(int64(chaos) * 2 / 3))
		away := time.Duration(0)
		if s.rng.Intn(2) == 0 {
			away = time.Duration(1+s.rng.Intn(20)) * time.Second
		}
		s.at(at, func() { s.join(n, away) })
	}
	if s.cfg.Remove {
		at := time.Duration(s.rng.Int63n(int64(chaos)))
		s.at(at, s.removeOne)
	}
	if s.cfg.Byzantine {
		// One of the first members lies; a joiner is honest.
		b := s.nodes[s.rng.Intn(s.cfg.Nodes-s.cfg.Joins)]
		b.byz = true
		for k := 0; k < 6+s.rng.Intn(10); k++ {
			s.at(time.Duration(s.rng.Int63n(int64(chaos))), func() { s.forge(b) })
		}
	}
}

// tieWrite makes two or three running members write one shared record at the
// same instant, each with its own payload, and counts the HLCs that tie on
// (timestamp, counter).
func (s *Sim) tieWrite() {
	var ups []*node
	for _, n := range s.nodes {
		if n.up && s.isMember(n.idx) {
			ups = append(ups, n)
		}
	}
	if len(ups) < 2 {
		return
	}
	s.rng.Shuffle(len(ups), func(i, j int) { ups[i], ups[j] = ups[j], ups[i] })
	ups = ups[:2+s.rng.Intn(min(2, len(ups)-1))]
	model := models.shared[s.rng.Intn(len(models.shared))]
	id := s.uuid() // mostly a new record, written by several at once
	if s.rng.Intn(3) == 0 {
		id = s.shared[s.rng.Intn(len(s.shared))]
	}
	var ws []*write
	for _, n := range ups {
		if !s.seen(n, model, id) {
			continue
		}
		data, _ := cbor.Marshal(map[string]any{"n": n.idx, "tie": s.rng.Intn(1000)})
		if w := s.writeRecord(n, model, id, data); w != nil {
			ws = append(ws, w)
		}
		if s.Failure != nil {
			return
		}
	}
	for _, w := range ws {
		n := s.nodes[w.node]
		s.flush(n)
		w.acked = true
		s.byVer[w.version] = w
		s.madeDurable(n, w.version)
		s.Stats.Acked++
		s.tracef("n%d wrote %s/%s at %s (same instant)", n.idx, w.model, w.id, w.version)
	}
	for i := range ws {
		for j := i + 1; j < len(ws); j++ {
			a, b := ws[i].version, ws[j].version
			if a.Timestamp == b.Timestamp && a.Counter == b.Counter {
				s.Stats.Ties++
			}
		}
	}
}

// join makes node n a member; with away, it stays unreachable that long
// (its fellow members must hold pruning back for it all the same).
func (s *Sim) join(n *node, away time.Duration) {
	s.Stats.Joins++
	s.addedAt[n.idx] = s.now
	set := map[int]bool{n.idx: true}
	for i := range s.members {
		set[i] = true
	}
	s.tracef("n%d joins the library (away for %v)", n.idx, away)
	if away > 0 {
		n.silent = true
		s.at(away, func() {
			s.tracef("n%d is reachable", n.idx)
			n.silent = false
			s.reconcile()
		})
	}
	s.setMembers(set)
}

// removeOne removes one member for good (not the byzantine one, and never
// below two members).
func (s *Sim) removeOne() {
	var cands []int
	for i, n := range s.nodes {
		if s.isMember(i) && !n.byz {
			cands = append(cands, i)
		}
	}
	if len(cands) < 3 {
		return
	}
	v := cands[s.rng.Intn(len(cands))]
	s.Stats.Removals++
	s.removed[v] = true
	set := make(map[int]bool)
	for i := range s.nodes {
		if s.isMember(i) && i != v {
			set[i] = true
		}
	}
	s.tracef("n%d is removed from the library", v)
	s.setMembers(set)
}
