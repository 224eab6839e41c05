package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/protocol"
)

// versionInfo is what `syncnode version` prints, from the build
// information the Go toolchain embeds in the binary.
type versionInfo struct {
	// Version is the main module's version: a release tag, or "(devel)"
	// for a build from a checkout.
	Version string `json:"version"`
	// Commit, CommitTime and Modified describe the checkout it was built
	// from, when the toolchain recorded them (a build in a git checkout).
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
	// Protocol is the sync protocol the binary speaks.
	Protocol string `json:"protocol"`
	// Modules are the dependencies compiled in, by module path.
	Modules map[string]string `json:"modules"`
}

func readVersion() versionInfo {
	v := versionInfo{Version: "(unknown)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Protocol: protocol.ProtocolID, Modules: map[string]string{}}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		v.Modules[d.Path] = m.Version
	}
	return v
}

// keyModules are the dependencies the one-line version names.
var keyModules = []string{"github.com/libp2p/go-libp2p", "github.com/dgraph-io/badger/v4", "github.com/fxamacker/cbor/v2"}

// versionString is the human version: the first line with what matters
// most, then the protocol and key modules.
func versionString() string {
	v := readVersion()
	var b strings.Builder
	fmt.Fprintf(&b, "syncnode %s", v.Version)
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		fmt.Fprintf(&b, " (commit %s", c)
		if v.Modified {
			b.WriteString(", modified")
		}
		if v.CommitTime != "" {
			fmt.Fprintf(&b, ", %s", v.CommitTime)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ", %s, %s\nprotocol %s", v.Go, v.Platform, v.Protocol)
	for _, m := range keyModules {
		if ver, ok := v.Modules[m]; ok {
			fmt.Fprintf(&b, "\n%s %s", m, ver)
		}
	}
	return b.String()
}

func newVersion(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of syncnode and of the modules it was built with",
		Long: `Print the version of this syncnode binary: its module version (or "(devel)"
for a build from a checkout) with the commit it was built from, the Go version,
the sync protocol, and the versions of its main dependencies (--modules: all of
them; --json: all of them, as JSON). "syncnode --version" prints the same.`,
		Example: `  syncnode version
  syncnode version --modules
  syncnode version --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, readVersion())
			}
			fmt.Fprintln(out, versionString())
			if all {
				v := readVersion()
				tw := table(out)
				fmt.Fprintln(tw, "\nMODULE\tVERSION")
				for _, d := range sortedKeys(v.Modules) {
					fmt.Fprintf(tw, "%s\t%s\n", d, v.Modules[d])
				}
				return tw.Flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "modules", false, "list every module compiled in")
	return cmd
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
