package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

func newLibrary(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "library",
		Short: "Create, join, list and leave libraries; invite and remove devices",
		Long: `A library is one synced data set; every device in it is a member. Create one
on a device, invite the others with a code, and join with that code on each.`,
		Example: `  syncnode library create photos
  syncnode library invite --library photos
  syncnode library join syncnode1-...
  syncnode library list`,
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newLibraryCreate(g), newLibraryInvite(g), newLibraryJoin(g), newLibraryList(g),
		newLibraryLeave(g), newLibraryRemoveDevice(g))
	return cmd
}

// libraryFlag adds --library to cmd.
func libraryFlag(cmd *cobra.Command, lib *string) {
	cmd.Flags().StringVarP(lib, "library", "l", "", "library ID or name (default: the only library; env SYNCNODE_LIBRARY)")
}

// resolveLibrary turns --library (an ID, a name, or nothing when the node
// holds exactly one library) into a library ID.
func resolveLibrary(ctx context.Context, c *localapi.Client, given string) (string, error) {
	if given == "" {
		given = os.Getenv("SYNCNODE_LIBRARY")
	}
	var libs []localapi.Library
	if err := c.Do(ctx, "GET", "/v1/libraries", nil, &libs); err != nil {
		return "", err
	}
	var names []string
	for _, l := range libs {
		names = append(names, fmt.Sprintf("%s (%s)", l.Name, l.ID))
	}
	if given == "" {
		switch len(libs) {
		case 1:
			return libs[0].ID, nil
		case 0:
			return "", errors.New("this node holds no library: create one with `syncnode library create NAME` or join one")
		}
		return "", usagef("this node holds %d libraries, name one with --library: %s", len(libs), strings.Join(names, ", "))
	}
	var match []localapi.Library
	for _, l := range libs {
		if l.ID == given {
			return l.ID, nil
		}
		if l.Name == given {
			match = append(match, l)
		}
	}
	switch len(match) {
	case 1:
		return match[0].ID, nil
	case 0:
		return "", fmt.Errorf("no library %q on this node (it holds: %s)", given, strings.Join(names, ", "))
	}
	return "", usagef("%d libraries are named %q: give the ID", len(match), given)
}

func libPath(id string, rest ...string) string {
	p := "/v1/libraries/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

func newLibraryCreate(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a library with this device as its first member",
		Example: `  syncnode library create photos`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			return doPrint(ctxOf(cmd), c, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: a[0]}, new(localapi.Library))
		},
	}
}

func newLibraryInvite(g *globals) *cobra.Command {
	var lib, ttl string
	var single bool
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Issue an invite code for another device to join the library",
		Long: `Issue an invite code. Give it to the other device (it is a secret: whoever
holds it can join until it expires) and run "syncnode library join CODE" there.`,
		Example: `  syncnode library invite
  syncnode library invite --library photos --ttl 10m --single-use`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, id, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			return doPrint(ctxOf(cmd), c, "POST", libPath(id, "invites"), localapi.InviteRequest{TTL: ttl, SingleUse: single}, new(localapi.Invite))
		},
	}
	libraryFlag(cmd, &lib)
	cmd.Flags().StringVar(&ttl, "ttl", "1h", "how long the code is valid")
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
bar in a terminal, plain lines otherwise) unless --no-wait is given.`,
		Example: `  syncnode library join syncnode1-...
  syncnode library join --no-wait "$(cat code.txt)"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			var lib localapi.Library
			if err := c.Do(ctx, "POST", "/v1/libraries/join", localapi.JoinRequest{Code: a[0]}, &lib); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "joined library %s (%s)\n", lib.Name, lib.ID)
			if !noWait {
				if err := waitBackfill(ctx, c, lib.ID, timeout); err != nil {
					return err
				}
			}
			return printJSON(lib)
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once joined, without waiting for the backfill")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up waiting for the backfill after this long (0: wait until it ends)")
	return cmd
}

// waitBackfill polls the library's status until its backfill is done,
// showing progress on stderr.
func waitBackfill(ctx context.Context, c *localapi.Client, lib string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tty := isatty.IsTerminal(os.Stderr.Fd())
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
					progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("backfill"),
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
			fmt.Fprintln(os.Stderr, progressLine(received, expected, time.Since(start)))
		}
		if done {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
			fmt.Fprintf(os.Stderr, "backfill done: %d records in %s\n", received, time.Since(start).Round(time.Millisecond))
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
// total is known, ETA.
func progressLine(received, expected int, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(received) / s
	}
	if expected <= 0 {
		return fmt.Sprintf("backfill: %d records, %.0f records/s", received, rate)
	}
	eta := "?"
	if rate > 0 && received < expected {
		eta = (time.Duration(float64(expected-received)/rate) * time.Second).Round(time.Second).String()
	} else if received >= expected {
		eta = "0s"
	}
	return fmt.Sprintf("backfill: %d/%d records (%.0f%%), %.0f records/s, ETA %s",
		received, expected, 100*float64(min(received, expected))/float64(expected), rate, eta)
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
			return doPrint(ctxOf(cmd), c, "GET", "/v1/libraries", nil, new([]localapi.Library))
		},
	}
}

func newLibraryLeave(g *globals) *cobra.Command {
	var lib string
	var deleteData bool
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Take this device out of a library",
		Long: `Leave a library: this device's member record is deleted on every member, and
the library stops syncing here. With --delete-data the local copy is deleted too.`,
		Example: `  syncnode library leave --library photos
  syncnode library leave --library photos --delete-data`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, id, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			return doPrint(ctxOf(cmd), c, "POST", libPath(id, "leave"), localapi.LeaveRequest{DeleteData: deleteData}, new(map[string]any))
		},
	}
	libraryFlag(cmd, &lib)
	cmd.Flags().BoolVar(&deleteData, "delete-data", false, "also delete this device's copy of the library")
	return cmd
}

func newLibraryRemoveDevice(g *globals) *cobra.Command {
	var lib string
	cmd := &cobra.Command{
		Use:   "remove-device DEVICE",
		Short: "Remove another device from a library",
		Long: `Remove a device (by device ID, see "syncnode status") from the library: every
member stops syncing with it and refuses its streams.`,
		Example: `  syncnode library remove-device 3f2c0b1e-...`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, id, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			return doPrint(ctxOf(cmd), c, "DELETE", libPath(id, "devices", a[0]), nil, new(map[string]any))
		},
	}
	libraryFlag(cmd, &lib)
	return cmd
}
