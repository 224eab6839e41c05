package engine_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// A member is silent only for time this node observed: a wall clock that
// jumps ahead past the horizon (or a machine that slept that long) must not
// time out a connected peer, nor prune the log past what the peer
// acknowledged (which would serve it snapshots it has no reason to need).
// Found by the simulation (seed 12 of the issue 12 review): a node whose
// clock jumped 6m38s ahead served snapshots to every member.
func TestClockJumpIsNoSilence(t *testing.T) {
	peer := uuid.New()
	h := newHarness(t, peer)
	first := h.putShared("tag", uuid.New(), 1)
	h.connect(peer, protocol.Watermark{DeviceID: h.self, ModelType: "tag", HLC: first})
	for i := 0; i < 5; i++ {
		h.putShared("tag", uuid.New(), i)
		h.tick(200 * time.Millisecond)
	}
	h.tick(2 * time.Second)
	if p := h.prunePoint("tag", h.self).Log; p != first {
		t.Fatalf("setup: the log is pruned to %s, want %s (what the peer acknowledged)", p, first)
	}
	rd := h.tick(h.cfg.Horizon + 5*time.Minute) // the wall clock jumps
	for _, d := range rd.Disconnects {
		t.Errorf("the jump timed out a connected peer: %v", d.Reason)
	}
	h.tick(2 * time.Second)
	if p := h.prunePoint("tag", h.self).Log; p != first {
		t.Errorf("after the jump the log is pruned to %s, past %s which the connected peer acknowledged", p, first)
	}
}

// The same holds across a restart: time the node was down, or a step of its
// clock while it was down, is no silence of its members.
func TestDowntimeIsNoSilence(t *testing.T) {
	peer := uuid.New()
	h := newHarness(t, peer)
	first := h.putShared("tag", uuid.New(), 1)
	h.connect(peer, protocol.Watermark{DeviceID: h.self, ModelType: "tag", HLC: first})
	h.putShared("tag", uuid.New(), 2)
	h.tick(2 * time.Second)
	h.now = h.now.Add(h.cfg.Horizon + time.Minute) // down, or its clock stepped
	h.start()
	for i := 0; i < 5; i++ {
		h.tick(time.Second)
	}
	if p := h.prunePoint("tag", h.self).Log; first.Less(p) {
		t.Errorf("after the restart the log is pruned to %s, past %s which the member acknowledged just before", p, first)
	}
	// Silence that this node observes after the restart still counts.
	for i := 0; i < int(h.cfg.Horizon/time.Second)+3; i++ {
		h.tick(time.Second)
	}
	if p := h.prunePoint("tag", h.self).Log; !first.Less(p) {
		t.Errorf("a member silent for the horizon after the restart still holds the log at %s", p)
	}
}

// A member this node lists anew counts as heard of now, by this node's
// clock: its AddedAt comes from the device that added it, whose clock may
// run behind this one by more than the horizon. (The simulation found it: a
// node whose clock ran minutes ahead pruned past a member that had just
// joined.)
func TestNewMemberIsFreshByThisClock(t *testing.T) {
	peer, joiner := uuid.New(), uuid.New()
	h := newHarness(t, peer)
	first := h.putShared("tag", uuid.New(), 1)
	h.connect(peer, protocol.Watermark{DeviceID: h.self, ModelType: "tag", HLC: first})
	addedAt := uint64(h.now.Add(-3 * h.cfg.Horizon).UnixMilli()) // the inviter's clock
	if err := h.eng.SetMembers(h.now, h.lib, []store.Member{{DeviceID: h.self}, {DeviceID: peer}, {DeviceID: joiner, AddedAt: addedAt}}); err != nil {
		t.Fatal(err)
	}
	h.flush()
	h.putShared("tag", uuid.New(), 2)
	for i := 0; i < 5; i++ {
		h.tick(time.Second)
		if err := h.step(peer, &protocol.Heartbeat{LibraryID: h.lib, DeviceID: peer, Watermarks: []protocol.Watermark{{DeviceID: h.self, ModelType: "tag", HLC: h.watermark("tag", h.self)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if p := h.prunePoint("tag", h.self).Log; !p.IsZero() {
		t.Errorf("the log is pruned to %s while a member added a moment ago acknowledged nothing", p)
	}
}

// The skewed tail of a catch-up page from a stream's origin is quarantined;
// once released it moves the watermark as far as the page vouched for, so
// that other members can catch up from this node at once. (Released without
// moving it, a tail whose origin was removed meanwhile stayed beyond the
// watermark for good: the simulation found members that never got it.)
func TestReleasedPageTailMovesWatermark(t *testing.T) {
	h, origin, v1, v2 := quarantinedTail(t)
	for i := 0; i < 30 && h.eng.QuarantineCount(h.lib) > 0; i++ {
		h.tick(time.Minute)
	}
	if c := h.eng.QuarantineCount(h.lib); c != 0 {
		t.Fatalf("%d messages still quarantined", c)
	}
	if wm := h.watermark("location", origin); wm != v2 {
		t.Errorf("after the release the watermark is %s, want %s: the page vouched for the whole stream up to it (it was %s)", wm, v2, v1)
	}
}

// quarantinedTail returns a harness that caught up a page of origin's stream
// whose tail (at v2) is beyond MaxDrift: v1 is applied, v2 quarantined.
func quarantinedTail(t *testing.T) (h *harness, origin uuid.UUID, v1, v2 hlc.HLC) {
	t.Helper()
	origin = uuid.New()
	h = newHarness(t, origin)
	h.connect(origin)
	ms := uint64(h.now.UnixMilli())
	v1 = hlc.HLC{Timestamp: ms - 1000, DeviceID: origin}
	v2 = hlc.HLC{Timestamp: ms + uint64((h.cfg.Horizon + 10*time.Minute).Milliseconds()), DeviceID: origin}
	if err := h.eng.CatchUp(h.now, h.lib, origin, engine.DeviceOwned, "location"); err != nil {
		t.Fatal(err)
	}
	rd := h.flush()
	if len(rd.Requests) != 1 {
		t.Fatalf("want one catch-up request, have %d", len(rd.Requests))
	}
	page := &protocol.StateResponse{LibraryID: h.lib, ModelType: "location", DeviceID: origin, UpTo: v2, Complete: v2,
		Records: []protocol.StateRecord{{RecordUUID: uuid.New(), Data: cborOf(t, 1), Timestamp: v1}, {RecordUUID: uuid.New(), Data: cborOf(t, 2), Timestamp: v2}}}
	if err := h.eng.StepResponse(h.now, rd.Requests[0].ID, page); err != nil {
		t.Fatal(err)
	}
	h.eng.RequestDone(h.now, rd.Requests[0].ID, nil)
	h.flush()
	if wm := h.watermark("location", origin); wm != v1 {
		t.Fatalf("after the page the watermark is %s, want %s (below the quarantined tail)", wm, v1)
	}
	return h, origin, v1, v2
}

// The streams of a removed device can only be completed from the other
// members: when it is removed, and at every new session, the engine asks its
// peers for them from its watermarks, even if they claim no more of them
// (what a member holds beyond its watermark, out of order, it does not
// claim). The simulation found members that never got such records.
func TestRemovedOriginStreamsAskedOfPeers(t *testing.T) {
	origin, peer := uuid.New(), uuid.New()
	h := newHarness(t, origin, peer)
	h.connect(origin)
	at := hlc.HLC{Timestamp: uint64(h.now.UnixMilli()) - 1000, DeviceID: origin}
	if err := h.step(origin, &protocol.StateChange{LibraryID: h.lib, ModelType: "entry", RecordUUID: uuid.New(), DeviceID: origin, Data: cborOf(t, 1), Timestamp: at}); err != nil {
		t.Fatal(err)
	}
	same := protocol.Watermark{DeviceID: origin, ModelType: "entry", HLC: at}
	h.connect(peer, same)
	asked := func(rd engine.Ready) bool {
		for _, r := range rd.Requests {
			if sr, ok := r.Message.(*protocol.StateRequest); ok && r.To == peer {
				for _, m := range sr.ModelTypes {
					if m == "entry" {
						return true
					}
				}
			}
		}
		return false
	}
	if asked(h.last) {
		t.Fatal("setup: the peer was asked for the origin's stream while the origin is a member and the peer claims no more")
	}
	if err := h.eng.SetMembers(h.now, h.lib, []store.Member{{DeviceID: h.self}, {DeviceID: peer}}); err != nil {
		t.Fatal(err)
	}
	h.flush()
	if rd := h.tick(h.cfg.RetryInterval); !asked(rd) {
		t.Error("after the origin was removed the peer was not asked for its stream")
	}
	h.eng.Disconnected(h.now, h.lib, peer)
	h.tick(h.cfg.RetryInterval)
	h.connect(peer, same)
	if !asked(h.last) {
		t.Error("at a new session the peer was not asked for the removed origin's stream")
	}
}
