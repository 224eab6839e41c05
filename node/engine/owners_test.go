package engine_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
)

// stateRequests returns the StateRequests of rd by the device they go to.
func stateRequests(rd engine.Ready) map[uuid.UUID]engine.Request {
	out := make(map[uuid.UUID]engine.Request)
	for _, r := range rd.Requests {
		if _, ok := r.Message.(*protocol.StateRequest); ok {
			out[r.To] = r
		}
	}
	return out
}

// ownerOf is the device_id of a StateRequest (Nil: every owner).
func ownerOf(r engine.Request) uuid.UUID {
	if sr := r.Message.(*protocol.StateRequest); sr.DeviceID != nil {
		return *sr.DeviceID
	}
	return uuid.Nil
}

// A device joining a library of several members gets each member's own
// records from that member, all at once: one StateRequest per owner, each
// selecting that owner's streams only (device_id) with only its
// watermarks, not one request to the first member for everything.
func TestCatchUpAsksEachOwnerForItsOwnRecords(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	h := newHarness(t, a, b, c)
	at := hlc.HLC{Timestamp: uint64(h.now.UnixMilli()) - 1000}
	wm := func(origin uuid.UUID) protocol.Watermark {
		h := at
		h.DeviceID = origin
		return protocol.Watermark{DeviceID: origin, ModelType: "entry", HLC: h}
	}
	// a also holds b's records; each owner holds its own.
	h.connect(a, wm(a), wm(b))
	h.connect(b, wm(b))
	h.connect(c, wm(c))
	ups := h.eng.CatchUps()
	to := make(map[uuid.UUID]bool)
	for _, p := range ups {
		if p.Kind == engine.DeviceOwned {
			to[p.Peer] = true
		}
	}
	if len(ups) != 3 || !to[a] || !to[b] || !to[c] {
		t.Fatalf("catch-ups in flight: %+v, want one to each of the three owners", ups)
	}
}

// The requests themselves: each names its owner and lists only that
// owner's watermarks; a page of another origin in answer is refused as
// unexpected; once they are done, what a member relays of an absent origin
// is asked in one request for every owner, which holds further requests to
// owners back until it ends.
func TestOwnerRequestsSelectOneOwner(t *testing.T) {
	a, b, gone := uuid.New(), uuid.New(), uuid.New()
	h := newHarness(t, a, b, gone)
	past := func(origin uuid.UUID, ago time.Duration) hlc.HLC {
		return hlc.HLC{Timestamp: uint64(h.now.Add(-ago).UnixMilli()), DeviceID: origin}
	}
	// This node holds some of a's stream already.
	mine := past(a, 5*time.Second)
	if err := h.eng.Connected(h.now, h.lib, a); err != nil {
		t.Fatal(err)
	}
	h.flush()
	if err := h.step(a, &protocol.StateChange{LibraryID: h.lib, ModelType: "entry", RecordUUID: uuid.New(), DeviceID: a, Data: cborOf(t, 1), Timestamp: mine}); err != nil {
		t.Fatal(err)
	}
	// a is ahead on its own stream and relays gone's; b on its own.
	hello := &protocol.Hello{LibraryID: h.lib, DeviceID: a, Versions: []uint32{protocol.Version}, Watermarks: []protocol.Watermark{
		{DeviceID: a, ModelType: "entry", HLC: past(a, time.Second)},
		{DeviceID: gone, ModelType: "entry", HLC: past(gone, 2*time.Second)},
	}}
	if err := h.step(a, hello); err != nil {
		t.Fatal(err)
	}
	toA, ok := stateRequests(h.last)[a]
	if !ok || ownerOf(toA) != a {
		t.Fatalf("requests after a's Hello: %+v, want one to a for a's own streams", h.last.Requests)
	}
	sr := toA.Message.(*protocol.StateRequest)
	if len(sr.Watermarks) != 1 || sr.Watermarks[0].DeviceID != a || sr.Watermarks[0].HLC != mine {
		t.Fatalf("watermarks of the request to a: %+v, want only a's, at %s", sr.Watermarks, mine)
	}
	h.connect(b, protocol.Watermark{DeviceID: b, ModelType: "entry", HLC: past(b, time.Second)})
	toB, ok := stateRequests(h.last)[b]
	if !ok || ownerOf(toB) != b {
		t.Fatalf("requests after b's Hello: %+v, want one to b for b's own streams while a's is in flight", h.last.Requests)
	}

	// a answers with a page of gone's stream: not what was asked.
	wrong := &protocol.StateResponse{LibraryID: h.lib, ModelType: "entry", DeviceID: gone, UpTo: past(gone, 2*time.Second), Complete: past(gone, 2*time.Second)}
	if err := h.eng.StepResponse(h.now, toA.ID, wrong); err == nil || protocol.CodeOf(err) != protocol.CodeUnexpected {
		t.Fatalf("a page of another origin in answer to a request for a's streams: %v, want unexpected", err)
	}
	h.eng.RequestDone(h.now, toA.ID, err0())
	h.flush()
	// b ends its answer: its stream is caught up.
	end := past(b, time.Second)
	if err := h.eng.StepResponse(h.now, toB.ID, &protocol.StateResponse{LibraryID: h.lib, ModelType: "entry", DeviceID: b, UpTo: end, Complete: end}); err != nil {
		t.Fatal(err)
	}
	h.eng.RequestDone(h.now, toB.ID, nil)
	h.flush()
	if got := h.watermark("entry", b); got != end {
		t.Fatalf("b's stream after b's answer: watermark %s, want %s", got, end)
	}

	// Next, a is asked again: first for its own streams, and once that is
	// done for every owner's (gone's included), which holds b back.
	rd := h.tick(h.cfg.RetryInterval + time.Millisecond)
	toA, ok = stateRequests(rd)[a]
	if !ok || ownerOf(toA) != a {
		t.Fatalf("the retry to a: %+v, want a request for a's own streams", rd.Requests)
	}
	if err := toA.Message.Validate(); err != nil {
		t.Fatalf("the retry to a, now that this node holds b's stream too: %v", err)
	}
	for _, w := range toA.Message.(*protocol.StateRequest).Watermarks {
		if w.DeviceID != a {
			t.Fatalf("the retry to a lists a watermark of %s (%+v): a request to an owner lists only the owner's", w.DeviceID, w)
		}
	}
	endA := past(a, time.Second)
	if err := h.eng.StepResponse(h.now, toA.ID, &protocol.StateResponse{LibraryID: h.lib, ModelType: "entry", DeviceID: a, UpTo: endA, Complete: endA}); err != nil {
		t.Fatal(err)
	}
	h.eng.RequestDone(h.now, toA.ID, nil)
	h.flush()
	rd = h.tick(h.cfg.RetryInterval + time.Millisecond)
	toA, ok = stateRequests(rd)[a]
	if !ok || ownerOf(toA) != uuid.Nil {
		t.Fatalf("after a's own streams: %+v, want a request to a for every owner (gone's stream)", rd.Requests)
	}
	// While it runs, b's new claim waits.
	if err := h.step(b, &protocol.Heartbeat{LibraryID: h.lib, DeviceID: b, Watermarks: []protocol.Watermark{{DeviceID: b, ModelType: "entry", HLC: past(b, 0)}}}); err != nil {
		t.Fatal(err)
	}
	if r, ok := stateRequests(h.last)[b]; ok {
		t.Fatalf("a request to b (%+v) while a request for every owner is in flight", r)
	}
	if len(h.eng.CatchUps()) != 1 {
		t.Fatalf("catch-ups in flight: %+v, want only the one for every owner", h.eng.CatchUps())
	}
}

// err0 is a failed request's error.
func err0() error { return protocol.ErrUnexpected }

// When a request to an owner ends, the owner waiting for one of the four
// places is asked at once, not at the next tick, where the member first in
// device order, which relays that owner's stream, would be asked for every
// owner's streams instead.
func TestFreedOwnerPlaceIsTakenAtOnce(t *testing.T) {
	relay, last := uuid.UUID{1}, uuid.UUID{2}
	owners := []uuid.UUID{{3}, {4}, {5}, {6}}
	h := newHarness(t, append([]uuid.UUID{relay, last}, owners...)...)
	at := func(origin uuid.UUID) hlc.HLC {
		return hlc.HLC{Timestamp: uint64(h.now.Add(-time.Second).UnixMilli()), DeviceID: origin}
	}
	own := func(origin uuid.UUID) protocol.Watermark {
		return protocol.Watermark{DeviceID: origin, ModelType: "entry", HLC: at(origin)}
	}
	reqs := make(map[uuid.UUID]engine.Request)
	for _, o := range owners {
		h.connect(o, own(o))
		r, ok := stateRequests(h.last)[o]
		if !ok || ownerOf(r) != o {
			t.Fatalf("at %s's Hello: %+v, want a request to it for its own streams", o, h.last.Requests)
		}
		reqs[o] = r
	}
	h.connect(last, own(last))
	if _, ok := stateRequests(h.last)[last]; ok {
		t.Fatalf("a fifth request to an owner while four are in flight: %+v", h.last.Requests)
	}
	h.connect(relay, own(last)) // the relay holds last's stream, nothing of its own
	if len(stateRequests(h.last)) != 0 {
		t.Fatalf("a request while four to owners are in flight: %+v", h.last.Requests)
	}
	for _, o := range owners {
		end := at(o)
		if err := h.eng.StepResponse(h.now, reqs[o].ID, &protocol.StateResponse{LibraryID: h.lib, ModelType: "entry", DeviceID: o, UpTo: end, Complete: end}); err != nil {
			t.Fatal(err)
		}
		h.eng.RequestDone(h.now, reqs[o].ID, nil)
		rd := h.flush()
		for to, r := range stateRequests(rd) {
			if to != last || ownerOf(r) != last {
				t.Fatalf("after %s's request ended: a request to %s for owner %s; want only one to %s for its own streams", o, to, ownerOf(r), last)
			}
		}
	}
	ups := h.eng.CatchUps()
	if len(ups) != 1 || ups[0].Peer != last {
		t.Fatalf("catch-ups in flight once the four ended: %+v, want the one to %s", ups, last)
	}
}
