package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// The daemon keeps its latest warnings and errors, with their attributes,
// oldest first, at most maxWarnings of them, even when it logs only errors;
// what it logs is unchanged.
func TestWarningLog(t *testing.T) {
	var out bytes.Buffer
	w := &warningLog{}
	log := slog.New(&warningHandler{h: slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError}), log: w})

	log.Info("started")
	log.With("library", "photos").WithGroup("peer").Warn("session refused", "device", "d1")
	log.Error("store failed", "err", "disk full")
	got := w.recent()
	if len(got) != 2 {
		t.Fatalf("kept %d records, want the warning and the error: %+v", len(got), got)
	}
	if got[0].Level != "WARN" || got[0].Message != "session refused" || got[0].Attrs["library"] != "photos" || got[0].Attrs["peer.device"] != "d1" {
		t.Errorf("first kept: %+v, want the warning with library=photos peer.device=d1", got[0])
	}
	if got[1].Level != "ERROR" || got[1].Attrs["err"] != "disk full" {
		t.Errorf("second kept: %+v, want the error", got[1])
	}
	if s := out.String(); strings.Contains(s, "session refused") || strings.Contains(s, "started") || !strings.Contains(s, "store failed") {
		t.Errorf("the daemon's own log at level error printed:\n%s\nwant only the error", s)
	}

	for i := range maxWarnings + 7 {
		log.Warn(fmt.Sprintf("w%d", i))
	}
	got = w.recent()
	if len(got) != maxWarnings || got[0].Message != "w7" || got[len(got)-1].Message != fmt.Sprintf("w%d", maxWarnings+6) {
		t.Fatalf("after %d more warnings: %d kept, from %q to %q; want the latest %d in order", maxWarnings+7, len(got), got[0].Message, got[len(got)-1].Message, maxWarnings)
	}
}
