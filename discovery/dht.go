package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// findLimit is the most peers one lookup of a namespace reports.
const findLimit = 100

// DHT finds peers by rendezvous in a Kademlia DHT (go-libp2p-kad-dht with
// libp2p's routing discovery): it advertises the host as a provider of each
// namespace it is given and looks the namespaces up for other providers.
// It advertises only once its routing table holds a peer, renews every
// advertisement at 7/8 of Config.AdvertiseTTL, and looks each namespace up
// at once and then at growing intervals (Config.FindIntervalMin to
// FindIntervalMax). Each namespace has at most one advertisement and one
// lookup in flight.
//
// The DHT's protocol handler is registered on the host; a host that already
// serves the DHT protocol of the same prefix (an app with its own DHT) is
// refused at Start: give ours another prefix or turn it off.
type DHT struct {
	h     host.Host
	cfg   Config
	log   *slog.Logger
	mode  dht.ModeOpt
	boot  []peer.AddrInfo
	proto protocol.ID
	tick  time.Duration

	mu     sync.Mutex
	kad    *dht.IpfsDHT
	rd     *drouting.RoutingDiscovery
	found  func(Peer)
	ns     map[string]*namespace
	closed bool
	err    string
	errAt  time.Time

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Source = (*DHT)(nil)

// namespace is the schedule of one namespace.
type namespace struct {
	ctx        context.Context // cancelled when the namespace is dropped
	cancel     context.CancelFunc
	nextAdv    time.Time
	advRetry   time.Duration
	nextFind   time.Time
	findEvery  time.Duration
	advertised bool // at least once
	advBusy    bool
	findBusy   bool
}

// NewDHT prepares DHT rendezvous on host h with the DHT settings of cfg. It
// starts nothing.
func NewDHT(h host.Host, cfg Config, log *slog.Logger) (*DHT, error) {
	mode, err := parseMode(cfg.DHTMode)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	boot, err := parseBootstrap(cfg.BootstrapPeers)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	d := &DHT{
		h: h, cfg: cfg, log: log, mode: mode, boot: boot,
		proto: protocol.ID(cfg.DHTProtocolPrefix) + "/kad/1.0.0",
		tick:  min(max(cfg.FindIntervalMin/4, 50*time.Millisecond), time.Second),
		ns:    make(map[string]*namespace),
		kick:  make(chan struct{}, 1),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// Name returns "dht".
func (d *DHT) Name() string { return SourceDHT }

// Start joins the DHT (connecting to the bootstrap peers in the
// background) and starts the advertise and lookup schedule.
func (d *DHT) Start(_ context.Context, found func(Peer)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.kad != nil {
		return errors.New("discovery: DHT already started")
	}
	if slices.Contains(d.h.Mux().Protocols(), d.proto) {
		return fmt.Errorf("starting the DHT: the host already serves %s (an app's own DHT?); set another DHTProtocolPrefix or turn the DHT off", d.proto)
	}
	kad, err := dht.New(d.h,
		dht.Mode(d.mode),
		dht.ProtocolPrefix(protocol.ID(d.cfg.DHTProtocolPrefix)),
		dht.BootstrapPeers(d.boot...),
	)
	if err != nil {
		return fmt.Errorf("starting the DHT: %w", err)
	}
	d.kad, d.rd, d.found = kad, drouting.NewRoutingDiscovery(kad), found
	d.wg.Add(1)
	go d.run()
	return nil
}

// Close stops the schedule, waits for advertisements and lookups in flight
// to end, closes the DHT and removes its protocol handler from the host.
func (d *DHT) Close() error {
	d.mu.Lock()
	d.closed = true
	kad := d.kad
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	if kad == nil {
		return nil
	}
	err := kad.Close()
	d.h.RemoveStreamHandler(d.proto)
	if err != nil {
		return fmt.Errorf("closing the DHT: %w", err)
	}
	return nil
}

// SetNamespaces replaces the namespaces advertised and looked up. New ones
// are looked up (and, once the routing table holds a peer, advertised) at
// once; dropped ones stop, their advertisements expire on their own.
func (d *DHT) SetNamespaces(names []string) {
	d.mu.Lock()
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	for n, st := range d.ns {
		if !keep[n] {
			st.cancel()
			delete(d.ns, n)
		}
	}
	added := false
	for n := range keep {
		if _, ok := d.ns[n]; ok || n == "" {
			continue
		}
		ctx, cancel := context.WithCancel(d.ctx)
		d.ns[n] = &namespace{ctx: ctx, cancel: cancel, findEvery: d.cfg.FindIntervalMin}
		added = true
	}
	d.mu.Unlock()
	if added {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// FindSoon looks every namespace up again at once, and then at
// FindIntervalMin growing again: for when the consumer learns of a peer it
// wants (a new member of a library).
func (d *DHT) FindSoon() {
	d.mu.Lock()
	now := time.Now()
	for _, st := range d.ns {
		st.nextFind = now
		st.findEvery = d.cfg.FindIntervalMin
	}
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// FindPeer looks a peer up in the DHT and returns its addresses.
func (d *DHT) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	d.mu.Lock()
	kad, closed := d.kad, d.closed
	d.mu.Unlock()
	switch {
	case closed:
		return peer.AddrInfo{}, ErrClosed
	case kad == nil:
		return peer.AddrInfo{}, ErrNotStarted
	}
	ai, err := kad.FindPeer(ctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("discovery: finding peer %s in the DHT: %w", id, err)
	}
	return ai, nil
}

// RoutingTableSize returns the number of peers in the DHT's routing table
// (0 before Start).
func (d *DHT) RoutingTableSize() int {
	d.mu.Lock()
	kad := d.kad
	d.mu.Unlock()
	if kad == nil {
		return 0
	}
	return kad.RoutingTable().Size()
}

// RoutingPeers returns up to max peers of the DHT's routing table with the
// addresses the host knows for them (none before Start). Autorelay takes
// them as relay candidates: it keeps those that speak the relay protocol.
func (d *DHT) RoutingPeers(max int) []peer.AddrInfo {
	d.mu.Lock()
	kad := d.kad
	d.mu.Unlock()
	if kad == nil || max <= 0 {
		return nil
	}
	var out []peer.AddrInfo
	for _, p := range kad.RoutingTable().ListPeers() {
		if len(out) == max {
			break
		}
		if ai := d.h.Peerstore().PeerInfo(p); len(ai.Addrs) > 0 {
			out = append(out, ai)
		}
	}
	return out
}

func (d *DHT) report(s *SourceStatus) {
	s.RoutingTable = d.RoutingTableSize()
	d.mu.Lock()
	defer d.mu.Unlock()
	s.Namespaces = len(d.ns)
	if d.err != "" && d.errAt.After(s.LastErrorAt) {
		s.LastError, s.LastErrorAt = d.err, d.errAt
	}
}

func (d *DHT) setError(err error) {
	d.mu.Lock()
	d.err, d.errAt = err.Error(), time.Now()
	d.mu.Unlock()
}

// run starts the advertisements and lookups that are due.
func (d *DHT) run() {
	defer d.wg.Done()
	t := time.NewTicker(d.tick)
	defer t.Stop()
	for {
		d.schedule()
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

func (d *DHT) schedule() {
	ready := d.kad.RoutingTable().Size() > 0
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	for name, st := range d.ns {
		if ready && !st.advBusy && !now.Before(st.nextAdv) {
			st.advBusy = true
			d.wg.Add(1)
			go d.advertiseOnce(name, st)
		}
		if !st.findBusy && !now.Before(st.nextFind) {
			st.findBusy = true
			d.wg.Add(1)
			go d.findOnce(name, st)
		}
	}
}

// advertiseOnce advertises one namespace and schedules the next time.
func (d *DHT) advertiseOnce(name string, st *namespace) {
	defer d.wg.Done()
	ttl, err := d.rd.Advertise(st.ctx, name, coredisc.TTL(d.cfg.AdvertiseTTL))
	if err != nil && st.ctx.Err() == nil {
		d.setError(fmt.Errorf("advertising a namespace: %w", err))
		d.log.Debug("DHT advertisement failed", "err", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st.advBusy = false
	now := time.Now()
	if err != nil {
		st.advRetry = min(max(2*st.advRetry, d.cfg.FindIntervalMin), d.cfg.FindIntervalMax)
		st.nextAdv = now.Add(st.advRetry)
		return
	}
	if ttl <= 0 || ttl > d.cfg.AdvertiseTTL {
		ttl = d.cfg.AdvertiseTTL
	}
	st.advRetry = 0
	st.nextAdv = now.Add(ttl * 7 / 8)
	if !st.advertised {
		st.advertised = true
		// Peers that looked before this advertisement landed find it at
		// their next lookup; look again soon too, for those that advertised
		// while this one was on its way.
		st.nextFind = now
		st.findEvery = d.cfg.FindIntervalMin
	}
}

// findOnce looks one namespace up and reports the providers found.
func (d *DHT) findOnce(name string, st *namespace) {
	defer d.wg.Done()
	ctx, cancel := context.WithTimeout(st.ctx, d.cfg.FindTimeout)
	defer cancel()
	ch, err := d.rd.FindPeers(ctx, name, coredisc.Limit(findLimit))
	if err != nil {
		d.setError(fmt.Errorf("looking a namespace up: %w", err))
	} else {
		for ai := range ch {
			if ai.ID == d.h.ID() {
				continue
			}
			addrs := ai.Addrs
			if len(addrs) == 0 {
				addrs = d.h.Peerstore().Addrs(ai.ID)
			}
			d.found(Peer{ID: ai.ID, Addrs: addrs, Source: SourceDHT, Namespace: name})
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st.findBusy = false
	st.nextFind = time.Now().Add(st.findEvery)
	st.findEvery = min(2*st.findEvery, d.cfg.FindIntervalMax)
}
