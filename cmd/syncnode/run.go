package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
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
		Short: "Run the syncnode daemon",
		Long: `Run the daemon: the sync node, discovery (mDNS on the LAN, the DHT across
networks) and the local API that the other commands use. It needs no flags:
the data directory is under your home, TCP and QUIC listen on port 7654 (or
ports the system picks if taken), the API on 127.0.0.1:7655.

Settings come from defaults, then the config file, then SYNCNODE_*
environment variables, then flags. SIGINT or SIGTERM stops the daemon
cleanly; a second signal forces it to exit.`,
		Example: `  syncnode run
  syncnode run --data-dir /tmp/node2 --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0 --mdns=false --dht=false
  SYNCNODE_LOG_FORMAT=json syncnode run`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.config(cmd)
			if err != nil {
				return err
			}
			if err := c.Validate(); err != nil {
				return err
			}
			log, err := daemon.Setup(c, os.Stderr)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			return daemon.Run(ctx, c, log)
		},
	}
	addSettings(cmd)
	return cmd
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
				os.Exit(1)
			}
		}
	}()
	return ctx, func() { signal.Stop(ch); close(ch); cancel() }
}

func newInit(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the data directory, this device's identity and a config file",
		Long: `Create the data directory (owner-only), this device's identity (device ID
and libp2p key), the local API token, and, unless one exists, a config file
with every key at its default. "syncnode run" does the same on first start,
so init is optional; it is the way to see your device ID before running.
init works without a daemon and refuses while one runs on the directory.`,
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
			path := g.configPath
			if path == "" {
				path = os.Getenv("SYNCNODE_CONFIG")
			}
			if path == "" {
				path = daemon.DefaultConfigPath()
			}
			wrote := ""
			if path != "" {
				if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || force {
					b := []byte(daemon.ExampleConfigFor(g.dataDir))
					if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
						return fmt.Errorf("creating config directory: %w", err)
					}
					if err := os.WriteFile(path, b, 0o600); err != nil {
						return fmt.Errorf("writing config file: %w", err)
					}
					wrote = path
				}
			}
			return printJSON(map[string]string{
				"device": device.String(), "peer": peerID.String(), "data_dir": c.DataDir, "config_written": wrote,
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing config file")
	addSettings(cmd)
	return cmd
}
