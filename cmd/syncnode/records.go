package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

// printJSON writes v as indented JSON on stdout.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readValue returns the JSON value given as an argument, or stdin for "-"
// or no argument.
func readValue(a []string) (json.RawMessage, error) {
	if len(a) > 0 && a[0] != "-" {
		return json.RawMessage(a[0]), nil
	}
	b, err := io.ReadAll(io.LimitReader(os.Stdin, localapi.DefaultMaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the value from stdin: %w", err)
	}
	if len(b) > localapi.DefaultMaxBodyBytes {
		return nil, usagef("the value on stdin is larger than %d bytes, the most a record may take", localapi.DefaultMaxBodyBytes)
	}
	if !json.Valid(b) {
		return nil, usagef("the value on stdin is not valid JSON")
	}
	return b, nil
}

func newPut(g *globals) *cobra.Command {
	var lib, id string
	cmd := &cobra.Command{
		Use:   "put MODEL [JSON|-]",
		Short: "Write a record (JSON in, the new version out)",
		Long: `Write a record of a model type. The value is JSON, given as an argument or on
stdin; it is stored as CBOR. Without --id a new record ID is made. Device-owned
model types are written as this device's own records, shared ones as a change
that every member applies (the newest write wins).`,
		Example: `  syncnode put tag '{"name": "holiday", "color": "red"}'
  syncnode put tag --id 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1 '{"name": "trip"}'
  echo '{"path": "/photos"}' | syncnode put location -`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			value, err := readValue(a[1:])
			if err != nil {
				return err
			}
			c, libID, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			method, path := "POST", libPath(libID, "records", a[0])
			if id != "" {
				method, path = "PUT", libPath(libID, "records", a[0], id)
			}
			return doPrint(ctxOf(cmd), c, method, path, value, new(localapi.Written))
		},
	}
	libraryFlag(cmd, &lib)
	cmd.Flags().StringVar(&id, "id", "", "record ID (a UUID); default: a new one")
	return cmd
}

func newGet(g *globals) *cobra.Command {
	var lib string
	cmd := &cobra.Command{
		Use:     "get MODEL ID",
		Short:   "Read one record",
		Example: `  syncnode get tag 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1`,
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, libID, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			return doPrint(ctxOf(cmd), c, "GET", libPath(libID, "records", a[0], a[1]), nil, new(localapi.Record))
		},
	}
	libraryFlag(cmd, &lib)
	return cmd
}

func newList(g *globals) *cobra.Command {
	var lib, owner, after string
	var limit int
	var deleted bool
	cmd := &cobra.Command{
		Use:   "list MODEL",
		Short: "List records of a model type, a page at a time",
		Long: `List records of a model type in ID order. A full page ends with "next": pass
it as --after for the next page.`,
		Example: `  syncnode list tag
  syncnode list location --owner 3f2c0b1e-... --limit 100`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, libID, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			q := url.Values{}
			if owner != "" {
				q.Set("owner", owner)
			}
			if after != "" {
				q.Set("after", after)
			}
			if limit != 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			if deleted {
				q.Set("deleted", "true")
			}
			path := libPath(libID, "records", a[0])
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			return doPrint(ctxOf(cmd), c, "GET", path, nil, new(localapi.RecordList))
		},
	}
	libraryFlag(cmd, &lib)
	cmd.Flags().StringVar(&owner, "owner", "", "only records last written by this device")
	cmd.Flags().StringVar(&after, "after", "", "continue after this record ID")
	cmd.Flags().IntVar(&limit, "limit", 0, "most records (1-1000; default 1000)")
	cmd.Flags().BoolVar(&deleted, "deleted", false, "include deleted records")
	return cmd
}

func newDelete(g *globals) *cobra.Command {
	var lib string
	cmd := &cobra.Command{
		Use:   "delete MODEL ID",
		Short: "Delete a record",
		Long: `Delete a record: a tombstone that reaches every member. A device-owned record
can be deleted only by its owner.`,
		Example: `  syncnode delete tag 6f1c7a52-0d7e-4bb1-9c43-2b54f4c6f0a1`,
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, libID, err := g.libraryClient(cmd, lib)
			if err != nil {
				return err
			}
			return doPrint(ctxOf(cmd), c, "DELETE", libPath(libID, "records", a[0], a[1]), nil, new(localapi.Written))
		},
	}
	libraryFlag(cmd, &lib)
	return cmd
}

func newWatch(g *globals) *cobra.Command {
	var lib string
	var count int
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print record events as they happen (one JSON object per line)",
		Long: `Print the library's record events, local and from other devices, one JSON
object per line, until interrupted (or until --count events).`,
		Example: `  syncnode watch
  syncnode watch --library photos --count 1`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			libID, err := resolveLibrary(ctx, c, lib)
			if err != nil {
				return err
			}
			seen := 0
			enc := json.NewEncoder(os.Stdout)
			errDone := fmt.Errorf("done")
			err = c.Events(ctx, libID, func(ev localapi.Event) error {
				if err := enc.Encode(ev); err != nil {
					return err
				}
				seen++
				if count > 0 && seen >= count {
					return errDone
				}
				return nil
			})
			if err == errDone {
				return nil
			}
			return err
		},
	}
	libraryFlag(cmd, &lib)
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many events (0: run until interrupted)")
	return cmd
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
			return doPrint(ctxOf(cmd), c, "GET", "/v1/models", nil, new([]localapi.Model))
		},
	}
}
