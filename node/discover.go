package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/syncnode/syncnode/discovery"
	"github.com/syncnode/syncnode/node/pairing"
)

// joinSearchTimeout bounds how long Join looks for an inviter that is not
// at the invite's addresses (less if the caller's context ends sooner).
const joinSearchTimeout = time.Minute

// maxRememberedPerFind bounds the addresses stored from one discovery of a
// member (the store keeps 8 per member anyway).
const maxRememberedPerFind = 8

// discoverer is the node's side of discovery: the service (nil when every
// source is off), the Join calls waiting for an inviter, and the
// subscription that learns members' listen addresses from identify.
type discoverer struct {
	svc     *discovery.Service
	idSub   event.Subscription
	nsDirty atomic.Bool      // libraries or members changed: see namespacesAfterFlush
	known   map[peer.ID]bool // members when the namespaces were last computed (loop goroutine)

	mu      sync.Mutex
	waiting map[peer.ID][]chan peer.AddrInfo // inviters Join is looking for
}

// Discovery returns the status of each discovery source (mDNS, DHT), for
// `syncnode status`; nil when every source is off, or the node is not
// running.
func (n *Node) Discovery() []discovery.SourceStatus {
	if n.ready() != nil || n.disc.svc == nil {
		return nil
	}
	return n.disc.svc.Status()
}

// startDiscovery runs in Start once the host, the store and the engine are
// up: it learns members' listen addresses from identify and, if a source is
// on, starts the discovery service with the namespaces of the libraries
// held.
func (n *Node) startDiscovery(ctx context.Context) error {
	sub, err := n.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("node: subscribing to identify events: %w", err)
	}
	n.disc.idSub = sub
	n.wg.Add(1)
	go n.watchIdentify(sub)
	if !n.cfg.Discovery.Enabled() {
		return nil
	}
	svc, err := discovery.New(n.host, n.cfg.Discovery, n.onFound, n.log.With("part", "discovery"))
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.disc.svc = svc
	n.disc.known = make(map[peer.ID]bool)
	n.mu.Lock()
	for p := range n.members {
		n.disc.known[p] = true
	}
	n.mu.Unlock()
	if err := n.updateNamespaces(); err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("node: starting discovery: %w", err)
	}
	return nil
}

// closeDiscovery stops the discovery service and the identify
// subscription; Close calls it before the loops stop and the host closes.
func (n *Node) closeDiscovery() {
	if n.disc.svc != nil {
		if err := n.disc.svc.Close(); err != nil {
			n.log.Warn("closing discovery", "err", err)
		}
	}
	if n.disc.idSub != nil {
		_ = n.disc.idSub.Close()
	}
}

// libraryChanged notes that the libraries held may have changed; the
// namespaces follow once the change is stored (see namespacesAfterFlush).
func (n *Node) libraryChanged() { n.disc.nsDirty.Store(true) }

// namespacesAfterFlush updates the DHT namespaces if the libraries or
// their members changed. The loop calls it after each flush, when the store
// holds the change. A new member is looked for at once: discovery may have
// reported it (and the node ignored it) just before it became a member,
// within the window in which discovery does not report it again.
func (n *Node) namespacesAfterFlush() {
	if n.disc.svc == nil || !n.disc.nsDirty.Swap(false) {
		return
	}
	if err := n.updateNamespaces(); err != nil {
		n.disc.nsDirty.Store(true) // try again after the next flush
		n.log.Warn("updating discovery namespaces", "err", err)
	}
	n.mu.Lock()
	var added []peer.ID
	known := make(map[peer.ID]bool, len(n.members))
	for p := range n.members {
		known[p] = true
		if !n.disc.known[p] {
			added = append(added, p)
		}
	}
	n.mu.Unlock()
	n.disc.known = known
	if len(added) == 0 {
		return
	}
	n.disc.svc.FindSoon()
	for _, p := range added {
		if found, ok := n.disc.svc.Recent(p); ok {
			n.onFound(found)
		}
	}
}

// updateNamespaces sets the DHT namespaces to the rendezvous of every
// library held that has a secret (a library configured with AddLibrary has
// none: its members are found by mDNS or their stored addresses only).
func (n *Node) updateNamespaces() error {
	if n.disc.svc == nil {
		return nil
	}
	libs, err := n.st.Libraries()
	if err != nil {
		return fmt.Errorf("node: reading libraries: %w", err)
	}
	var ns []string
	for _, l := range libs {
		if len(l.Secret) > 0 && !n.isRemoved(l.ID) { // a removed device no longer advertises
			ns = append(ns, pairing.Rendezvous(l.Secret))
		}
	}
	n.disc.svc.SetNamespaces(ns)
	return nil
}

// onFound receives the peers discovery found, one at a time on the
// service's goroutine. A member is given the addresses found, which are
// stored for reconnects, and dialled at once; an inviter a Join is looking
// for is handed to it; anyone else is ignored.
func (n *Node) onFound(p discovery.Peer) {
	n.mu.Lock()
	_, member := n.members[p.ID]
	n.mu.Unlock()
	waiting := n.inviterFound(p.AddrInfo())
	if !member {
		if !waiting {
			n.log.Debug("discovered a peer that is no member", "peer", p.ID, "source", p.Source)
		}
		return
	}
	n.log.Debug("discovered a member", "peer", p.ID, "source", p.Source, "addrs", p.Addrs)
	n.host.Peerstore().AddAddrs(p.ID, p.Addrs, peerstore.AddressTTL)
	for i, a := range p.Addrs {
		if i == maxRememberedPerFind {
			break
		}
		n.rememberAddr(p.ID, a.String())
	}
	if n.host.Network().Connectedness(p.ID) != network.Connected {
		n.mu.Lock()
		if d := n.dialing[p.ID]; d != nil && !d.busy {
			d.next = time.Time{} // new addresses: no need to wait out the backoff
		}
		n.mu.Unlock()
		n.kickDialer()
	}
}

// watchIdentify stores the listen addresses members announce when they
// connect (identify), for reconnects: an inbound connection's remote
// address has a port chosen by the member's system, not one it listens on.
// Loopback addresses are stored only from a member connected over
// loopback (on this machine); from elsewhere they would lead here.
func (n *Node) watchIdentify(sub event.Subscription) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev, ok := e.(event.EvtPeerIdentificationCompleted)
			if !ok {
				continue
			}
			n.observe(ev.Conn, ev.ObservedAddr)
			n.mu.Lock()
			_, member := n.members[ev.Peer]
			n.mu.Unlock()
			if !member {
				continue
			}
			local := ev.Conn != nil && manet.IsIPLoopback(ev.Conn.RemoteMultiaddr())
			n.rememberListenAddrs(ev.Peer, local, ev.ListenAddrs)
		}
	}
}

// rememberListenAddrs stores up to maxRememberedPerFind of the addresses
// member p says it listens on; loopback ones only when p was reached over
// loopback (local).
func (n *Node) rememberListenAddrs(p peer.ID, local bool, addrs []ma.Multiaddr) {
	stored := 0
	for _, a := range addrs {
		if stored == maxRememberedPerFind {
			break
		}
		if manet.IsIPLoopback(a) && !local {
			continue
		}
		n.rememberAddr(p, a.String())
		stored++
	}
}

// rememberConnectedMember stores the listen addresses of p, a peer that
// has just become a member, if it is connected. Identify stores them only
// for members: a peer identified while it was a stranger (it connected
// before its device record arrived) would otherwise be known only by a
// connection this node did not dial, and be unreachable after a restart.
func (n *Node) rememberConnectedMember(p peer.ID) {
	conns := n.host.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		return
	}
	local := false
	for _, c := range conns {
		local = local || manet.IsIPLoopback(c.RemoteMultiaddr())
	}
	n.rememberListenAddrs(p, local, n.host.Peerstore().Addrs(p))
}

// waitInviter registers a Join looking for the inviter p: onFound hands it
// the addresses discovery finds. Call the returned function when done.
func (n *Node) waitInviter(p peer.ID) (<-chan peer.AddrInfo, func()) {
	ch := make(chan peer.AddrInfo, 1)
	n.disc.mu.Lock()
	if n.disc.waiting == nil {
		n.disc.waiting = make(map[peer.ID][]chan peer.AddrInfo)
	}
	n.disc.waiting[p] = append(n.disc.waiting[p], ch)
	n.disc.mu.Unlock()
	return ch, func() {
		n.disc.mu.Lock()
		defer n.disc.mu.Unlock()
		chans := n.disc.waiting[p]
		for i, c := range chans {
			if c == ch {
				chans = append(chans[:i], chans[i+1:]...)
				break
			}
		}
		if len(chans) == 0 {
			delete(n.disc.waiting, p)
		} else {
			n.disc.waiting[p] = chans
		}
	}
}

// inviterFound hands ai to the Joins looking for it, without blocking, and
// reports whether any was.
func (n *Node) inviterFound(ai peer.AddrInfo) bool {
	n.disc.mu.Lock()
	defer n.disc.mu.Unlock()
	chans := n.disc.waiting[ai.ID]
	for _, c := range chans {
		select {
		case c <- ai:
		default: // it has one to try already
		}
	}
	return len(chans) > 0
}

// reachInviter connects to the inviter of a Join. If it is not at the
// invite's addresses (they went stale: the inviter moved, or restarted on
// other ports), it looks for it by discovery, for at most
// joinSearchTimeout: a recent report, mDNS or a DHT rendezvous reporting it
// (onFound), and DHT lookups of its peer ID.
func (n *Node) reachInviter(ctx context.Context, info peer.AddrInfo) error {
	found, done := n.waitInviter(info.ID)
	defer done()
	// Pairing may go through a limited relay (see Join).
	ctx = network.WithAllowLimitedConn(ctx, "pairing")
	err := n.host.Connect(ctx, info)
	if err == nil {
		return nil
	}
	first := &UnreachableError{Inviter: info.ID, Addrs: info.Addrs, Err: err}
	svc := n.disc.svc
	if svc == nil || ctx.Err() != nil {
		return first
	}
	first.Searched = joinSearchTimeout
	first.MDNS, first.DHT = n.cfg.Discovery.MDNS, n.cfg.Discovery.DHT
	n.log.Info("the inviter is not at the invite's addresses; looking for it", "peer", info.ID, "err", err)
	ctx, cancel := context.WithTimeout(ctx, joinSearchTimeout)
	defer cancel()
	try := func(ai peer.AddrInfo, how string) bool {
		if len(ai.Addrs) == 0 {
			return false
		}
		n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("inviter not reached", "peer", ai.ID, "by", how, "err", err)
			return false
		}
		n.log.Info("inviter found", "peer", ai.ID, "by", how)
		return true
	}
	if p, ok := svc.Recent(info.ID); ok && try(p.AddrInfo(), p.Source) {
		return nil
	}
	// DHT lookups run one at a time on their own goroutine, each bounded
	// by ctx, at least a second apart.
	lookups := make(chan peer.AddrInfo, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	lookup := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started := time.Now()
			ai, err := svc.FindPeer(ctx, info.ID)
			if err != nil && !errors.Is(err, discovery.ErrDHTOff) {
				n.log.Debug("DHT lookup of the inviter failed", "peer", info.ID, "err", err)
			}
			if errors.Is(err, discovery.ErrDHTOff) {
				return // never sends: wait for mDNS
			}
			select {
			case <-time.After(time.Second - time.Since(started)):
			case <-ctx.Done():
			}
			lookups <- ai // buffered, and read before the next lookup starts
		}()
	}
	lookup()
	for {
		select {
		case ai := <-found:
			if try(ai, "discovery") {
				return nil
			}
		case ai := <-lookups:
			if try(ai, "DHT lookup") {
				return nil
			}
			if ctx.Err() == nil {
				lookup()
			}
		case <-ctx.Done():
			return first
		}
	}
}

// ErrInviterUnreachable is returned by Join when the inviting device cannot
// be reached (errors.As with *UnreachableError says what was tried).
var ErrInviterUnreachable = errors.New("node: the inviting device cannot be reached")

// UnreachableError says that Join could not reach the inviter, what it
// tried and what to check.
type UnreachableError struct {
	// Inviter is the inviter's peer ID and Addrs the addresses of the
	// invite, dialled first; Err is that dial's error.
	Inviter peer.ID
	Addrs   []ma.Multiaddr
	Err     error
	// Searched is how long discovery then looked for it (0: discovery is
	// off), by mDNS and the DHT as they are on.
	Searched  time.Duration
	MDNS, DHT bool
}

// Error says what was tried and what to check.
func (e *UnreachableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node: the inviting device cannot be reached: dialled the %d addresses of the invite", len(e.Addrs))
	if len(e.Addrs) > 0 {
		var as []string
		for i, a := range e.Addrs {
			if i == 4 {
				as = append(as, "…")
				break
			}
			as = append(as, a.String())
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(as, ", "))
	}
	msg := e.Err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	fmt.Fprintf(&b, ": %s; ", msg)
	var how []string
	if e.MDNS {
		how = append(how, "mDNS on the LAN")
	}
	if e.DHT {
		how = append(how, "the DHT")
	}
	if e.Searched > 0 && len(how) > 0 {
		fmt.Fprintf(&b, "then looked for it by %s for %s, in vain. ", strings.Join(how, " and "), e.Searched)
	} else {
		b.WriteString("discovery is off, so it was looked for nowhere else. ")
	}
	b.WriteString("Check that syncnode runs on the inviting device; that both devices are on one network, or that the DHT " +
		"is on for devices on different networks; that no firewall blocks the inviter's port (7654 by default, TCP and " +
		"UDP); and that the inviter does not run with --local (loopback only) on another machine. A new invite carries " +
		"the inviter's current addresses.")
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInviterUnreachable) hold. (Not the dial
// error's sentinels: a dial that timed out is still an unreachable
// inviter, not a timeout of the caller's.)
func (e *UnreachableError) Unwrap() error { return ErrInviterUnreachable }

// rememberInviter stores the addresses this device reached the inviter at
// (outbound connections: the inviter listens there), once it is a member.
func (n *Node) rememberInviter(p peer.ID) {
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if c.Stat().Direction == network.DirOutbound {
			n.rememberAddr(p, c.RemoteMultiaddr().String())
		}
	}
}
