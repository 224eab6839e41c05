package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	p2pproto "github.com/libp2p/go-libp2p/core/protocol"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/node/pairing"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/badgerstore"
)

// ProtocolID is the libp2p protocol the node speaks.
const ProtocolID = p2pproto.ID(protocol.ProtocolID)

// serviceName names the node's streams in libp2p's resource manager.
const serviceName = "syncnode"

// Errors of the node's API.
var (
	// ErrClosed is returned by every call after Close, and to late streams.
	ErrClosed = errors.New("node: closed")
	// ErrNotStarted is returned by calls that need Start first.
	ErrNotStarted = errors.New("node: not started")
	// ErrUnknownLibrary is returned for a library the node does not hold.
	ErrUnknownLibrary = engine.ErrUnknownLibrary
	// ErrNotFound is returned for a record that is not stored.
	ErrNotFound = errors.New("node: record not found")
)

// Meta keys of the store.
const (
	metaDevice  = "node/device_id"
	metaHostKey = "node/host_key"
	metaAddrs   = "node/addrs/" // + peer ID: known addresses of a member
)

// Node is one syncnode: an engine driven on a libp2p host over a store. Its
// methods are safe for concurrent use.
type Node struct {
	cfg  Config
	opts options
	log  *slog.Logger

	host     host.Host
	ownsHost bool
	st       store.Store
	ownsSt   bool
	wall     hlc.WallClock
	device   uuid.UUID

	eng    *engine.Engine // touched only by the loop goroutine
	inputs chan *input

	mu       sync.Mutex
	started  bool
	running  bool // Start has finished: host, store, device and engine are set
	closed   bool
	sessions map[sessionKey]*session
	members  map[peer.ID]map[uuid.UUID]uuid.UUID // peer -> library -> device
	// membersChanged is closed (and replaced) whenever members changes.
	membersChanged chan struct{}
	devices        map[uuid.UUID]peer.ID // device -> peer
	serving        map[peer.ID]int       // requests being served per peer
	subs           map[*subscriber]struct{}
	// events is each library's event log; seq numbers events, boot names
	// this run (library.go).
	events   map[uuid.UUID]*eventLog
	seq      uint64
	boot     string
	dialing  map[peer.ID]*dialState
	opening  map[sessionKey]bool
	kick     chan struct{}
	notifiee network.Notifiee // on the host's network, removed by Close
	// pairMu serialises the use of invites; pairFails limits failed
	// pairing attempts per peer.
	pairMu    sync.Mutex
	pairFails map[peer.ID]*pairAttempts
	joins     joinWaits // libraries this node is joining (pair.go)
	// removed are the libraries this device was removed from; gone the
	// devices removed from each library, to tell them (removal.go);
	// noticed when each was last told.
	removed  map[uuid.UUID]Removal
	gone     map[uuid.UUID][]goneMember
	noticed  map[noticeKey]time.Time
	fatal    error
	metrics  Metrics
	progress progressTracker // received records per library, backfill after a join
	wire     wireStats       // messages and bytes by type and direction

	disc discoverer // mDNS and DHT discovery; Join's search for an inviter
	net  netState   // NAT traversal, relays, paths to members

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newBoot returns a random name for one run of a node: 8 hex digits.
func newBoot() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Metrics counts what the node did.
type Metrics struct {
	// Dropped counts live messages dropped because a peer's queue was full.
	Dropped int
	// Refused counts streams and messages refused, by error code name.
	Refused map[string]int
	// Messages counts sync protocol messages and their frame bytes, by
	// message type and direction.
	Messages map[MessageKey]MessageCount
}

// New checks the configuration and prepares a node. It starts nothing: no
// store is opened, no host is built, no goroutine runs until Start.
func New(cfg Config, opts ...Option) (*Node, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.Registry == nil {
		cfg.Registry = engine.DefaultRegistry()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.store == nil && cfg.DataDir == "" {
		return nil, errors.New("node: invalid config: DataDir is required when no store is given (WithStore)")
	}
	n := &Node{
		cfg: cfg, opts: o, log: o.logger, wall: o.wall,
		inputs:    make(chan *input, 1024),
		sessions:  make(map[sessionKey]*session),
		members:   make(map[peer.ID]map[uuid.UUID]uuid.UUID),
		devices:   make(map[uuid.UUID]peer.ID),
		serving:   make(map[peer.ID]int),
		subs:      make(map[*subscriber]struct{}),
		events:    make(map[uuid.UUID]*eventLog),
		boot:      newBoot(),
		dialing:   make(map[peer.ID]*dialState),
		opening:   make(map[sessionKey]bool),
		pairFails: make(map[peer.ID]*pairAttempts),
		removed:   make(map[uuid.UUID]Removal),
		gone:      make(map[uuid.UUID][]goneMember),
		noticed:   make(map[noticeKey]time.Time),
		metrics:   Metrics{Refused: make(map[string]int)},
		net:       newNetState(),
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.wall == nil {
		n.wall = hlc.SystemClock{}
	}
	return n, nil
}

// Start opens the store (unless given), builds the host (unless given),
// loads the engine, registers the protocol handler, starts discovery (if
// Config.Discovery turns a source on) and starts the engine loop and the
// dialer. Stop everything with Close.
func (n *Node) Start(ctx context.Context) (err error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if n.started {
		n.mu.Unlock()
		return errors.New("node: already started")
	}
	n.started = true
	n.mu.Unlock()
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.ctx, n.cancel = context.WithCancel(context.Background())

	if n.opts.store != nil {
		n.st = n.opts.store
	} else {
		opts := badgerstore.DefaultOptions()
		opts.SyncWrites = n.cfg.SyncWrites
		opts.Logger = slog.New(quietBadger{n.log.Handler()}) // Badger's chatter at debug
		st, err := badgerstore.Open(n.cfg.DataDir, opts)
		if err != nil {
			return fmt.Errorf("node: opening store: %w", err)
		}
		n.st, n.ownsSt = st, true
	}
	if n.device, err = n.loadDevice(); err != nil {
		return err
	}
	if n.opts.host != nil {
		n.host = n.opts.host
	} else {
		if n.host, err = n.buildHost(); err != nil {
			return err
		}
		n.ownsHost = true
	}
	eng, err := engine.New(n.cfg.engineConfig(n.device), n.st)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := eng.Load(n.wall.Now()); err != nil {
		return fmt.Errorf("node: loading engine: %w", err)
	}
	n.eng = eng
	if err := n.loadRemovals(); err != nil {
		return err
	}
	n.refreshMembers()
	if err := n.loadAddrs(); err != nil {
		return err
	}
	if err := n.startNAT(); err != nil {
		return err
	}
	n.host.SetStreamHandler(ProtocolID, n.handleStream)
	n.host.SetStreamHandler(p2pproto.ID(pairing.ProtocolID), n.handlePairing)
	n.notifiee = &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.onConnected(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.onDisconnected(c) },
	}
	n.host.Network().Notify(n.notifiee)
	if err := n.startDiscovery(ctx); err != nil {
		return err
	}
	n.wg.Add(2)
	go n.loop()
	go n.dialer()
	n.mu.Lock()
	n.running = true
	n.mu.Unlock()
	n.net.markReady()
	n.log.Info("syncnode started", "device", n.device, "peer", n.host.ID(), "addrs", n.host.Addrs())
	return nil
}

// Close stops the node in the reverse order of Start: the protocol handler
// and the connection notifications are removed (late streams get ErrClosed),
// discovery stops, sessions and the loops stop, the host is closed if the node built it (an
// app's host is left running, with the node's connection protections
// lifted), and the store is closed if the node opened it. It is safe to call
// more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	sessions := make([]*session, 0, len(n.sessions))
	for _, s := range n.sessions {
		sessions = append(sessions, s)
	}
	subs := n.subs
	n.subs = make(map[*subscriber]struct{})
	n.mu.Unlock()

	if n.host != nil {
		n.host.RemoveStreamHandler(ProtocolID)
		n.host.RemoveStreamHandler(p2pproto.ID(pairing.ProtocolID))
		if n.notifiee != nil {
			n.host.Network().StopNotify(n.notifiee)
		}
	}
	n.closeDiscovery()
	n.closeNAT()
	for _, s := range sessions {
		s.close(fmt.Errorf("%w: node closing", protocol.ErrShuttingDown))
	}
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	for s := range subs {
		s.close()
	}
	if n.host != nil && !n.ownsHost {
		// The loop, which protects members, has stopped.
		n.mu.Lock()
		for pid := range n.members {
			n.host.ConnManager().Unprotect(pid, serviceName)
		}
		n.mu.Unlock()
	}
	var errs []error
	if n.ownsHost && n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.ownsSt && n.st != nil {
		errs = append(errs, n.st.Close())
	}
	return errors.Join(errs...)
}

// ready returns ErrClosed after Close, ErrNotStarted before Start has
// finished, and nil when the host, store, device and engine may be used.
func (n *Node) ready() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case !n.running:
		return ErrNotStarted
	}
	return nil
}

// Device returns the node's device ID (valid after Start).
func (n *Node) Device() uuid.UUID { return n.device }

// Host returns the node's libp2p host (valid after Start).
func (n *Node) Host() host.Host { return n.host }

// AddrInfo returns the host's peer ID and listen addresses.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
}

// Metrics returns a copy of the node's counters.
func (n *Node) Metrics() Metrics {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.metrics
	m.Refused = make(map[string]int, len(n.metrics.Refused))
	for k, v := range n.metrics.Refused {
		m.Refused[k] = v
	}
	m.Messages = n.wire.snapshot()
	return m
}

func (n *Node) countRefusal(err error) {
	n.mu.Lock()
	n.metrics.Refused[protocol.CodeOf(err).String()]++
	n.mu.Unlock()
}

// loadDevice reads the device ID from the store, creating it on first start.
func (n *Node) loadDevice() (uuid.UUID, error) {
	b, err := n.st.Meta(metaDevice)
	switch {
	case err == nil:
		id, err := uuid.FromBytes(b)
		if err != nil {
			return uuid.Nil, fmt.Errorf("node: stored device ID is corrupt: %w", err)
		}
		return id, nil
	case !errors.Is(err, store.ErrNotFound):
		return uuid.Nil, fmt.Errorf("node: reading device ID: %w", err)
	}
	id := uuid.New()
	if err := n.st.Apply(&store.Batch{PutMeta: map[string][]byte{metaDevice: id[:]}}); err != nil {
		return uuid.Nil, fmt.Errorf("node: storing device ID: %w", err)
	}
	return id, nil
}

// ---- the engine loop ----

// input is one call into the engine, run on the loop goroutine. done
// receives fn's error, or the error persisting its effects. cost bounds the
// bytes fn may add to the store batch (see groupBudget).
type input struct {
	fn   func(now time.Time) error
	cost int
	done chan error
}

// groupBudget bounds the estimated store bytes of one group of inputs, so
// that the group's batch stays within store.MaxBatchSize: half of it, the
// rest left for what the engine adds on its own (watermarks, acks, the
// clock). An input costlier than the budget runs in a group of its own.
const groupBudget = store.MaxBatchSize / 2

// Costs of inputs, in estimated store bytes: what their records cost a
// store batch (store.EntryCost), plus baseCost for what any input adds
// (watermarks, acks, the clock), plus recordCost/4 per watermark a Hello or
// Heartbeat carries.
const (
	baseCost   = 1 << 10
	recordCost = 1 << 10
)

// writeCost is the cost of a local write of data.
func writeCost(model string, data []byte) int {
	return baseCost + store.EntryCost(model, string(protocol.Update), len(data), true)
}

// messageCost is the cost of feeding m to the engine: what its records
// cost the store batch (engine.MessageStoreCost), and its watermarks.
func messageCost(m protocol.Message) int {
	c := baseCost + engine.MessageStoreCost(m)
	switch m := m.(type) {
	case *protocol.Hello:
		c += len(m.Watermarks) * (recordCost / 4)
	case *protocol.Heartbeat:
		c += len(m.Watermarks) * (recordCost / 4)
	}
	return c
}

// tooCostly refuses a batch or page that would cost the store more than one
// message may (engine.MaxMessageStoreCost): storing it could exceed the
// store's batch limit. The engine never sends one.
func tooCostly(m protocol.Message) error {
	if c := engine.MessageStoreCost(m); c > engine.MaxMessageStoreCost {
		return fmt.Errorf("%w: a %s that costs %d bytes to store, more than the %d one message may: send smaller batches",
			protocol.ErrRateLimited, m.Name(), c, engine.MaxMessageStoreCost)
	}
	return nil
}

// do runs fn on the engine loop and waits until its effects are durable.
func (n *Node) do(ctx context.Context, fn func(now time.Time) error) error {
	return n.doCost(ctx, baseCost, fn)
}

// doCost is do for an input that may write up to cost bytes to the store.
func (n *Node) doCost(ctx context.Context, cost int, fn func(now time.Time) error) error {
	done, err := n.submit(ctx, cost, fn)
	if err != nil {
		return err
	}
	return n.wait(done)
}

// submit queues fn for the engine loop without waiting for it; wait on the
// returned channel (with wait) for its result. Inputs run in the order they
// were submitted.
func (n *Node) submit(ctx context.Context, cost int, fn func(now time.Time) error) (<-chan error, error) {
	n.mu.Lock()
	started, closed, fatal := n.started && n.eng != nil, n.closed, n.fatal
	n.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case fatal != nil:
		return nil, fatal
	case !started:
		return nil, ErrNotStarted
	}
	in := &input{fn: fn, cost: cost, done: make(chan error, 1)}
	select {
	case n.inputs <- in:
		return in.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.ctx.Done():
		return nil, ErrClosed
	}
}

// wait returns the result of a submitted input, once its effects are
// durable.
func (n *Node) wait(done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-n.ctx.Done():
		return ErrClosed
	}
}

// loop owns the engine. It runs inputs in groups (a group shares one store
// batch, which is also what batches live pushes under load; its cost stays
// within groupBudget), ticks the engine, and handles each Ready in the order
// its doc gives.
func (n *Node) loop() {
	defer n.wg.Done()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	group := make([]*input, 0, 256)
	var next *input // taken from inputs, but beyond the last group's budget
	for {
		group = group[:0]
		first, tick := next, false
		next = nil
		if first == nil {
			select {
			case <-n.ctx.Done():
				return
			case first = <-n.inputs:
			case <-ticker.C:
				tick = true
			}
		} else {
			select { // inputs carried over must not starve the timers
			case <-ticker.C:
				tick = true
			default:
			}
		}
		if tick {
			if err := n.eng.Tick(n.wall.Now()); err != nil {
				n.fail(fmt.Errorf("node: engine tick: %w", err))
				return
			}
		}
		if first != nil {
			group = append(group, first)
			cost := first.cost
		drain:
			for len(group) < cap(group) {
				select {
				case in := <-n.inputs:
					if cost+in.cost > groupBudget {
						next = in
						break drain
					}
					group = append(group, in)
					cost += in.cost
				default:
					break drain
				}
			}
		}
		results := make([]error, len(group))
		for i, in := range group {
			results[i] = in.fn(n.wall.Now())
		}
		if err := n.flush(); err != nil {
			n.fail(err)
			for _, in := range group {
				in.done <- err
			}
			return
		}
		n.namespacesAfterFlush()
		for i, in := range group {
			in.done <- results[i]
		}
	}
}

// fail stops the node's engine after a store failure: the engine's view is
// ahead of the store, so nothing more may happen until a restart.
func (n *Node) fail(err error) {
	n.log.Error("syncnode stopping sync", "err", err)
	n.mu.Lock()
	n.fatal = err
	n.mu.Unlock()
	go n.Close()
}

// flush handles the engine's Ready: persist, send, request, disconnect,
// deliver events, advance. When device records changed, the member lists
// follow them, and the Ready that makes is handled too.
func (n *Node) flush() error {
	for i := 0; i < 3 && n.eng.HasReady(); i++ {
		libs, err := n.flushOnce()
		if err != nil {
			return err
		}
		for _, lib := range libs {
			if err := n.syncMembership(n.wall.Now(), lib); err != nil {
				return fmt.Errorf("node: updating members of %s: %w", lib, err)
			}
		}
	}
	return nil
}

// flushOnce handles one Ready and returns the libraries whose device
// records changed in it.
func (n *Node) flushOnce() ([]uuid.UUID, error) {
	rd := n.eng.Ready()
	if !rd.Batch.Empty() {
		if err := n.st.Apply(&rd.Batch); err != nil {
			return nil, fmt.Errorf("node: persisting: %w", err)
		}
	}
	for _, env := range rd.Messages {
		n.send(env)
	}
	for _, r := range rd.Requests {
		n.startRequest(r)
	}
	for _, d := range rd.Disconnects {
		n.log.Info("closing session", "library", d.Library, "device", d.Device, "reason", d.Reason)
		if s := n.session(sessionKey{lib: d.Library, device: d.Device}); s != nil {
			s.close(d.Reason)
		}
	}
	if len(rd.Events) > 0 {
		n.publish(rd.Events)
	}
	n.eng.Advance()
	return deviceEvents(rd.Events), nil
}

// refreshMembers rebuilds the peer/device index from the engine's member
// lists; it runs on the loop goroutine (or before it starts).
func (n *Node) refreshMembers() {
	members := make(map[peer.ID]map[uuid.UUID]uuid.UUID)
	devices := make(map[uuid.UUID]peer.ID)
	for _, lib := range n.eng.Libraries() {
		if n.isRemoved(lib) {
			continue // this device no longer syncs it
		}
		ms, err := n.eng.Members(lib)
		if err != nil {
			continue
		}
		for _, m := range ms {
			pid, err := peer.Decode(m.PeerID)
			if err != nil || m.DeviceID == n.device {
				continue
			}
			if members[pid] == nil {
				members[pid] = make(map[uuid.UUID]uuid.UUID)
			}
			members[pid][lib] = m.DeviceID
			devices[m.DeviceID] = pid
		}
	}
	n.mu.Lock()
	old := n.members
	n.members, n.devices = members, devices
	if n.membersChanged != nil {
		close(n.membersChanged)
	}
	n.membersChanged = make(chan struct{})
	n.mu.Unlock()
	n.libraryChanged()
	if n.host != nil {
		for pid := range old {
			if _, still := members[pid]; !still {
				n.host.ConnManager().Unprotect(pid, serviceName)
			}
		}
		for pid := range members {
			n.host.ConnManager().Protect(pid, serviceName)
			if _, was := old[pid]; !was {
				n.rememberConnectedMember(pid)
			}
		}
	}
	if n.net.relay != nil {
		for _, p := range n.net.relay.Recheck() {
			n.log.Info("relay: moving a reservation to the class of its peer's new membership", "peer", p)
		}
	}
}

// memberDevice returns the device bound to peer p in library lib.
func (n *Node) memberDevice(p peer.ID, lib uuid.UUID) (uuid.UUID, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.members[p][lib]
	return d, ok
}
