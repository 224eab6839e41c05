package localapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// sseKeepAlive is how often an idle event stream gets a comment line, so
// proxies and clients see that it is alive.
const sseKeepAlive = 15 * time.Second

// events streams the library's record events as server-sent events: one
// "changed" or "deleted" event per record change, its data an Event.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	l, err := s.library(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "internal", "this connection cannot stream")
		return
	}
	ch, err := l.Subscribe(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// An event stream outlives the server's write timeout: lift it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": syncnode events of library ", l.ID(), "\n\n")
	flusher.Flush()
	keep := time.NewTicker(sseKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-r.Context().Done():
			return
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case ev, ok := <-ch:
			if !ok {
				return
			}
			e := Event{
				Type: "changed", Library: ev.Library.String(), Model: ev.ModelType, ID: ev.ID.String(),
				By: ev.By.String(), Version: ev.Version.String(), Data: cborToJSON(ev.Data), Missed: ev.Missed,
			}
			if ev.Deleted {
				e.Type, e.Data = "deleted", nil
			}
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b); err != nil {
				return
			}
			// Flush when nothing more is waiting: a burst goes out in few writes.
			if len(ch) == 0 {
				flusher.Flush()
			}
		}
	}
}
