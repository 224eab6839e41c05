package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/discovery"
	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/node/relayservice"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Config tunes a Node. Start from DefaultConfig (production) or
// DefaultLocalConfig (tests: loopback, fast timers) and change what you need;
// Validate says what is wrong in words a person understands.
type Config struct {
	// DataDir is the directory of the node's Badger store. Required unless
	// the node is given a store with WithStore.
	DataDir string
	// DeviceName is how this device names itself in the libraries it
	// creates or joins; default "device " and the start of its ID.
	DeviceName string
	// SyncWrites makes every store write reach the disk before it counts as
	// done (survives power loss; kill -9 safety holds either way). Default
	// true.
	SyncWrites bool
	// ListenAddrs are the multiaddrs the node's own host listens on (unused
	// with WithHost). Default: TCP and QUIC on all interfaces, ports chosen
	// by the system.
	ListenAddrs []string
	// Registry declares the model types; default engine.DefaultRegistry().
	Registry *engine.Registry
	// TickInterval is how often the engine's timers run; default 200 ms.
	TickInterval time.Duration
	// HeartbeatInterval is how often a Heartbeat goes to each peer; default
	// 10 s. PeerTimeout is how long a silent peer is kept; default 30 s.
	HeartbeatInterval time.Duration
	PeerTimeout       time.Duration
	// AckInterval is the least time between acks of one stream to one peer;
	// default 1 s.
	AckInterval time.Duration
	// PruneInterval is how often history is pruned; default 1 min. Horizon
	// is how long a silent member holds log pruning back; default 30 days.
	PruneInterval time.Duration
	Horizon       time.Duration
	// MaxDrift is how far ahead of local time a change may be stamped before
	// it is quarantined; default 5 min.
	MaxDrift time.Duration
	// PageSize is the most records per catch-up page; default 1000.
	PageSize int
	// SendQueue is the most messages waiting for one peer; when a slow peer
	// fills it, live pushes to it are dropped and it is caught up from the
	// store later. Default 4096.
	SendQueue int
	// MaxFrameSize is the largest frame read or written, in bytes; default
	// 4 MiB.
	MaxFrameSize int
	// StreamTimeout is how long a read or write of one frame may take before
	// the stream is reset; default 30 s.
	StreamTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between dials of a member that is not connected; defaults 1 s
	// and 1 min.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// MaxRequestsPerPeer bounds the catch-up requests one peer may have
	// served at once; default 4.
	MaxRequestsPerPeer int
	// Discovery says how the node finds the members of its libraries: mDNS
	// on the LAN and rendezvous in a Kademlia DHT under a name derived from
	// each library's secret (see discovery.Config for every setting).
	// Found members are dialled and their addresses stored. Default
	// discovery.DefaultConfig(): both on, the public DHT. DefaultLocalConfig
	// and the zero value turn both off.
	Discovery discovery.Config
	// NAT says how the node reaches members behind NATs and firewalls:
	// port mapping, AutoNAT, relays and hole punching (docs/NETWORKING.md).
	// Default DefaultNATConfig(); DefaultLocalConfig turns it all off. With
	// WithHost the app's host decides, and NAT is unused.
	NAT NATConfig
	// Relay runs a relay service on this node for the members of its
	// libraries (and, limited, for strangers): turn it on on a machine with
	// a public address. Off by default; unused with WithHost.
	Relay RelayConfig
}

// Values of NATConfig.Reachability.
const (
	// ReachabilityAuto lets AutoNAT find out whether the node can be
	// dialled from the internet.
	ReachabilityAuto = "auto"
	// ReachabilityPublic tells the node it can be dialled (a server with a
	// public address): it seeks no relay.
	ReachabilityPublic = "public"
	// ReachabilityPrivate tells the node it cannot be dialled (behind a
	// NAT): it seeks relays at once.
	ReachabilityPrivate = "private"
)

// NATConfig says how the node gets through NATs (docs/NETWORKING.md).
type NATConfig struct {
	// PortMapping asks the router for a port mapping by UPnP IGD or
	// NAT-PMP. Default true.
	PortMapping bool
	// Reachability is ReachabilityAuto (default), ReachabilityPublic or
	// ReachabilityPrivate.
	Reachability string
	// AutoNAT asks peers to dial this node back (AutoNAT v1 and v2) to
	// learn its reachability and which of its addresses work, and answers
	// their requests, rate limited. Default true.
	AutoNAT bool
	// AutoRelay reserves a slot at up to two relays while the node is not
	// reachable, and announces the relayed addresses: the Relays below
	// first, then members of its libraries that run a relay, then (with
	// the DHT on) relays among the DHT's peers. Default true.
	AutoRelay bool
	// Relays are relay multiaddrs, each ending in /p2p/<peer ID>, to use
	// before any other.
	Relays []string
	// RelaySearchInterval is the least time between two searches for
	// relay candidates (autorelay asks again while it has fewer relays than
	// it wants). Default 10 s.
	RelaySearchInterval time.Duration
	// HolePunching turns relayed connections into direct ones (DCUtR) and
	// retries the members still reached through a relay, with a backoff
	// between HolePunchRetryMin and HolePunchRetryMax. Defaults true, 10 s
	// and 10 min.
	HolePunching      bool
	HolePunchRetryMin time.Duration
	HolePunchRetryMax time.Duration
}

// DefaultNATConfig returns the production NAT configuration: everything on.
func DefaultNATConfig() NATConfig {
	return NATConfig{
		PortMapping: true, Reachability: ReachabilityAuto, AutoNAT: true, AutoRelay: true, RelaySearchInterval: 10 * time.Second,
		HolePunching: true, HolePunchRetryMin: 10 * time.Second, HolePunchRetryMax: 10 * time.Minute,
	}
}

// RelayConfig configures the relay service (package relayservice).
type RelayConfig struct {
	// Enabled runs the service. Default false.
	Enabled bool
	relayservice.Config
}

// DefaultConfig returns the production configuration. DataDir is left
// empty: set it, or give the node a store.
func DefaultConfig() Config {
	return Config{
		SyncWrites:         true,
		ListenAddrs:        []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/tcp/0", "/ip6/::/udp/0/quic-v1"},
		TickInterval:       200 * time.Millisecond,
		HeartbeatInterval:  10 * time.Second,
		PeerTimeout:        30 * time.Second,
		AckInterval:        time.Second,
		PruneInterval:      time.Minute,
		Horizon:            30 * 24 * time.Hour,
		MaxDrift:           hlc.DefaultMaxDrift,
		PageSize:           1000,
		SendQueue:          4096,
		MaxFrameSize:       protocol.DefaultMaxFrameSize,
		StreamTimeout:      30 * time.Second,
		ReconnectMin:       time.Second,
		ReconnectMax:       time.Minute,
		MaxRequestsPerPeer: 4,
		Discovery:          discovery.DefaultConfig(),
		NAT:                DefaultNATConfig(),
		Relay:              RelayConfig{Config: relayservice.DefaultConfig()},
	}
}

// DefaultLocalConfig returns a configuration for tests on one machine:
// loopback TCP only, no fsync, fast timers, no discovery (neither mDNS nor
// the DHT) and no NAT traversal (no port mapping, AutoNAT, relays or hole
// punching), so that nothing leaves loopback.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.SyncWrites = false
	c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	c.TickInterval = 20 * time.Millisecond
	c.HeartbeatInterval = 500 * time.Millisecond
	c.PeerTimeout = 3 * time.Second
	c.AckInterval = 100 * time.Millisecond
	c.PruneInterval = time.Second
	c.StreamTimeout = 10 * time.Second
	c.ReconnectMin = 50 * time.Millisecond
	c.ReconnectMax = time.Second
	c.Discovery.MDNS = false
	c.Discovery.DHT = false
	c.NAT = NATConfig{Reachability: ReachabilityAuto, RelaySearchInterval: time.Second, HolePunchRetryMin: time.Second, HolePunchRetryMax: 10 * time.Second}
	return c
}

// Validate reports the first setting that cannot work, in plain words.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, is %v", name, d))
		}
	}
	positive("TickInterval", c.TickInterval)
	positive("HeartbeatInterval", c.HeartbeatInterval)
	positive("PeerTimeout", c.PeerTimeout)
	positive("AckInterval", c.AckInterval)
	positive("PruneInterval", c.PruneInterval)
	positive("Horizon", c.Horizon)
	positive("MaxDrift", c.MaxDrift)
	positive("StreamTimeout", c.StreamTimeout)
	positive("ReconnectMin", c.ReconnectMin)
	if c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, fmt.Errorf("ReconnectMax (%v) must not be below ReconnectMin (%v)", c.ReconnectMax, c.ReconnectMin))
	}
	if c.PeerTimeout <= c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("PeerTimeout (%v) must be longer than HeartbeatInterval (%v), or live peers time out", c.PeerTimeout, c.HeartbeatInterval))
	}
	if c.PageSize < 1 || c.PageSize > protocol.MaxRecordsPerMessage {
		errs = append(errs, fmt.Errorf("PageSize must be between 1 and %d, is %d", protocol.MaxRecordsPerMessage, c.PageSize))
	}
	if c.SendQueue < 16 {
		errs = append(errs, fmt.Errorf("SendQueue must be at least 16, is %d", c.SendQueue))
	}
	if c.MaxFrameSize < 64<<10 {
		errs = append(errs, fmt.Errorf("MaxFrameSize must be at least 64 KiB, is %d bytes", c.MaxFrameSize))
	}
	if c.MaxRequestsPerPeer < 1 {
		errs = append(errs, fmt.Errorf("MaxRequestsPerPeer must be at least 1, is %d", c.MaxRequestsPerPeer))
	}
	for _, a := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen address %q is not a multiaddr: %v", a, err))
		}
	}
	if err := c.Discovery.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.NAT.Reachability {
	case ReachabilityAuto, ReachabilityPublic, ReachabilityPrivate:
	default:
		errs = append(errs, fmt.Errorf("NAT.Reachability must be %q, %q or %q, is %q", ReachabilityAuto, ReachabilityPublic, ReachabilityPrivate, c.NAT.Reachability))
	}
	if _, err := parseRelays(c.NAT.Relays); err != nil {
		errs = append(errs, err)
	}
	if c.NAT.AutoRelay {
		positive("NAT.RelaySearchInterval", c.NAT.RelaySearchInterval)
	}
	if c.NAT.HolePunching {
		positive("NAT.HolePunchRetryMin", c.NAT.HolePunchRetryMin)
		if c.NAT.HolePunchRetryMax < c.NAT.HolePunchRetryMin {
			errs = append(errs, fmt.Errorf("NAT.HolePunchRetryMax (%v) must not be below NAT.HolePunchRetryMin (%v)", c.NAT.HolePunchRetryMax, c.NAT.HolePunchRetryMin))
		}
	}
	if c.Relay.Enabled {
		if err := c.Relay.Config.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("node: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func (c Config) engineConfig(device [16]byte) engine.Config {
	return engine.Config{
		Device: device, Registry: c.Registry, PageSize: c.PageSize,
		HeartbeatInterval: c.HeartbeatInterval, PeerTimeout: c.PeerTimeout, AckInterval: c.AckInterval,
		PruneInterval: c.PruneInterval, Horizon: c.Horizon, MaxDrift: c.MaxDrift,
		RetryInterval: 2 * c.TickInterval, MaxBatchBytes: c.MaxFrameSize / 4,
	}
}

// Option supplies a collaborator to New.
type Option func(*options)

type options struct {
	gater  connmgr.ConnectionGater
	host   host.Host
	store  store.Store
	wall   hlc.WallClock
	logger *slog.Logger
}

// WithHost attaches the node to an app's existing libp2p host: the node
// registers its protocol there, next to the app's own, and does not close the
// host. The host's peer ID is then the device's.
func WithHost(h host.Host) Option { return func(o *options) { o.host = h } }

// WithConnectionGater has the node's own host ask g before every dial and
// accepted connection (unused with WithHost: the app's host has its own).
func WithConnectionGater(g connmgr.ConnectionGater) Option {
	return func(o *options) { o.gater = g }
}

// WithStore gives the node a store (it does not close it). Without it the
// node opens a Badger store in Config.DataDir and closes it on Close.
func WithStore(s store.Store) Option { return func(o *options) { o.store = s } }

// WithClock gives the node a wall clock (tests use a manual one).
func WithClock(c hlc.WallClock) Option { return func(o *options) { o.wall = c } }

// WithLogger gives the node a logger; default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
