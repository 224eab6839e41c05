// Package daemon runs syncnode as a program: it reads the configuration
// (defaults, then a TOML file, then SYNCNODE_* environment variables, then
// flags), runs a node with discovery and the local API, and finds a running
// daemon for the CLI. cmd/syncnode is the thin main around it.
package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/pelletier/go-toml/v2"

	"github.com/syncnode/syncnode/discovery"
	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/node/relayservice"
)

// Default ports: TCP and QUIC listen on DefaultPort, the local API on
// DefaultAPIPort of 127.0.0.1. A taken default port falls back to one the
// system picks.
const (
	DefaultPort    = 7654
	DefaultAPIPort = 7655
)

// Profiles: ProfileDefault reaches other devices (every interface, mDNS on
// the LAN, the public DHT, port mapping, AutoNAT, relays, hole punching);
// ProfileLocal keeps the node on this machine (see Config.Effective).
const (
	ProfileDefault = "default"
	ProfileLocal   = "local"
)

// Config is the daemon's configuration: the keys of the config file. Every
// key has a default (see Default), an environment variable SYNCNODE_<KEY>
// and a flag --<key>; docs/CONFIG.md lists them.
type Config struct {
	// Profile is "default" (default) or "local": loopback only, no mDNS,
	// DHT, port mapping, AutoNAT, relays or hole punching, whatever the
	// other keys say (Effective applies it).
	Profile string `toml:"profile"`
	// DataDir holds the store, the API token and the running daemon's
	// address. Default: $XDG_DATA_HOME/syncnode, else
	// ~/.local/share/syncnode.
	DataDir string `toml:"data_dir"`
	// DeviceName is how this device names itself in libraries. Default:
	// the host name.
	DeviceName string `toml:"device_name"`
	// Listen are the libp2p listen multiaddrs. Default: TCP and QUIC on
	// port 7654 of every IPv4 and IPv6 interface.
	Listen []string `toml:"listen"`
	// API is the local API's address: "127.0.0.1:7655" (default) or
	// "unix:/path/to/socket".
	API string `toml:"api"`
	// MemoryLimit is the Go runtime's soft memory limit ("256MiB",
	// "1GiB"; "0" for none; "auto"). Default "auto": 256MiB, or half the
	// limit of the memory cgroup the process runs in (a container, a
	// systemd MemoryMax=) where that is less, so that the store's
	// memory-mapped files keep room beside the heap. GOMEMLIMIT, if set,
	// wins.
	MemoryLimit string `toml:"memory_limit"`
	// SyncWrites makes every store write reach the disk before it counts
	// as done. Default true.
	SyncWrites bool `toml:"sync_writes"`
	// Horizon is how long a silent member holds log pruning back. Default
	// 720h (30 days).
	Horizon Duration `toml:"horizon"`
	// HeartbeatInterval is how often a heartbeat goes to each connected
	// peer; PeerTimeout is how long a silent peer counts as connected.
	// Defaults 10s and 30s.
	HeartbeatInterval Duration `toml:"heartbeat_interval"`
	PeerTimeout       Duration `toml:"peer_timeout"`

	Log       LogConfig       `toml:"log"`
	Discovery DiscoveryConfig `toml:"discovery"`
	NAT       NATConfig       `toml:"nat"`
	Relay     RelayConfig     `toml:"relay"`
	// Models declares the model types and their strategies; default: the
	// Spacedrive mapping. The "device" model (shared) is always added: the
	// library's members are its records.
	Models []Model `toml:"models"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Format is "text" (default) or "json".
	Format string `toml:"format"`
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `toml:"level"`
	// Libp2p is the level of libp2p's own logs: "off" (default), "debug",
	// "info", "warn" or "error".
	Libp2p string `toml:"libp2p"`
}

// DiscoveryConfig configures how members are found.
type DiscoveryConfig struct {
	// MDNS finds members on the LAN. Default true.
	MDNS bool `toml:"mdns"`
	// DHT finds members across networks through the Kademlia DHT. Default
	// true.
	DHT bool `toml:"dht"`
	// DHTMode is "auto" (default: server when reachable), "server" or
	// "client".
	DHTMode string `toml:"dht_mode"`
	// DHTPrefix is the DHT's protocol prefix; default "/ipfs", the public
	// DHT.
	DHTPrefix string `toml:"dht_prefix"`
	// Bootstrap are the DHT's bootstrap peers (multiaddrs with /p2p/);
	// default: the public DHT's bootstrap list.
	Bootstrap []string `toml:"bootstrap"`
}

// NATConfig says how the node reaches members behind NATs
// (docs/NETWORKING.md).
type NATConfig struct {
	// PortMapping asks the router for a port mapping (UPnP, NAT-PMP).
	// Default true.
	PortMapping bool `toml:"port_mapping"`
	// Reachability is "auto" (default: AutoNAT finds out), "public" or
	// "private".
	Reachability string `toml:"reachability"`
	// AutoNAT asks peers to dial back, and answers them. Default true.
	AutoNAT bool `toml:"autonat"`
	// AutoRelay reserves relay slots while unreachable. Default true.
	AutoRelay bool `toml:"auto_relay"`
	// HolePunching turns relayed connections into direct ones. Default
	// true.
	HolePunching bool `toml:"hole_punching"`
	// Relays are relays to use first (multiaddrs with /p2p/). Default
	// none.
	Relays []string `toml:"relays"`
}

// RelayConfig configures the relay service.
type RelayConfig struct {
	// Enabled serves relay reservations (a machine with a public
	// address). Default false.
	Enabled bool `toml:"enabled"`
	// Strangers is "limited" (default: peers that are no member get
	// libp2p's limits) or "off".
	Strangers string `toml:"strangers"`
}

// Model declares one model type.
type Model struct {
	Name string `toml:"name"`
	// Strategy is "device-owned", "shared" (last writer wins per record) or
	// "shared-fields" (last writer wins per top-level field of a map
	// payload; docs/CONFIG.md says when to choose which).
	Strategy  string   `toml:"strategy"`
	DependsOn []string `toml:"depends_on,omitempty"`
}

// Duration is a time.Duration written as "30s", "720h".
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\" or \"720h\"", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Default returns the configuration a user gets with no file, environment
// or flags.
func Default() Config {
	name, _ := os.Hostname()
	dc := discovery.DefaultConfig()
	nat := node.DefaultNATConfig()
	return Config{
		Profile:           ProfileDefault,
		DataDir:           defaultDataDir(),
		DeviceName:        name,
		Listen:            DefaultListen(),
		API:               fmt.Sprintf("127.0.0.1:%d", DefaultAPIPort),
		MemoryLimit:       AutoMemoryLimit,
		SyncWrites:        true,
		Horizon:           Duration(node.DefaultConfig().Horizon),
		HeartbeatInterval: Duration(node.DefaultConfig().HeartbeatInterval),
		PeerTimeout:       Duration(node.DefaultConfig().PeerTimeout),
		Log:               LogConfig{Format: "text", Level: "info", Libp2p: "off"},
		Discovery: DiscoveryConfig{
			MDNS: dc.MDNS, DHT: dc.DHT, DHTMode: dc.DHTMode, DHTPrefix: dc.DHTProtocolPrefix,
			Bootstrap: append([]string(nil), dc.BootstrapPeers...),
		},
		NAT: NATConfig{
			PortMapping: nat.PortMapping, Reachability: nat.Reachability, AutoNAT: nat.AutoNAT,
			AutoRelay: nat.AutoRelay, HolePunching: nat.HolePunching, Relays: []string{},
		},
		Relay:  RelayConfig{Enabled: false, Strangers: relayservice.StrangersLimited},
		Models: DefaultModels(),
	}
}

// DefaultListen returns the default listen addresses.
func DefaultListen() []string {
	p := DefaultPort
	return []string{
		fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", p), fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", p),
		fmt.Sprintf("/ip6/::/tcp/%d", p), fmt.Sprintf("/ip6/::/udp/%d/quic-v1", p),
	}
}

// LocalListen returns the listen addresses of the local profile: TCP and
// QUIC on port 7654 of the IPv4 loopback.
func LocalListen() []string {
	p := DefaultPort
	return []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p)}
}

// Effective returns the configuration with its profile applied. Under the
// local profile the default listen addresses become LocalListen (listen
// addresses given explicitly must be on loopback: Validate checks), and
// mDNS, the DHT, port mapping, AutoNAT, AutoRelay, hole punching and the
// relay service are off whatever else the configuration says: nothing
// leaves this machine. Applying it twice changes nothing.
func (c Config) Effective() Config {
	if c.Profile != ProfileLocal {
		return c
	}
	if slices.Equal(c.Listen, DefaultListen()) {
		c.Listen = LocalListen()
	}
	c.Discovery.MDNS, c.Discovery.DHT = false, false
	c.NAT.PortMapping, c.NAT.AutoNAT, c.NAT.AutoRelay, c.NAT.HolePunching = false, false, false, false
	c.Relay.Enabled = false
	return c
}

// DefaultModels returns the Spacedrive mapping.
func DefaultModels() []Model {
	reg := engine.DefaultRegistry()
	var out []Model
	for _, s := range []engine.Strategy{engine.DeviceOwned, engine.Shared} {
		for _, name := range reg.Ordered(s) {
			t, _ := reg.Lookup(name)
			out = append(out, Model{Name: t.Name, Strategy: t.Strategy.String(), DependsOn: t.DependsOn})
		}
	}
	return out
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "syncnode")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "syncnode")
	}
	return "syncnode-data"
}

// DefaultConfigPath is where the config file is looked for when none is
// named: $XDG_CONFIG_HOME/syncnode/config.toml, else
// ~/.config/syncnode/config.toml.
func DefaultConfigPath() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "syncnode", "config.toml")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "syncnode", "config.toml")
	}
	return ""
}

// LoadFile reads a config file over c. A missing file is an error only when
// required (named by the user).
func LoadFile(c *Config, path string, required bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	dec := toml.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var file Config
	file = *c
	file.Models = nil
	if err := dec.Decode(&file); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("config file %s, line %d column %d: %v", path, row, col, de)
		}
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return fmt.Errorf("config file %s: unknown key: %s", path, sm.String())
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if file.Models == nil {
		file.Models = c.Models
	}
	*c = file
	return nil
}

// Setting is one key that the environment and flags can set.
type Setting struct {
	// Key is the flag name (--key); the variable is SYNCNODE_ + KEY with
	// dashes as underscores.
	Key   string
	Usage string
	set   func(c *Config, v string) error
}

// Env is the setting's environment variable.
func (s Setting) Env() string {
	return "SYNCNODE_" + strings.ToUpper(strings.ReplaceAll(s.Key, "-", "_"))
}

// Set applies a value given as text.
func (s Setting) Set(c *Config, v string) error {
	if err := s.set(c, v); err != nil {
		return fmt.Errorf("%s: %w", s.Key, err)
	}
	return nil
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", v)
	}
	return b, nil
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Settings are the keys that environment variables and flags set, in the
// order help shows them. (The config file sets these and the rest.)
var Settings = []Setting{
	{"profile", "default, or local: loopback only, no mDNS, DHT, port mapping, AutoNAT, relays or hole punching", func(c *Config, v string) error { c.Profile = v; return nil }},
	{"data-dir", "directory of the store, API token and daemon address", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"device-name", "how this device names itself in libraries", func(c *Config, v string) error { c.DeviceName = v; return nil }},
	{"listen", "libp2p listen multiaddrs, comma-separated", func(c *Config, v string) error { c.Listen = list(v); return nil }},
	{"api", "local API address: host:port or unix:/path", func(c *Config, v string) error { c.API = v; return nil }},
	{"memory-limit", "Go soft memory limit (auto, 256MiB, 1GiB, 0 for none)", func(c *Config, v string) error { c.MemoryLimit = v; return nil }},
	{"sync-writes", "fsync every store write (true/false)", func(c *Config, v string) (err error) { c.SyncWrites, err = parseBool(v); return }},
	{"heartbeat-interval", "how often a heartbeat goes to each peer", func(c *Config, v string) error { return c.HeartbeatInterval.UnmarshalText([]byte(v)) }},
	{"peer-timeout", "how long a silent peer counts as connected", func(c *Config, v string) error { return c.PeerTimeout.UnmarshalText([]byte(v)) }},
	{"log-format", "log format: text or json", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"log-level", "log level: debug, info, warn, error", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"log-libp2p", "libp2p's own log level: off, debug, info, warn, error", func(c *Config, v string) error { c.Log.Libp2p = v; return nil }},
	{"mdns", "find members on the LAN by mDNS (true/false)", func(c *Config, v string) (err error) { c.Discovery.MDNS, err = parseBool(v); return }},
	{"dht", "find members through the Kademlia DHT (true/false)", func(c *Config, v string) (err error) { c.Discovery.DHT, err = parseBool(v); return }},
	{"dht-mode", "DHT mode: auto, server or client", func(c *Config, v string) error { c.Discovery.DHTMode = v; return nil }},
	{"dht-prefix", "DHT protocol prefix (/ipfs is the public DHT)", func(c *Config, v string) error { c.Discovery.DHTPrefix = v; return nil }},
	{"bootstrap", "DHT bootstrap peers, comma-separated multiaddrs with /p2p/", func(c *Config, v string) error { c.Discovery.Bootstrap = list(v); return nil }},
	{"port-mapping", "ask the router for a port mapping by UPnP or NAT-PMP (true/false)", func(c *Config, v string) (err error) { c.NAT.PortMapping, err = parseBool(v); return }},
	{"reachability", "auto (AutoNAT finds out), public or private", func(c *Config, v string) error { c.NAT.Reachability = v; return nil }},
	{"autonat", "ask peers to dial this node back, and answer them (true/false)", func(c *Config, v string) (err error) { c.NAT.AutoNAT, err = parseBool(v); return }},
	{"auto-relay", "reserve relay slots while unreachable (true/false)", func(c *Config, v string) (err error) { c.NAT.AutoRelay, err = parseBool(v); return }},
	{"hole-punching", "turn relayed connections into direct ones (true/false)", func(c *Config, v string) (err error) { c.NAT.HolePunching, err = parseBool(v); return }},
	{"relays", "relays to use first, comma-separated multiaddrs with /p2p/", func(c *Config, v string) error { c.NAT.Relays = list(v); return nil }},
	{"relay", "serve as a relay for the members of this node's libraries (true/false)", func(c *Config, v string) (err error) { c.Relay.Enabled, err = parseBool(v); return }},
	{"relay-strangers", "what the relay serves peers that are no member: limited or off", func(c *Config, v string) error { c.Relay.Strangers = v; return nil }},
}

// ApplyEnv applies every SYNCNODE_* variable that is set.
func ApplyEnv(c *Config, getenv func(string) string) error {
	for _, s := range Settings {
		if v := getenv(s.Env()); v != "" {
			if err := s.Set(c, v); err != nil {
				return fmt.Errorf("environment variable %s: %w", s.Env(), err)
			}
		}
	}
	return nil
}

// parseSize reads "256MiB", "1GiB", "512MB", "1048576"; "0" is zero.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size such as 256MiB", s)
	}
	return v * mult, nil
}

// Registry builds the model registry from Models (the device model added).
func (c Config) Registry() (*engine.Registry, error) {
	var types []engine.ModelType
	hasDevice := false
	for _, m := range c.Models {
		var s engine.Strategy
		switch m.Strategy {
		case "device-owned", "owned":
			s = engine.DeviceOwned
		case "shared":
			s = engine.Shared
		case "shared-fields":
			s = engine.SharedFields
		default:
			return nil, fmt.Errorf("model %q: strategy must be \"device-owned\", \"shared\" or \"shared-fields\", is %q", m.Name, m.Strategy)
		}
		if m.Name == node.DeviceModel {
			if s != engine.Shared {
				return nil, fmt.Errorf("model %q is the library's member list and must be shared", m.Name)
			}
			hasDevice = true
		}
		types = append(types, engine.ModelType{Name: m.Name, Strategy: s, DependsOn: m.DependsOn})
	}
	if !hasDevice {
		types = append(types, engine.ModelType{Name: node.DeviceModel, Strategy: engine.Shared})
	}
	reg, err := engine.NewRegistry(types...)
	if err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	return reg, nil
}

// Validate checks what the node does not check itself.
func (c Config) Validate() error {
	var errs []error
	switch c.Profile {
	case ProfileDefault:
	case ProfileLocal:
		for _, l := range c.Listen {
			if !loopbackMultiaddr(l) {
				errs = append(errs, fmt.Errorf("listen: %q is not a loopback address, and the local profile keeps the node on this machine (use /ip4/127.0.0.1/...)", l))
			}
		}
		if host, _, err := net.SplitHostPort(c.API); !strings.HasPrefix(c.API, "unix:") && (err != nil || !loopbackHost(host)) {
			errs = append(errs, fmt.Errorf("api: %q is not on loopback, and the local profile keeps the node on this machine", c.API))
		}
	default:
		errs = append(errs, fmt.Errorf("profile must be default or local, is %q", c.Profile))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if c.API == "" {
		errs = append(errs, errors.New("api is empty: give host:port or unix:/path"))
	}
	if strings.TrimSpace(c.MemoryLimit) != AutoMemoryLimit {
		if _, err := parseSize(c.MemoryLimit); err != nil {
			errs = append(errs, fmt.Errorf("memory_limit: %w (or \"auto\")", err))
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format must be text or json, is %q", c.Log.Format))
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w", err))
	}
	if c.Log.Libp2p != "off" {
		if _, err := parseLevel(c.Log.Libp2p); err != nil {
			errs = append(errs, fmt.Errorf("log.libp2p: %w (or off)", err))
		}
	}
	if _, err := c.Registry(); err != nil {
		errs = append(errs, err)
	}
	if err := c.discovery().Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.NAT.Reachability {
	case node.ReachabilityAuto, node.ReachabilityPublic, node.ReachabilityPrivate:
	default:
		errs = append(errs, fmt.Errorf("nat.reachability must be auto, public or private, is %q", c.NAT.Reachability))
	}
	switch c.Relay.Strangers {
	case relayservice.StrangersLimited, relayservice.StrangersOff:
	default:
		errs = append(errs, fmt.Errorf("relay.strangers must be limited or off, is %q", c.Relay.Strangers))
	}
	if _, err := discovery.ParsePeerAddrs("relay", c.NAT.Relays); err != nil {
		errs = append(errs, fmt.Errorf("nat.relays: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

// loopbackMultiaddr reports whether a listen multiaddr is on a loopback
// address (/ip4/127.x.x.x or /ip6/::1).
func loopbackMultiaddr(s string) bool {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return false
	}
	for _, code := range []int{ma.P_IP4, ma.P_IP6} {
		if v, err := m.ValueForProtocol(code); err == nil {
			return loopbackHost(v)
		}
	}
	return false
}

// loopbackHost reports whether host is a loopback IP address or
// "localhost".
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (c Config) discovery() discovery.Config {
	d := discovery.DefaultConfig()
	d.MDNS, d.DHT, d.DHTMode, d.DHTProtocolPrefix = c.Discovery.MDNS, c.Discovery.DHT, c.Discovery.DHTMode, c.Discovery.DHTPrefix
	d.BootstrapPeers = append([]string(nil), c.Discovery.Bootstrap...)
	return d
}

// StoreDir is where the node's Badger store lives.
func (c Config) StoreDir() string { return filepath.Join(c.DataDir, "store") }

// TokenPath is the API token's file.
func (c Config) TokenPath() string { return filepath.Join(c.DataDir, "api-token") }

// AddrPath is the file where a running daemon writes its API address.
func (c Config) AddrPath() string { return filepath.Join(c.DataDir, "api-addr") }
