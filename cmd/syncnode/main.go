// Command syncnode runs a syncnode daemon and talks to it.
//
//	syncnode run                        # the daemon: defaults need no flags
//	syncnode library create photos      # every other command asks the daemon
//	syncnode library invite             # prints a code for the other device
//	syncnode library join syncnode1-…   # on the other device
//	syncnode put tag '{"name":"red"}'   # JSON in, JSON out
//
// Exit codes: 0 success, 1 the command failed (the message says why), 2 the
// command line was wrong.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	root := newRoot()
	cmd, err := root.ExecuteC()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "syncnode:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		os.Exit(2)
	}
	os.Exit(1)
}

// usageError is a wrong command line, answered with exit code 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// isCobraUsage reports whether cobra refused the command line (unknown
// command or flag, wrong number of arguments).
func isCobraUsage(err error) bool {
	var fe *flagError
	return errors.As(err, &fe) || strings.HasPrefix(err.Error(), "unknown command")
}

// flagError wraps cobra's flag and argument errors.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// args checks positional arguments and marks a wrong count as a usage
// error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &flagError{err}
		}
		return nil
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "syncnode",
		Short: "A leaderless peer-to-peer sync node for your devices",
		Long: `syncnode keeps a library of records in sync between your devices, with no
server and no leader. Run the daemon on each device ("syncnode run"), create a
library on one, invite the others, and records written on any device reach
all of them: on the LAN through mDNS, across networks through the DHT.

Every command but "run" and "init" talks to the running daemon through its
local API (its address and token are in the data directory).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Example: `  syncnode run
  syncnode library create photos
  syncnode put tag '{"name": "holiday"}'
  syncnode status`,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "config file (default $XDG_CONFIG_HOME/syncnode/config.toml; env SYNCNODE_CONFIG)")
	pf.StringVar(&g.dataDir, "data-dir", "", "data directory (default $XDG_DATA_HOME/syncnode; env SYNCNODE_DATA_DIR)")
	pf.StringVar(&g.api, "api", "", "the daemon's API address, if not the one in the data directory (env SYNCNODE_API)")
	pf.StringVar(&g.token, "token", "", "the API token, if not the one in the data directory (env SYNCNODE_TOKEN)")
	root.AddCommand(newRun(g), newInit(g), newLibrary(g), newPut(g), newGet(g), newList(g), newDelete(g),
		newWatch(g), newStatus(g), newPeers(g), newDoctor(g), newModels(g))
	return root
}
