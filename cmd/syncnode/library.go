package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

func newLibrary(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "library",
		Short: "Create, join, list and leave libraries; invite and remove devices",
		Long: `A library is one synced data set; every device in it is a member. Create one
on a device, invite the others with a code, and join with that code on each.
Wherever a library or a device is named, its name, its ID or the first
characters of either will do.`,
		Example: `  syncnode library create photos
  syncnode library invite --library photos
  syncnode library join syncnode1-...
  syncnode library list`,
	})
	cmd.AddCommand(newLibraryCreate(g), newLibraryInvite(g), newLibraryJoin(g), newLibraryList(g),
		newLibraryLeave(g), newLibraryRemoveDevice(g))
	return cmd
}

func newLibraryCreate(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create a library with this device as its first member",
		Long: `Create a library with this device as its first member. Names are unique on a
node: a second library of the same name is refused.`,
		Example: `  syncnode library create photos`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			var lib localapi.Library
			if err := c.Do(ctxOf(cmd), "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: a[0]}, &lib); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, lib)
			}
			fmt.Fprintf(out, "created library %s (%s)\n", lib.Name, lib.ID)
			fmt.Fprintln(cmd.ErrOrStderr(), "next: `syncnode library invite` prints a code for another device")
			return nil
		},
	}
}

func newLibraryInvite(g *globals) *cobra.Command {
	var lib, ttl string
	var single bool
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Print an invite code for another device to join the library",
		Long: `Issue an invite code and print it (only the code, so that it can be piped or
copied; --json prints its expiry too). Give it to the other device (it is a
secret: whoever holds it can join until it expires) and run
"syncnode library join CODE" there.`,
		Example: `  syncnode library invite
  syncnode library invite --library photos --ttl 10m --single-use
  syncnode library invite > code.txt`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			var inv localapi.Invite
			if err := c.Do(ctxOf(cmd), "POST", libPath(l.ID, "invites"), localapi.InviteRequest{TTL: ttl, SingleUse: single}, &inv); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), inv)
			}
			fmt.Fprintln(cmd.OutOrStdout(), inv.Code)
			uses := "any number of devices"
			if single {
				uses = "one device"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "invite to library %s for %s, valid until %s; on the other device: syncnode library join CODE\n",
				l.Name, uses, inv.Expires.Local().Format(time.DateTime))
			return nil
		},
	}
	libraryFlag(g, cmd, &lib)
	cmd.Flags().StringVar(&ttl, "ttl", "1h", "how long the code is valid (at most 720h)")
	cmd.Flags().BoolVar(&single, "single-use", false, "the code admits one device only")
	return cmd
}

func newLibraryJoin(g *globals) *cobra.Command {
	var noWait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "join CODE",
		Short: "Join a library with an invite code, and wait for its backfill",
		Long: `Join a library with an invite code from one of its members. The daemon dials
the inviter, proves it holds the code, and becomes a member; then it backfills
the library's records. join waits for the backfill and shows its progress (a
bar in a terminal, plain lines otherwise, on stderr) unless --no-wait is
given. Joining a library this node holds already is refused.`,
		Example: `  syncnode library join syncnode1-...
  syncnode library join --no-wait "$(cat code.txt)"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			code := strings.TrimSpace(a[0])
			if code == "" {
				return usagef("the invite code is empty: give the code `syncnode library invite` printed")
			}
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			var lib localapi.Library
			if err := c.Do(ctx, "POST", "/v1/libraries/join", localapi.JoinRequest{Code: code}, &lib); err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			fmt.Fprintf(stderr, "joined library %s (%s)\n", lib.Name, lib.ID)
			if !noWait {
				if err := waitBackfill(ctx, c, lib.ID, timeout, stderr); err != nil {
					return err
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), lib)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "member of library %s (%s)\n", lib.Name, lib.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once joined, without waiting for the backfill")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting for the backfill after this long (0: wait until it ends)")
	return cmd
}

// waitBackfill polls the library's status until its backfill is done,
// showing progress on w.
func waitBackfill(ctx context.Context, c *localapi.Client, lib string, timeout time.Duration, w io.Writer) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	f, isFile := w.(*os.File)
	tty := isFile && isatty.IsTerminal(f.Fd())
	var bar *progressbar.ProgressBar
	lastLine := time.Time{}
	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var st localapi.LibraryStatus
		if err := c.Do(ctx, "GET", libPath(lib), nil, &st); err != nil {
			return err
		}
		expected, received, done := -1, st.Received, st.CaughtUp
		if b := st.Backfill; b != nil {
			received, done = b.Received, b.Done
			if b.Expected > 0 {
				expected = b.Expected
			}
		}
		if tty {
			if bar == nil {
				bar = progressbar.NewOptions64(int64(expected),
					progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("backfill"),
					progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"),
					progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionFullWidth())
			}
			if expected > 0 && received > expected {
				bar.ChangeMax(received)
			}
			_ = bar.Set(received)
		} else if time.Since(lastLine) >= 2*time.Second || done {
			lastLine = time.Now()
			fmt.Fprintln(w, progressLine(received, expected, time.Since(start)))
		}
		if done {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "backfill done: %d records in %s\n", received, time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the backfill did not finish within %s (%d records so far; it goes on in the daemon)", timeout, received)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// progressLine is the plain progress report: records, rate and, when the
// total is known, ETA. Records beyond the total (written since the join)
// raise the total: a count never exceeds it.
func progressLine(received, expected int, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(received) / s
	}
	if expected <= 0 {
		return fmt.Sprintf("backfill: %d records, %.0f records/s", received, rate)
	}
	expected = max(expected, received)
	eta := "?"
	if rate > 0 && received < expected {
		eta = (time.Duration(float64(expected-received)/rate) * time.Second).Round(time.Second).String()
	} else if received >= expected {
		eta = "0s"
	}
	return fmt.Sprintf("backfill: %d/%d records (%.0f%%), %.0f records/s, ETA %s",
		received, expected, 100*float64(received)/float64(expected), rate, eta)
}

func newLibraryList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the libraries this node holds",
		Example: `  syncnode library list`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			var libs []localapi.Library
			if err := c.Do(ctxOf(cmd), "GET", "/v1/libraries", nil, &libs); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, libs)
			}
			if len(libs) == 0 {
				fmt.Fprintln(out, "no library: create one with `syncnode library create NAME` or join one with `syncnode library join CODE`")
				return nil
			}
			tw := table(out)
			fmt.Fprintln(tw, "NAME\tID\tCREATED\tSTATE")
			for _, l := range libs {
				state := "member"
				if l.Removed != nil {
					state = "removed " + ago(l.Removed.At)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, l.ID, l.CreatedAt.Local().Format(time.DateTime), state)
			}
			return tw.Flush()
		},
	}
}

// confirm asks the user to confirm a destructive action on the terminal.
// Without a terminal to ask on, it refuses (exit code 2) unless yes.
func confirm(cmd *cobra.Command, yes bool, question string) error {
	if yes {
		return nil
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !isatty.IsTerminal(in.Fd()) {
		return usagef("%s: not confirmed, and there is no terminal to ask on; add --yes to confirm", strings.TrimSuffix(question, "?"))
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	var answer string
	_, _ = fmt.Fscanln(in, &answer)
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errors.New("not confirmed: nothing was changed")
}

func newLibraryLeave(g *globals) *cobra.Command {
	var lib string
	var deleteData, yes bool
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Take this device out of a library",
		Long: `Leave a library: this device's member record is deleted on every member, and
the library stops syncing here. With --delete-data the local copy is deleted too.
It asks for confirmation on a terminal; --yes confirms without asking (needed
where there is no terminal, in scripts).`,
		Example: `  syncnode library leave --library photos
  syncnode library leave --library photos --delete-data --yes`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			what := "its records stay on this device, unsynced"
			if deleteData {
				what = "and delete its records on this device"
			}
			if err := confirm(cmd, yes, fmt.Sprintf("Leave library %s (%s) on this device, %s?", l.Name, l.ID, what)); err != nil {
				return err
			}
			var res map[string]any
			if err := c.Do(ctxOf(cmd), "POST", libPath(l.ID, "leave"), localapi.LeaveRequest{DeleteData: deleteData}, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			kept := "its records stay on disk"
			if deleteData {
				kept = "its records are deleted"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "left library %s (%s); %s\n", l.Name, l.ID, kept)
			return nil
		},
	}
	libraryFlag(g, cmd, &lib)
	cmd.Flags().BoolVar(&deleteData, "delete-data", false, "also delete this device's copy of the library")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do it without asking")
	return cmd
}

func newLibraryRemoveDevice(g *globals) *cobra.Command {
	var lib string
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove-device DEVICE",
		Short: "Remove another device from a library",
		Long: `Remove a device (by name, device ID, or the first characters of either; see
"syncnode status") from the library: every member stops syncing with it and
refuses its streams, and the device is told so on its next contact with a
member. It asks for confirmation on a terminal; --yes confirms without asking.`,
		Example: `  syncnode library remove-device phone
  syncnode library remove-device 3f2c0b1e --yes`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			m, err := resolveDevice(ctx, c, l.ID, a[0])
			if err != nil {
				return err
			}
			if m.Self {
				return usagef("%s is this device: use `syncnode library leave` to leave the library", m.Name)
			}
			if err := confirm(cmd, yes, fmt.Sprintf("Remove device %s (%s) from library %s?", m.Name, m.Device, l.Name)); err != nil {
				return err
			}
			var res map[string]any
			if err := c.Do(ctx, "DELETE", libPath(l.ID, "devices", m.Device), nil, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed device %s (%s) from library %s\n", m.Name, m.Device, l.Name)
			return nil
		},
	}
	libraryFlag(g, cmd, &lib)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do it without asking")
	cmd.ValidArgsFunction = g.completeDevices(&lib)
	return cmd
}
