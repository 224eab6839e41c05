package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

func newStatus(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node, its libraries, members, peers and discovery",
		Long: `Show, per library: the members, each peer's connection and sync state
(catching up with progress, live, offline since), how it is reached (direct or
relayed via a peer), lag, quarantined changes, log size and pruning horizon,
and whether this device was removed from it; the network (reachability, NAT,
port mapping, relays, hole punching); and what each discovery source found.`,
		Example: `  syncnode status
  syncnode status --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			var st localapi.Status
			if err := c.Do(ctxOf(cmd), "GET", "/v1/status", nil, &st); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			writeStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
}

func newPeers(g *globals) *cobra.Command {
	var lib string
	cmd := &cobra.Command{
		Use:     "peers",
		Short:   "Show the sync state of each member peer of a library",
		Example: `  syncnode peers --library photos`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			var ps []localapi.Peer
			if err := c.Do(ctxOf(cmd), "GET", libPath(l.ID, "peers"), nil, &ps); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), ps)
			}
			if len(ps) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "library %s has no other member yet: `syncnode library invite` prints a code for one\n", l.Name)
				return nil
			}
			tw := table(cmd.OutOrStdout())
			writePeers(tw, ps)
			return tw.Flush()
		},
	}
	libraryFlag(g, cmd, &lib)
	return cmd
}

func writeStatus(w io.Writer, st localapi.Status) {
	fmt.Fprintf(w, "device  %s (%s)\npeer    %s\n", st.Node.Device, st.Node.Name, st.Node.Peer)
	for _, a := range st.Node.Addrs {
		fmt.Fprintf(w, "addr    %s\n", a)
	}
	writeNetwork(w, st.Network)
	for _, l := range st.Libraries {
		fmt.Fprintf(w, "\nlibrary %s (%s)\n", l.Name, l.ID)
		if r := l.Removed; r != nil {
			by := r.By
			for _, m := range l.Members {
				if m.Device == r.By && m.Name != "" {
					by = fmt.Sprintf("%s (%s)", m.Name, short(r.By))
				}
			}
			fmt.Fprintf(w, "  REMOVED      this device was removed from the library by %s at %s: it no longer syncs,\n"+
				"               and refuses writes; its records stay readable (`syncnode library leave --library %s` forgets it)\n",
				by, r.At.Local().Format(time.DateTime), short(l.ID))
		}
		fmt.Fprintf(w, "  members      %d\n", len(l.Members))
		for _, m := range l.Members {
			self := ""
			if m.Self {
				self = " (this device)"
			}
			fmt.Fprintf(w, "    %s  %s%s\n", m.Device, m.Name, self)
		}
		fmt.Fprintf(w, "  quarantined  %d\n", l.Quarantined)
		fmt.Fprintf(w, "  log          %d entries", l.LogEntries)
		if l.PrunedUpTo != nil {
			fmt.Fprintf(w, ", pruned up to %s", l.PrunedUpTo.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "; horizon %s\n", (time.Duration(l.HorizonHours * float64(time.Hour))).String())
		if b := l.Backfill; b != nil && !b.Done {
			if b.Received <= b.Expected {
				fmt.Fprintf(w, "  backfill     %d of ~%d records\n", b.Received, b.Expected)
			} else {
				fmt.Fprintf(w, "  backfill     %d records (the inviter held %d when this device joined)\n", b.Received, b.Expected)
			}
		}
		if len(l.Peers) > 0 {
			fmt.Fprintln(w, "  peers")
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			writePeers(tw, l.Peers)
			tw.Flush()
		}
	}
	if len(st.Discovery) == 0 {
		fmt.Fprintln(w, "\ndiscovery off (members are reached at stored addresses)")
	} else {
		fmt.Fprintln(w, "\ndiscovery")
		for _, d := range st.Discovery {
			state := "off"
			if d.Enabled {
				state = fmt.Sprintf("on, found %d", d.Found)
			}
			fmt.Fprintf(w, "  %-5s %s", d.Name, state)
			if d.RoutingTable > 0 {
				fmt.Fprintf(w, ", routing table %d", d.RoutingTable)
			}
			if len(d.Recent) > 0 {
				fmt.Fprintf(w, ": %s", strings.Join(d.Recent, ", "))
			}
			if d.LastError != "" {
				fmt.Fprintf(w, " (last error: %s)", d.LastError)
			}
			fmt.Fprintln(w)
		}
	}
}

// writeNetwork prints reachability, the NAT, port mappings, relay
// reservations and the relay service.
func writeNetwork(w io.Writer, n localapi.Network) {
	reach := n.Reachability
	if n.Forced {
		reach += " (configured)"
	}
	fmt.Fprintf(w, "\nnetwork\n  reachability  %s\n  nat           %s\n", reach, n.NAT)
	switch pm := n.PortMapping; {
	case !pm.Enabled:
		fmt.Fprintln(w, "  port mapping  off")
	case len(pm.Mappings) > 0:
		for _, m := range pm.Mappings {
			fmt.Fprintf(w, "  port mapping  %s -> %s\n", m.Internal, m.External)
		}
	case pm.RouterFound:
		fmt.Fprintln(w, "  port mapping  router found, no mapping yet")
	default:
		fmt.Fprintln(w, "  port mapping  no UPnP/NAT-PMP router found")
	}
	if len(n.Relays) == 0 {
		state := "none"
		if !n.AutoRelay {
			state = "off"
		}
		fmt.Fprintf(w, "  relays        %s\n", state)
	}
	for _, r := range n.Relays {
		kind := "public relay: coordinates hole punches only"
		if r.Member {
			kind = "member relay: carries sync"
		}
		fmt.Fprintf(w, "  relay         %s (%s)\n", r.Relay, kind)
	}
	hp := "off"
	if n.HolePunching {
		hp = "on"
		if len(n.HolePunchAddrs) == 0 {
			hp += ", no public address known yet"
		} else {
			hp += ", gives " + strings.Join(n.HolePunchAddrs, ", ")
		}
	}
	fmt.Fprintf(w, "  hole punching %s\n", hp)
	if rs := n.RelayService; rs != nil {
		fmt.Fprintf(w, "  relay service on: %d member reservations, %d circuits, %d bytes; strangers %s: %d reservations\n",
			rs.Members.Reservations, rs.Members.Circuits, rs.Members.Bytes, rs.Strangers, rs.StrangersUse.Reservations)
	}
}

func writePeers(tw *tabwriter.Writer, ps []localapi.Peer) {
	fmt.Fprintln(tw, "    DEVICE\tNAME\tSTATE\tPATH\tLAG\tLAST HEARD")
	for _, p := range ps {
		state := p.State
		if p.State == "catching up" {
			state = fmt.Sprintf("catching up (%d pages, %d records)", p.Pages, p.Records)
		}
		heard := "never"
		if p.LastHeard != nil {
			heard = time.Since(*p.LastHeard).Round(time.Second).String() + " ago"
			if p.State == "offline" {
				state = "offline since " + p.LastHeard.Local().Format(time.DateTime)
			}
		}
		path := p.Path.Text
		if p.Path.Kind == "" && p.LastDialError != "" {
			path = "not connected (see syncnode doctor)"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", p.Device, p.Name, state, path, (time.Duration(p.LagMS) * time.Millisecond).String(), heard)
	}
}
