package sim

import (
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/store"
)

// ---- scripted scenarios ----

// NewScenario returns a run with no random faults, ticking and connected,
// for scripted tests: the caller cuts, crashes, writes and settles by hand.
func NewScenario(nodes int, seed int64) *Sim {
	s := New(Config{Seed: seed, Nodes: nodes})
	s.chaosEnd = s.now // no random drops, duplicates or cuts
	s.at(tickEvery, s.tick)
	s.reconcile()
	return s
}

// Settle runs the scenario for d of simulated time.
func (s *Sim) Settle(d time.Duration) { s.runUntil(s.now.Add(d)) }

// Now returns the scenario's simulated time.
func (s *Sim) Now() time.Time { return s.now }

// Cut separates node i from node j (both ways) until Join.
func (s *Sim) Cut(i, j int) {
	s.cut[pairOf(i, j)] = true
	s.reconcile()
}

// Isolate cuts node i from every other node.
func (s *Sim) Isolate(i int) {
	for j := range s.nodes {
		if j != i {
			s.cut[pairOf(i, j)] = true
		}
	}
	s.reconcile()
}

// Join undoes every cut involving node i.
func (s *Sim) Join(i int) {
	for j := range s.nodes {
		delete(s.cut, pairOf(i, j))
	}
	s.reconcile()
}

// Crash kills node i; Restart brings it back over its store.
func (s *Sim) Crash(i int) { s.crash(s.nodes[i]) }

// Restart brings node i back over its store after Crash.
func (s *Sim) Restart(i int) { s.restart(s.nodes[i]) }

// SetSkew sets how far node i's wall clock runs ahead (negative: behind).
func (s *Sim) SetSkew(i int, d time.Duration) { s.setSkew(s.nodes[i], d) }

// Node returns node i's engine and store.
func (s *Sim) Node(i int) (*engine.Engine, store.Store) { return s.nodes[i].eng, s.nodes[i].st }

// Library returns the scenario's library.
func (s *Sim) Library() uuid.UUID { return s.lib.ID }

// Device returns node i's device ID.
func (s *Sim) Device(i int) uuid.UUID { return s.nodes[i].id }

// Write makes one acknowledged local write on node i: a put (data non-nil)
// or a delete (data nil) of model/id, with the strategy of the model type.
func (s *Sim) Write(i int, model string, id uuid.UUID, data []byte) (hlc.HLC, error) {
	return s.WriteAll([]int{i}, model, id, data)
}

// WriteAll makes the same write on each of the nodes at the same instant
// (their HLCs tie on timestamp and counter when their clocks allow), each
// acknowledged, and returns the last one's HLC.
func (s *Sim) WriteAll(nodes []int, model string, id uuid.UUID, data []byte) (hlc.HLC, error) {
	var ws []*write
	for _, i := range nodes {
		n := s.nodes[i]
		var (
			h   hlc.HLC
			err error
		)
		owned := Registry().Strategy(model) == engine.DeviceOwned
		switch {
		case owned && data != nil:
			h, err = n.eng.PutOwned(s.wall(n), s.lib.ID, model, id, data)
		case owned:
			h, err = n.eng.DeleteOwned(s.wall(n), s.lib.ID, model, id)
		case data != nil:
			h, err = n.eng.PutShared(s.wall(n), s.lib.ID, model, id, data)
		default:
			h, err = n.eng.DeleteShared(s.wall(n), s.lib.ID, model, id)
		}
		if err != nil {
			return h, err
		}
		if owned {
			s.ownerOf[id] = i
		}
		w := &write{node: i, model: model, id: id, version: h, deleted: data == nil, data: data}
		s.writes = append(s.writes, w)
		s.issued[h] = w
		ws = append(ws, w)
	}
	var last hlc.HLC
	for _, w := range ws {
		n := s.nodes[w.node]
		s.flush(n)
		w.acked = true
		s.byVer[w.version] = w
		s.madeDurable(n, w.version)
		last = w.version
	}
	return last, nil
}

// Record returns node i's stored state of model/id (ok false if absent).
func (s *Sim) Record(i int, model string, id uuid.UUID) (store.Record, bool) {
	r, err := s.nodes[i].st.Record(store.RecordKey{Library: s.lib.ID, ModelType: model, ID: id})
	if err != nil {
		return store.Record{}, false
	}
	return r, true
}

// Check verifies the invariants now, as at the end of a random run.
func (s *Sim) Check() error {
	if s.Failure == nil {
		s.check()
	}
	return s.Failure
}

// Err returns the first failure seen so far (nil if none): the checks that
// run as the scenario goes (clocks, skew, pruning, snapshots).
func (s *Sim) Err() error { return s.Failure }

// Converged reports whether every node holds the same records.
func (s *Sim) Converged() bool { return s.converged() }

// UUID returns a deterministic new UUID.
func (s *Sim) UUID() uuid.UUID { return s.uuid() }

// Received returns the number of entries and bytes node i was sent in
// catch-up pages since the counter was last reset.
func (s *Sim) Received(i int) (entries, bytes int) {
	return s.nodes[i].pageEntries, s.nodes[i].pageBytes
}

// ResetReceived zeroes node i's page counters.
func (s *Sim) ResetReceived(i int) { s.nodes[i].pageEntries, s.nodes[i].pageBytes = 0, 0 }

// SetMembers replaces the member list on every running node (a node that is
// down gets it when it restarts). Nodes not listed before are added now.
func (s *Sim) SetMembers(idx ...int) {
	set := make(map[int]bool)
	for _, i := range idx {
		set[i] = true
		if !s.isMember(i) {
			s.addedAt[i] = s.now
		}
	}
	s.setMembers(set)
}
