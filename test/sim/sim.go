// Package sim is the deterministic simulation that judges the sync engine.
//
// One goroutine drives several node/engine.Engines, each over its own store
// (store.Mem, or store/badgerstore on disk), with a seeded PRNG deciding
// everything: which node writes what (hot records that many devices write,
// and records written once), message delays, drops, duplicates and reorders,
// partitions and heals, crashes (the engine and everything not yet persisted
// are lost, the store is kept), wall clocks that run ahead or behind, a node
// silent for longer than the pruning horizon, devices that join and leave,
// devices that write one record at the same instant, and a member that lies.
// Every message crosses the real protocol codec. Invariants are checked as the
// run goes (clocks, skew, pruning, snapshots, refusals) and after it: the
// network heals, the nodes run until quiet, and check verifies the rest of
// DESIGN.md §3. The same seed always replays the same run.
package sim

import (
	"bytes"
	"container/heap"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/badgerstore"
)

// Config describes one simulated run. LegacyConfig draws only the fields up
// to Silent (the workload the simulation had before issue 12, kept so that
// the regression seeds replay as they were found); RandomConfig draws them
// all.
type Config struct {
	Seed int64
	// Nodes is the number of devices (3 to 7 by default choice), joiners
	// included.
	Nodes int
	// Writes is the number of local writes during the chaos phase.
	Writes int
	// Chaos is how long (simulated) the faulty phase lasts.
	Chaos time.Duration
	// Drop, Dup are probabilities per live message.
	Drop, Dup float64
	// Partitions, Crashes, Skew and Silent switch those faults on. Skew is
	// one node whose clock jumps beyond MaxDrift ahead, then steps back.
	Partitions, Crashes, Skew, Silent bool

	// FreshIDs sends about half of the shared writes to new records that
	// are written once and never again, beside the six hot ones, so that a
	// change that is skipped is not hidden by a later write.
	FreshIDs bool
	// Ties makes two or three devices write one shared record at the same
	// instant, so that HLCs tie on (timestamp, counter) across devices.
	Ties bool
	// Byzantine makes one member also send forged messages: changes claiming
	// another origin, take-overs of records it does not own, lying
	// watermarks and acknowledgements, messages out of place, corrupt
	// catch-up pages, requests and messages in a stranger's name.
	Byzantine bool
	// Joins is how many devices join the library during the chaos (they are
	// among Nodes and are no members before).
	Joins int
	// Remove removes one member for good during the chaos.
	Remove bool
	// Skews lists clock faults, one node each (see SkewKind).
	Skews []SkewKind
	// Fields sends about a third of the writes to a shared-fields model
	// type ("note"): patches of random fields (values and removals) of six
	// hot records, record deletes and re-creations (FieldsConfig).
	Fields bool
	// CrashPoints adds crash points between persisting a Ready and handing
	// out its messages, and restarts a node that crashed while writing
	// (after a delay that may pass the horizon).
	CrashPoints bool
	// Badger stores each node in store/badgerstore under Dir (which the
	// caller creates and removes); a crash closes the store and a restart
	// reopens it.
	Badger bool
	Dir    string

	// Trace, if set, receives a line per event.
	Trace io.Writer
}

// SkewKind is how one node's wall clock is wrong during the chaos.
type SkewKind int

// The clock faults of Config.Skews.
const (
	// FarAhead runs 10 s to 130 s beyond MaxDrift ahead, then steps back:
	// the node's changes are quarantined by the others.
	FarAhead SkewKind = iota + 1
	// NearAhead runs within MaxDrift ahead: its changes are applied and
	// its clock is merged by the others.
	NearAhead
	// NearBehind runs within MaxDrift behind.
	NearBehind
	// FarBehind runs beyond MaxDrift behind: it quarantines everyone's
	// changes until its clock is set right (a step forward).
	FarBehind
)

var skewNames = map[SkewKind]string{FarAhead: "far-ahead", NearAhead: "near-ahead", NearBehind: "near-behind", FarBehind: "far-behind"}

// String returns the kind's name, e.g. "far-ahead".
func (k SkewKind) String() string { return skewNames[k] }

// LegacyConfig derives a run's shape from its seed as the simulation did
// before issue 12: the regression seeds found then replay with it.
func LegacyConfig(seed int64) Config {
	cfg, _ := legacyConfig(seed)
	return cfg
}

func legacyConfig(seed int64) (Config, *rand.Rand) {
	r := rand.New(rand.NewSource(seed ^ 0x5eed))
	return Config{
		Seed:       seed,
		Nodes:      3 + r.Intn(5),
		Writes:     20 + r.Intn(60),
		Chaos:      time.Duration(10+r.Intn(50)) * time.Second,
		Drop:       []float64{0, 0.05, 0.2}[r.Intn(3)],
		Dup:        []float64{0, 0.05, 0.2}[r.Intn(3)],
		Partitions: r.Intn(2) == 0,
		Crashes:    r.Intn(2) == 0,
		Skew:       r.Intn(4) == 0,
		Silent:     r.Intn(4) == 0,
	}, r
}

// RandomConfig derives a run's shape from its seed: the legacy shape, and
// every fault and workload of issue 12 on top.
func RandomConfig(seed int64) Config {
	cfg, r := legacyConfig(seed)
	if cfg.Skew {
		cfg.Skew = false
		cfg.Skews = append(cfg.Skews, FarAhead)
	}
	for _, k := range []SkewKind{NearAhead, NearBehind, FarBehind} {
		if r.Intn(5) == 0 {
			cfg.Skews = append(cfg.Skews, k)
		}
	}
	cfg.FreshIDs = true
	cfg.Ties = r.Intn(2) == 0
	cfg.Byzantine = r.Intn(4) == 0
	cfg.Joins = []int{0, 0, 1, 2}[r.Intn(4)]
	if cfg.Joins > cfg.Nodes-2 {
		cfg.Joins = cfg.Nodes - 2
	}
	cfg.Remove = r.Intn(4) == 0
	cfg.CrashPoints = cfg.Crashes
	return cfg
}

// FieldsConfig is RandomConfig with the shared-fields workload (issue 15):
// every fault of RandomConfig, the byzantine member (which also forges live
// changes of notes that are no patch) and removals (whose writes carry no
// promise: checkFields).
func FieldsConfig(seed int64) Config {
	cfg := RandomConfig(seed)
	cfg.Fields = true
	return cfg
}

// FieldsConfigV1 is the first shared-fields workload, without the byzantine
// member and removals: the regression seeds of issue 15 were found with it.
func FieldsConfigV1(seed int64) Config {
	cfg := FieldsConfig(seed)
	cfg.Byzantine, cfg.Remove = false, false
	return cfg
}

// legacy reports whether the run uses none of issue 12's additions: its
// random choices are then drawn exactly as before them.
func (c Config) legacy() bool {
	return !c.FreshIDs && !c.Fields && !c.Ties && !c.Byzantine && c.Joins == 0 && !c.Remove && len(c.Skews) == 0 && !c.CrashPoints
}

// Engine timing used by the simulation: fast, so that runs are short.
const (
	heartbeat = time.Second
	tickEvery = 250 * time.Millisecond
	horizon   = 40 * time.Second
	maxDrift  = 5 * time.Minute
	// slack is how much earlier than the simulation an engine may judge a
	// member silent, or how much later: the stored last-seen time is up to
	// a second stale and only heartbeats refresh it, and a wall clock may
	// step by less than the peer timeout without the engine seeing a gap.
	slack = 10 * time.Second
)

var models = struct{ owned, shared, fields []string }{
	owned:  []string{"location", "entry"},
	shared: []string{"tag", "album"},
	fields: []string{"note"},
}

// allModels lists every model type of the simulation.
func allModels() []string {
	return append(append(append([]string{}, models.owned...), models.shared...), models.fields...)
}

// Registry is the model types of the simulation: entry depends on location;
// note is shared-fields (only runs with Config.Fields write it).
func Registry() *engine.Registry {
	r, err := engine.NewRegistry(
		engine.ModelType{Name: "location", Strategy: engine.DeviceOwned},
		engine.ModelType{Name: "entry", Strategy: engine.DeviceOwned, DependsOn: []string{"location"}},
		engine.ModelType{Name: "tag", Strategy: engine.Shared},
		engine.ModelType{Name: "album", Strategy: engine.Shared},
		engine.ModelType{Name: "note", Strategy: engine.SharedFields},
	)
	if err != nil {
		panic(err)
	}
	return r
}

// write is one local write the simulation made.
type write struct {
	node    int
	model   string
	id      uuid.UUID
	version hlc.HLC
	deleted bool
	data    []byte
	acked   bool
	// patch marks a write of a shared-fields record: data is the patch.
	patch bool
}

type node struct {
	idx   int
	id    uuid.UUID
	st    store.Store
	dir   string // Badger mode: the store's directory
	eng   *engine.Engine
	up    bool
	skew  time.Duration
	epoch int // bumps on every crash
	// silent nodes have no sessions (past the horizon, or a joiner that
	// is not reachable yet).
	silent bool
	// ceiling is the greatest wall time plus MaxDrift the node ever had: no
	// HLC it holds may be above it (plus a lease window).
	ceiling time.Time
	// byz marks the byzantine member.
	byz bool
	// view is the member list its engine holds, by node index.
	view map[int]bool
	// pageEntries and pageBytes count what catch-up pages brought it.
	pageEntries, pageBytes int
	// lastIssued is the newest HLC this incarnation issued (invariant 4
	// within a run of the engine). durable is the greatest HLC of this device
	// that was persisted or sent in this incarnation, and beforeCrash the
	// greatest of the earlier ones: after a restart, nothing may be issued at
	// or below it.
	lastIssued, durable, beforeCrash hlc.HLC
}

type event struct {
	at  time.Time
	seq int
	fn  func()
}

// queue is the events by (time, order of scheduling).
type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	ev := old[len(old)-1]
	old[len(old)-1] = event{}
	*q = old[:len(old)-1]
	return ev
}

// Sim is one simulated run.
type Sim struct {
	cfg   Config
	rng   *rand.Rand
	start time.Time
	now   time.Time
	lib   store.Library
	nodes []*node
	queue queue
	seq   int
	// link[i][j] is the session epoch of an open session i-j, 0 if closed.
	link    [][]int
	linkSeq int
	cut     map[[2]int]bool // partitioned pairs
	members map[int]bool    // nil: every node is a member
	// addedAt is when each node became a member (its Member.AddedAt).
	addedAt []time.Time
	// removed marks nodes removed from the library for good.
	removed map[int]bool
	writes  []*write
	byVer   map[hlc.HLC]*write // acknowledged writes
	issued  map[hlc.HLC]*write // every write made, acknowledged or not
	ownerOf map[uuid.UUID]int
	shared  []uuid.UUID

	or oracle

	chaosEnd time.Time

	// Failure is the first invariant or protocol failure seen.
	Failure error
	// Stats of the run.
	Stats Stats
}

// Stats counts what a run did.
type Stats struct {
	Messages, Bytes   int
	Pages, PageBytes  int
	Acked, Unacked    int
	Crashes, Parts    int
	Quarantined       int
	Released          int
	Pruned            int
	InvariantsChecked int
	// Simulated is the simulated time of the run; Unquiet counts runs that
	// reached the deadline without going quiet.
	Simulated time.Duration
	Unquiet   int
	// Variants counts the frames of each message variant that crossed the
	// wire (live, requests and pages).
	Variants map[string]int

	// What the sharper workload did.
	FreshWrites     int // writes to records written once
	FieldsChecked   int // shared-fields records checked against the history, per member
	FieldSnapshots  int // snapshot pages of shared-fields types (not judged by invariant 9)
	Ties            int // pairs of writes of one record whose HLCs tie on (timestamp, counter)
	Joins, Removals int
	Skews           map[string]int
	CrashPoints     int // crashes between persisting a Ready and sending it
	LongDowntimes   int // crashed nodes down for longer than the horizon
	Reopens         int // Badger stores closed and reopened by a crash
	// Forged counts the forged messages a byzantine member sent, by kind,
	// and Handled those the receiver refused or took as it must.
	Forged, Handled map[string]int

	// What the checks looked at (each must be more than zero over a run
	// that can produce it, so that no check passes by checking nothing).
	WritesChecked, OwnedChecked, RecordsCompared int
	PruneSafety, PruneProgress, SnapshotsJudged  int
	SkewApplied, QuarantineMirrors               int
}

func (st *Stats) count(m *map[string]int, k string) {
	if *m == nil {
		*m = make(map[string]int)
	}
	(*m)[k]++
}

// New builds a run.
func New(cfg Config) *Sim {
	if cfg.Nodes < 2 {
		cfg.Nodes = 2
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Sim{
		cfg:     cfg,
		rng:     rand.New(rand.NewSource(cfg.Seed)),
		start:   start,
		now:     start,
		byVer:   make(map[hlc.HLC]*write),
		issued:  make(map[hlc.HLC]*write),
		ownerOf: make(map[uuid.UUID]int),
		cut:     make(map[[2]int]bool),
		removed: make(map[int]bool),
	}
	s.lib = store.Library{ID: s.uuid(), Name: "sim", CreatedAt: uint64(s.now.UnixMilli())}
	for i := 0; i < cfg.Nodes; i++ {
		n := &node{idx: i, id: s.uuid()}
		if cfg.Badger {
			n.dir = filepath.Join(cfg.Dir, fmt.Sprintf("seed%d-n%d", cfg.Seed, i))
		} else {
			n.st = store.NewMem()
		}
		s.nodes = append(s.nodes, n)
		s.addedAt = append(s.addedAt, s.now)
	}
	s.or.init(s.nodes)
	// The last Joins nodes join later: until then nobody lists them, and
	// each lists the members and itself.
	initial := make(map[int]bool)
	for i := 0; i < cfg.Nodes-cfg.Joins; i++ {
		initial[i] = true
	}
	if cfg.Joins > 0 {
		s.members = initial
	}
	s.link = make([][]int, cfg.Nodes)
	for i := range s.link {
		s.link[i] = make([]int, cfg.Nodes)
	}
	for i := 0; i < 6; i++ {
		s.shared = append(s.shared, s.uuid())
	}
	for _, n := range s.nodes {
		s.startNode(n)
		if s.Failure != nil {
			return s
		}
		view := initial
		if !initial[n.idx] {
			view = map[int]bool{n.idx: true}
			for i := range initial {
				view[i] = true
			}
		}
		if err := n.eng.AddLibrary(s.wall(n), s.lib, s.memberList(view)); err != nil {
			s.fail("node %d: adding library: %v", n.idx, err)
		}
		s.setView(n, view)
		s.flush(n)
	}
	return s
}

// memberList returns the store.Member list of the nodes in set.
func (s *Sim) memberList(set map[int]bool) []store.Member {
	var out []store.Member
	for i, n := range s.nodes {
		if set[i] {
			out = append(out, store.Member{Library: s.lib.ID, DeviceID: n.id, Name: fmt.Sprintf("n%d", i), AddedAt: uint64(s.addedAt[i].UnixMilli())})
		}
	}
	return out
}

// setView records the member list node n's engine now holds.
func (s *Sim) setView(n *node, set map[int]bool) {
	view := make(map[int]bool, len(set))
	for i, ok := range set {
		if !ok {
			continue
		}
		view[i] = true
		if n.view == nil || !n.view[i] {
			s.or.added(n.idx, i, s.addedAt[i], n.view != nil)
		}
	}
	n.view = view
}

// isMember reports whether node i is a member now.
func (s *Sim) isMember(i int) bool { return s.members == nil || s.members[i] }

// Close releases the stores of a run (Badger mode); it is safe to call twice.
func (s *Sim) Close() {
	for _, n := range s.nodes {
		if n.st != nil && s.cfg.Badger {
			n.st.Close()
			n.st = nil
		}
	}
}

func (s *Sim) uuid() uuid.UUID {
	var u uuid.UUID
	s.rng.Read(u[:])
	u[6] = (u[6] & 0x0f) | 0x40
	u[8] = (u[8] & 0x3f) | 0x80
	return u
}

func (s *Sim) tracef(format string, args ...any) {
	if s.cfg.Trace != nil {
		fmt.Fprintf(s.cfg.Trace, "%8.3fs ", s.now.Sub(s.start).Seconds())
		fmt.Fprintf(s.cfg.Trace, format+"\n", args...)
	}
}

func (s *Sim) fail(format string, args ...any) {
	if s.Failure == nil {
		s.Failure = fmt.Errorf("seed %d at %s: %s", s.cfg.Seed, s.now.Format("15:04:05.000"), fmt.Sprintf(format, args...))
		s.tracef("FAIL %v", s.Failure)
	}
}

func (s *Sim) wall(n *node) time.Time { return s.now.Add(n.skew) }

// setSkew changes node n's clock error, keeping its ceiling.
func (s *Sim) setSkew(n *node, d time.Duration) {
	s.raiseCeiling(n)
	n.skew = d
	s.raiseCeiling(n)
}

func (s *Sim) raiseCeiling(n *node) {
	if c := s.wall(n).Add(maxDrift); c.After(n.ceiling) {
		n.ceiling = c
	}
}

func (s *Sim) at(d time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.queue, event{at: s.now.Add(d), seq: s.seq, fn: fn})
}

// open opens node n's store (Badger mode; Mem stores live as long as the run).
func (s *Sim) open(n *node) bool {
	if !s.cfg.Badger || n.st != nil {
		return true
	}
	opts := badgerstore.DefaultOptions()
	opts.SyncWrites = false // a simulated crash does not cut power
	opts.GCInterval = -1
	st, err := badgerstore.Open(n.dir, opts)
	if err != nil {
		s.fail("node %d: opening its Badger store: %v", n.idx, err)
		return false
	}
	n.st = st
	return true
}

// startNode (re)creates a node's engine over its store.
func (s *Sim) startNode(n *node) {
	if !s.open(n) {
		return
	}
	cfg := engine.Config{
		Device: n.id, Registry: Registry(), PageSize: 7,
		HeartbeatInterval: heartbeat, PeerTimeout: 5 * heartbeat, AckInterval: 300 * time.Millisecond,
		RetryInterval: 500 * time.Millisecond, PruneInterval: 2 * time.Second, Horizon: horizon,
		LastSeenResolution: time.Second, MaxDrift: maxDrift,
	}
	eng, err := engine.New(cfg, n.st)
	if err != nil {
		s.fail("node %d: %v", n.idx, err)
		return
	}
	if err := eng.Load(s.wall(n)); err != nil {
		s.fail("node %d: load: %v", n.idx, err)
		return
	}
	n.eng, n.up = eng, true
	n.lastIssued = hlc.HLC{}
	s.raiseCeiling(n)
	if c, err := n.st.CountQuarantined(s.lib.ID); err == nil && c != eng.QuarantineCount(s.lib.ID) && c <= 10000 {
		s.fail("invariant 5 (skew): n%d's store holds %d quarantined messages, its engine loaded %d", n.idx, c, eng.QuarantineCount(s.lib.ID))
	}
}

// checkIssued checks an HLC the node just issued (invariant 4).
func (s *Sim) checkIssued(n *node, h hlc.HLC, what string) {
	if h.DeviceID != n.id {
		return
	}
	if !n.lastIssued.Less(h) {
		s.fail("invariant 4 (monotonic clock): n%d issued %s at or below %s (%s)", n.idx, h, n.lastIssued, what)
	}
	if !n.beforeCrash.Less(h) {
		s.fail("invariant 4 (monotonic clock): n%d issued %s after a restart, at or below %s which it persisted or sent before", n.idx, h, n.beforeCrash)
	}
	n.lastIssued = h
}

// madeDurable records that an HLC of the node was persisted or sent.
func (s *Sim) madeDurable(n *node, h hlc.HLC) {
	if h.DeviceID == n.id && n.durable.Less(h) {
		n.durable = h
	}
}

// flush hands a node's Ready to the store and the network, as the node
// package does.
func (s *Sim) flush(n *node) {
	s.flushAt(n, false)
}

// flushMayCrash is flush with a crash point between persisting the Ready and
// sending its messages (Config.CrashPoints, during the chaos). The caller
// must check n.up afterwards.
func (s *Sim) flushMayCrash(n *node) {
	s.flushAt(n, true)
}

func (s *Sim) flushAt(n *node, mayCrash bool) {
	if !n.up || !n.eng.HasReady() {
		return
	}
	rd := n.eng.Ready()
	if err := n.st.Apply(&rd.Batch); err != nil {
		s.fail("node %d: persisting: %v", n.idx, err)
		return
	}
	if s.cfg.Badger && (len(rd.Batch.PruneLog) > 0 || len(rd.Batch.PurgeTombstones) > 0) {
		// Deterministic runs: the pruning a batch asks for is done before
		// anything reads the store again.
		if err := n.st.(*badgerstore.Store).WaitPruned(); err != nil {
			s.fail("node %d: pruning: %v", n.idx, err)
			return
		}
	}
	s.persisted(n, &rd)
	if s.cfg.Trace != nil {
		for _, ev := range rd.Events {
			s.tracef("n%d event %s/%s del=%v v=%s", n.idx, ev.ModelType, ev.ID.String()[:8], ev.Deleted, ev.Version)
		}
		for _, m := range rd.Batch.PurgeTombstones {
			s.tracef("n%d purge %s/%s <= %s", n.idx, m.ModelType, m.Origin.String()[:4], m.HLC)
		}
		for _, m := range rd.Batch.PruneLog {
			s.tracef("n%d prune log %s/%s <= %s", n.idx, m.ModelType, m.Origin.String()[:4], m.HLC)
		}
	}
	if mayCrash && s.cfg.CrashPoints && s.chaos() && s.rng.Intn(400) == 0 {
		s.Stats.CrashPoints++
		s.tracef("n%d crashes after persisting a Ready, before sending it", n.idx)
		s.crash(n)
		s.restartAfter(n, s.downtime())
		return
	}
	for _, env := range rd.Messages {
		s.sendLive(n, env)
	}
	for _, r := range rd.Requests {
		s.sendRequest(n, r)
	}
	for _, d := range rd.Disconnects {
		s.tracef("n%d closes session with %s: %v", n.idx, d.Device, d.Reason)
		if j := s.indexOf(d.Device); j >= 0 {
			s.closeLink(n.idx, j)
		}
	}
	n.eng.Advance()
}

// persisted checks what a batch just made durable and records what the
// oracle needs of it.
func (s *Sim) persisted(n *node, rd *engine.Ready) {
	b := &rd.Batch
	// 4: every HLC of this device in the batch now binds a restart.
	for _, r := range b.PutRecords {
		s.madeDurable(n, r.Version)
	}
	for _, e := range b.AppendLog {
		s.madeDurable(n, e.HLC)
	}
	// 5: nothing stamped beyond MaxDrift ahead of this node's wall clock
	// is applied or logged here.
	limit := uint64(s.wall(n).Add(maxDrift).UnixMilli())
	for i, r := range b.PutRecords {
		if i < len(b.Replaced) && b.Replaced[i] == r.Version {
			// The version stays: a shared-fields record merged an older
			// change, or dropped purged field tombstones. It was checked
			// when it was applied (the wall clock may have stepped back
			// since).
			continue
		}
		if r.Version.DeviceID != n.id {
			s.Stats.SkewApplied++
			if r.Version.Timestamp > limit {
				s.fail("invariant 5 (skew): n%d applied %s/%s at %s, more than %v ahead of its wall clock %s", n.idx, r.ModelType, r.ID, r.Version, maxDrift, s.wall(n).Format(time.RFC3339))
			}
		}
	}
	for _, e := range b.AppendLog {
		if e.HLC.DeviceID != n.id && e.HLC.Timestamp > limit {
			s.fail("invariant 5 (skew): n%d logged %s/%s at %s, more than %v ahead of its wall clock", n.idx, e.ModelType, e.RecordID, e.HLC, maxDrift)
		}
	}
	// 5: the engine's quarantine mirrors the store's.
	if len(b.PutQuarantine) > 0 || len(b.DropQuarantine) > 0 {
		c, err := n.st.CountQuarantined(s.lib.ID)
		if err != nil {
			s.fail("n%d counting quarantine: %v", n.idx, err)
		} else if e := n.eng.QuarantineCount(s.lib.ID); c != e {
			s.fail("invariant 5 (skew): n%d's store holds %d quarantined messages, its engine counts %d (a released one stayed stored, or one was lost)", n.idx, c, e)
		}
		s.Stats.QuarantineMirrors++
	}
	// 10: a log is pruned only up to what every active member acknowledged.
	for _, mk := range b.PruneLog {
		s.checkPruneSafe(n, mk)
	}
}

func (s *Sim) indexOf(id uuid.UUID) int {
	for _, n := range s.nodes {
		if n.id == id {
			return n.idx
		}
	}
	return -1
}

// wire encodes and decodes a message, as a real stream would.
func (s *Sim) wire(m protocol.Message) (protocol.Message, int) {
	if s.Stats.Variants == nil {
		s.Stats.Variants = make(map[string]int)
	}
	s.Stats.Variants[m.Name()]++
	b, err := protocol.Encode(m)
	if err != nil {
		s.fail("encoding %s: %v", m.Name(), err)
		return nil, 0
	}
	out, err := protocol.Decode(b)
	if err != nil {
		s.fail("decoding %s: %v", m.Name(), err)
		return nil, 0
	}
	return out, len(b)
}

func (s *Sim) sendLive(from *node, env engine.Envelope) {
	to := s.indexOf(env.To)
	if to < 0 {
		s.fail("n%d sends to unknown device %s", from.idx, env.To)
		return
	}
	epoch := s.link[from.idx][to]
	if epoch == 0 {
		return // the session closed; the message is lost with it
	}
	m, size := s.wire(env.Message)
	if m == nil {
		return
	}
	switch m := m.(type) {
	case *protocol.Hello:
		s.checkIssued(from, m.Clock, "Hello")
		s.madeDurable(from, m.Clock)
	case *protocol.Heartbeat:
		s.checkIssued(from, m.Clock, "Heartbeat")
		s.madeDurable(from, m.Clock)
	}
	s.Stats.Messages++
	s.Stats.Bytes += size
	if s.rng.Float64() < s.cfg.Drop && s.chaos() {
		s.tracef("drop %s n%d->n%d", m.Name(), from.idx, to)
		return
	}
	copies := 1
	if s.rng.Float64() < s.cfg.Dup && s.chaos() {
		copies = 2
	}
	for c := 0; c < copies; c++ {
		delay := time.Duration(1+s.rng.Intn(40)) * time.Millisecond
		s.at(delay, func() {
			if s.link[from.idx][to] != epoch || !s.nodes[to].up {
				return
			}
			dst := s.nodes[to]
			if s.cfg.Trace != nil {
				s.tracef("deliver %s n%d->n%d %s", m.Name(), from.idx, to, describe(m))
			}
			if err := dst.eng.Step(s.wall(dst), from.id, m); err != nil {
				s.fail("n%d refused %s from honest n%d: %v", to, m.Name(), from.idx, err)
				return
			}
			s.heard(dst, from, m)
			s.flushMayCrash(dst)
		})
	}
}

func (s *Sim) sendRequest(from *node, r engine.Request) {
	to := s.indexOf(r.To)
	s.tracef("request %d %s n%d->n%d", r.ID, r.Message.Name(), from.idx, to)
	epoch := s.link[from.idx][to]
	fromEpoch := from.epoch
	done := func(err error) {
		if from.epoch != fromEpoch || !from.up {
			return
		}
		from.eng.RequestDone(s.wall(from), r.ID, err)
		s.flush(from)
	}
	if to < 0 || epoch == 0 {
		s.at(time.Millisecond, func() { done(fmt.Errorf("no session")) })
		return
	}
	req, _ := s.wire(r.Message)
	if req == nil {
		return
	}
	s.at(time.Duration(1+s.rng.Intn(20))*time.Millisecond, func() {
		dst := s.nodes[to]
		if s.link[from.idx][to] != epoch || !dst.up {
			done(fmt.Errorf("stream reset"))
			return
		}
		resp, err := dst.eng.Serve(s.wall(dst), from.id, req)
		if err != nil {
			s.fail("n%d refused %s from honest n%d: %v", to, req.Name(), from.idx, err)
			return
		}
		var pages []protocol.Message
		for {
			m, err := resp.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				s.fail("n%d serving: %v", to, err)
				return
			}
			pages = append(pages, m)
		}
		s.judgeSnapshots(dst, from, pages)
		corrupt := false
		if dst.byz && !from.byz && s.rng.Intn(8) == 0 {
			pages, corrupt = s.corruptPages(dst, from, pages)
			s.Stats.count(&s.Stats.Forged, "corrupt page")
		}
		cutAt := len(pages)
		if s.chaos() && s.rng.Float64() < s.cfg.Drop {
			cutAt = s.rng.Intn(len(pages) + 1)
		}
		delay := time.Duration(0)
		refused := false
		for i, pg := range pages {
			if i == cutAt {
				break
			}
			m, size := s.wire(pg)
			if m == nil {
				return
			}
			s.Stats.Pages++
			s.Stats.PageBytes += size
			delay += time.Duration(1+s.rng.Intn(10)) * time.Millisecond
			last := i == len(pages)-1
			s.at(delay, func() {
				if from.epoch != fromEpoch || !from.up || refused {
					return
				}
				if s.link[from.idx][to] != epoch {
					return // reset; RequestDone follows below
				}
				if s.cfg.Trace != nil {
					s.tracef("page %s n%d->n%d %s", m.Name(), to, from.idx, describe(m))
				}
				from.pageBytes += size
				switch m := m.(type) {
				case *protocol.StateResponse:
					from.pageEntries += len(m.Records)
				case *protocol.SharedChangeResponse:
					from.pageEntries += len(m.Entries)
				}
				err := from.eng.StepResponse(s.wall(from), r.ID, m)
				s.flushMayCrash(from)
				switch {
				case err != nil && corrupt:
					// The corrupt page of a lying responder: the stream
					// is reset, the pages so far are kept.
					refused = true
					s.Stats.count(&s.Stats.Handled, "corrupt page")
					s.tracef("n%d refused a corrupt page from byzantine n%d: %v", from.idx, to, err)
				case err != nil:
					s.fail("n%d refused page from honest n%d: %v", from.idx, to, err)
				case corrupt && last:
					s.fail("n%d accepted every page of a corrupt response from byzantine n%d", from.idx, to)
				}
			})
		}
		s.at(delay+time.Millisecond, func() {
			if cutAt < len(pages) || s.link[from.idx][to] != epoch || refused {
				done(fmt.Errorf("stream reset"))
			} else {
				done(nil)
			}
		})
	})
}

// chaos reports whether the faulty phase is still on.
func (s *Sim) chaos() bool { return s.now.Before(s.chaosEnd) }

// ---- sessions ----

func (s *Sim) canLink(i, j int) bool {
	if !s.isMember(i) || !s.isMember(j) {
		return false
	}
	return i != j && s.nodes[i].up && s.nodes[j].up && !s.nodes[i].silent && !s.nodes[j].silent && !s.cut[pairOf(i, j)]
}

func pairOf(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

func (s *Sim) openLink(i, j int) {
	if s.link[i][j] != 0 || !s.canLink(i, j) {
		return
	}
	s.linkSeq++
	s.link[i][j], s.link[j][i] = s.linkSeq, s.linkSeq
	s.tracef("connect n%d-n%d", i, j)
	for _, pair := range [][2]int{{i, j}, {j, i}} {
		a, b := s.nodes[pair[0]], s.nodes[pair[1]]
		if err := a.eng.Connected(s.wall(a), s.lib.ID, b.id); err != nil {
			s.fail("n%d refused session with member n%d: %v", a.idx, b.idx, err)
		}
	}
	s.flush(s.nodes[i])
	s.flush(s.nodes[j])
}

func (s *Sim) closeLink(i, j int) {
	if s.link[i][j] == 0 {
		return
	}
	s.link[i][j], s.link[j][i] = 0, 0
	s.tracef("disconnect n%d-n%d", i, j)
	for _, pair := range [][2]int{{i, j}, {j, i}} {
		a, b := s.nodes[pair[0]], s.nodes[pair[1]]
		if a.up {
			a.eng.Disconnected(s.wall(a), s.lib.ID, b.id)
			s.flush(a)
		}
	}
}

// reconcile opens every session that can be open and closes the others.
func (s *Sim) reconcile() {
	for i := range s.nodes {
		for j := i + 1; j < len(s.nodes); j++ {
			if s.canLink(i, j) {
				s.openLink(i, j)
			} else {
				s.closeLink(i, j)
			}
		}
	}
}

// ---- faults and workload ----

func (s *Sim) crash(n *node) {
	if !n.up {
		return
	}
	s.tracef("crash n%d", n.idx)
	s.Stats.Crashes++
	n.up, n.eng = false, nil // what was not persisted dies here
	n.epoch++
	n.beforeCrash = hlc.Max(n.beforeCrash, n.durable)
	for j := range s.nodes {
		s.closeLink(n.idx, j)
	}
	if s.cfg.Badger {
		// The store is closed as the process that held it dies, and
		// reopened from its directory on restart: what the store kept in
		// memory (its record filter, its pruning progress) is rebuilt.
		if err := n.st.Close(); err != nil {
			s.fail("n%d closing its store: %v", n.idx, err)
		}
		n.st = nil
		s.Stats.Reopens++
	}
}

func (s *Sim) restart(n *node) {
	if n.up {
		return
	}
	s.tracef("restart n%d", n.idx)
	s.startNode(n)
	if s.Failure != nil {
		return
	}
	s.updateView(n)
	s.reconcile()
}

// downtime is how long a node that crashed stays down: mostly a few seconds,
// sometimes longer than the horizon.
func (s *Sim) downtime() time.Duration {
	if s.rng.Intn(6) == 0 {
		return horizon + time.Duration(s.rng.Intn(20))*time.Second
	}
	return time.Duration(100+s.rng.Intn(8000)) * time.Millisecond
}

// restartAfter schedules a crashed node's restart.
func (s *Sim) restartAfter(n *node, d time.Duration) {
	if d > horizon {
		s.Stats.LongDowntimes++
		s.tracef("n%d stays down for %v, past the horizon", n.idx, d)
	}
	epoch := n.epoch
	s.at(d, func() {
		if n.epoch == epoch {
			s.restart(n)
		}
	})
}

// updateView gives a node's engine the current member list if its own is
// another (it was down when the list changed).
func (s *Sim) updateView(n *node) {
	if s.members == nil {
		return
	}
	want := s.members
	if !s.isMember(n.idx) && !s.removed[n.idx] {
		// A device not yet joined knows the members and itself.
		want = map[int]bool{n.idx: true}
		for i := range s.members {
			if s.members[i] {
				want[i] = true
			}
		}
	}
	same := len(want) == len(n.view)
	for i, ok := range want {
		if ok && !n.view[i] {
			same = false
		}
	}
	if same {
		return
	}
	if err := n.eng.SetMembers(s.wall(n), s.lib.ID, s.memberList(want)); err != nil {
		s.fail("n%d set members: %v", n.idx, err)
		return
	}
	s.setView(n, want)
	s.flush(n)
}

// setMembers makes set the library's members, on every running node (the
// others learn it when they restart).
func (s *Sim) setMembers(set map[int]bool) {
	s.members = set
	for _, n := range s.nodes {
		if n.up {
			s.updateView(n)
		}
	}
	s.reconcile()
}

func (s *Sim) randomWrite() {
	var ups []*node
	for _, n := range s.nodes {
		if n.up && (s.cfg.legacy() || s.isMember(n.idx)) {
			ups = append(ups, n)
		}
	}
	if len(ups) == 0 {
		return
	}
	n := ups[s.rng.Intn(len(ups))]
	// Sometimes a burst of writes lands in one Ready, so that live pushes
	// are coalesced into StateBatch and SharedChangeBatch.
	count := 1
	if s.rng.Intn(4) == 0 {
		count = 2 + s.rng.Intn(5)
	}
	var burst []*write
	for i := 0; i < count; i++ {
		if w := s.writeOne(n); w != nil {
			burst = append(burst, w)
		}
		if s.Failure != nil {
			return
		}
	}
	if len(burst) == 0 {
		return
	}
	// A crash may strike before the writes are durable: then they never
	// returned success, and nothing is promised about them.
	if s.cfg.Crashes && s.chaos() && s.rng.Intn(30) == 0 {
		s.crash(n)
		s.Stats.Unacked += len(burst)
		s.tracef("n%d: %d writes lost in crash (not acknowledged)", n.idx, len(burst))
		if s.cfg.CrashPoints {
			s.restartAfter(n, s.downtime())
		}
		return
	}
	s.flush(n)
	for _, w := range burst {
		w.acked = true
		s.byVer[w.version] = w
		s.madeDurable(n, w.version)
		s.Stats.Acked++
		if s.cfg.Trace != nil {
			s.tracef("n%d wrote %s/%s del=%v at %s%s", n.idx, w.model, w.id, w.deleted, w.version, patchTrace(w))
		}
	}
}

// patchTrace describes a note's patch for the trace: the fields it sets
// and (with a minus) removes.
func patchTrace(w *write) string {
	if !w.patch || w.deleted {
		return ""
	}
	p, err := protocol.DecodeFieldPatch(w.data)
	if err != nil {
		return " (bad patch)"
	}
	names := make([]string, 0, len(p))
	for name, v := range p {
		if bytes.Equal(v, protocol.Undefined) {
			name = "-" + name
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return fmt.Sprintf(" patch %v", names)
}

// writeOne makes one random local write on n, not yet persisted.
func (s *Sim) writeOne(n *node) *write {
	if s.cfg.Fields && s.rng.Intn(3) == 0 {
		return s.writeFields(n)
	}
	data, _ := cbor.Marshal(map[string]any{"n": n.idx, "v": s.rng.Intn(1000)})
	if s.rng.Intn(2) == 0 {
		model := models.owned[s.rng.Intn(len(models.owned))]
		id := s.ownedID(n, model)
		if s.rng.Intn(4) == 0 {
			data = nil
		}
		return s.writeRecord(n, model, id, data)
	}
	model := models.shared[s.rng.Intn(len(models.shared))]
	id := s.shared[s.rng.Intn(len(s.shared))]
	if s.rng.Intn(4) == 0 {
		data = nil
	} else if s.cfg.FreshIDs && s.rng.Intn(2) == 0 || !s.seen(n, model, id) {
		id = s.uuid() // written once, never again
		s.Stats.FreshWrites++
	}
	return s.writeRecord(n, model, id, data)
}

// fieldNames are the fields of the simulation's notes.
var fieldNames = []string{"a", "b", "c", "d"}

// writeFields makes one random write of a note: a delete (one in five), or a
// patch that sets or removes one to three random fields, with values unique
// to the write. A patch of a deleted record re-creates it.
func (s *Sim) writeFields(n *node) *write {
	model := models.fields[0]
	id := s.shared[s.rng.Intn(len(s.shared))]
	if !s.seen(n, model, id) {
		id = s.uuid()
		s.Stats.FreshWrites++
	}
	if s.rng.Intn(5) == 0 {
		return s.writeRecord(n, model, id, nil)
	}
	p := make(map[string]cbor.RawMessage)
	for k := 1 + s.rng.Intn(3); k > 0; k-- {
		name := fieldNames[s.rng.Intn(len(fieldNames))]
		if s.rng.Intn(4) == 0 {
			p[name] = protocol.Undefined
		} else {
			p[name], _ = cbor.Marshal(fmt.Sprintf("n%d-%d", n.idx, s.rng.Intn(1<<30)))
		}
	}
	data, err := protocol.EncodeFieldPatch(p)
	if err != nil {
		s.fail("encoding a patch: %v", err)
		return nil
	}
	w := s.writeRecord(n, model, id, data)
	if w != nil {
		w.patch = true
	}
	return w
}

// seen reports whether node n may write record model/id: a device writes a
// record it has seen (its clock then merged the record's versions) or a new
// one. Every device that was a member from the start may write any hot
// record, seen or not (the stable point of tombstones waits for all of
// them); a device that joined during the run writes a hot record only once
// it holds it. (A joiner whose clock runs behind the library's HLCs could
// otherwise make a write older than a delete that the members purged before
// it joined: see docs/SIMULATION.md, "Known and not fixed".)
func (s *Sim) seen(n *node, model string, id uuid.UUID) bool {
	if s.addedAt[n.idx].Equal(s.start) {
		return true
	}
	_, err := n.st.Record(store.RecordKey{Library: s.lib.ID, ModelType: model, ID: id})
	return err == nil
}

// writeRecord makes one local write on n (a delete when data is nil), not
// yet persisted. It returns nil when there is nothing to delete.
func (s *Sim) writeRecord(n *node, model string, id uuid.UUID, data []byte) *write {
	wall := s.wall(n)
	w := &write{node: n.idx, model: model, id: id, deleted: data == nil, data: data}
	var (
		h   hlc.HLC
		err error
	)
	owned := Registry().Strategy(model) == engine.DeviceOwned
	switch {
	case owned && data == nil:
		h, err = n.eng.DeleteOwned(wall, s.lib.ID, model, id)
	case owned:
		h, err = n.eng.PutOwned(wall, s.lib.ID, model, id, data)
	case data == nil:
		h, err = n.eng.DeleteShared(wall, s.lib.ID, model, id)
	case Registry().FieldMerge(model):
		h, err = n.eng.PatchShared(wall, s.lib.ID, model, id, data)
	default:
		h, err = n.eng.PutShared(wall, s.lib.ID, model, id, data)
	}
	if err != nil {
		if errorsIsNotFound(err) {
			return nil // deleting what is not there
		}
		s.fail("n%d write: %v", n.idx, err)
		return nil
	}
	w.version = h
	s.checkIssued(n, h, "write")
	s.writes = append(s.writes, w)
	s.issued[h] = w
	return w
}

// ownedID picks one of a small pool of record IDs owned by n.
func (s *Sim) ownedID(n *node, model string) uuid.UUID {
	var pool []uuid.UUID
	for id, owner := range s.ownerOf {
		if owner == n.idx {
			pool = append(pool, id)
		}
	}
	sort.Slice(pool, func(i, j int) bool { return bytes.Compare(pool[i][:], pool[j][:]) < 0 })
	if len(pool) < 4 || s.rng.Intn(3) == 0 {
		id := s.uuid()
		s.ownerOf[id] = n.idx
		return id
	}
	return pool[s.rng.Intn(len(pool))]
}

// ---- running ----

// tick is the periodic step of every running node: redial, Tick, flush,
// check the clock.
func (s *Sim) tick() {
	s.reconcile() // redial closed sessions, as the node does with backoff
	for _, n := range s.nodes {
		if n.up {
			if err := n.eng.Tick(s.wall(n)); err != nil {
				s.fail("n%d tick: %v", n.idx, err)
			}
			s.flushMayCrash(n)
			if n.up {
				s.checkSkew(n)
				s.or.observe(s, n)
			}
		}
	}
	s.at(tickEvery, s.tick)
}

// Run plays the whole run: chaos, heal, quiesce, check.
func (s *Sim) Run() error {
	if s.Failure != nil {
		return s.Failure
	}
	start := s.now
	s.chaosEnd = start.Add(s.cfg.Chaos)
	s.reconcile()
	// Ticks for every node, forever (the queue is drained by time).
	s.at(tickEvery, s.tick)
	// Writes spread over the chaos phase.
	for i := 0; i < s.cfg.Writes; i++ {
		d := time.Duration(s.rng.Int63n(int64(s.cfg.Chaos)))
		s.at(d, s.randomWrite)
	}
	s.scheduleFaults()
	if !s.cfg.legacy() {
		s.scheduleMore()
	}
	// Chaos, then heal, then run until everything is quiet.
	s.runUntil(s.chaosEnd)
	s.heal()
	quietFor := 0
	deadline := s.now.Add(maxDrift + 3*horizon)
	for s.Failure == nil && s.now.Before(deadline) {
		s.runUntil(s.now.Add(5 * heartbeat))
		if s.converged() {
			quietFor++
			if quietFor >= 3 {
				break
			}
		} else {
			quietFor = 0
		}
	}
	if quietFor < 3 {
		s.Stats.Unquiet++
	}
	s.Stats.Simulated = s.now.Sub(start)
	if s.Failure == nil {
		s.check()
	}
	for _, n := range s.nodes {
		if n.eng != nil {
			st := n.eng.Stats()
			s.Stats.Quarantined += st.Quarantined
			s.Stats.Released += st.Released
			s.Stats.Pruned += st.Pruned
		}
	}
	return s.Failure
}

func (s *Sim) runUntil(t time.Time) {
	for s.Failure == nil && len(s.queue) > 0 {
		if s.queue[0].at.After(t) {
			break
		}
		ev := heap.Pop(&s.queue).(event)
		s.now = ev.at
		ev.fn()
	}
	if s.now.Before(t) {
		s.now = t
	}
}

func (s *Sim) scheduleFaults() {
	chaos := s.cfg.Chaos
	if s.cfg.Partitions {
		for k := 0; k < 1+s.rng.Intn(3); k++ {
			at := time.Duration(s.rng.Int63n(int64(chaos)))
			dur := time.Duration(1+s.rng.Intn(15)) * time.Second
			s.at(at, func() {
				side := make([]bool, len(s.nodes))
				for i := range side {
					side[i] = s.rng.Intn(2) == 0
				}
				s.Stats.Parts++
				s.tracef("partition %v", side)
				for i := range s.nodes {
					for j := i + 1; j < len(s.nodes); j++ {
						if side[i] != side[j] {
							s.cut[pairOf(i, j)] = true
						}
					}
				}
				s.reconcile()
				s.at(dur, func() {
					s.tracef("heal partition")
					s.cut = make(map[[2]int]bool)
					s.reconcile()
				})
			})
		}
	}
	if s.cfg.Crashes {
		for k := 0; k < 1+s.rng.Intn(4); k++ {
			n := s.nodes[s.rng.Intn(len(s.nodes))]
			at := time.Duration(s.rng.Int63n(int64(chaos)))
			dur := time.Duration(100+s.rng.Intn(8000)) * time.Millisecond
			s.at(at, func() {
				s.crash(n)
				s.at(dur, func() { s.restart(n) })
			})
		}
	}
	if s.cfg.Skew {
		n := s.nodes[s.rng.Intn(len(s.nodes))]
		skew := maxDrift + time.Duration(10+s.rng.Intn(120))*time.Second
		at := time.Duration(s.rng.Int63n(int64(chaos) / 2))
		s.at(at, func() {
			s.tracef("n%d clock jumps %v ahead", n.idx, skew)
			s.setSkew(n, skew)
			s.at(chaos/3, func() {
				s.tracef("n%d clock is set right (steps back)", n.idx)
				s.setSkew(n, 0)
			})
		})
	}
	if s.cfg.Silent {
		n := s.nodes[s.rng.Intn(len(s.nodes))]
		at := time.Duration(s.rng.Int63n(int64(chaos) / 3))
		s.at(at, func() {
			s.tracef("n%d goes silent past the horizon", n.idx)
			n.silent = true
			s.reconcile()
			s.at(horizon+10*time.Second+time.Duration(s.rng.Intn(20))*time.Second, func() {
				s.tracef("n%d returns", n.idx)
				n.silent = false
				s.reconcile()
			})
		})
	}
}

// heal ends every fault: all nodes up, connected, clocks right, no drops.
func (s *Sim) heal() {
	s.tracef("heal all")
	s.cut = make(map[[2]int]bool)
	for _, n := range s.nodes {
		s.setSkew(n, 0)
		n.silent = false
		if !n.up {
			s.startNode(n)
			if s.Failure != nil {
				return
			}
			s.updateView(n)
		}
	}
	s.reconcile()
}

// checkSkew asserts that no node adopted an HLC too far ahead of its wall
// clock (invariant 5): its clock is at most the greatest wall time plus
// MaxDrift it ever had, plus one lease window for a restored clock.
func (s *Sim) checkSkew(n *node) {
	s.raiseCeiling(n)
	c := n.eng.Clock()
	if c.Time().After(n.ceiling.Add(hlc.DefaultLeaseWindow)) {
		s.fail("invariant 5 (skew): n%d's clock is at %s, more than %v ahead of any wall time it had (its wall clock is at %s)", n.idx, c, maxDrift, s.wall(n).Format(time.RFC3339))
	}
}

// describe summarises a message for the trace.
func describe(m protocol.Message) string {
	short := func(h hlc.HLC) string {
		if h.IsZero() {
			return "0"
		}
		return fmt.Sprintf("%d:%d@%s", h.Timestamp%1000000, h.Counter, h.DeviceID.String()[:4])
	}
	switch m := m.(type) {
	case *protocol.StateChange:
		return fmt.Sprintf("%s/%s v=%s prev=%s del=%v", m.ModelType, m.RecordUUID.String()[:8], short(m.Timestamp), short(derefHLC(m.Prev)), m.Deleted)
	case *protocol.StateBatch:
		return fmt.Sprintf("%s owner=%s n=%d prev=%s last=%s", m.ModelType, m.DeviceID.String()[:4], len(m.Records), short(derefHLC(m.Prev)), short(m.Records[len(m.Records)-1].Timestamp))
	case *protocol.SharedChange:
		return fmt.Sprintf("%s/%s v=%s prev=%s %s", m.ModelType, m.RecordUUID.String()[:8], short(m.HLC), short(derefHLC(m.Prev)), m.ChangeType)
	case *protocol.SharedChangeBatch:
		out := ""
		for _, e := range m.Entries {
			out += fmt.Sprintf("[%s/%s v=%s prev=%s %s]", e.ModelType, e.RecordUUID.String()[:8], short(e.HLC), short(derefHLC(e.Prev)), e.ChangeType)
		}
		return out
	case *protocol.StateResponse:
		out := fmt.Sprintf("%s/%s up_to=%s complete=%s snap=%v:", m.ModelType, m.DeviceID.String()[:4], short(m.UpTo), short(m.Complete), m.Snapshot)
		for _, r := range m.Records {
			out += fmt.Sprintf(" %s=%s,del=%v", r.RecordUUID.String()[:8], short(r.Timestamp), r.Deleted)
		}
		return out
	case *protocol.SharedChangeResponse:
		out := fmt.Sprintf("%s/%s up_to=%s complete=%s snap=%v:", m.ModelType, m.DeviceID.String()[:4], short(m.UpTo), short(m.Complete), m.Snapshot)
		for _, e := range m.Entries {
			out += fmt.Sprintf(" %s=%s,%s", e.RecordUUID.String()[:8], short(e.HLC), e.ChangeType)
		}
		return out
	case *protocol.AckSharedChanges:
		return fmt.Sprintf("%s up_to=%s", m.ModelType, short(m.UpToHLC))
	}
	return ""
}

func derefHLC(h *hlc.HLC) hlc.HLC {
	if h == nil {
		return hlc.HLC{}
	}
	return *h
}
