package node

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/node/relayservice"
)

// autorelayTag is the tag with which libp2p's autorelay protects the
// connection of each relay it holds a reservation with.
const autorelayTag = "autorelay"

// NetworkStatus is what the node knows of its place in the network: what
// `syncnode status` and `syncnode doctor` tell about reachability, NAT,
// relays and hole punching (docs/NETWORKING.md).
type NetworkStatus struct {
	// Listen are the addresses the host listens on; Addrs those it
	// announces (relayed ones included while it uses a relay).
	Listen []ma.Multiaddr
	Addrs  []ma.Multiaddr
	// Reachability is "public", "private" or "unknown": whether peers on
	// the internet can dial this node, as AutoNAT found (or as configured,
	// when ReachabilityForced).
	Reachability       string
	ReachabilityForced bool
	// Reachable and Unreachable are the addresses AutoNAT v2 confirmed as
	// dialable from the internet, or not.
	Reachable, Unreachable []ma.Multiaddr
	// Observed are this node's addresses as other peers saw them.
	Observed []ma.Multiaddr
	// NATKind is NATNone, NATEndpointIndependent, NATSymmetric or
	// NATUnknown (see natKind); ObservedBy lists what it was told from:
	// "<local transport/port> seen by <observer IP> as <ip:port>".
	NATKind    string
	ObservedBy []string
	// PortMapping says whether a router answered UPnP or NAT-PMP and which
	// ports it maps.
	PortMapping PortMapping
	// AutoRelay is true when the node reserves relay slots while
	// unreachable; Relays are the relays it holds a reservation with now.
	AutoRelay bool
	Relays    []RelayReservation
	// HolePunching is true when the node punches holes; HolePunchAddrs are
	// the public addresses of its own it would give for one (none: it
	// cannot punch yet).
	HolePunching   bool
	HolePunchAddrs []ma.Multiaddr
	// RelayService is the relay service's state, nil when it is off.
	RelayService *relayservice.Status
	// OwnHost is false when the node runs on an app's host (WithHost):
	// NAT traversal is then the app's.
	OwnHost bool
}

// PortMapping is the state of UPnP/NAT-PMP port mapping.
type PortMapping struct {
	// Enabled is NATConfig.PortMapping; RouterFound is true once a router
	// answered.
	Enabled, RouterFound bool
	// Mappings are the listen addresses the router maps, with the public
	// address each maps to.
	Mappings []Mapping
}

// Mapping is one port mapping: Internal is a listen address, External
// the router's public address for it.
type Mapping struct {
	Internal, External ma.Multiaddr
}

// RelayReservation is a relay this node holds a slot with.
type RelayReservation struct {
	Relay peer.ID
	// Addrs are this node's addresses through the relay.
	Addrs []ma.Multiaddr
	// Member is true when the relay is a member of one of this node's
	// libraries (its circuits carry sync traffic).
	Member bool
}

// Reach is how the node reaches one member.
type Reach struct {
	// Path is the connection streams take now.
	Path Path
	// Addrs are the member's addresses known to the host.
	Addrs []ma.Multiaddr
	// LastDial is when the last dial of the member ended, and
	// LastDialError why it failed ("" if it connected).
	LastDial      time.Time
	LastDialError string
	// HolePunch is the hole punching with the member, if the node tried.
	HolePunch *HolePunch
}

// HolePunch counts the hole punches with one member that this node
// started after libp2p's own first one.
type HolePunch struct {
	Attempts, Failures int
	LastAt             time.Time
	LastError          string
	Succeeded          time.Time
}

// Network returns the node's network status (zero before Start).
func (n *Node) Network() NetworkStatus {
	if n.ready() != nil {
		return NetworkStatus{}
	}
	h := n.host
	st := NetworkStatus{
		Listen: h.Network().ListenAddresses(), Addrs: h.Addrs(), Reachability: "unknown",
		OwnHost: n.ownsHost, NATKind: n.natKind(), ObservedBy: n.observations(),
	}
	if r, ok := h.(interface{ Reachability() network.Reachability }); ok {
		switch r.Reachability() {
		case network.ReachabilityPublic:
			st.Reachability = "public"
		case network.ReachabilityPrivate:
			st.Reachability = "private"
		}
	}
	if c, ok := h.(interface {
		ConfirmedAddrs() (reachable, unreachable, unknown []ma.Multiaddr)
	}); ok {
		st.Reachable, st.Unreachable, _ = c.ConfirmedAddrs()
	}
	if !n.ownsHost {
		return st
	}
	st.ReachabilityForced = n.cfg.NAT.Reachability != ReachabilityAuto
	st.AutoRelay, st.HolePunching = n.cfg.NAT.AutoRelay, n.cfg.NAT.HolePunching
	if st.HolePunching {
		st.HolePunchAddrs = n.holePunchAddrs()
	}
	n.net.mu.Lock()
	obs, natmgr, relayAddrs := n.net.observed, n.net.natmgr, slices.Clone(n.net.relayAddrs)
	n.net.mu.Unlock()
	if obs != nil {
		st.Observed = obs.Addrs(1)
	}
	st.PortMapping.Enabled = n.cfg.NAT.PortMapping
	if natmgr != nil && natmgr.HasDiscoveredNAT() {
		st.PortMapping.RouterFound = true
		for _, a := range st.Listen {
			if ext := natmgr.GetMapping(a); ext != nil {
				st.PortMapping.Mappings = append(st.PortMapping.Mappings, Mapping{Internal: a, External: ext})
			}
		}
	}
	// Autorelay protects the connection of every relay it holds a slot
	// with; the relayed addresses it announces name public relay addresses
	// only.
	byRelay := map[peer.ID]int{}
	add := func(r peer.ID) int {
		i, ok := byRelay[r]
		if !ok {
			i = len(st.Relays)
			byRelay[r] = i
			st.Relays = append(st.Relays, RelayReservation{Relay: r, Member: n.isMember(r)})
		}
		return i
	}
	for _, p := range h.Network().Peers() {
		if h.ConnManager().IsProtected(p, autorelayTag) && h.Network().Connectedness(p) == network.Connected {
			add(p)
		}
	}
	for _, a := range relayAddrs {
		if r := relayOf(a); r != "" {
			i := add(r)
			st.Relays[i].Addrs = append(st.Relays[i].Addrs, a)
		}
	}
	if n.net.relay != nil {
		rs := n.net.relay.Status()
		st.RelayService = &rs
	}
	return st
}

// reach returns how the node reaches member p.
func (n *Node) reach(p peer.ID) Reach {
	if p == "" || n.ready() != nil {
		return Reach{}
	}
	r := Reach{Path: n.pathTo(p), Addrs: n.host.Peerstore().Addrs(p)}
	n.mu.Lock()
	if d := n.dialing[p]; d != nil {
		r.LastDial, r.LastDialError = d.lastAt, d.lastErr
	}
	n.mu.Unlock()
	n.net.mu.Lock()
	if st := n.net.punches[p]; st != nil && st.attempts > 0 {
		r.HolePunch = &HolePunch{Attempts: st.attempts, Failures: st.failures, LastAt: st.lastAt, LastError: st.lastErr, Succeeded: st.succeeded}
	}
	n.net.mu.Unlock()
	return r
}
