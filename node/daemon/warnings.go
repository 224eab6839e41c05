package daemon

import (
	"context"
	"log/slog"
	"sync"

	"github.com/syncnode/syncnode/node/localapi"
)

// maxWarnings is how many of the latest warnings the daemon keeps for the
// dashboard (GET /v1/warnings).
const maxWarnings = 50

// warningLog keeps the latest warnings and errors the daemon logged, in a
// ring of maxWarnings. It is safe for concurrent use.
type warningLog struct {
	mu   sync.Mutex
	ring []localapi.Warning
	next int // where the next one goes, once the ring is full
}

// recent returns the kept warnings, oldest first.
func (w *warningLog) recent() []localapi.Warning {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]localapi.Warning, 0, len(w.ring))
	out = append(out, w.ring[w.next:]...)
	return append(out, w.ring[:w.next]...)
}

func (w *warningLog) add(x localapi.Warning) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ring) < maxWarnings {
		w.ring = append(w.ring, x)
		return
	}
	w.ring[w.next] = x
	w.next = (w.next + 1) % maxWarnings
}

// warningHandler passes every record to the daemon's handler and keeps
// those at warning level and above in its log, whatever level the daemon
// logs at.
type warningHandler struct {
	h      slog.Handler
	log    *warningLog
	attrs  []slog.Attr // from WithAttrs, their keys with the group prefix
	prefix string      // the groups of WithGroup, "a.b."
}

// Enabled lets warnings through even when the daemon's handler would drop
// them: the log keeps them.
func (h *warningHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.h.Enabled(ctx, l)
}

// Handle keeps a warning and passes the record on if the daemon's handler
// takes its level.
func (h *warningHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		x := localapi.Warning{Time: r.Time.UTC(), Level: r.Level.String(), Message: r.Message}
		add := func(key string, v slog.Value) {
			if x.Attrs == nil {
				x.Attrs = map[string]string{}
			}
			x.Attrs[key] = v.Resolve().String()
		}
		for _, a := range h.attrs {
			add(a.Key, a.Value)
		}
		r.Attrs(func(a slog.Attr) bool {
			add(h.prefix+a.Key, a.Value)
			return true
		})
		h.log.add(x)
	}
	if !h.h.Enabled(ctx, r.Level) {
		return nil
	}
	return h.h.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *warningHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.h = h.h.WithAttrs(as)
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		c.attrs = append(c.attrs, slog.Attr{Key: h.prefix + a.Key, Value: a.Value})
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *warningHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.h = h.h.WithGroup(name)
	c.prefix = h.prefix + name + "."
	return &c
}
