package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Badger's warnings reach the log at debug level (so not at the default
// info); its errors stay errors; the store's and the node's own records
// keep their level.
func TestBadgerLogsAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		log := slog.New(quietBadger{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})})
		log.Warn("Block cache might be too small", "component", "badger")
		log.Error("cannot write value log", "component", "badger")
		log.Warn("pruning is slow")
		out := buf.String()
		warned := strings.Contains(out, "Block cache")
		if level == slog.LevelInfo && warned {
			t.Errorf("at info, Badger's warning was logged: %s", out)
		}
		if level == slog.LevelDebug && !strings.Contains(out, `level=DEBUG msg="Block cache`) {
			t.Errorf("at debug, Badger's warning is not logged at debug: %s", out)
		}
		if !strings.Contains(out, `level=ERROR msg="cannot write value log"`) {
			t.Errorf("Badger's error is not logged as an error: %s", out)
		}
		if !strings.Contains(out, `level=WARN msg="pruning is slow"`) {
			t.Errorf("a warning of another component lost its level: %s", out)
		}
	}
}
