package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/daemon"
	"github.com/syncnode/syncnode/node/localapi"
)

func newRun(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the syncnode daemon (--local: on this machine only)",
		Long: `Run the daemon: the sync node, discovery and the local API that the other
commands use. It needs no flags: the data directory is under your home, TCP and
QUIC listen on port 7654 (or ports the system picks if taken), the API on
127.0.0.1:7655.

What it reaches: by default the daemon listens on every interface, finds the
members of its libraries by mDNS on the LAN and through the public DHT (it
joins the public IPFS DHT and advertises a name derived from each library's
secret), asks the router for a port mapping (UPnP, NAT-PMP), and uses AutoNAT,
relays and hole punching through public peers. --local (the local profile,
also profile = "local" in the config file) keeps it on this machine: loopback
only, with all of that off; two daemons with --local and their own
--data-dir sync with each other on one machine.

Settings come from defaults, then the config file, then SYNCNODE_*
environment variables, then flags. SIGINT or SIGTERM stops the daemon cleanly;
a second signal forces it to exit. SIGHUP reads the configuration again and
applies what can change while it runs (log.level, log.libp2p); it logs which
other changed keys take a restart. --json writes the logs as JSON lines.`,
		Example: `  syncnode run --local
  syncnode run --local --data-dir /tmp/second
  syncnode run
  SYNCNODE_LOG_FORMAT=json syncnode run`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.runConfig(cmd)
			if err != nil {
				return err
			}
			log, err := daemon.Setup(c, os.Stderr)
			if err != nil {
				return err
			}
			d, err := daemon.New(c, log)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			if err := d.Start(ctx); err != nil {
				return err
			}
			for {
				select {
				case <-hup:
					g.reload(cmd, d, log)
					continue
				case <-ctx.Done():
				}
				break
			}
			log.Info("shutting down")
			if err := d.Close(); err != nil {
				return err
			}
			log.Info("stopped")
			return nil
		},
	}
	addSettings(cmd)
	return cmd
}

// runConfig is the daemon's configuration, checked; --json means logs as
// JSON unless the log format is set otherwise.
func (g *globals) runConfig(cmd *cobra.Command) (daemon.Config, error) {
	c, err := g.config(cmd)
	if err != nil {
		return c, err
	}
	if g.json && !cmd.Flags().Changed("log-format") && os.Getenv("SYNCNODE_LOG_FORMAT") == "" {
		c.Log.Format = "json"
	}
	return c, c.Validate()
}

// reload reads the configuration again (file and environment; the flags
// are those the daemon started with) and applies what it can.
func (g *globals) reload(cmd *cobra.Command, d *daemon.Daemon, log *slog.Logger) {
	c, err := g.runConfig(cmd)
	if err != nil {
		log.Error("SIGHUP: the configuration does not read; nothing changed", "err", err)
		return
	}
	applied, restart, err := d.Reload(c)
	if err != nil {
		log.Error("SIGHUP: reloading failed; nothing changed", "err", err)
		return
	}
	if len(applied) == 0 && len(restart) == 0 {
		log.Info("SIGHUP: configuration read again: nothing changed")
		return
	}
	if len(applied) > 0 {
		log.Info("SIGHUP: configuration reloaded", "applied", strings.Join(applied, ","), "level", c.Log.Level, "libp2p", c.Log.Libp2p)
		log.Debug("SIGHUP: debug logging is on")
	}
	if len(restart) > 0 {
		log.Warn("SIGHUP: these changes take a restart (only "+strings.Join(daemon.Reloadable, " and ")+" reload)", "not_applied", strings.Join(restart, ","))
	}
}

// signalContext ends on the first SIGINT or SIGTERM; a second one, half a
// second or more later, exits the process at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig, ok := <-ch
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "syncnode: %v: shutting down (send it again to force)\n", sig)
		first := time.Now()
		cancel()
		for range ch {
			// One signal may arrive twice at once (sent to the process and
			// to its group, as timeout(1) does): only a later one forces.
			if time.Since(first) >= 500*time.Millisecond {
				fmt.Fprintln(os.Stderr, "syncnode: forced exit")
				os.Exit(exitFailed)
			}
		}
	}()
	return ctx, func() { signal.Stop(ch); close(ch); cancel() }
}

// initResult is what init made, as --json prints it.
type initResult struct {
	Device  string `json:"device"`
	Peer    string `json:"peer"`
	DataDir string `json:"data_dir"`
	// ConfigWritten is the config file init wrote ("" if none); Config
	// says what became of the config file in words.
	ConfigWritten string `json:"config_written"`
	Config        string `json:"config"`
}

func newInit(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the data directory, this device's identity and a config file",
		Long: `Create the data directory (owner-only), this device's identity (device ID
and libp2p key) and the local API token, and print them. "syncnode run" does
the same on first start, so init is optional; it is the way to see your device
ID before running. init works without a daemon and refuses while one runs on
the directory.

init also writes a config file with every key at its default, but only one it
is asked to: the file --config (or SYNCNODE_CONFIG) names, with data_dir set
when --data-dir is given; else, for the default data directory, the default
config file ($XDG_CONFIG_HOME/syncnode/config.toml). With --data-dir and no
--config it writes none, since the default config file applies to every
daemon. An existing file is left as it is unless --force.`,
		Example: `  syncnode init
  syncnode init --data-dir /tmp/node2 --config /tmp/node2/config.toml`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.configOptional = true
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			if err := c.Validate(); err != nil {
				return err
			}
			if addr, token, err := daemon.FindAPI(c); err == nil {
				if localapi.NewClient(addr, token).Do(ctxOf(cmd), "GET", "/v1/status", nil, nil) == nil {
					return fmt.Errorf("a daemon is running on %s (stop it first, or use `syncnode status`)", c.DataDir)
				}
			}
			if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
				return fmt.Errorf("creating data directory: %w", err)
			}
			if _, err := daemon.EnsureToken(c); err != nil {
				return err
			}
			nc, err := c.NodeConfig()
			if err != nil {
				return err
			}
			nc.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} // briefly, on loopback
			nc.Discovery.MDNS, nc.Discovery.DHT = false, false
			nc.NAT.PortMapping, nc.NAT.AutoNAT, nc.NAT.AutoRelay, nc.NAT.HolePunching = false, false, false, false
			nc.Relay.Enabled = false
			n, err := node.New(nc, node.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctxOf(cmd), time.Minute)
			defer cancel()
			if err := n.Start(ctx); err != nil {
				_ = n.Close()
				return err
			}
			device, peerID := n.Device(), n.AddrInfo().ID
			if err := n.Close(); err != nil {
				return err
			}
			res := initResult{Device: device.String(), Peer: peerID.String(), DataDir: c.DataDir}
			res.ConfigWritten, res.Config, err = writeInitConfig(g, c, force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, res)
			}
			fmt.Fprintf(out, "device  %s\npeer    %s\ndata    %s\nconfig  %s\n", res.Device, res.Peer, res.DataDir, res.Config)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing config file")
	addSettings(cmd)
	return cmd
}

// writeInitConfig writes the config file init is asked to write (see its
// help). It returns the path written ("" if none) and what it did, in
// words.
func writeInitConfig(g *globals, c daemon.Config, force bool) (written, said string, err error) {
	path, _, named := g.configFile()
	customData := c.DataDir != daemon.Default().DataDir
	switch {
	case path == "":
		return "", "none written (no home directory for the default config file)", nil
	case !named && customData:
		return "", fmt.Sprintf("none written: the data directory is not the default, and the default config file (%s) "+
			"would apply to every daemon; give --config PATH to write one for this data directory", path), nil
	}
	if _, err := os.Stat(path); err == nil && !force {
		return "", path + " (exists; left as it is, --force overwrites it)", nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("checking the config file: %w", err)
	}
	dataDir := ""
	if customData {
		dataDir = c.DataDir
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", fmt.Errorf("creating config directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(daemon.ExampleConfigFor(dataDir)), 0o600); err != nil {
		return "", "", fmt.Errorf("writing config file: %w", err)
	}
	return path, path + " (written: every key at its default, commented out)", nil
}
