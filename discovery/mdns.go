package discovery

import (
	"context"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// MDNS finds peers on the local network by multicast DNS (go-libp2p's
// p2p/discovery/mdns): it announces the host's peer ID and interface
// addresses under a DNS-SD service name on every multicast interface, and
// reports the peers that announce the same name. Anyone on the LAN sees
// the announcement; whether a found peer may sync is for the consumer to
// decide. The addresses announced are those of the host when Start runs;
// loopback addresses in announcements are dropped.
type MDNS struct {
	h           host.Host
	serviceName string

	mu     sync.Mutex
	svc    interface{ Close() error }
	found  func(Peer)
	closed bool
}

var _ Source = (*MDNS)(nil)

// NewMDNS prepares mDNS discovery on host h under serviceName (see
// Config.MDNSServiceName). It starts nothing.
func NewMDNS(h host.Host, serviceName string) *MDNS {
	return &MDNS{h: h, serviceName: serviceName}
}

// Name returns "mdns".
func (m *MDNS) Name() string { return SourceMDNS }

// Start starts announcing and browsing.
func (m *MDNS) Start(_ context.Context, found func(Peer)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.svc != nil {
		return fmt.Errorf("discovery: mDNS already started")
	}
	m.found = found
	svc := mdns.NewMdnsService(m.h, m.serviceName, notifee{m})
	if err := svc.Start(); err != nil {
		_ = svc.Close()
		return fmt.Errorf("starting mDNS: %w", err)
	}
	m.svc = svc
	return nil
}

// Close stops announcing and browsing. libp2p's mDNS calls back on
// goroutines it does not wait for; those that arrive after Close are
// ignored.
func (m *MDNS) Close() error {
	m.mu.Lock()
	m.closed = true
	svc := m.svc
	m.mu.Unlock()
	if svc == nil {
		return nil
	}
	if err := svc.Close(); err != nil {
		return fmt.Errorf("stopping mDNS: %w", err)
	}
	return nil
}

// notifee receives libp2p's callbacks.
type notifee struct{ m *MDNS }

func (n notifee) HandlePeerFound(ai peer.AddrInfo) {
	n.m.mu.Lock()
	found, closed := n.m.found, n.m.closed
	n.m.mu.Unlock()
	if closed || found == nil {
		return
	}
	// A peer on the LAN announces its loopback addresses too; here they
	// would lead to this machine.
	addrs := make([]ma.Multiaddr, 0, len(ai.Addrs))
	for _, a := range ai.Addrs {
		if !manet.IsIPLoopback(a) {
			addrs = append(addrs, a)
		}
	}
	found(Peer{ID: ai.ID, Addrs: addrs, Source: SourceMDNS})
}
