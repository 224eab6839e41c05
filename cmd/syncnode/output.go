package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/localapi"
)

// printJSON writes v as indented JSON on w.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; flush it when done.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// short cuts an ID to its first 8 characters, enough to tell IDs apart on
// one screen (every command accepts such a prefix back).
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// compactJSON is a JSON value on one line, cut to max runes.
func compactJSON(raw json.RawMessage, max int) string {
	var b bytes.Buffer
	s := string(raw)
	if json.Compact(&b, raw) == nil {
		s = b.String()
	}
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// ago says how long ago t was, in words.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format(time.DateOnly)
}

// sizeText writes a byte count as "1 MiB", "512 KiB" or "100 bytes".
func sizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// recordLimit is the limit of a record's value in words, from the node's
// one constant.
var recordLimit = sizeText(node.MaxRecordSize)

// cliMessage words an error for the command line: an answer of the API
// loses the API's own words (bodies, endpoints) for the CLI's, and the Go
// package prefixes go.
func cliMessage(err error) string {
	msg := err.Error()
	var ae *localapi.APIError
	if errors.As(err, &ae) {
		msg = ae.ErrorBody.Error
		switch {
		case ae.Code == "too_large" && strings.HasPrefix(msg, "the body"):
			msg = fmt.Sprintf("the value is too large: a record's value may take at most %s (as CBOR)", recordLimit)
		case ae.Code == "unauthorized":
			msg += " (or give --token, or SYNCNODE_TOKEN)"
		case ae.Status == http.StatusNotFound && strings.HasPrefix(msg, "no endpoint"):
			msg = "the daemon does not know this request: is it an older syncnode? (" + msg + ")"
		}
	}
	for _, r := range apiWords {
		msg = strings.ReplaceAll(msg, r[0], r[1])
	}
	for _, p := range []string{"node: ", "pairing: ", "localapi: ", "daemon: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// apiWords are the API's phrasings and what the CLI says instead.
var apiWords = [][2]string{
	{"(GET /v1/models lists them)", "(`syncnode models` lists them)"},
	{"the body is not valid JSON", "the value is not valid JSON"},
	{"the body is empty: send one JSON value", "the value is empty: give one JSON value"},
	{"the body holds more than one JSON value", "the value holds more than one JSON value"},
	{"use leave instead", "use `syncnode library leave` instead"},
	{"use invite, join, leave and remove-device", "use `syncnode library invite`, `join`, `leave` and `remove-device`"},
}
