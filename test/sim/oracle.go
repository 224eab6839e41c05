package sim

import (
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// oracle is what the simulation knows, independently of the engines, about
// who heard from whom and who acknowledged what: enough to judge pruning
// (invariant 10) and snapshots (invariant 9) while the run goes.
type oracle struct {
	// contact[x][m] is the last simulated time x had a Hello or Heartbeat
	// from member m, or listed m anew (its Member.AddedAt).
	contact [][]time.Time
	// reported holds, per (x, m, model type, origin), the greatest HLC
	// member m told x it holds of that stream (in Hello, Heartbeat and
	// AckSharedChanges): x's acknowledgements. See slot.
	reported []hlc.HLC
	// pastHorizon[x][m] is set once x had not heard from m for nearly the
	// horizon: from then on x may treat m as silent, and serve it snapshots.
	pastHorizon [][]bool
	// newcomer[x][m] is set when x's member list gained m during the run
	// (a device that joined, or came back): x may serve it snapshots.
	newcomer [][]bool
	// node and model number the origins and model types of reported.
	node  map[uuid.UUID]int
	model map[string]int
	n     int
}

func (o *oracle) init(nodes []*node) {
	n := len(nodes)
	o.n = n
	o.contact = make([][]time.Time, n)
	o.pastHorizon = make([][]bool, n)
	o.newcomer = make([][]bool, n)
	for i := range o.contact {
		o.contact[i] = make([]time.Time, n)
		o.pastHorizon[i] = make([]bool, n)
		o.newcomer[i] = make([]bool, n)
	}
	o.node = make(map[uuid.UUID]int, n)
	for _, nd := range nodes {
		o.node[nd.id] = nd.idx
	}
	o.model = make(map[string]int)
	for i, m := range allModels() {
		o.model[m] = i
	}
	o.reported = make([]hlc.HLC, n*n*len(o.model)*n)
}

// slot returns the index in reported of what m told x of stream (model,
// origin), or -1 for a stream of no node or model type of the simulation.
func (o *oracle) slot(x, m int, model string, origin uuid.UUID) int {
	mi, ok := o.model[model]
	oi, ok2 := o.node[origin]
	if !ok || !ok2 {
		return -1
	}
	return ((x*o.n+m)*len(o.model)+mi)*o.n + oi
}

// added records that x's member list gained m, added at the given time:
// anew (fresh) or in the list x started with.
func (o *oracle) added(x, m int, at time.Time, fresh bool) {
	if fresh {
		o.newcomer[x][m] = true
	}
	if at.After(o.contact[x][m]) {
		o.contact[x][m] = at
	}
}

// report records that m told x it holds a stream up to h.
func (o *oracle) report(x, m int, model string, origin uuid.UUID, h hlc.HLC) {
	if i := o.slot(x, m, model, origin); i >= 0 && h.After(o.reported[i]) {
		o.reported[i] = h
	}
}

// acked returns the greatest HLC m told x it holds of a stream.
func (o *oracle) acked(x, m int, model string, origin uuid.UUID) hlc.HLC {
	if i := o.slot(x, m, model, origin); i >= 0 {
		return o.reported[i]
	}
	return hlc.HLC{}
}

// observe marks, at node n's tick, the members n has not heard from for
// nearly the horizon.
func (o *oracle) observe(s *Sim, n *node) {
	for m := range s.nodes {
		if n.view[m] && m != n.idx && s.now.Sub(o.contact[n.idx][m]) >= horizon-slack {
			if !o.pastHorizon[n.idx][m] {
				s.tracef("n%d has not heard from n%d for %v: it may treat it as silent", n.idx, m, s.now.Sub(o.contact[n.idx][m]).Round(time.Millisecond))
			}
			o.pastHorizon[n.idx][m] = true
		}
	}
}

// heard records what dst learned from a message of from that it accepted.
func (s *Sim) heard(dst, from *node, m protocol.Message) {
	var wms []protocol.Watermark
	switch m := m.(type) {
	case *protocol.Hello:
		wms = m.Watermarks
	case *protocol.Heartbeat:
		wms = m.Watermarks
	case *protocol.AckSharedChanges:
		s.or.report(dst.idx, from.idx, m.ModelType, m.UpToHLC.DeviceID, m.UpToHLC)
		return
	default:
		return
	}
	s.or.contact[dst.idx][from.idx] = s.now
	for _, w := range wms {
		s.or.report(dst.idx, from.idx, w.ModelType, w.DeviceID, w.HLC)
	}
}

// checkPruneSafe checks a log prune of node n (invariant 10): the mark is at
// most what every member n heard from within the horizon (less the slack)
// acknowledged of the stream. The stream's origin holds all of it, and the
// byzantine member's acknowledgements may be lies, which harm only itself.
func (s *Sim) checkPruneSafe(n *node, mk store.Mark) {
	for m, mn := range s.nodes {
		if !n.view[m] || m == n.idx || mn.id == mk.Origin || mn.byz {
			continue
		}
		since := s.now.Sub(s.or.contact[n.idx][m])
		if since > horizon-slack {
			continue
		}
		s.Stats.PruneSafety++
		acked := s.or.acked(n.idx, m, mk.ModelType, mk.Origin)
		if acked.Less(mk.HLC) {
			s.fail("invariant 10 (safe pruning): n%d pruned the log of %s/%s up to %s, beyond %s which n%d acknowledged, a member it heard from %v ago (horizon %v)",
				n.idx, mk.ModelType, mk.Origin.String()[:8], mk.HLC, acked, m, since.Round(time.Millisecond), horizon)
			return
		}
	}
}

// judgeSnapshots checks the pages node dst serves to from (invariant 9):
// snapshot pages go only to a device that is new to dst (it joined or came
// back), or that dst may have treated as silent past the horizon, or to the
// byzantine member, whose lies about what it holds earn it snapshots.
func (s *Sim) judgeSnapshots(dst, from *node, pages []protocol.Message) {
	for _, pg := range pages {
		var snap bool
		var model string
		var origin uuid.UUID
		switch m := pg.(type) {
		case *protocol.StateResponse:
			snap, model, origin = m.Snapshot, m.ModelType, m.DeviceID
		case *protocol.SharedChangeResponse:
			snap, model, origin = m.Snapshot, m.ModelType, m.DeviceID
		}
		if !snap {
			continue
		}
		if Registry().FieldMerge(model) {
			// A shared-fields type is served as a snapshot, all its
			// streams at once, to anyone behind a point where the
			// responder's log is incomplete, also one it got as a
			// snapshot itself (PROTOCOL.md §11.4): its catch-up may cost
			// the type's size. Counted, not judged.
			s.Stats.FieldSnapshots++
			continue
		}
		s.Stats.SnapshotsJudged++
		if from.byz || s.or.pastHorizon[dst.idx][from.idx] || s.or.newcomer[dst.idx][from.idx] {
			continue
		}
		s.fail("invariant 9 (catch-up cost): n%d serves a snapshot of %s/%s to n%d, a member that is not new to it and that it heard from %v ago (horizon %v)",
			dst.idx, model, origin.String()[:8], from.idx, s.now.Sub(s.or.contact[dst.idx][from.idx]).Round(time.Millisecond), horizon)
		return
	}
}
