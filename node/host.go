package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/fx"

	"github.com/syncnode/syncnode/discovery"
	"github.com/syncnode/syncnode/store"
)

// AutoNAT service rate limits: dial-back requests this node answers per
// minute, in all and per peer (libp2p's defaults).
const (
	autoNATGlobalLimit = 30
	autoNATPeerLimit   = 3
)

// buildHost makes the node's own host: TCP and QUIC, Noise and TLS, Yamux,
// the resource manager with its default limits, a connection manager
// (member peers are protected in it), and what NATConfig turns on: port
// mapping, AutoNAT (v1 and v2, client and rate-limited service), forced
// reachability, and AutoRelay fed by relayCandidates. Hole punching and
// the relay service are started by Start once the host exists (startNAT).
func (n *Node) buildHost() (host.Host, error) {
	key, err := n.loadHostKey()
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	rm, err := n.resourceManager()
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(n.cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.UserAgent("syncnode"),
		libp2p.EnableRelay(),
		// The observed-address manager is libp2p's own; the node reads the
		// addresses others saw, for hole punching and for status.
		libp2p.WithFxOption(fx.Invoke(func(o bhost.ObservedAddrsManager) { n.net.setObserved(o) })),
	}
	if n.opts.gater != nil {
		opts = append(opts, libp2p.ConnectionGater(n.opts.gater))
	}
	nat := n.cfg.NAT
	if nat.PortMapping {
		opts = append(opts, libp2p.NATManager(func(nw network.Network) bhost.NATManager {
			m := bhost.NewNATManager(nw)
			n.net.setNATManager(m)
			return m
		}))
	}
	switch nat.Reachability {
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if nat.AutoNAT {
		opts = append(opts, libp2p.EnableNATService(),
			libp2p.AutoNATServiceRateLimit(autoNATGlobalLimit, autoNATPeerLimit, time.Minute),
			libp2p.EnableAutoNATv2())
	}
	if nat.AutoRelay {
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates,
			autorelay.WithMinCandidates(1),     // a member's relay is enough: use it at once
			autorelay.WithBackoff(time.Minute), // a relay that restarts is tried again soon
			autorelay.WithMinInterval(nat.RelaySearchInterval)))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("node: building libp2p host: %w", err)
	}
	return h, nil
}

// parseRelays reads relay multiaddrs (each with /p2p/), merging the
// addresses of one relay.
func parseRelays(addrs []string) ([]peer.AddrInfo, error) {
	return discovery.ParsePeerAddrs("relay", addrs)
}

// resourceManager is libp2p's default resource manager, with limits of its
// own for the syncnode service: a peer may hold at most 16 inbound and 16
// outbound streams of it and as much memory as 16 largest frames, and all
// peers together 1,024 streams and 64 largest frames. Each stream reserves
// one frame's memory before it reads, so a flood of streams from one peer is
// refused by libp2p itself before it costs memory, and the other peers keep
// their share.
func (n *Node) resourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	frame := int64(n.cfg.MaxFrameSize)
	limits.AddServiceLimit(serviceName, rcmgr.BaseLimit{
		Streams: 2048, StreamsInbound: 1024, StreamsOutbound: 1024, Memory: 64 * frame,
	}, rcmgr.BaseLimitIncrease{})
	limits.AddServicePeerLimit(serviceName, rcmgr.BaseLimit{
		Streams: 32, StreamsInbound: 16, StreamsOutbound: 16, Memory: 16 * frame,
	}, rcmgr.BaseLimitIncrease{})
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	return rm, nil
}

// loadHostKey reads the host's private key from the store, creating it on
// first start.
func (n *Node) loadHostKey() (crypto.PrivKey, error) {
	b, err := n.st.Meta(metaHostKey)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("node: stored host key is corrupt: %w", err)
		}
		return k, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("node: reading host key: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: generating host key: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("node: encoding host key: %w", err)
	}
	if err := n.st.Apply(&store.Batch{PutMeta: map[string][]byte{metaHostKey: b}}); err != nil {
		return nil, fmt.Errorf("node: storing host key: %w", err)
	}
	return k, nil
}
