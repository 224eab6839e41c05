package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/daemon"
)

func newConfig(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "config",
		Short: "Check the configuration",
		Long: `Commands about the configuration: the config file, SYNCNODE_* environment
variables and flags (docs/CONFIG.md).`,
		Example: `  syncnode config check`,
	})
	cmd.AddCommand(newConfigCheck(g))
	return cmd
}

// configReport is what config check prints with --json.
type configReport struct {
	// File is the config file read ("" if none), Found whether it exists.
	File  string `json:"file"`
	Found bool   `json:"found"`
	Valid bool   `json:"valid"`
	// Errors say what is wrong, one per problem.
	Errors []string `json:"errors,omitempty"`
	// Config is the configuration the daemon would run with, keyed as in
	// the config file.
	Config map[string]any `json:"config,omitempty"`
}

func newConfigCheck(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Read the configuration as `syncnode run` would, and say whether it is valid",
		Long: `Read the configuration as "syncnode run" would (defaults, the config file,
SYNCNODE_* variables, and the same flags as run), print the file read and the
settings that matter, and check them. It exits 0 when the configuration is
valid, 1 when it is not (each problem on a line of its own), without starting
anything.`,
		Example: `  syncnode config check
  syncnode config check --config ./config.toml
  syncnode config check --local --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := configReport{}
			path, _, _ := g.configFile()
			rep.File = path
			if path != "" {
				_, err := os.Stat(path)
				rep.Found = err == nil
			}
			c, err := g.config(cmd)
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				rep.Errors = problems(err)
			} else {
				rep.Valid = true
				if b, merr := toml.Marshal(c); merr == nil {
					_ = toml.Unmarshal(b, &rep.Config)
				}
			}
			out := cmd.OutOrStdout()
			if g.json {
				if err := printJSON(out, rep); err != nil {
					return err
				}
				if !rep.Valid {
					return errSilent
				}
				return nil
			}
			file := "none: the defaults"
			switch {
			case path != "" && rep.Found:
				file = path
			case path != "":
				file = path + " (not there: the defaults)"
			}
			fmt.Fprintf(out, "config file  %s\n", file)
			if !rep.Valid {
				fmt.Fprintln(out, "the configuration is not valid:")
				for _, p := range rep.Errors {
					fmt.Fprintf(out, "  - %s\n", p)
				}
				return errSilent
			}
			writeConfigSummary(out, c)
			fmt.Fprintln(out, "the configuration is valid")
			return nil
		},
	}
	addSettings(cmd)
	return cmd
}

// problems splits a configuration error into one line per problem.
func problems(err error) []string {
	var out []string
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	msg := strings.TrimPrefix(err.Error(), "invalid configuration: ")
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// writeConfigSummary prints the settings a person checks first.
func writeConfigSummary(w interface{ Write([]byte) (int, error) }, c daemon.Config) {
	tw := table(w)
	fmt.Fprintf(tw, "profile\t%s\n", c.Profile)
	fmt.Fprintf(tw, "data dir\t%s\n", c.DataDir)
	fmt.Fprintf(tw, "device name\t%s\n", c.DeviceName)
	fmt.Fprintf(tw, "listen\t%s\n", strings.Join(c.Listen, ", "))
	fmt.Fprintf(tw, "api\t%s\n", c.API)
	dht := onOff(c.Discovery.DHT)
	if c.Discovery.DHT {
		dht += " (prefix " + c.Discovery.DHTPrefix
		if c.Discovery.DHTPrefix == "/ipfs" {
			dht += ": the public DHT"
		}
		dht += ")"
	}
	fmt.Fprintf(tw, "discovery\tmDNS %s, DHT %s\n", onOff(c.Discovery.MDNS), dht)
	fmt.Fprintf(tw, "nat\tport mapping %s, AutoNAT %s, auto relay %s, hole punching %s, reachability %s\n",
		onOff(c.NAT.PortMapping), onOff(c.NAT.AutoNAT), onOff(c.NAT.AutoRelay), onOff(c.NAT.HolePunching), c.NAT.Reachability)
	fmt.Fprintf(tw, "relay service\t%s\n", onOff(c.Relay.Enabled))
	fmt.Fprintf(tw, "log\t%s, %s (libp2p %s)\n", c.Log.Level, c.Log.Format, c.Log.Libp2p)
	var models []string
	for _, m := range c.Models {
		models = append(models, m.Name+" ("+m.Strategy+")")
	}
	fmt.Fprintf(tw, "models\t%s\n", strings.Join(models, ", "))
	_ = tw.Flush()
}
