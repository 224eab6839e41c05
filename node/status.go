package node

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/store"
)

// LibraryInfo names one library this node holds.
type LibraryInfo struct {
	ID   uuid.UUID
	Name string
	// CreatedAt is when this node created or joined the library.
	CreatedAt time.Time
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
		out = append(out, LibraryInfo{ID: l.ID, Name: l.Name, CreatedAt: time.UnixMilli(int64(l.CreatedAt)).UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out, nil
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
	// Expected is the number of records the inviter held when this device
	// joined; Received counts records and changes received since.
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
	if st.Backfill != nil {
		st.Backfill.Done = st.CaughtUp
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
	backfill map[uuid.UUID]*Backfill
}

func (p *progressTracker) add(lib uuid.UUID, k int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.received == nil {
		p.received = make(map[uuid.UUID]int)
	}
	p.received[lib] += k
	if b := p.backfill[lib]; b != nil {
		b.Received += k
	}
}

func (p *progressTracker) expect(lib uuid.UUID, expected int, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.backfill == nil {
		p.backfill = make(map[uuid.UUID]*Backfill)
	}
	p.backfill[lib] = &Backfill{Expected: expected, Started: now}
}

func (p *progressTracker) get(lib uuid.UUID) (int, *Backfill) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b *Backfill
	if bf := p.backfill[lib]; bf != nil {
		c := *bf
		b = &c
	}
	return p.received[lib], b
}

// countReceived adds the events of other devices to the progress counts.
func (n *Node) countReceived(events []engine.Event) {
	var lib uuid.UUID
	k := 0
	for _, ev := range events {
		if ev.By == n.device {
			continue
		}
		if ev.Library != lib && k > 0 {
			n.progress.add(lib, k)
			k = 0
		}
		lib = ev.Library
		k++
	}
	if k > 0 {
		n.progress.add(lib, k)
	}
}

// countRecords counts the records (tombstones excluded) of a library, by
// model type, for the backfill estimate sent to a joiner.
func countRecords(st store.Reader, reg *engine.Registry, lib uuid.UUID) (int, error) {
	total := 0
	for _, s := range []engine.Strategy{engine.DeviceOwned, engine.Shared} {
		for _, model := range reg.Ordered(s) {
			after := uuid.Nil
			for {
				page, err := st.List(lib, model, after, 1000)
				if err != nil {
					return 0, err
				}
				for _, r := range page {
					if !r.Deleted {
						total++
					}
				}
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
