package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/syncnode/syncnode/node/daemon"
	"github.com/syncnode/syncnode/node/localapi"
)

// globals are the flags every command has.
type globals struct {
	configPath string
	// configOptional: a named config file may be missing (init writes it).
	configOptional bool
	dataDir        string
	api            string
	token          string
	// json prints JSON instead of text.
	json bool
}

// configFile returns the config file to read and whether it must exist:
// --config, else $SYNCNODE_CONFIG (both must exist unless configOptional),
// else the default path (may be missing; "" when there is no home).
func (g *globals) configFile() (path string, required, named bool) {
	path = g.configPath
	if path == "" {
		path = os.Getenv("SYNCNODE_CONFIG")
	}
	if path != "" {
		return path, !g.configOptional, true
	}
	return daemon.DefaultConfigPath(), false, false
}

// load builds the configuration: defaults, then the config file, then
// SYNCNODE_* variables, then the command's flags that were set, then the
// profile (--local is --profile=local).
func (g *globals) load(cmd *cobra.Command) (daemon.Config, error) {
	c := daemon.Default()
	if path, required, _ := g.configFile(); path != "" {
		if err := daemon.LoadFile(&c, path, required); err != nil {
			return c, err
		}
	}
	if err := daemon.ApplyEnv(&c, os.Getenv); err != nil {
		return c, err
	}
	var ferr error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		for _, s := range daemon.Settings {
			if s.Key == f.Name && ferr == nil {
				if err := s.Set(&c, f.Value.String()); err != nil {
					ferr = usagef("--%v", err)
				}
			}
		}
		if f.Name == "local" && f.Value.String() == "true" {
			c.Profile = daemon.ProfileLocal
		}
	})
	return c.Effective(), ferr
}

// addSettings gives cmd a flag for every setting.
func addSettings(cmd *cobra.Command) {
	def := daemon.Default()
	defaults := map[string]string{
		"profile": def.Profile, "listen": "TCP and QUIC on port 7654 of every interface; --local: of 127.0.0.1",
		"api": def.API, "memory-limit": def.MemoryLimit,
		"sync-writes": "true", "log-format": "text", "log-level": "info", "log-libp2p": "off",
		"heartbeat-interval": "10s", "peer-timeout": "30s", "mdns": "true", "dht": "true", "dht-mode": def.Discovery.DHTMode, "dht-prefix": def.Discovery.DHTPrefix,
		"bootstrap": "the public DHT's bootstrap peers", "device-name": "the host name",
		"port-mapping": "true", "reachability": def.NAT.Reachability, "autonat": "true", "auto-relay": "true",
		"hole-punching": "true", "relays": "none", "relay": "false", "relay-strangers": def.Relay.Strangers,
	}
	for _, s := range daemon.Settings {
		if s.Key == "data-dir" || s.Key == "api" {
			continue // global flags
		}
		usage := s.Usage
		if d := defaults[s.Key]; d != "" {
			usage += " (default " + d + ")"
		}
		cmd.Flags().String(s.Key, "", usage+"; env "+s.Env())
		if boolSettings[s.Key] {
			// --relay means --relay=true.
			cmd.Flags().Lookup(s.Key).NoOptDefVal = "true"
		}
	}
	cmd.Flags().Bool("local", false, "the local profile (--profile=local): loopback only; mDNS, DHT, port mapping, AutoNAT, relays and hole punching off")
}

// boolSettings are the settings that are true or false: their flag alone
// means true.
var boolSettings = map[string]bool{
	"sync-writes": true, "mdns": true, "dht": true, "port-mapping": true, "autonat": true,
	"auto-relay": true, "hole-punching": true, "relay": true,
}

// client finds the running daemon of the configured data directory.
func (g *globals) client(cmd *cobra.Command) (*localapi.Client, error) {
	addr, token := g.api, g.token
	if addr == "" {
		addr = os.Getenv("SYNCNODE_API")
	}
	if token == "" {
		token = os.Getenv("SYNCNODE_TOKEN")
	}
	if addr == "" || token == "" {
		c, err := g.config(cmd)
		if err != nil {
			return nil, err
		}
		a, t, err := daemon.FindAPI(c)
		if err != nil {
			return nil, err
		}
		if addr == "" {
			addr = a
		}
		if token == "" {
			token = t
		}
	}
	return localapi.NewClient(addr, token), nil
}

// config is load plus the global --data-dir.
func (g *globals) config(cmd *cobra.Command) (daemon.Config, error) {
	c, err := g.load(cmd)
	if err != nil {
		return c, err
	}
	if g.dataDir != "" {
		c.DataDir = g.dataDir
	}
	return c, nil
}

func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// libraryClient finds the daemon and the library --library names.
func (g *globals) libraryClient(cmd *cobra.Command, lib string) (*localapi.Client, localapi.Library, error) {
	c, err := g.client(cmd)
	if err != nil {
		return nil, localapi.Library{}, err
	}
	l, err := resolveLibrary(ctxOf(cmd), c, lib)
	return c, l, err
}
