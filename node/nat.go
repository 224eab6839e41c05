package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/syncnode/syncnode/node/relayservice"
)

// punchSettle is how long the node must have known a public address of its
// own before it asks the hole-punch service to punch: the service looks for
// one at most every 5 s, and waits for one before it punches (forever, if
// none comes).
const punchSettle = 6 * time.Second

// observationRefresh is the least time between two refreshObservations,
// and maxRefreshed the most peers one reconnects to.
const (
	observationRefresh = 2 * time.Minute
	maxRefreshed       = 4
	// relayedStale is how long a member once reached directly must have
	// been reached through a relay only before refreshObservations.
	relayedStale = 20 * time.Second
)

// directSettle is how long a direct connection must have been open before
// sessions leave a relayed one for it.
const directSettle = time.Second

// maxObservers bounds the observations kept per local address (NAT type).
const maxObservers = 16

// errMovedToDirect closes a session that ran over a relay once a direct
// connection to its peer exists; the dialer opens it again over that one.
var errMovedToDirect = errors.New("moving to a direct connection")

// netState is what the node knows of its own place in the network and of
// the paths to its members: the parts of libp2p it drives (port mapping,
// observed addresses, hole punching, its relay service), the relays it has
// reservations with, what peers saw of its addresses (the NAT's type), and
// the hole punches it tried.
type netState struct {
	// ready is closed once Start finished: the host and discovery exist
	// (autorelay may ask for candidates before).
	ready     chan struct{}
	readyOnce sync.Once

	hps      *holepunch.Service    // nil unless NAT.HolePunching on our host
	relay    *relayservice.Service // nil unless Relay.Enabled on our host
	relaySub event.Subscription    // autorelay's relayed addresses, and disconnections
	static   []peer.AddrInfo       // NAT.Relays

	mu           sync.Mutex
	natmgr       bhost.NATManager
	observed     bhost.ObservedAddrsManager
	relayAddrs   []ma.Multiaddr
	publicSince  time.Time                                // since when hole punching has a public address of ours
	observations map[string]map[netip.Addr]netip.AddrPort // local "transport/port" -> observer IP -> what it saw
	punches      map[peer.ID]*punchState
	refreshed    time.Time // last refreshObservations
}

// punchState is the hole punching with one member.
type punchState struct {
	next        time.Time
	backoff     time.Duration
	busy        bool
	attempts    int
	failures    int
	failedInRow int
	// wasDirect: the member was reached directly once; relayedSince:
	// since when only a relay reaches it (zero when not so).
	wasDirect    bool
	relayedSince time.Time
	lastErr      string
	lastAt       time.Time
	succeeded    time.Time
}

func newNetState() netState {
	return netState{ready: make(chan struct{})}
}

func (s *netState) setObserved(o bhost.ObservedAddrsManager) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observed = o
}

func (s *netState) setNATManager(m bhost.NATManager) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.natmgr = m
}

// markReady lets relayCandidates use the host and discovery.
func (s *netState) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// startNAT runs once the host exists: hole punching and the relay service
// on the node's own host, the static relays in the peerstore, and the
// watch of autorelay's reservations.
func (n *Node) startNAT() error {
	if !n.ownsHost {
		return nil
	}
	static, err := parseRelays(n.cfg.NAT.Relays)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.net.static = static
	for _, r := range static {
		n.host.Peerstore().AddAddrs(r.ID, r.Addrs, peerstore.PermanentAddrTTL)
	}
	if n.cfg.NAT.HolePunching {
		ids, ok := n.host.(interface{ IDService() identify.IDService })
		if !ok {
			return errors.New("node: the libp2p host has no identify service to punch holes with")
		}
		h := n.host
		svc, err := holepunch.NewService(h, ids.IDService(), func() []ma.Multiaddr { return n.holePunchAddrs() })
		if err != nil {
			return fmt.Errorf("node: starting hole punching: %w", err)
		}
		n.net.hps = svc
	}
	if n.cfg.Relay.Enabled {
		svc, err := relayservice.New(n.host, n.isMember, n.cfg.Relay.Config)
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		if err := svc.Start(); err != nil {
			return fmt.Errorf("node: starting the relay service: %w", err)
		}
		n.net.relay = svc
	}
	if n.cfg.NAT.AutoRelay && n.cfg.NAT.Reachability == ReachabilityAuto {
		// AutoNAT says nothing until its first probe (15 s or more after
		// start), and autorelay waits for it: say "unknown" now, which is
		// the truth, so that a node behind a NAT has a relay in seconds.
		// AutoNAT's verdict replaces it (public stops the relay search).
		em, err := n.host.EventBus().Emitter(new(event.EvtLocalReachabilityChanged))
		if err != nil {
			return fmt.Errorf("node: announcing reachability: %w", err)
		}
		_ = em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityUnknown})
		_ = em.Close()
	}
	sub, err := n.host.EventBus().Subscribe([]any{new(event.EvtAutoRelayAddrsUpdated), new(event.EvtPeerConnectednessChanged)},
		eventbus.Name("syncnode relays"), eventbus.BufSize(64))
	if err != nil {
		return fmt.Errorf("node: subscribing to relay addresses: %w", err)
	}
	n.net.relaySub = sub
	n.wg.Add(1)
	go n.watchRelayAddrs(sub)
	return nil
}

// closeNAT stops what startNAT started; Close calls it before the host
// closes.
func (n *Node) closeNAT() {
	n.net.markReady()
	if n.net.relay != nil {
		_ = n.net.relay.Close()
	}
	if n.net.hps != nil {
		_ = n.net.hps.Close()
	}
	if n.net.relaySub != nil {
		_ = n.net.relaySub.Close()
	}
}

// isMember reports whether p is a member of any library this node holds.
func (n *Node) isMember(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.members[p]
	return ok
}

func (n *Node) watchRelayAddrs(sub event.Subscription) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch ev := e.(type) {
			case event.EvtAutoRelayAddrsUpdated:
				n.net.mu.Lock()
				n.net.relayAddrs = slices.Clone(ev.RelayAddrs)
				n.net.mu.Unlock()
				n.log.Info("relayed addresses", "addrs", ev.RelayAddrs)
				// Members may have got relayed addresses too by now:
				// look them up again rather than at the next interval.
				if n.disc.svc != nil && len(ev.RelayAddrs) > 0 {
					n.disc.svc.FindSoon()
				}
			case event.EvtPeerConnectednessChanged:
				// Autorelay forgets a relay that disconnects, and its
				// reservation with it, but leaves it protected; status
				// reads reservations from the protection (see Network).
				cm := n.host.ConnManager()
				if ev.Connectedness == network.NotConnected && cm.IsProtected(ev.Peer, autorelayTag) &&
					n.host.Network().Connectedness(ev.Peer) == network.NotConnected {
					cm.Unprotect(ev.Peer, autorelayTag)
				}
			}
		}
	}
}

// holePunchAddrs are the public addresses a hole punch tells the other side
// to dial: the host's own (listen, port-mapped, and observed by enough
// peers) and those observed by one peer only (as libp2p's own host does).
func (n *Node) holePunchAddrs() []ma.Multiaddr {
	var addrs []ma.Multiaddr
	if all, ok := n.host.(interface{ AllAddrs() []ma.Multiaddr }); ok {
		addrs = all.AllAddrs()
	} else {
		addrs = n.host.Addrs()
	}
	n.net.mu.Lock()
	obs := n.net.observed
	n.net.mu.Unlock()
	if obs != nil {
		addrs = append(addrs, obs.Addrs(1)...)
	}
	addrs = ma.Unique(addrs)
	return slices.DeleteFunc(addrs, func(a ma.Multiaddr) bool { return !manet.IsPublicAddr(a) || isRelayAddr(a) })
}

// relayCandidates is autorelay's peer source: the configured relays and
// the members that serve the relay protocol (those with a public address
// first) or, when there are none of either, peers of the DHT's routing
// table (autorelay keeps those that turn out to be relays). A member's relay
// carries sync traffic; a public relay only coordinates hole punches, so
// the node prefers the former whenever it knows one.
func (n *Node) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, max(num, 0))
	defer close(out)
	select {
	case <-n.net.ready:
	case <-ctx.Done():
		return out
	}
	if n.ready() != nil || num <= 0 {
		return out
	}
	cands := slices.Clone(n.net.static)
	seen := make(map[peer.ID]bool)
	for _, c := range cands {
		seen[c.ID] = true
	}
	var public, private []peer.AddrInfo
	n.mu.Lock()
	members := make([]peer.ID, 0, len(n.members))
	for p := range n.members {
		members = append(members, p)
	}
	n.mu.Unlock()
	sort.Slice(members, func(i, j int) bool { return members[i] < members[j] })
	for _, p := range members {
		if seen[p] || !n.servesRelay(p) {
			continue
		}
		ai := n.host.Peerstore().PeerInfo(p)
		ai.Addrs = slices.DeleteFunc(ai.Addrs, isRelayAddr)
		if len(ai.Addrs) == 0 {
			continue
		}
		if slices.ContainsFunc(ai.Addrs, manet.IsPublicAddr) {
			public = append(public, ai)
		} else {
			private = append(private, ai)
		}
	}
	cands = append(append(cands, public...), private...)
	if len(cands) == 0 && n.disc.svc != nil {
		for _, ai := range n.disc.svc.RoutingPeers(num) {
			if ai.ID != n.host.ID() {
				cands = append(cands, ai)
			}
		}
	}
	for i, c := range cands {
		if i == num {
			break
		}
		out <- c
	}
	return out
}

// servesRelay reports whether identify told that p serves the relay
// protocol.
func (n *Node) servesRelay(p peer.ID) bool {
	ps, err := n.host.Peerstore().SupportsProtocols(p, relayservice.HopProtocol)
	return err == nil && len(ps) > 0
}

// isRelayAddr reports whether a is an address through a relay.
func isRelayAddr(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// relayOf returns the relay's peer ID in a relayed address
// (".../p2p/<relay>/p2p-circuit/...").
func relayOf(a ma.Multiaddr) peer.ID {
	var relay peer.ID
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_P2P:
			if id, err := peer.IDFromBytes(c.RawValue()); err == nil {
				relay = id
			}
		case ma.P_CIRCUIT:
			return relay
		}
	}
	return ""
}

// transportOf names an address's transport: "quic-v1", "tcp", "udp"...
// For a relayed address, the transport to the relay.
func transportOf(a ma.Multiaddr) string {
	name := ""
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_TCP, ma.P_UDP:
			name = c.Protocol().Name
		case ma.P_QUIC_V1, ma.P_QUIC, ma.P_WEBTRANSPORT, ma.P_WEBRTC_DIRECT, ma.P_WS, ma.P_WSS:
			name = c.Protocol().Name
		case ma.P_CIRCUIT:
			return name
		}
	}
	return name
}

// Path is how this node is connected to a peer now.
type Path struct {
	// Kind is "direct", "relayed", or "" when not connected.
	Kind string
	// Relay is the relay's peer ID for a relayed path.
	Relay peer.ID
	// Limited is true when the relay limits the connection: a stranger's
	// relay, or a member's relay for a peer that is a stranger to it. It
	// only coordinates hole punches and pairing; no sync traffic.
	Limited bool
	// Transport is the transport ("tcp", "quic-v1") of the connection (to
	// the relay, for a relayed one); Addr is the peer's address on it.
	Transport string
	Addr      string
	// Conns counts the open connections to the peer.
	Conns int
}

// String says the path in a few words: "direct (quic-v1)", "relayed via
// <relay> (tcp)", "not connected".
func (p Path) String() string {
	switch p.Kind {
	case "direct":
		return "direct (" + p.Transport + ")"
	case "relayed":
		s := "relayed via " + p.Relay.String()
		if p.Limited {
			s = "limited relay via " + p.Relay.String()
		}
		return s + " (" + p.Transport + ")"
	}
	return "not connected"
}

// pathTo returns the path the node's streams to p take: the best open
// connection, as libp2p chooses it (unlimited before limited, direct before
// relayed).
func (n *Node) pathTo(p peer.ID) Path {
	conns := n.host.Network().ConnsToPeer(p)
	var best network.Conn
	better := func(a, b network.Conn) bool {
		if a.Stat().Limited != b.Stat().Limited {
			return !a.Stat().Limited
		}
		return !isRelayAddr(a.RemoteMultiaddr()) && isRelayAddr(b.RemoteMultiaddr())
	}
	for _, c := range conns {
		if c.IsClosed() {
			continue
		}
		if best == nil || better(c, best) {
			best = c
		}
	}
	if best == nil {
		return Path{}
	}
	addr := best.RemoteMultiaddr()
	path := Path{Kind: "direct", Transport: transportOf(addr), Addr: addr.String(), Conns: len(conns), Limited: best.Stat().Limited}
	if isRelayAddr(addr) {
		path.Kind, path.Relay = "relayed", relayOf(addr)
	}
	return path
}

// maintainPaths runs with the dialer: for each connected member, sessions
// and connections that go through a relay move to a direct connection once
// there is one (open for directSettle), and a member still reached only
// through a relay gets another hole punch when its backoff allows.
//
// Each side acts on what it owns, so that two views of the connections
// that differ for a moment (one side still holds a direct connection the
// other has lost) cannot make them undo each other's work: the device that
// opened a session moves it, and the side that dialled a relayed
// connection closes it.
func (n *Node) maintainPaths(p peer.ID, now time.Time) {
	var direct network.Conn
	var relayedOut []network.Conn
	relayed, relayedIn := false, false
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		if !isRelayAddr(c.RemoteMultiaddr()) {
			if direct == nil || c.Stat().Opened.Before(direct.Stat().Opened) {
				direct = c
			}
			continue
		}
		relayed = true
		if c.Stat().Direction == network.DirOutbound {
			relayedOut = append(relayedOut, c)
		} else {
			relayedIn = true
		}
	}
	n.notePath(p, direct != nil, relayed, now)
	switch {
	case !relayed:
	case direct != nil && now.Sub(direct.Stat().Opened) >= directSettle:
		n.moveToDirect(p, relayedOut)
	case direct == nil && relayedIn && len(relayedOut) > 0 && n.largerThan(p):
		// Both dialled each other through a relay. One relayed connection
		// is enough, and two confuse hole punching (its stream may go out
		// on the one the other side sees as inbound, which it refuses):
		// the device with the larger ID closes the one it dialled.
		for _, c := range relayedOut {
			_ = c.Close()
		}
	case direct == nil && relayedIn:
		n.maybePunch(p, now)
	}
}

// notePath remembers whether p was ever reached directly, and since when
// only a relay reaches it; a member that was direct and has been reached
// only through a relay for relayedStale calls refreshObservations (the
// path may have broken because this node's public address changed).
func (n *Node) notePath(p peer.ID, direct, relayed bool, now time.Time) {
	n.net.mu.Lock()
	if n.net.punches == nil {
		n.net.punches = make(map[peer.ID]*punchState)
	}
	st := n.net.punches[p]
	if st == nil {
		st = &punchState{backoff: n.cfg.NAT.HolePunchRetryMin}
		st.next = now.Add(st.backoff)
		n.net.punches[p] = st
	}
	refresh := false
	switch {
	case direct:
		st.wasDirect, st.relayedSince = true, time.Time{}
	case relayed && st.relayedSince.IsZero():
		st.relayedSince = now
	case relayed && st.wasDirect && now.Sub(st.relayedSince) >= relayedStale:
		refresh = true
	}
	n.net.mu.Unlock()
	if refresh && n.net.hps != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.refreshObservations(now)
		}()
	}
}

// largerThan reports whether this device's ID is larger than member p's.
func (n *Node) largerThan(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, device := range n.members[p] {
		return lessDevice(device, n.device)
	}
	return false
}

// moveToDirect closes the sessions with p that this device opened over a
// relay, and the relayed connections it dialled: the dialer opens the
// sessions again, and libp2p puts new streams on the direct connection.
func (n *Node) moveToDirect(p peer.ID, relayedOut []network.Conn) {
	n.mu.Lock()
	var moving []*session
	for _, s := range n.sessions {
		if s.peer == p && lessDevice(n.device, s.key.device) && isRelayAddr(s.stream.Conn().RemoteMultiaddr()) {
			moving = append(moving, s)
		}
	}
	n.mu.Unlock()
	for _, s := range moving {
		s.close(errMovedToDirect)
	}
	for _, c := range relayedOut {
		n.log.Info("direct connection: closing the relayed one", "peer", p, "relayed", c.RemoteMultiaddr())
		_ = c.Close()
	}
	if len(moving) > 0 {
		n.kickDialer()
	}
}

// maybePunch starts a hole punch with p (which reached this node through a
// relay) unless one runs, its backoff has not passed, or this node has had
// no public address for punchSettle. libp2p punches once when the relayed
// connection arrives; this retries, for the first one may have come before
// this node knew its public address, and a NAT's state changes.
func (n *Node) maybePunch(p peer.ID, now time.Time) {
	svc := n.net.hps
	if svc == nil {
		return
	}
	public := len(n.holePunchAddrs()) > 0
	n.net.mu.Lock()
	defer n.net.mu.Unlock()
	switch {
	case !public:
		n.net.publicSince = time.Time{}
		return
	case n.net.publicSince.IsZero():
		n.net.publicSince = now
		return
	case now.Sub(n.net.publicSince) < punchSettle:
		return
	}
	if n.net.punches == nil {
		n.net.punches = make(map[peer.ID]*punchState)
	}
	st := n.net.punches[p] // made by notePath: libp2p punched when the relayed connection came, so wait a backoff first
	if st == nil || st.busy || now.Before(st.next) {
		return
	}
	st.busy = true
	st.attempts++
	// DirectConnect cannot be cancelled, and waits until the service knows
	// a public address of ours (which punchSettle makes sure of): it runs
	// on a goroutine of its own, which Close does not wait for.
	result := make(chan error, 1)
	go func() { result <- svc.DirectConnect(p) }()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var err error
		select {
		case err = <-result:
		case <-n.ctx.Done():
			return
		}
		done := time.Now()
		n.net.mu.Lock()
		defer n.net.mu.Unlock()
		st.busy, st.lastAt = false, done
		if err == nil {
			st.succeeded, st.lastErr, st.backoff, st.failedInRow = done, "", n.cfg.NAT.HolePunchRetryMin, 0
			st.next = done.Add(st.backoff)
			n.log.Info("hole punched", "peer", p)
			n.kickDialer()
			return
		}
		if errors.Is(err, holepunch.ErrHolePunchActive) {
			// libp2p's own punch runs: not an attempt of ours, nor a
			// failure; look again once it has had time to end.
			st.attempts--
			st.next = done.Add(punchSettle)
			return
		}
		st.failures++
		st.failedInRow++
		st.lastErr = err.Error()
		st.backoff = min(2*st.backoff, n.cfg.NAT.HolePunchRetryMax)
		st.next = done.Add(st.backoff)
		n.log.Debug("hole punch failed", "peer", p, "err", err, "next", st.backoff)
		if st.failedInRow >= 2 {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.refreshObservations(done)
			}()
		}
	}()
}

// refreshObservations reconnects to the public peers that are no members
// (the DHT's, AutoNAT's), so that identify tells this node again how they
// see it. A hole punch gives the other side the addresses peers saw; after
// the router took a new public address, QUIC connections survive it (the
// NAT's new mapping is a path change to them) but what they saw is stale,
// and every punch would send the other side to the old address. Two
// failed punches in a row with a member call it, at most once per
// observationRefresh.
func (n *Node) refreshObservations(now time.Time) {
	n.net.mu.Lock()
	if !n.net.refreshed.IsZero() && now.Sub(n.net.refreshed) < observationRefresh {
		n.net.mu.Unlock()
		return
	}
	n.net.refreshed = now
	n.net.mu.Unlock()
	keep := func(p peer.ID) bool {
		return n.isMember(p) || n.host.ConnManager().IsProtected(p, autorelayTag)
	}
	var peers []peer.AddrInfo
	for _, p := range refreshable(n.host.Network().Conns(), keep, maxRefreshed) {
		peers = append(peers, n.host.Peerstore().PeerInfo(p))
	}
	if len(peers) == 0 {
		return
	}
	n.log.Info("hole punches keep failing: reconnecting to public peers to learn this node's address afresh", "peers", len(peers))
	for _, ai := range peers {
		_ = n.host.Network().ClosePeer(ai.ID)
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamTimeout)
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("reconnecting to a public peer", "peer", ai.ID, "err", err)
		}
		cancel()
	}
}

// refreshable picks the peers refreshObservations reconnects to, at most
// max, from the open connections: those reached directly at a public
// address, but for the peers keep holds on to and the relays that carry a
// relayed connection of this node (closing the connection to a relay cuts
// every circuit through it: a member's path, a hole punch's coordination).
func refreshable(conns []network.Conn, keep func(peer.ID) bool, max int) []peer.ID {
	inUse := map[peer.ID]bool{}
	for _, c := range conns {
		if isRelayAddr(c.RemoteMultiaddr()) {
			inUse[relayOf(c.RemoteMultiaddr())] = true
		}
	}
	var out []peer.ID
	for _, c := range conns {
		p := c.RemotePeer()
		if len(out) == max || isRelayAddr(c.RemoteMultiaddr()) || !manet.IsPublicAddr(c.RemoteMultiaddr()) ||
			inUse[p] || slices.Contains(out, p) || keep(p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// observe records what a peer saw of this node's address (identify), to
// tell the NAT's kind: the same port seen by every observer of one local
// port is an endpoint-independent mapping (hole punching can work); a port
// per observer is a symmetric one (it cannot).
func (n *Node) observe(c network.Conn, observed ma.Multiaddr) {
	if c == nil || observed == nil || isRelayAddr(c.RemoteMultiaddr()) || !manet.IsPublicAddr(observed) {
		return
	}
	local, err1 := addrPort(c.LocalMultiaddr())
	seen, err2 := addrPort(observed)
	remote, err3 := addrPort(c.RemoteMultiaddr())
	if err1 != nil || err2 != nil || err3 != nil {
		return
	}
	key := transportOf(c.LocalMultiaddr()) + "/" + fmt.Sprint(local.Port())
	n.net.mu.Lock()
	defer n.net.mu.Unlock()
	if n.net.observations == nil {
		n.net.observations = make(map[string]map[netip.Addr]netip.AddrPort)
	}
	m := n.net.observations[key]
	if m == nil {
		if len(n.net.observations) >= maxObservers {
			return
		}
		m = make(map[netip.Addr]netip.AddrPort)
		n.net.observations[key] = m
	}
	if _, ok := m[remote.Addr()]; !ok && len(m) >= maxObservers {
		return
	}
	m[remote.Addr()] = seen
}

// addrPort reads the IP and the TCP or UDP port at the start of a
// multiaddr ("/ip4/1.2.3.4/udp/4001/quic-v1" is 1.2.3.4:4001).
func addrPort(a ma.Multiaddr) (netip.AddrPort, error) {
	var ip netip.Addr
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_IP4, ma.P_IP6:
			if ip.IsValid() {
				return netip.AddrPort{}, fmt.Errorf("%s has two IP addresses", a)
			}
			v, ok := netip.AddrFromSlice(c.RawValue())
			if !ok {
				return netip.AddrPort{}, fmt.Errorf("%s: bad IP address", a)
			}
			ip = v.Unmap()
		case ma.P_TCP, ma.P_UDP:
			if !ip.IsValid() {
				return netip.AddrPort{}, fmt.Errorf("%s has a port before its IP address", a)
			}
			port, err := strconv.ParseUint(c.Value(), 10, 16)
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("%s: bad port: %w", a, err)
			}
			return netip.AddrPortFrom(ip, uint16(port)), nil
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%s has no IP address and port", a)
}

// NAT kinds, as NetworkStatus.NATKind says them.
const (
	NATUnknown             = "unknown"
	NATNone                = "none"
	NATEndpointIndependent = "endpoint-independent"
	NATSymmetric           = "symmetric"
)

// natKind tells the NAT's kind from the observations, for each local
// transport and port: "none" when peers see the node's own address,
// "symmetric" when two observers saw two ports, "endpoint-independent" when
// at least two saw the same, "unknown" otherwise. Where transports disagree
// (a NAT that maps UDP and TCP differently; IPv6 without NAT beside IPv4
// behind one), the best of them: it is the one a peer or a punch can use.
func (n *Node) natKind() string {
	n.net.mu.Lock()
	defer n.net.mu.Unlock()
	rank := map[string]int{NATUnknown: 0, NATSymmetric: 1, NATEndpointIndependent: 2, NATNone: 3}
	kind := NATUnknown
	for key, m := range n.net.observations {
		_, portText, _ := strings.Cut(key, "/")
		var ports = map[uint16]bool{}
		own := false
		for _, seen := range m {
			ports[seen.Port()] = true
			if fmt.Sprint(seen.Port()) == portText && n.hasLocalIP(seen.Addr()) {
				own = true
			}
		}
		k := NATUnknown
		switch {
		case own:
			k = NATNone
		case len(ports) > 1:
			k = NATSymmetric
		case len(m) > 1:
			k = NATEndpointIndependent
		}
		if rank[k] > rank[kind] {
			kind = k
		}
	}
	return kind
}

// observations lists what natKind decides from, sorted.
func (n *Node) observations() []string {
	n.net.mu.Lock()
	defer n.net.mu.Unlock()
	var out []string
	for key, m := range n.net.observations {
		for observer, seen := range m {
			out = append(out, key+" seen by "+observer.String()+" as "+seen.String())
		}
	}
	sort.Strings(out)
	return out
}

// hasLocalIP reports whether ip is one of the host's interface addresses.
func (n *Node) hasLocalIP(ip netip.Addr) bool {
	if n.host != nil {
		for _, a := range n.host.Network().ListenAddresses() {
			if ap, err := addrPort(a); err == nil && ap.Addr() == ip {
				return true
			}
		}
	}
	addrs, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ip2, err := manet.ToIP(a); err == nil {
			if x, ok := netip.AddrFromSlice(ip2); ok && x.Unmap() == ip {
				return true
			}
		}
	}
	return false
}
