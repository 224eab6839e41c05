// Command syncnode runs a syncnode daemon and talks to it.
//
//	syncnode run --local                # the daemon, on this machine only
//	syncnode run                        # the daemon, reaching your other devices
//	syncnode library create photos      # every other command asks the daemon
//	syncnode library invite             # prints a code for the other device
//	syncnode library join syncnode1-…   # on the other device
//	syncnode put tag '{"name":"red"}'   # JSON in
//	syncnode --json status              # JSON out, for scripts
//
// Exit codes: 0 success, 1 the command failed (the message says why;
// `syncnode doctor`: a member cannot be reached), 2 the command line was
// wrong or incomplete.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes (documented in the root command's help and the README).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the command line args and returns the exit code.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errSilent) {
		return exitFailed
	}
	fmt.Fprintln(stderr, "syncnode:", cliMessage(err))
	if isUsage(err) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitFailed
}

// errSilent fails a command that has already said why (doctor's findings).
var errSilent = errors.New("failed (see above)")

// usageError is a wrong command line, answered with exit code 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// isUsage reports whether err is a wrong command line: ours, or cobra's
// (unknown command or flag, wrong number of arguments).
func isUsage(err error) bool {
	var ue usageError
	var fe *flagError
	return errors.As(err, &ue) || errors.As(err, &fe) || strings.HasPrefix(err.Error(), "unknown command")
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

// group makes cmd a command that only holds subcommands: alone it prints
// its help; with an unknown subcommand it fails with exit code 2 and the
// subcommands the user may have meant.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if len(a) == 0 {
			return cmd.Help()
		}
		return unknownCommand(cmd, a[0])
	}
	return cmd
}

// unknownCommand is the usage error for an unknown subcommand of cmd, with
// suggestions.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + quoteList(s, "or") + "?"
	} else {
		var subs []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				subs = append(subs, c.Name())
			}
		}
		msg += " (its commands: " + strings.Join(subs, ", ") + ")"
	}
	return usageError{errors.New(msg)}
}

// quoteList writes ["a", "b", "c"] as `"a", "b" or "c"`.
func quoteList(items []string, conj string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "syncnode",
		Short: "A leaderless peer-to-peer sync node for your devices",
		Long: `syncnode keeps a library of records in sync between your devices, with no
server and no leader. Run the daemon on each device ("syncnode run"), create a
library on one, invite the others, and records written on any device reach
all of them.

"syncnode run --local" keeps the daemon on this machine: it listens on
loopback only, with mDNS, the DHT, port mapping, AutoNAT, relays and hole
punching off (try two daemons on one machine this way). Without --local the
daemon reaches your other devices: it listens on every interface, finds them
by mDNS on the LAN and through the public DHT, asks the router for a port
mapping (UPnP, NAT-PMP), and uses AutoNAT, relays and hole punching through
public peers.

Every command but "run", "init", "version" and "config" talks to the running
daemon through its local API (its address and token are in the data
directory). Output is for people; --json prints JSON for scripts.

Exit codes: 0 success; 1 the command failed (the message says why, and
"syncnode doctor" exits 1 when a member cannot be reached); 2 the command line
was wrong or incomplete (an unknown command or flag, a missing argument, a
destructive command without --yes where nobody can confirm).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
		Example: `  syncnode run --local
  syncnode library create photos
  syncnode put tag '{"name": "holiday"}'
  syncnode status
  syncnode --json status`,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "config file (default $XDG_CONFIG_HOME/syncnode/config.toml; env SYNCNODE_CONFIG)")
	pf.StringVar(&g.dataDir, "data-dir", "", "data directory (default $XDG_DATA_HOME/syncnode; env SYNCNODE_DATA_DIR)")
	pf.StringVar(&g.api, "api", "", "the daemon's API address, if not the one in the data directory (env SYNCNODE_API)")
	pf.StringVar(&g.token, "token", "", "the API token, if not the one in the data directory (env SYNCNODE_TOKEN)")
	pf.BoolVar(&g.json, "json", false, "print JSON instead of text, for scripts (run: logs as JSON lines)")
	root.AddCommand(newRun(g), newInit(g), newLibrary(g), newPut(g), newGet(g), newList(g), newDelete(g),
		newWatch(g), newStatus(g), newPeers(g), newDoctor(g), newModels(g), newOpen(g), newVersion(g), newConfig(g))
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}
