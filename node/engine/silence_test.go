package engine_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

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
