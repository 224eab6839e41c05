package discovery

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// DHT modes accepted by Config.DHTMode.
const (
	// ModeAuto serves the DHT once the host learns it is reachable from the
	// internet, and is only a client until then (the right choice for a
	// device behind a NAT).
	ModeAuto = "auto"
	// ModeServer always answers DHT queries (a bootstrap node, a server,
	// tests on one machine).
	ModeServer = "server"
	// ModeClient only queries the DHT, never answers.
	ModeClient = "client"
)

// Config says which sources run and how. Start from DefaultConfig and
// change what you need; Validate says what is wrong in plain words. The
// zero Config has every source off.
type Config struct {
	// MDNS turns on discovery on the local network by multicast DNS: the
	// node announces its peer ID and addresses on every multicast interface
	// and listens for others. Default true.
	MDNS bool
	// MDNSServiceName is the DNS-SD service name announced and browsed, of
	// the form "_name._udp" (name: 1 to 15 lower-case letters, digits or
	// dashes). Only nodes with the same name see each other. Default
	// "_syncnode._udp" (libp2p's own default, "_p2p._udp", would mix us up
	// with every other libp2p program on the LAN).
	MDNSServiceName string

	// DHT turns on rendezvous through a Kademlia DHT: the node advertises
	// itself under each namespace it is given (one per library, derived
	// from the library's secret) and looks up the others there. Default
	// true.
	DHT bool
	// DHTProtocolPrefix names the DHT to join: "/ipfs" is the public
	// Amino DHT (default); any other prefix, such as "/syncnode-test", makes
	// a private DHT whose nodes reach only each other.
	DHTProtocolPrefix string
	// DHTMode is "auto" (default), "server" or "client"; see ModeAuto,
	// ModeServer and ModeClient.
	DHTMode string
	// BootstrapPeers are the multiaddrs, each ending in /p2p/<peer ID>, of
	// the DHT nodes this node first connects to. Default: libp2p's public
	// bootstrap peers (dht.DefaultBootstrapPeers), which suit the "/ipfs"
	// prefix. Empty: this node is the first of its DHT, and others
	// bootstrap from it.
	BootstrapPeers []string
	// AdvertiseTTL is how long an advertisement counts as fresh; each
	// namespace is advertised again after 7/8 of it. Between 1 minute and 3
	// hours (libp2p's routing discovery caps it there; DHT servers keep a
	// record for 48 hours). Default 3 h.
	AdvertiseTTL time.Duration
	// FindIntervalMin and FindIntervalMax bound how often each namespace
	// is looked up: first at once, then after FindIntervalMin, doubling up
	// to FindIntervalMax. A failed advertisement is retried on the same
	// schedule. Defaults 10 s and 5 min.
	FindIntervalMin time.Duration
	FindIntervalMax time.Duration
	// FindTimeout bounds one lookup of one namespace. Default 1 min.
	FindTimeout time.Duration

	// DedupWindow is how long a peer reported with a set of addresses is
	// not reported again with the same set (by any source). Default 1 min.
	DedupWindow time.Duration
	// QueueSize is the most found peers waiting for the consumer; when the
	// consumer is slower, further peers are dropped and counted. Default
	// 256.
	QueueSize int
}

// DefaultConfig returns the configuration for the real internet: mDNS on
// the LAN and the public Amino DHT in auto mode, bootstrapped from libp2p's
// public bootstrap peers.
func DefaultConfig() Config {
	boot := make([]string, 0, len(dht.DefaultBootstrapPeers))
	for _, a := range dht.DefaultBootstrapPeers {
		boot = append(boot, a.String())
	}
	return Config{
		MDNS:              true,
		MDNSServiceName:   "_syncnode._udp",
		DHT:               true,
		DHTProtocolPrefix: "/ipfs",
		DHTMode:           ModeAuto,
		BootstrapPeers:    boot,
		AdvertiseTTL:      3 * time.Hour,
		FindIntervalMin:   10 * time.Second,
		FindIntervalMax:   5 * time.Minute,
		FindTimeout:       time.Minute,
		DedupWindow:       time.Minute,
		QueueSize:         256,
	}
}

var (
	serviceNameRE = regexp.MustCompile(`^_[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?\._(udp|tcp)$`)
	prefixRE      = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
)

// Enabled reports whether any source is on.
func (c Config) Enabled() bool { return c.MDNS || c.DHT }

// Validate reports every setting that cannot work, in plain words. The
// settings of a source that is off are not checked.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Enabled() {
		if c.DedupWindow <= 0 {
			bad("DedupWindow must be positive, is %v", c.DedupWindow)
		}
		if c.QueueSize < 1 {
			bad("QueueSize must be at least 1, is %d", c.QueueSize)
		}
	}
	if c.MDNS && !serviceNameRE.MatchString(c.MDNSServiceName) {
		bad("MDNSServiceName %q must look like \"_syncnode._udp\": an underscore, 1 to 15 lower-case letters, digits or dashes, then \"._udp\" or \"._tcp\"", c.MDNSServiceName)
	}
	if c.DHT {
		if !prefixRE.MatchString(c.DHTProtocolPrefix) {
			bad("DHTProtocolPrefix %q must be a path such as \"/ipfs\" or \"/syncnode-test\"", c.DHTProtocolPrefix)
		}
		if _, err := parseMode(c.DHTMode); err != nil {
			errs = append(errs, err)
		}
		if _, err := parseBootstrap(c.BootstrapPeers); err != nil {
			errs = append(errs, err)
		}
		if c.AdvertiseTTL < time.Minute || c.AdvertiseTTL > 3*time.Hour {
			bad("AdvertiseTTL must be between 1 minute and 3 hours, is %v", c.AdvertiseTTL)
		}
		if c.FindIntervalMin <= 0 {
			bad("FindIntervalMin must be positive, is %v", c.FindIntervalMin)
		}
		if c.FindIntervalMax < c.FindIntervalMin {
			bad("FindIntervalMax (%v) must not be below FindIntervalMin (%v)", c.FindIntervalMax, c.FindIntervalMin)
		}
		if c.FindTimeout <= 0 {
			bad("FindTimeout must be positive, is %v", c.FindTimeout)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("discovery: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func parseMode(s string) (dht.ModeOpt, error) {
	switch s {
	case ModeAuto:
		return dht.ModeAuto, nil
	case ModeServer:
		return dht.ModeServer, nil
	case ModeClient:
		return dht.ModeClient, nil
	}
	return 0, fmt.Errorf("DHTMode must be %q, %q or %q, is %q", ModeAuto, ModeServer, ModeClient, s)
}

// parseBootstrap reads bootstrap multiaddrs, merging the addresses of one
// peer.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	return ParsePeerAddrs("bootstrap peer", addrs)
}

// ParsePeerAddrs reads multiaddrs that each end in /p2p/<peer ID>, merging
// the addresses of one peer; what names them in errors ("relay",
// "bootstrap peer").
func ParsePeerAddrs(what string, addrs []string) ([]peer.AddrInfo, error) {
	var errs []error
	var mas []ma.Multiaddr
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a multiaddr: %v", what, s, err))
			continue
		}
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("%s %q must end in /p2p/<peer ID>: %v", what, s, err))
			continue
		}
		mas = append(mas, a)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("reading %ss: %w", what, err)
	}
	return infos, nil
}
