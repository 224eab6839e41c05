package node

import (
	"context"
	"log/slog"
)

// quietBadger is a log handler that writes Badger's own records (those
// with component=badger, see store/badgerstore) at debug level: Badger warns
// about its internals (compactions, value log GC, cache sizes) every minute
// or so, which says nothing a user can act on. Errors stay errors. Records
// of anything else pass unchanged.
type quietBadger struct{ h slog.Handler }

// Enabled lets every level through that the inner handler takes, or that
// it takes once lowered to debug: Handle decides per record.
func (q quietBadger) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, l) || q.h.Enabled(ctx, slog.LevelDebug)
}

// Handle lowers Badger's records below error to debug.
func (q quietBadger) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && isBadger(r) {
		r.Level = slog.LevelDebug
	}
	if !q.h.Enabled(ctx, r.Level) {
		return nil
	}
	return q.h.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (q quietBadger) WithAttrs(as []slog.Attr) slog.Handler { return quietBadger{q.h.WithAttrs(as)} }

// WithGroup implements slog.Handler.
func (q quietBadger) WithGroup(name string) slog.Handler { return quietBadger{q.h.WithGroup(name)} }

func isBadger(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "component" && a.Value.String() == "badger" {
			found = true
			return false
		}
		return true
	})
	return found
}
