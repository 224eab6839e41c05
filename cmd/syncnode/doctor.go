package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

func newDoctor(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Explain how this device reaches its libraries' members, and why not",
		Long: `Check and explain, in plain sentences with the fix: the addresses the node
listens on, whether peers on the internet can dial it (AutoNAT), port mapping
(UPnP, NAT-PMP), the NAT's kind (hole punching cannot get through a symmetric
NAT), relay reservations, the relay service, hole punching, mDNS and the DHT;
and for each member of each library, how it is connected now (direct or
relayed, and through which relay), or when it was last heard, which addresses
are known, the last dial and why it failed.

The exit code is 0 when every member can be reached, 1 when one cannot (and
the doctor says why; with --json too), 2 for a wrong command line.
docs/NETWORKING.md explains the checks.`,
		Example: `  syncnode doctor
  syncnode doctor --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			var d localapi.Doctor
			if err := c.Do(ctxOf(cmd), "GET", "/v1/doctor", nil, &d); err != nil {
				return err
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), d); err != nil {
					return err
				}
			} else {
				writeDoctor(cmd.OutOrStdout(), d)
			}
			if d.Failed > 0 {
				return errSilent // exit 1: the findings say why
			}
			return nil
		},
	}
}

// writeDoctor prints the checks, grouped by area, a mark for each status.
func writeDoctor(w io.Writer, d localapi.Doctor) {
	marks := map[string]string{"ok": "ok  ", "info": "    ", "warn": "WARN", "fail": "FAIL"}
	area := ""
	for _, c := range d.Checks {
		if c.Area != area {
			if area != "" {
				fmt.Fprintln(w)
			}
			area = c.Area
			fmt.Fprintln(w, area)
		}
		fmt.Fprintf(w, "  %s %s: %s\n", marks[c.Status], c.Name, c.Message)
		if c.Fix != "" {
			fmt.Fprintf(w, "       fix: %s\n", c.Fix)
		}
	}
	if d.Failed > 0 {
		fmt.Fprintf(w, "\n%d problem(s) keep this device from its members.\n", d.Failed)
	} else {
		fmt.Fprintln(w, "\nNo problem found.")
	}
}
