package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

// readValue returns the JSON value given as an argument, or read from in
// for "-" or no argument. It must be valid JSON; the daemon checks its
// size as CBOR.
func readValue(in io.Reader, a []string) (json.RawMessage, error) {
	var b []byte
	where := "the value"
	if len(a) > 0 && a[0] != "-" {
		b = []byte(a[0])
	} else {
		where = "the value on stdin"
		var err error
		b, err = io.ReadAll(io.LimitReader(in, localapi.DefaultMaxBodyBytes+1))
		if err != nil {
			return nil, fmt.Errorf("reading the value from stdin: %w", err)
		}
	}
	if len(b) > localapi.DefaultMaxBodyBytes {
		return nil, usagef("%s is larger than %s of JSON: a record's value may take at most %s (as CBOR)", where, sizeText(localapi.DefaultMaxBodyBytes), recordLimit)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, usagef("%s is not valid JSON: %v", where, err)
	}
	return b, nil
}

// written prints the answer to a put or delete.
func (g *globals) written(cmd *cobra.Command, verb string, w localapi.Written) error {
	if g.json {
		return printJSON(cmd.OutOrStdout(), w)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s (version %s)\n", verb, w.Model, w.ID, w.Version)
	return nil
}

func newPut(g *globals) *cobra.Command {
	var lib, id string
	var merge bool
	cmd := &cobra.Command{
		Use:   "put MODEL [JSON|-]",
		Short: "Write a record (a JSON value)",
		Long: fmt.Sprintf(`Write a record of a model type. The value is JSON, given as an argument or on
stdin; it is stored as CBOR, and may take at most %s so. Without --id a new
record ID is made. Device-owned model types are written as this device's own
records, shared ones as a change that every member applies (the newest write
wins). The write is durable when the command returns; it prints the record's
ID and version.

For a shared-fields model type the value is a JSON object, merged per field
with other devices' writes. put writes the whole record (fields the value
lacks are removed); put --merge writes only the fields the value lists,
keeping the others, and removes those whose value is null.`, recordLimit),
		Example: `  syncnode put tag '{"name": "holiday", "color": "red"}'
  syncnode put tag --id 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1 '{"name": "trip"}'
  echo '{"path": "/photos"}' | syncnode put location -
  syncnode put note --id 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1 --merge '{"title": "trip", "draft": null}'`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			value, err := readValue(cmd.InOrStdin(), a[1:])
			if err != nil {
				return err
			}
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			method, path := "POST", libPath(l.ID, "records", a[0])
			if id != "" {
				method, path = "PUT", libPath(l.ID, "records", a[0], id)
			}
			if merge {
				if id == "" {
					return usagef("--merge writes some fields of an existing record: give its --id")
				}
				method = "PATCH"
			}
			var w localapi.Written
			if err := c.Do(ctxOf(cmd), method, path, value, &w); err != nil {
				return err
			}
			return g.written(cmd, "wrote", w)
		},
	}
	libraryFlag(g, cmd, &lib)
	cmd.Flags().StringVar(&id, "id", "", "record ID (a UUID); default: a new one")
	cmd.Flags().BoolVar(&merge, "merge", false, "shared-fields model types: write only the fields the value lists (null removes one), keep the others")
	cmd.ValidArgsFunction = g.completeModels(true)
	return cmd
}

func newGet(g *globals) *cobra.Command {
	var lib string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "get MODEL ID",
		Short: "Read one record",
		Long: `Read one record: its version, the device that wrote it, and its value. With
--verbose, a record of a shared-fields model type also shows each field's
version (the HLC of the write that set it) and the device that wrote it.`,
		Example: `  syncnode get tag 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1
  syncnode get note 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1 --verbose`,
		Args:              args(cobra.ExactArgs(2)),
		ValidArgsFunction: g.completeModels(false),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			var r localapi.Record
			if err := c.Do(ctxOf(cmd), "GET", libPath(l.ID, "records", a[0], a[1]), nil, &r); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, r)
			}
			names := deviceNames(cmd, c, l.ID)
			fmt.Fprintf(out, "%s %s\nversion  %s\nby       %s\n", r.Model, r.ID, r.Version, names.of(r.By))
			if verbose && r.Fields != nil {
				fields := make([]string, 0, len(r.Fields))
				for name := range r.Fields {
					fields = append(fields, name)
				}
				sort.Strings(fields)
				fmt.Fprintln(out, "fields")
				for _, name := range fields {
					v := r.Fields[name]
					by := v
					if i := strings.LastIndexByte(v, ':'); i >= 0 {
						by = v[i+1:]
					}
					fmt.Fprintf(out, "  %-12s %s by %s\n", name, v, names.of(by))
				}
			}
			var v any
			if json.Unmarshal(r.Data, &v) == nil {
				return printJSON(out, v)
			}
			_, err = fmt.Fprintf(out, "%s\n", r.Data)
			return err
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show each field's version (shared-fields model types)")
	libraryFlag(g, cmd, &lib)
	return cmd
}

// names maps device IDs to "name (short ID)" for people.
type names map[string]string

func (n names) of(device string) string {
	if name := n[device]; name != "" {
		return fmt.Sprintf("%s (%s)", name, short(device))
	}
	return device
}

// deviceNames reads the library's members' names; none if that fails.
func deviceNames(cmd *cobra.Command, c *localapi.Client, lib string) names {
	var ms []localapi.Member
	out := names{}
	if c.Do(ctxOf(cmd), "GET", libPath(lib, "members"), nil, &ms) == nil {
		for _, m := range ms {
			out[m.Device] = m.Name
		}
	}
	return out
}

func newList(g *globals) *cobra.Command {
	var lib, owner, after string
	var limit int
	var deleted bool
	cmd := &cobra.Command{
		Use:   "list MODEL",
		Short: "List records of a model type, a page at a time",
		Long: `List records of a model type in ID order, at most --limit (1000) at a time.
When there are more, the command says how to get the next page (--after).`,
		Example: `  syncnode list tag
  syncnode list location --owner laptop --limit 100`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: g.completeModels(false),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			q := url.Values{}
			if owner != "" {
				m, err := resolveDevice(ctx, c, l.ID, owner)
				if err != nil {
					return err
				}
				q.Set("owner", m.Device)
			}
			if after != "" {
				q.Set("after", after)
			}
			if limit != 0 {
				if limit < 1 || limit > 1000 {
					return usagef("--limit %d: give 1 to 1000", limit)
				}
				q.Set("limit", strconv.Itoa(limit))
			}
			if deleted {
				q.Set("deleted", "true")
			}
			path := libPath(l.ID, "records", a[0])
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var rl localapi.RecordList
			if err := c.Do(ctx, "GET", path, nil, &rl); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, rl)
			}
			if len(rl.Records) == 0 {
				fmt.Fprintf(out, "no %s records\n", a[0])
				return nil
			}
			names := deviceNames(cmd, c, l.ID)
			tw := table(out)
			fmt.Fprintln(tw, "ID\tVERSION\tBY\tVALUE")
			for _, r := range rl.Records {
				value := compactJSON(r.Data, 60)
				if r.Deleted {
					value = "(deleted)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Version, names.of(r.By), value)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if rl.Next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: syncnode list %s --after %s\n", a[0], rl.Next)
			}
			return nil
		},
	}
	libraryFlag(g, cmd, &lib)
	cmd.Flags().StringVar(&owner, "owner", "", "only records last written by this device (name or ID)")
	cmd.Flags().StringVar(&after, "after", "", "continue after this record ID")
	cmd.Flags().IntVar(&limit, "limit", 0, "most records (1-1000; default 1000)")
	cmd.Flags().BoolVar(&deleted, "deleted", false, "include deleted records")
	_ = cmd.RegisterFlagCompletionFunc("owner", g.completeDevices(&lib))
	return cmd
}

func newDelete(g *globals) *cobra.Command {
	var lib string
	cmd := &cobra.Command{
		Use:   "delete MODEL ID",
		Short: "Delete a record",
		Long: `Delete a record: a tombstone that reaches every member. A device-owned record
can be deleted only by its owner. It does not ask for confirmation: like put it
writes one record, and a later put of the same ID brings the record back.`,
		Example:           `  syncnode delete tag 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1`,
		Args:              args(cobra.ExactArgs(2)),
		ValidArgsFunction: g.completeModels(true),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, l, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			var w localapi.Written
			if err := c.Do(ctxOf(cmd), "DELETE", libPath(l.ID, "records", a[0], a[1]), nil, &w); err != nil {
				return err
			}
			return g.written(cmd, "deleted", w)
		},
	}
	libraryFlag(g, cmd, &lib)
	return cmd
}

func newWatch(g *globals) *cobra.Command {
	var lib, since string
	var count int
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print record events as they happen",
		Long: `Print the library's record events, local and from other devices, one line
each (--json: one JSON object per line), until interrupted (or until --count
events). If the connection to the daemon drops, watch reconnects and resumes
after the last event it printed; --since resumes after an event ID that
--json printed.`,
		Example: `  syncnode watch
  syncnode watch --library photos --count 1
  syncnode --json watch`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			l, err := resolveLibrary(ctx, c, lib)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			seen := 0
			errDone := errors.New("done")
			last := since
			for attempt := 0; ; attempt++ {
				err = c.EventsSince(ctx, l.ID, last, func(ev localapi.Event) error {
					last = ev.EventID
					if g.json {
						if err := enc.Encode(ev); err != nil {
							return err
						}
					} else {
						fmt.Fprintln(out, eventLine(ev))
					}
					seen++
					if count > 0 && seen >= count {
						return errDone
					}
					return nil
				})
				if err == errDone || ctx.Err() != nil {
					return nil
				}
				var ae *localapi.APIError
				if errors.As(err, &ae) || attempt >= 5 {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "syncnode: the event stream ended (%v); reconnecting\n", cliMessage(err))
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Duration(attempt+1) * time.Second):
				}
			}
		},
	}
	libraryFlag(g, cmd, &lib)
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many events (0: run until interrupted)")
	cmd.Flags().StringVar(&since, "since", "", "start after this event ID (the \"event_id\" of --json)")
	return cmd
}

// eventLine is one event for people.
func eventLine(ev localapi.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-7s %s %s by %s", time.Now().Format(time.TimeOnly), ev.Type, ev.Model, ev.ID, short(ev.By))
	switch {
	case ev.Type == "resync":
		b.Reset()
		fmt.Fprintf(&b, "%s  resync: %s", time.Now().Format(time.TimeOnly), ev.Reason)
	case len(ev.Data) > 0:
		b.WriteString("  " + compactJSON(ev.Data, 80))
	}
	if ev.Missed > 0 {
		fmt.Fprintf(&b, "  (%d events missed before this one)", ev.Missed)
	}
	return b.String()
}

func newModels(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "models",
		Short:   "List the model types the daemon syncs, and their strategies",
		Example: `  syncnode models`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			var models []localapi.Model
			if err := c.Do(ctxOf(cmd), "GET", "/v1/models", nil, &models); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, models)
			}
			tw := table(out)
			fmt.Fprintln(tw, "MODEL\tSTRATEGY\tDEPENDS ON")
			for _, m := range models {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, m.Strategy, strings.Join(m.DependsOn, ", "))
			}
			return tw.Flush()
		},
	}
}
