package localapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncnode/syncnode/node/localapi"
)

// sseEvent is one event of the stream as the wire has it.
type sseEvent struct {
	id, typ string
	ev      localapi.Event
}

// openEvents opens the event stream of lib with the given Last-Event-ID
// (none if "") or query, and returns a function reading its next event.
func openEvents(t *testing.T, e testEnv, lib, lastID, query string) (next func() sseEvent, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+e.addr+"/v1/libraries/"+lib+"/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("events: status %d", resp.StatusCode)
	}
	events := make(chan sseEvent, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				cur.typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.ev)
			case line == "" && cur.typ != "":
				events <- cur
				cur = sseEvent{}
			}
		}
	}()
	next = func() sseEvent {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the event stream ended")
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
		return sseEvent{}
	}
	return next, func() { cancel(); resp.Body.Close() }
}

// A client that reconnects with the ID of the last event it read (as
// Last-Event-ID, or ?since=) gets every event it missed meanwhile, in
// order, each once, then the live ones; an ID of another run of the daemon
// gets a resync event first; a malformed ID is refused.
func TestEventsResume(t *testing.T) {
	e := startServer(t)
	c := localapi.NewClient(e.addr, e.token)
	ctx := context.Background()
	var lib localapi.Library
	if err := c.Do(ctx, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: "photos"}, &lib); err != nil {
		t.Fatal(err)
	}
	put := func(i int) localapi.Written {
		var w localapi.Written
		if err := c.Do(ctx, "POST", "/v1/libraries/"+lib.ID+"/records/tag", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), &w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	next, stop := openEvents(t, e, lib.ID, "", "")
	first := put(1)
	got := next()
	if got.ev.ID != first.ID || got.id == "" || got.id != got.ev.EventID || got.typ != "changed" {
		t.Fatalf("first event: %+v, want tag %s with an ID", got, first.ID)
	}
	stop()

	// Written while no client listens.
	var missed []localapi.Written
	for i := 2; i <= 4; i++ {
		missed = append(missed, put(i))
	}
	for _, how := range []struct{ header, query string }{{got.id, ""}, {"", "?since=" + got.id}} {
		next, stop := openEvents(t, e, lib.ID, how.header, how.query)
		for _, w := range missed {
			ev := next()
			if ev.ev.ID != w.ID || ev.ev.Version != w.Version {
				t.Fatalf("resuming (header %q, query %q): got %+v, want the missed tag %s", how.header, how.query, ev, w.ID)
			}
		}
		live := put(99)
		if ev := next(); ev.ev.ID != live.ID {
			t.Fatalf("after the missed events: %+v, want the live tag %s", ev, live.ID)
		}
		stop()
		missed = append(missed, live)
	}

	// An ID of another run: a resync event, then this run's events.
	next, stop = openEvents(t, e, lib.ID, "0000dead-7", "")
	ev := next()
	if ev.typ != "resync" || !strings.Contains(ev.ev.Reason, "restarted") {
		t.Fatalf("an ID of another run: first event %+v, want resync saying the daemon restarted", ev)
	}
	// This run's events, from its first: the library's device record, then
	// the first tag.
	if ev := next(); ev.ev.Model != "device" {
		t.Fatalf("after the resync: %+v, want this run's first event (the device record)", ev)
	}
	if ev := next(); ev.ev.ID != first.ID {
		t.Fatalf("after the resync: %+v, want this run's first tag", ev)
	}
	stop()

	status, eb, _ := e.do(t, "GET", "/v1/libraries/"+lib.ID+"/events?since=nonsense", e.token, "")
	if status != http.StatusBadRequest || !strings.Contains(eb.Error, "event ID") {
		t.Fatalf("a malformed event ID: %d %+v, want 400 saying so", status, eb)
	}
}
