package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/store"
)

// What a records browser reads: how many records each model type holds,
// and the changes of one shared record that the log still keeps.

// MaxHistoryScan bounds the log entries History reads for one record: a
// record's changes are found by reading the logs of its model type, which
// hold every record's changes until they are pruned.
const MaxHistoryScan = 200_000

// Change is one change of a shared record, as the log keeps it.
type Change struct {
	// Version is the change's HLC; its DeviceID is the device that made it.
	Version hlc.HLC
	// Type is "Insert", "Update" or "Delete".
	Type string
	// Data is the payload as CBOR (nil for a delete).
	Data []byte
}

// History is what the log holds of one record.
type History struct {
	// Changes are the record's changes the log holds, oldest first.
	Changes []Change
	// PrunedUpTo is the newest point up to which the log of one of the
	// model type's streams was pruned: changes of the record made at or
	// before it may be gone. Zero when nothing was pruned.
	PrunedUpTo time.Time
	// Truncated is true when the logs held more than MaxHistoryScan
	// entries of the model type: older changes may be missing.
	Truncated bool
	// Logged is false for a device-owned model type, whose records keep
	// their current state only (Changes is then empty).
	Logged bool
}

// History returns the changes of one record that this node's log still
// holds. A shared record's changes stay in the log until every member
// acknowledged them; a device-owned record has no log. It reads the logs
// of the model type (every origin's), at most MaxHistoryScan entries.
func (l *Library) History(ctx context.Context, model string, id uuid.UUID) (History, error) {
	var h History
	if err := l.check(ctx); err != nil {
		return h, err
	}
	t, err := l.n.cfg.Registry.Lookup(model)
	if err != nil {
		return h, err
	}
	if t.Strategy == engine.DeviceOwned {
		return h, nil
	}
	h.Logged = true
	streams, err := l.n.st.Streams(l.id)
	if err != nil {
		return h, fmt.Errorf("node: listing the log's streams: %w", err)
	}
	scanned := 0
	for _, s := range streams {
		if s.ModelType != model {
			continue
		}
		var after hlc.HLC
		for {
			if err := ctx.Err(); err != nil {
				return h, err
			}
			if scanned >= MaxHistoryScan {
				h.Truncated = true
				break
			}
			page, err := l.n.st.LogPage(s, after, min(1000, MaxHistoryScan-scanned))
			if err != nil {
				return h, fmt.Errorf("node: reading the log of %s by %s: %w", model, s.Origin, err)
			}
			if p := page.PrunePoint.Log; !p.IsZero() && p.Time().After(h.PrunedUpTo) {
				h.PrunedUpTo = p.Time()
			}
			for _, e := range page.Entries {
				if e.RecordID == id {
					h.Changes = append(h.Changes, Change{Version: e.HLC, Type: e.ChangeType, Data: e.Data})
				}
			}
			scanned += len(page.Entries)
			if len(page.Entries) == 0 {
				break
			}
			after = page.Entries[len(page.Entries)-1].HLC
		}
	}
	slices.SortFunc(h.Changes, func(a, b Change) int { return a.Version.Compare(b.Version) })
	return h, nil
}

// RecordCount is how many records of one model type a library holds.
type RecordCount struct {
	ModelType string
	// Records counts the live records, Deleted the tombstones.
	Records, Deleted int
}

// Count counts the records of each model type of the registry, in the
// registry's order (device-owned types first). It visits every record of
// the library (its cost grows with the library), but reads no payload when
// the store is a store.RecordTallier (the Badger store).
func (l *Library) Count(ctx context.Context) ([]RecordCount, error) {
	if err := l.check(ctx); err != nil {
		return nil, err
	}
	reg := l.n.cfg.Registry
	tallier, _ := l.n.st.(store.RecordTallier)
	var out []RecordCount
	for _, s := range []engine.Strategy{engine.DeviceOwned, engine.Shared} {
		for _, model := range reg.Ordered(s) {
			c := RecordCount{ModelType: model}
			if tallier != nil {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				var err error
				if c.Records, c.Deleted, err = tallier.TallyRecords(l.id, model); err != nil {
					return nil, fmt.Errorf("node: counting %s: %w", model, err)
				}
				out = append(out, c)
				continue
			}
			after := uuid.Nil
			for {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				page, err := l.n.st.List(l.id, model, after, 1000)
				if err != nil {
					return nil, fmt.Errorf("node: counting %s: %w", model, err)
				}
				for _, r := range page {
					if r.Deleted {
						c.Deleted++
					} else {
						c.Records++
					}
				}
				if len(page) < 1000 {
					break
				}
				after = page[len(page)-1].ID
			}
			out = append(out, c)
		}
	}
	return out, nil
}
