package localapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/syncnode/syncnode/node"
)

// sseKeepAlive is how often an idle event stream gets a comment line, so
// proxies and clients see that it is alive.
const sseKeepAlive = 15 * time.Second

// eventID is the SSE ID of the event numbered seq in the daemon's run
// boot: "boot-seq".
func eventID(boot string, seq uint64) string { return boot + "-" + strconv.FormatUint(seq, 10) }

// parseEventID reads an ID written by eventID.
func parseEventID(s string) (boot string, seq uint64, ok bool) {
	boot, n, found := strings.Cut(s, "-")
	if !found || boot == "" {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return boot, seq, err == nil
}

// events streams the library's record events as server-sent events: one
// "changed" or "deleted" event per record change, its data an Event, its
// "id:" the event's ID. A client that reconnects with the last ID it read
// (the Last-Event-ID header, or ?since=) gets every later event the
// daemon's event log still holds first; a "resync" event says when some
// may be lost (the daemon restarted, or they left the log).
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
	last := r.Header.Get("Last-Event-ID")
	if q := r.URL.Query().Get("since"); q != "" {
		last = q
	}
	boot := s.n.Boot()
	var (
		backlog []node.Event
		ch      <-chan node.Event
		resync  string
	)
	if last == "" {
		ch, err = l.Subscribe(r.Context())
	} else {
		lastBoot, seq, ok := parseEventID(last)
		switch {
		case !ok:
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("event ID %q is not one this API gave (boot-sequence)", last))
			return
		case lastBoot != boot:
			// Another run of the daemon: replay all of this run's log, and
			// say that what happened between is lost.
			var complete bool
			backlog, complete, ch, err = l.SubscribeSince(r.Context(), 0)
			resync = fmt.Sprintf("the daemon restarted since event %s: events of the old run after it are lost", last)
			if !complete {
				resync += ", and the oldest of this run left the event log"
			}
		default:
			var complete bool
			backlog, complete, ch, err = l.SubscribeSince(r.Context(), seq)
			if !complete {
				resync = fmt.Sprintf("events after %s left the daemon's event log (it keeps each library's latest events)", last)
			}
		}
	}
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
	if resync != "" {
		// Its ID is where the stream resumes, so that a reconnect after it
		// does not repeat it.
		at := uint64(0)
		if len(backlog) > 0 {
			at = backlog[0].Seq - 1
		}
		e := Event{EventID: eventID(boot, at), Type: "resync", Library: l.ID().String(), Reason: resync + "; re-read the records you care about"}
		if !writeEvent(w, e) {
			return
		}
	}
	for _, ev := range backlog {
		if !writeEvent(w, eventJSON(boot, ev)) {
			return
		}
	}
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
			if !writeEvent(w, eventJSON(boot, ev)) {
				return
			}
			// Flush when nothing more is waiting: a burst goes out in few writes.
			if len(ch) == 0 {
				flusher.Flush()
			}
		}
	}
}

// eventJSON is the API's form of a node event.
func eventJSON(boot string, ev node.Event) Event {
	e := Event{
		EventID: eventID(boot, ev.Seq), Type: "changed", Library: ev.Library.String(), Model: ev.ModelType, ID: ev.ID.String(),
		By: ev.By.String(), Version: ev.Version.String(), Data: cborToJSON(ev.Data), Fields: ev.Fields, Missed: ev.Missed,
	}
	if ev.Deleted {
		e.Type, e.Data = "deleted", nil
	}
	return e
}

// writeEvent writes one SSE event; false when the client is gone.
func writeEvent(w http.ResponseWriter, e Event) bool {
	b, err := json.Marshal(e)
	if err != nil {
		return true
	}
	_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e.EventID, e.Type, b)
	return err == nil
}
