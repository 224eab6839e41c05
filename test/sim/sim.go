// Package sim is the deterministic simulation that judges the sync engine.
//
// One goroutine drives several node/engine.Engines, each over its own
// store.Mem, with a seeded PRNG deciding everything: which node writes what,
// message delays, drops, duplicates and reorders, partitions and heals,
// crashes (the engine and everything not yet persisted are lost, the store is
// kept), a node whose wall clock runs ahead, and a node silent for longer than
// the pruning horizon. Every message crosses the real protocol codec. After
// the chaos the network heals, the nodes run until quiet, and Check verifies
// the invariants of DESIGN.md §3. The same seed always replays the same run.
package sim

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Config describes one simulated run.
type Config struct {
	Seed int64
	// Nodes is the number of devices (3 to 7 by default choice).
	Nodes int
	// Writes is the number of local writes during the chaos phase.
	Writes int
	// Chaos is how long (simulated) the faulty phase lasts.
	Chaos time.Duration
	// Drop, Dup are probabilities per live message.
	Drop, Dup float64
	// Partitions, Crashes, Skew and Silent switch those faults on.
	Partitions, Crashes, Skew, Silent bool
	// Trace, if set, receives a line per event.
	Trace io.Writer
}

// RandomConfig derives a run's shape from its seed.
func RandomConfig(seed int64) Config {
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
	}
}

// Engine timing used by the simulation: fast, so that runs are short.
const (
	heartbeat = time.Second
	tickEvery = 250 * time.Millisecond
	horizon   = 40 * time.Second
	maxDrift  = 5 * time.Minute
)

var models = struct{ owned, shared []string }{
	owned:  []string{"location", "entry"},
	shared: []string{"tag", "album"},
}

// Registry is the model types of the simulation: entry depends on location.
func Registry() *engine.Registry {
	r, err := engine.NewRegistry(
		engine.ModelType{Name: "location", Strategy: engine.DeviceOwned},
		engine.ModelType{Name: "entry", Strategy: engine.DeviceOwned, DependsOn: []string{"location"}},
		engine.ModelType{Name: "tag", Strategy: engine.Shared},
		engine.ModelType{Name: "album", Strategy: engine.Shared},
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
}

type node struct {
	idx    int
	id     uuid.UUID
	st     *store.Mem
	eng    *engine.Engine
	up     bool
	skew   time.Duration
	epoch  int // bumps on every crash
	silent bool
	// hadSkew is set once the node's wall clock ran ahead.
	hadSkew bool
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

// Sim is one simulated run.
type Sim struct {
	cfg   Config
	rng   *rand.Rand
	now   time.Time
	lib   store.Library
	nodes []*node
	queue []event
	seq   int
	// link[i][j] is the session epoch of an open session i-j, 0 if closed.
	link    [][]int
	linkSeq int
	cut     map[[2]int]bool // partitioned pairs
	members map[int]bool    // nil: every node is a member
	writes  []*write
	byVer   map[hlc.HLC]*write
	ownerOf map[uuid.UUID]int
	shared  []uuid.UUID

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
	// Variants counts the frames of each message variant that crossed the
	// wire (live, requests and pages).
	Variants map[string]int
}

// New builds a run.
func New(cfg Config) *Sim {
	if cfg.Nodes < 2 {
		cfg.Nodes = 2
	}
	s := &Sim{
		cfg:     cfg,
		rng:     rand.New(rand.NewSource(cfg.Seed)),
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		byVer:   make(map[hlc.HLC]*write),
		ownerOf: make(map[uuid.UUID]int),
		cut:     make(map[[2]int]bool),
	}
	s.lib = store.Library{ID: s.uuid(), Name: "sim", CreatedAt: uint64(s.now.UnixMilli())}
	var members []store.Member
	for i := 0; i < cfg.Nodes; i++ {
		n := &node{idx: i, id: s.uuid(), st: store.NewMem()}
		s.nodes = append(s.nodes, n)
		members = append(members, store.Member{Library: s.lib.ID, DeviceID: n.id, Name: fmt.Sprintf("n%d", i), AddedAt: uint64(s.now.UnixMilli())})
	}
	s.link = make([][]int, cfg.Nodes)
	for i := range s.link {
		s.link[i] = make([]int, cfg.Nodes)
	}
	for i := 0; i < 6; i++ {
		s.shared = append(s.shared, s.uuid())
	}
	for _, n := range s.nodes {
		s.start(n)
		if s.Failure != nil {
			return s
		}
		if err := n.eng.AddLibrary(s.wall(n), s.lib, members); err != nil {
			s.fail("node %d: adding library: %v", n.idx, err)
		}
		s.flush(n)
	}
	return s
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
		fmt.Fprintf(s.cfg.Trace, "%8.3fs ", s.now.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).Seconds())
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

func (s *Sim) at(d time.Duration, fn func()) {
	s.seq++
	s.queue = append(s.queue, event{at: s.now.Add(d), seq: s.seq, fn: fn})
}

// start (re)creates a node's engine over its store.
func (s *Sim) start(n *node) {
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
// package does. With crash set, the node dies before the batch is durable.
func (s *Sim) flush(n *node) (persisted bool) {
	if !n.up || !n.eng.HasReady() {
		return true
	}
	rd := n.eng.Ready()
	if err := n.st.Apply(&rd.Batch); err != nil {
		s.fail("node %d: persisting: %v", n.idx, err)
		return false
	}
	if s.cfg.Trace != nil {
		for _, ev := range rd.Events {
			s.tracef("n%d event %s/%s del=%v v=%s", n.idx, ev.ModelType, ev.ID.String()[:8], ev.Deleted, ev.Version)
		}
		for _, m := range rd.Batch.PurgeTombstones {
			s.tracef("n%d purge %s/%s <= %s", n.idx, m.ModelType, m.Origin.String()[:4], m.HLC)
		}
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
	return true
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
			s.tracef("deliver %s n%d->n%d %s", m.Name(), from.idx, to, describe(m))
			if err := dst.eng.Step(s.wall(dst), from.id, m); err != nil {
				s.fail("n%d refused %s from honest n%d: %v", to, m.Name(), from.idx, err)
				return
			}
			s.flush(dst)
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
		cutAt := len(pages)
		if s.chaos() && s.rng.Float64() < s.cfg.Drop {
			cutAt = s.rng.Intn(len(pages) + 1)
		}
		delay := time.Duration(0)
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
			s.at(delay, func() {
				if from.epoch != fromEpoch || !from.up {
					return
				}
				if s.link[from.idx][to] != epoch {
					return // reset; RequestDone follows below
				}
				s.tracef("page %s n%d->n%d %s", m.Name(), to, from.idx, describe(m))
				from.pageBytes += size
				switch m := m.(type) {
				case *protocol.StateResponse:
					from.pageEntries += len(m.Records)
				case *protocol.SharedChangeResponse:
					from.pageEntries += len(m.Entries)
				}
				if err := from.eng.StepResponse(s.wall(from), r.ID, m); err != nil {
					s.fail("n%d refused page from honest n%d: %v", from.idx, to, err)
					return
				}
				s.flush(from)
			})
		}
		s.at(delay+time.Millisecond, func() {
			if cutAt < len(pages) || s.link[from.idx][to] != epoch {
				done(fmt.Errorf("stream reset"))
			} else {
				done(nil)
			}
		})
	})
}

// chaosUntil is when the faulty phase ends.
func (s *Sim) chaos() bool { return s.now.Before(s.chaosEnd) }

// ---- sessions ----

func (s *Sim) canLink(i, j int) bool {
	if s.members != nil && (!s.members[i] || !s.members[j]) {
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
}

func (s *Sim) restart(n *node) {
	if n.up {
		return
	}
	s.tracef("restart n%d", n.idx)
	s.start(n)
	s.reconcile()
}

func (s *Sim) randomWrite() {
	var ups []*node
	for _, n := range s.nodes {
		if n.up {
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
		return
	}
	s.flush(n)
	for _, w := range burst {
		w.acked = true
		s.byVer[w.version] = w
		s.madeDurable(n, w.version)
		s.Stats.Acked++
		s.tracef("n%d wrote %s/%s del=%v at %s", n.idx, w.model, w.id, w.deleted, w.version)
	}
}

// writeOne makes one random local write on n, not yet persisted.
func (s *Sim) writeOne(n *node) *write {
	wall := s.wall(n)
	var (
		w   = &write{node: n.idx}
		h   hlc.HLC
		err error
	)
	data, _ := cbor.Marshal(map[string]any{"n": n.idx, "v": s.rng.Intn(1000)})
	if s.rng.Intn(2) == 0 {
		w.model = models.owned[s.rng.Intn(len(models.owned))]
		w.id = s.ownedID(n, w.model)
		if s.rng.Intn(4) == 0 {
			w.deleted = true
			h, err = n.eng.DeleteOwned(wall, s.lib.ID, w.model, w.id)
		} else {
			w.data = data
			h, err = n.eng.PutOwned(wall, s.lib.ID, w.model, w.id, data)
		}
	} else {
		w.model = models.shared[s.rng.Intn(len(models.shared))]
		w.id = s.shared[s.rng.Intn(len(s.shared))]
		if s.rng.Intn(4) == 0 {
			w.deleted = true
			h, err = n.eng.DeleteShared(wall, s.lib.ID, w.model, w.id)
		} else {
			w.data = data
			h, err = n.eng.PutShared(wall, s.lib.ID, w.model, w.id, data)
		}
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

// Run plays the whole run: chaos, heal, quiesce, check.
func (s *Sim) Run() error {
	if s.Failure != nil {
		return s.Failure
	}
	start := s.now
	s.chaosEnd = start.Add(s.cfg.Chaos)
	s.reconcile()
	// Ticks for every node, forever (the queue is drained by time).
	var tick func()
	tick = func() {
		s.reconcile() // redial closed sessions, as the node does with backoff
		for _, n := range s.nodes {
			if n.up {
				if err := n.eng.Tick(s.wall(n)); err != nil {
					s.fail("n%d tick: %v", n.idx, err)
				}
				s.flush(n)
				s.checkSkew(n)
			}
		}
		s.at(tickEvery, tick)
	}
	s.at(tickEvery, tick)
	// Writes spread over the chaos phase.
	for i := 0; i < s.cfg.Writes; i++ {
		d := time.Duration(s.rng.Int63n(int64(s.cfg.Chaos)))
		s.at(d, s.randomWrite)
	}
	s.scheduleFaults()
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
		sort.Slice(s.queue, func(i, j int) bool {
			if !s.queue[i].at.Equal(s.queue[j].at) {
				return s.queue[i].at.Before(s.queue[j].at)
			}
			return s.queue[i].seq < s.queue[j].seq
		})
		ev := s.queue[0]
		if ev.at.After(t) {
			break
		}
		s.queue = s.queue[1:]
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
			n.skew = skew
			n.hadSkew = true
			s.at(chaos/3, func() {
				s.tracef("n%d clock is set right (steps back)", n.idx)
				n.skew = 0
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
		n.skew = 0
		n.silent = false
		if !n.up {
			s.start(n)
		}
	}
	s.reconcile()
}

// checkSkew asserts that no node adopted an HLC too far ahead of its wall
// clock (invariant 5).
func (s *Sim) checkSkew(n *node) {
	c := n.eng.Clock()
	if n.hadSkew {
		return // its own clock may be ahead: its wall clock was
	}
	limit := s.wall(n).Add(maxDrift)
	if c.DeviceID == n.id {
		// Its own HLCs build on what it merged, and a restart resumes at
		// the persisted lease, up to one lease window further.
		limit = limit.Add(hlc.DefaultLeaseWindow)
	}
	if c.Time().After(limit) {
		s.fail("n%d merged %s, more than %v ahead of its wall clock %s", n.idx, c, maxDrift, s.wall(n).Format(time.RFC3339))
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

// ---- scripted scenarios ----

// NewScenario returns a run with no random faults, ticking and connected,
// for scripted tests: the caller cuts, crashes, writes and settles by hand.
func NewScenario(nodes int, seed int64) *Sim {
	s := New(Config{Seed: seed, Nodes: nodes})
	s.chaosEnd = s.now // no random drops, duplicates or cuts
	var tick func()
	tick = func() {
		s.reconcile()
		for _, n := range s.nodes {
			if n.up {
				if err := n.eng.Tick(s.wall(n)); err != nil {
					s.fail("n%d tick: %v", n.idx, err)
				}
				s.flush(n)
				s.checkSkew(n)
			}
		}
		s.at(tickEvery, tick)
	}
	s.at(tickEvery, tick)
	s.reconcile()
	return s
}

// Settle runs the scenario for d of simulated time.
func (s *Sim) Settle(d time.Duration) { s.runUntil(s.now.Add(d)) }

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
func (s *Sim) Crash(i int)   { s.crash(s.nodes[i]) }
func (s *Sim) Restart(i int) { s.restart(s.nodes[i]) }

// SetSkew sets how far node i's wall clock runs ahead.
func (s *Sim) SetSkew(i int, d time.Duration) {
	s.nodes[i].skew = d
	if d != 0 {
		s.nodes[i].hadSkew = true
	}
}

// Node returns node i's engine and store.
func (s *Sim) Node(i int) (*engine.Engine, *store.Mem) { return s.nodes[i].eng, s.nodes[i].st }

// Library returns the scenario's library.
func (s *Sim) Library() uuid.UUID { return s.lib.ID }

// Device returns node i's device ID.
func (s *Sim) Device(i int) uuid.UUID { return s.nodes[i].id }

// Write makes one acknowledged local write on node i: a put (data non-nil)
// or a delete (data nil) of model/id, with the strategy of the model type.
func (s *Sim) Write(i int, model string, id uuid.UUID, data []byte) (hlc.HLC, error) {
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
	w := &write{node: i, model: model, id: id, version: h, deleted: data == nil, data: data, acked: true}
	s.writes = append(s.writes, w)
	s.byVer[h] = w
	s.flush(n)
	s.madeDurable(n, h)
	return h, nil
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

// SetMembers replaces the member list on every running node.
func (s *Sim) SetMembers(idx ...int) {
	var members []store.Member
	for _, i := range idx {
		n := s.nodes[i]
		members = append(members, store.Member{Library: s.lib.ID, DeviceID: n.id, Name: fmt.Sprintf("n%d", i), AddedAt: uint64(s.now.UnixMilli())})
	}
	s.members = map[int]bool{}
	for _, i := range idx {
		s.members[i] = true
	}
	for _, n := range s.nodes {
		if n.up {
			if err := n.eng.SetMembers(s.wall(n), s.lib.ID, members); err != nil {
				s.fail("n%d set members: %v", n.idx, err)
			}
			s.flush(n)
		}
	}
	s.reconcile()
}
