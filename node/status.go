package node

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/store"
)

// LibraryInfo names one library this node holds.
type LibraryInfo struct {
	ID uuid.UUID
	// Name is the library's name on this node: its own name, or, when this
	// node held another library of that name when it joined, the name with
	// a number (names are unique on a node).
	Name string
	// CreatedAt is when the library was created (the creator's clock), the
	// same on every member. A library joined from an inviter older than
	// December 2026 has the time of the join instead.
	CreatedAt time.Time
	// Removed is set when this device was removed from the library: it no
	// longer syncs it, and refuses writes to it.
	Removed *Removal
}

// Libraries lists the libraries this node holds, by ID.
func (n *Node) Libraries() ([]LibraryInfo, error) {
	if err := n.ready(); err != nil {
		return nil, err
	}
	libs, err := n.st.Libraries()
	if err != nil {
		return nil, fmt.Errorf("node: reading libraries: %w", err)
	}
	out := make([]LibraryInfo, 0, len(libs))
	for _, l := range libs {
		li := LibraryInfo{ID: l.ID, Name: n.localName(l), CreatedAt: time.UnixMilli(int64(l.CreatedAt)).UTC()}
		n.mu.Lock()
		if r, ok := n.removed[l.ID]; ok {
			li.Removed = &r
		}
		n.mu.Unlock()
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out, nil
}

// metaName + library ID: the library's name on this node, when its own
// name was taken by another library when this node joined it.
const metaName = "node/name/"

// localName is a library's name on this node.
func (n *Node) localName(l store.Library) string {
	if b, err := n.st.Meta(metaName + l.ID.String()); err == nil && len(b) > 0 {
		return string(b)
	}
	return l.Name
}

// uniqueName gives lib, which this node is joining, a name of its own on
// this node if another library has its name: "photos (2)", "photos (3)"...
// The library keeps its own name (invites from this node carry it).
func (n *Node) uniqueName(lib store.Library) error {
	name := lib.Name
	for i := 2; n.nameFree(name, lib.ID) != nil; i++ {
		if i > 1000 {
			return fmt.Errorf("%w: %q", ErrNameTaken, lib.Name)
		}
		name = fmt.Sprintf("%s (%d)", lib.Name, i)
	}
	b := &store.Batch{}
	if name != lib.Name {
		b.PutMeta = map[string][]byte{metaName + lib.ID.String(): []byte(name)}
		n.log.Info("the joined library's name is taken on this node: it goes by another name here", "library", lib.ID, "name", lib.Name, "here", name)
	} else {
		b.DropMeta = []string{metaName + lib.ID.String()}
	}
	if err := n.st.Apply(b); err != nil {
		return fmt.Errorf("node: storing the library's name: %w", err)
	}
	return nil
}

// DeviceName returns the name this device gives itself in libraries.
func (n *Node) DeviceName() string { return n.deviceName() }

// Registry returns the model types the node syncs.
func (n *Node) Registry() *engine.Registry { return n.cfg.Registry }

// LibraryStatus is what a person asks of one library: who its members are,
// how each peer is doing, and how much history is kept.
type LibraryStatus struct {
	LibraryInfo
	// Members are the library's devices, this one included.
	Members []Member
	// Peers is the sync state of every other member.
	Peers []PeerState
	// Quarantined counts received changes held back because their clocks
	// were too far ahead of this device's.
	Quarantined int
	// LogEntries counts the shared changes kept in the log (not yet pruned).
	LogEntries int
	// PrunedUpTo is the newest point up to which the log of some stream was
	// pruned (zero if nothing was pruned yet); Horizon is how long a silent
	// member holds pruning back.
	PrunedUpTo time.Time
	Horizon    time.Duration
	// Received counts the records and changes received from other devices
	// since the node started (backfill progress).
	Received int
	// Backfill is the progress of the initial backfill after a join, if one
	// is known: Expected is how many records the inviter held.
	Backfill *Backfill
	// CaughtUp is true when no catch-up is in flight and at least one other
	// member is live: this device holds what its peers reported.
	CaughtUp bool
}

// Backfill is the progress of a library's initial backfill.
type Backfill struct {
	// Expected is the number of records (tombstones included) the inviter
	// held when this device joined; Received counts the records received
	// since (each once, however many changes of it arrive), which may end
	// above Expected when members write new records meanwhile.
	Expected, Received int
	// Started is when the join was accepted.
	Started time.Time
	// Done is true once no catch-up is in flight and every connected member
	// is live.
	Done bool
}

// Status reports the library's state. The log is counted from the store's
// keys (a pass over them, values unread).
func (l *Library) Status(ctx context.Context) (LibraryStatus, error) {
	if err := l.check(ctx); err != nil {
		return LibraryStatus{}, err
	}
	n := l.n
	st := LibraryStatus{Horizon: n.cfg.Horizon}
	libs, err := n.Libraries()
	if err != nil {
		return st, err
	}
	for _, li := range libs {
		if li.ID == l.id {
			st.LibraryInfo = li
		}
	}
	if st.Members, err = l.Members(ctx); err != nil {
		return st, err
	}
	if st.Peers, err = l.Peers(ctx); err != nil {
		return st, err
	}
	if err := n.do(ctx, func(time.Time) error {
		st.Quarantined = n.eng.QuarantineCount(l.id)
		return nil
	}); err != nil {
		return st, err
	}
	if err := l.countLog(&st); err != nil {
		return st, err
	}
	st.Received, st.Backfill = n.progress.get(l.id)
	st.CaughtUp = caughtUp(st.Peers)
	if st.Backfill != nil && !st.Backfill.Done && st.CaughtUp {
		n.progress.finish(l.id)
		st.Backfill.Done = true
	}
	return st, nil
}

// caughtUp reports whether no catch-up is in flight and at least one peer
// is live.
func caughtUp(peers []PeerState) bool {
	live := false
	for _, p := range peers {
		switch p.State {
		case "catching up", "connecting":
			return false
		case "live":
			live = true
		}
	}
	return live
}

func (l *Library) countLog(st *LibraryStatus) error {
	n := l.n
	var err error
	if st.LogEntries, err = n.st.CountLog(l.id); err != nil {
		return fmt.Errorf("node: counting the log: %w", err)
	}
	points, err := n.st.PrunePoints(l.id)
	if err != nil {
		return fmt.Errorf("node: reading prune points: %w", err)
	}
	for _, p := range points {
		if t := p.Log; !t.IsZero() && t.Time().After(st.PrunedUpTo) {
			st.PrunedUpTo = t.Time()
		}
	}
	return nil
}

// progressTracker counts what the node received per library, and the
// backfill expected after a join.
type progressTracker struct {
	mu       sync.Mutex
	received map[uuid.UUID]int
	backfill map[uuid.UUID]*backfillState
}

// backfillState is a backfill in progress: its progress, and the records
// counted so far (hashes of model type and ID), so that a record that
// arrives many times (every change of it in the shared log, a live update
// on top) counts once. Once the backfill is done, or beyond maxTracked
// records, seen is dropped and nothing more is counted (beyond maxTracked:
// every change counts, an overestimate bounded in memory).
type backfillState struct {
	Backfill
	seen     map[uint64]struct{}
	finished bool
}

// maxTracked bounds the records a backfill remembers (about 16 bytes each).
const maxTracked = 1 << 21

func (p *progressTracker) add(lib uuid.UUID, events []engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.received == nil {
		p.received = make(map[uuid.UUID]int)
	}
	p.received[lib] += len(events)
	b := p.backfill[lib]
	if b == nil || b.finished {
		return
	}
	for _, ev := range events {
		// Tombstones count: the inviter counted them (countRecords).
		if b.seen == nil {
			b.Received++
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(ev.ModelType))
		h.Write(ev.ID[:])
		k := h.Sum64()
		if _, dup := b.seen[k]; dup {
			continue
		}
		b.Received++
		if len(b.seen) < maxTracked {
			b.seen[k] = struct{}{}
		} else {
			b.seen = nil
		}
	}
}

func (p *progressTracker) expect(lib uuid.UUID, expected int, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.backfill == nil {
		p.backfill = make(map[uuid.UUID]*backfillState)
	}
	p.backfill[lib] = &backfillState{Backfill: Backfill{Expected: expected, Started: now}, seen: make(map[uint64]struct{})}
}

// finish ends lib's backfill: its counts stay as they are.
func (p *progressTracker) finish(lib uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.backfill[lib]; b != nil {
		b.finished, b.seen = true, nil
	}
}

func (p *progressTracker) get(lib uuid.UUID) (int, *Backfill) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b *Backfill
	if bf := p.backfill[lib]; bf != nil {
		c := bf.Backfill
		c.Done = bf.finished
		b = &c
	}
	return p.received[lib], b
}

// countReceived adds the events of other devices to the progress counts.
func (n *Node) countReceived(events []engine.Event) {
	start := 0
	for i := 0; i <= len(events); i++ {
		if i == len(events) || (i > start && events[i].Library != events[start].Library) {
			var batch []engine.Event
			for _, ev := range events[start:i] {
				if ev.By != n.device {
					batch = append(batch, ev)
				}
			}
			if len(batch) > 0 {
				n.progress.add(events[start].Library, batch)
			}
			start = i
		}
	}
}

// countRecords counts the records of a library's registered model types,
// tombstones included (a backfill sends them too), for the backfill estimate
// sent to a joiner. A store.RecordCounter (the Badger store, store.Mem)
// answers at a cost that does not grow with the records; another store is
// scanned.
func countRecords(st store.Reader, reg *engine.Registry, lib uuid.UUID) (int, error) {
	total := 0
	if c, ok := st.(store.RecordCounter); ok {
		counts, err := c.CountRecords(lib)
		if err != nil {
			return 0, err
		}
		for _, s := range []engine.Strategy{engine.DeviceOwned, engine.Shared} {
			for _, model := range reg.Ordered(s) {
				total += counts[model]
			}
		}
		return total, nil
	}
	for _, s := range []engine.Strategy{engine.DeviceOwned, engine.Shared} {
		for _, model := range reg.Ordered(s) {
			after := uuid.Nil
			for {
				page, err := st.List(lib, model, after, 1000)
				if err != nil {
					return 0, err
				}
				total += len(page)
				if len(page) < 1000 {
					break
				}
				after = page[len(page)-1].ID
			}
		}
	}
	return total, nil
}

// EngineStats returns the engine's counters: messages refused and
// quarantined, catch-up pages and records applied, prune rounds.
func (n *Node) EngineStats(ctx context.Context) (engine.Stats, error) {
	var s engine.Stats
	err := n.do(ctx, func(time.Time) error {
		s = n.eng.Stats()
		return nil
	})
	return s, err
}
