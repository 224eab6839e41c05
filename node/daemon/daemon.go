package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/pelletier/go-toml/v2"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/localapi"
)

// Daemon is a running syncnode: a node with discovery, and its local API.
type Daemon struct {
	cfg      Config
	log      *slog.Logger
	warnings *warningLog // the latest warnings of log, for the dashboard
	n        *node.Node
	api      *localapi.Server
}

// New checks the configuration and prepares a daemon. It starts nothing.
func New(cfg Config, log *slog.Logger) (*Daemon, error) {
	cfg = cfg.Effective()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	w := &warningLog{}
	log = slog.New(&warningHandler{h: log.Handler(), log: w})
	return &Daemon{cfg: cfg, log: log, warnings: w}, nil
}

// NodeConfig is the node configuration the daemon runs with.
func (c Config) NodeConfig() (node.Config, error) {
	nc := node.DefaultConfig()
	nc.DataDir = c.StoreDir()
	nc.DeviceName = c.DeviceName
	nc.SyncWrites = c.SyncWrites
	nc.ListenAddrs = append([]string(nil), c.Listen...)
	if c.Horizon > 0 {
		nc.Horizon = time.Duration(c.Horizon)
	}
	nc.HeartbeatInterval = time.Duration(c.HeartbeatInterval)
	nc.PeerTimeout = time.Duration(c.PeerTimeout)
	nc.Discovery = c.discovery()
	nc.NAT.PortMapping, nc.NAT.Reachability, nc.NAT.AutoNAT = c.NAT.PortMapping, c.NAT.Reachability, c.NAT.AutoNAT
	nc.NAT.AutoRelay, nc.NAT.HolePunching = c.NAT.AutoRelay, c.NAT.HolePunching
	nc.NAT.Relays = append([]string(nil), c.NAT.Relays...)
	nc.Relay.Enabled, nc.Relay.Strangers = c.Relay.Enabled, c.Relay.Strangers
	reg, err := c.Registry()
	if err != nil {
		return nc, err
	}
	nc.Registry = reg
	return nc, nc.Validate()
}

// Start creates the data directory and the API token if missing, starts the
// node and the local API, and writes the API's address where the CLI finds
// it.
func (d *Daemon) Start(ctx context.Context) error {
	if err := os.MkdirAll(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	token, err := EnsureToken(d.cfg)
	if err != nil {
		return err
	}
	nc, err := d.cfg.NodeConfig()
	if err != nil {
		return err
	}
	if slices.Equal(d.cfg.Listen, DefaultListen()) || slices.Equal(d.cfg.Listen, LocalListen()) {
		nc.ListenAddrs = freeListenAddrs(nc.ListenAddrs, d.log)
	}
	n, err := node.New(nc, node.WithLogger(d.log))
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		_ = n.Close()
		return err
	}
	d.n = n
	api, err := localapi.New(n, localapi.Config{Addr: d.cfg.API, Token: token, Warnings: d.warnings.recent}, d.log)
	if err != nil {
		_ = n.Close()
		return err
	}
	if err := api.Listen(d.cfg.API == Default().API); err != nil {
		_ = n.Close()
		return err
	}
	if err := api.Start(); err != nil {
		_ = n.Close()
		return err
	}
	d.api = api
	if err := writeFileAtomic(d.cfg.AddrPath(), []byte(api.Addr()+"\n"), 0o600); err != nil {
		_ = d.Close()
		return fmt.Errorf("writing the API address: %w", err)
	}
	info := n.AddrInfo()
	d.log.Info("syncnode running", "device", n.Device(), "peer", info.ID, "api", api.Addr(), "data_dir", d.cfg.DataDir, "profile", d.cfg.Profile)
	if d.cfg.Profile == ProfileLocal {
		d.log.Info("local profile: loopback only; mDNS, DHT, port mapping, AutoNAT, relays and hole punching are off")
	} else {
		d.log.Info("reaching other devices", "listen", strings.Join(d.cfg.Listen, ","), "mdns", d.cfg.Discovery.MDNS,
			"dht", d.cfg.Discovery.DHT, "dht_prefix", d.cfg.Discovery.DHTPrefix, "port_mapping", d.cfg.NAT.PortMapping,
			"autonat", d.cfg.NAT.AutoNAT, "auto_relay", d.cfg.NAT.AutoRelay, "hint", "syncnode run --local keeps the node on this machine")
	}
	for _, a := range info.Addrs {
		d.log.Debug("listening", "addr", a)
	}
	return nil
}

// Node returns the running node.
func (d *Daemon) Node() *node.Node { return d.n }

// APIAddr returns where the local API listens.
func (d *Daemon) APIAddr() string { return d.api.Addr() }

// Close stops the API (waiting up to 5 s for requests in flight) and the
// node, and removes the API address file.
func (d *Daemon) Close() error {
	var errs []error
	if d.api != nil {
		_ = os.Remove(d.cfg.AddrPath())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.api.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if d.n != nil {
		if err := d.n.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run starts a daemon, runs until ctx ends, and stops it.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	d, err := New(cfg, log)
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	d.log.Info("shutting down")
	err = d.Close()
	if err == nil {
		d.log.Info("stopped")
	}
	return err
}

// levels are the process's log levels: syncnode's and libp2p's (above
// every level: off). Setup sets them and Reload changes them.
var levels struct {
	syncnode, libp2p slog.LevelVar
}

// libp2pOff is a level above every record's: libp2p's logs off.
const libp2pOff = slog.Level(100)

// Setup applies the process-wide settings: the memory limit (unless
// GOMEMLIMIT is set) and the loggers, syncnode's and libp2p's. It returns
// syncnode's logger, whose levels Reload can change later.
func Setup(cfg Config, w io.Writer) (*slog.Logger, error) {
	memory, err := ApplyMemoryLimit(cfg.MemoryLimit)
	if err != nil {
		return nil, err
	}
	if err := setLevels(cfg.Log); err != nil {
		return nil, err
	}
	// libp2p logs through gologshim (slog) and, in a few libraries, go-log:
	// both go to our handler at their own level, or nowhere.
	gologshim.SetDefaultHandler(newHandler(cfg.Log.Format, w, &levels.libp2p))
	log := slog.New(newHandler(cfg.Log.Format, w, &levels.syncnode))
	log.Debug("Go soft memory limit", "limit", memory)
	return log, nil
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit as the
// memory_limit setting says (a size, "0" for none, or AutoMemoryLimit),
// unless the GOMEMLIMIT environment variable is set, and says in words what
// limit the process now has.
func ApplyMemoryLimit(setting string) (string, error) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return "GOMEMLIMIT=" + v, nil
	}
	limit, cgroup, err := resolveMemoryLimit(setting)
	if err != nil {
		return "", fmt.Errorf("memory_limit: %w", err)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return describeMemoryLimit(setting, limit, cgroup), nil
}

// setLevels sets the log levels of c.
func setLevels(c LogConfig) error {
	lvl, err := parseLevel(c.Level)
	if err != nil {
		return err
	}
	p2p := libp2pOff
	if c.Libp2p != "off" {
		if p2p, err = parseLevel(c.Libp2p); err != nil {
			return fmt.Errorf("log.libp2p: %w", err)
		}
	}
	levels.syncnode.Set(lvl)
	levels.libp2p.Set(p2p)
	if c.Libp2p == "off" {
		golog.SetAllLoggers(golog.LevelFatal)
	} else {
		l, _ := golog.LevelFromString(c.Libp2p)
		golog.SetAllLoggers(l)
	}
	return nil
}

// NewLogger returns a logger of the given level and format, writing to w.
func NewLogger(c LogConfig, w io.Writer) (*slog.Logger, error) {
	lvl, err := parseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	return slog.New(newHandler(c.Format, w, lvl)), nil
}

func newHandler(format string, w io.Writer, lvl slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// Reloadable are the keys Reload applies to a running daemon; every other
// key takes a restart.
var Reloadable = []string{"log.level", "log.libp2p"}

// Reload applies what can change while the daemon runs, from next (the
// configuration read again, on SIGHUP): the log levels. It returns the keys
// it changed, and the keys that differ but take a restart to apply. next
// must be valid (Validate).
func (d *Daemon) Reload(next Config) (applied, restart []string, err error) {
	next = next.Effective()
	changed, err := diffKeys(d.cfg, next)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range changed {
		if slices.Contains(Reloadable, k) {
			applied = append(applied, k)
		} else {
			restart = append(restart, k)
		}
	}
	if len(applied) > 0 {
		if err := setLevels(next.Log); err != nil {
			return nil, nil, err
		}
		d.cfg.Log.Level, d.cfg.Log.Libp2p = next.Log.Level, next.Log.Libp2p
	}
	return applied, restart, nil
}

// diffKeys returns the config file keys ("log.level", "listen",
// "models") whose values differ between a and b.
func diffKeys(a, b Config) ([]string, error) {
	flat := func(c Config) (map[string]string, error) {
		raw, err := toml.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("daemon: encoding the configuration: %w", err)
		}
		var m map[string]any
		if err := toml.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("daemon: reading the configuration: %w", err)
		}
		out := map[string]string{}
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				for sk, sv := range sub {
					out[k+"."+sk] = fmt.Sprint(sv)
				}
				continue
			}
			out[k] = fmt.Sprint(v)
		}
		return out, nil
	}
	fa, err := flat(a)
	if err != nil {
		return nil, err
	}
	fb, err := flat(b)
	if err != nil {
		return nil, err
	}
	var out []string
	for k, v := range fa {
		if fb[k] != v {
			out = append(out, k)
		}
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not a level (debug, info, warn, error)", s)
}

// EnsureToken returns the API token, creating it (32 random bytes, hex, in
// a file only the owner may read) if missing.
func EnsureToken(c Config) (string, error) {
	b, err := os.ReadFile(c.TokenPath())
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < 16 {
			return "", fmt.Errorf("the API token in %s is too short: delete the file to make a new one", c.TokenPath())
		}
		return t, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the API token: %w", err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("creating data directory: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("making the API token: %w", err)
	}
	t := hex.EncodeToString(raw[:])
	if err := writeFileAtomic(c.TokenPath(), []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the API token: %w", err)
	}
	return t, nil
}

// FindAPI returns the address and token of the daemon running on c's data
// directory, or an error that tells the user what to do.
func FindAPI(c Config) (addr, token string, err error) {
	b, err := os.ReadFile(c.AddrPath())
	if errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("no syncnode daemon is running with data directory %s: start one with `syncnode run`", c.DataDir)
	}
	if err != nil {
		return "", "", fmt.Errorf("reading the daemon's address: %w", err)
	}
	tb, err := os.ReadFile(c.TokenPath())
	if err != nil {
		return "", "", fmt.Errorf("reading the API token (%s): %w", c.TokenPath(), err)
	}
	return strings.TrimSpace(string(b)), strings.TrimSpace(string(tb)), nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// freeListenAddrs replaces the port of a default listen address that is
// taken with 0, so the node still starts (on a port the system picks).
func freeListenAddrs(addrs []string, log *slog.Logger) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			out = append(out, a)
			continue
		}
		host, port, network := "", "", ""
		ma.ForEach(m, func(c ma.Component) bool {
			switch c.Protocol().Code {
			case ma.P_IP4, ma.P_IP6:
				host = c.Value()
			case ma.P_TCP:
				port, network = c.Value(), "tcp"
			case ma.P_UDP:
				port, network = c.Value(), "udp"
			}
			return true
		})
		if port == "" || port == "0" || portFree(network, net.JoinHostPort(host, port)) {
			out = append(out, a)
			continue
		}
		free := strings.Replace(a, "/"+network+"/"+port, "/"+network+"/0", 1)
		log.Warn("default port taken, using one the system picks", "addr", a, "instead", free)
		out = append(out, free)
	}
	return out
}

func portFree(network, addr string) bool {
	if network == "tcp" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
