package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// Live changes of one owner that arrive out of order never put an older
// version over a newer one, not even for a moment (the app would see the
// record go back, and a crash then would keep it there until a catch-up).
func TestOwnedOlderVersionNeverReplacesNewer(t *testing.T) {
	owner := uuid.New()
	h := newHarness(t, owner)
	h.connect(owner)
	id := uuid.New()
	ms := uint64(h.now.UnixMilli())
	v1 := hlc.HLC{Timestamp: ms - 2000, DeviceID: owner}
	v2 := hlc.HLC{Timestamp: ms - 1000, DeviceID: owner}
	newer := &protocol.StateChange{LibraryID: h.lib, ModelType: "location", RecordUUID: id, DeviceID: owner, Data: cborOf(t, "v2"), Timestamp: v2, Prev: &v1}
	older := &protocol.StateChange{LibraryID: h.lib, ModelType: "location", RecordUUID: id, DeviceID: owner, Data: cborOf(t, "v1"), Timestamp: v1}
	if err := h.step(owner, newer); err != nil {
		t.Fatal(err)
	}
	if err := h.step(owner, older); err != nil {
		t.Fatal(err)
	}
	for _, ev := range h.last.Events {
		if ev.ID == id {
			t.Errorf("the older version raised an event: %+v", ev)
		}
	}
	r, ok := h.record("location", id)
	if !ok || r.Version != v2 || !bytes.Equal(r.Data, newer.Data) {
		t.Fatalf("the record is %+v (present %v), want the newer version %s", r, ok, v2)
	}
	if wm := h.watermark("location", owner); wm != v1 {
		t.Errorf("the watermark is %s, want %s: the older change closed the gap up to itself", wm, v1)
	}
}

// Quarantine holds at most MaxQuarantine messages per library: one more is
// refused without being stored (its sender is still told), and the store
// holds exactly what the engine counts.
func TestQuarantineIsBounded(t *testing.T) {
	peer := uuid.New()
	h := newHarness(t, peer)
	h.cfg.MaxQuarantine = 2
	h.start() // with the limit
	h.connect(peer)
	far := uint64(h.now.Add(time.Hour).UnixMilli())
	for i := 0; i < 3; i++ {
		m := &protocol.SharedChange{LibraryID: h.lib, HLC: hlc.HLC{Timestamp: far + uint64(i), DeviceID: peer}, ModelType: "tag",
			RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(t, i)}
		if err := h.step(peer, m); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		told := false
		for _, env := range h.last.Messages {
			if e, ok := env.Message.(*protocol.Error); ok && e.Code == protocol.CodeClockSkew {
				told = true
			}
		}
		if !told {
			t.Errorf("change %d: the sender was not told of the skew", i)
		}
	}
	stored, err := h.st.CountQuarantined(h.lib)
	if err != nil {
		t.Fatal(err)
	}
	if c := h.eng.QuarantineCount(h.lib); c != 2 || stored != 2 {
		t.Errorf("the engine counts %d and the store holds %d quarantined messages; want 2 and 2 (MaxQuarantine)", c, stored)
	}
}

// A member's acknowledgement never goes backwards: a late, older report
// (a Heartbeat sent before the one already taken) keeps the newer one.
func TestAcksNeverGoBackwards(t *testing.T) {
	peer := uuid.New()
	h := newHarness(t, peer)
	h.connect(peer)
	first := h.putShared("tag", uuid.New(), 1)
	second := h.putShared("tag", uuid.New(), 2)
	for _, at := range []hlc.HLC{second, first} {
		hb := &protocol.Heartbeat{LibraryID: h.lib, DeviceID: peer, Watermarks: []protocol.Watermark{{DeviceID: h.self, ModelType: "tag", HLC: at}}}
		if err := h.step(peer, hb); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.eng.Acked(h.lib, peer, "tag", h.self); got != second {
		t.Errorf("the peer's acknowledgement is %s after an older report; want %s", got, second)
	}
	acks, err := h.st.Acks(h.lib)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acks {
		if a.Member == peer && a.ModelType == "tag" && a.Origin == h.self && a.HLC != second {
			t.Errorf("the stored acknowledgement is %s; want %s", a.HLC, second)
		}
	}
}

// Shared changes that arrive out of order wait in the log; the change that
// closes the gap walks the watermark through them at once.
func TestSharedChainWalksAfterGap(t *testing.T) {
	origin := uuid.New()
	h := newHarness(t, origin)
	h.connect(origin)
	ms := uint64(h.now.UnixMilli())
	e1 := hlc.HLC{Timestamp: ms - 3000, DeviceID: origin}
	e2 := hlc.HLC{Timestamp: ms - 2000, DeviceID: origin}
	e3 := hlc.HLC{Timestamp: ms - 1000, DeviceID: origin}
	change := func(at hlc.HLC, prev *hlc.HLC) *protocol.SharedChange {
		return &protocol.SharedChange{LibraryID: h.lib, HLC: at, ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(t, at.Timestamp), Prev: prev}
	}
	for _, m := range []*protocol.SharedChange{change(e3, &e2), change(e2, &e1)} {
		if err := h.step(origin, m); err != nil {
			t.Fatal(err)
		}
	}
	if wm := h.watermark("tag", origin); !wm.IsZero() {
		t.Fatalf("setup: before the gap closes the watermark is %s, want zero", wm)
	}
	if err := h.step(origin, change(e1, nil)); err != nil {
		t.Fatal(err)
	}
	if wm := h.watermark("tag", origin); wm != e3 {
		t.Errorf("after the gap closed the watermark is %s, want %s (through the changes that came early)", wm, e3)
	}
}

// Once a catch-up page's tail is quarantined, the rest of the stream in the
// same response cannot move the watermark past it: the quarantined change
// is applied when released, not skipped as held. (Seed 288 found it first.)
func TestQuarantinedTailFreezesStream(t *testing.T) {
	origin := uuid.New()
	h := newHarness(t, origin)
	h.connect(origin)
	ms := uint64(h.now.UnixMilli())
	a := hlc.HLC{Timestamp: ms - 1000, DeviceID: origin}
	b := hlc.HLC{Timestamp: ms + uint64((10 * time.Minute).Milliseconds()), DeviceID: origin}
	c := hlc.HLC{Timestamp: b.Timestamp + 1000, DeviceID: origin}
	if err := h.eng.CatchUp(h.now, h.lib, origin, engine.DeviceOwned, "location"); err != nil {
		t.Fatal(err)
	}
	rd := h.flush()
	if len(rd.Requests) != 1 {
		t.Fatalf("want one request, have %d", len(rd.Requests))
	}
	id := rd.Requests[0].ID
	late := uuid.New()
	pages := []*protocol.StateResponse{
		{LibraryID: h.lib, ModelType: "location", DeviceID: origin, HasMore: true, UpTo: b, Complete: b, Records: []protocol.StateRecord{
			{RecordUUID: uuid.New(), Data: cborOf(t, "a"), Timestamp: a}, {RecordUUID: late, Data: cborOf(t, "b"), Timestamp: b}}},
		{LibraryID: h.lib, ModelType: "location", DeviceID: origin, UpTo: c, Complete: c},
	}
	for i, p := range pages {
		if err := h.eng.StepResponse(h.now, id, p); err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
	}
	h.eng.RequestDone(h.now, id, nil)
	h.flush()
	if wm := h.watermark("location", origin); !wm.Less(b) {
		t.Fatalf("the watermark is %s, at or past the quarantined %s", wm, b)
	}
	for i := 0; i < 20 && h.eng.QuarantineCount(h.lib) > 0; i++ {
		h.tick(time.Minute)
	}
	if r, ok := h.record("location", late); !ok || r.Version != b {
		t.Errorf("the quarantined record is %+v (present %v) after its release; want it at %s", r, ok, b)
	}
}

// A member whose stored last-seen time is older than its AddedAt (stored
// before this version set it on listing) is fresh by its AddedAt: it holds
// log pruning back.
func TestAddedAtHoldsPruningBack(t *testing.T) {
	peer, joiner := uuid.New(), uuid.New()
	h := newHarness(t, peer)
	if err := h.st.Apply(&store.Batch{PutMembers: []store.Member{{Library: h.lib, DeviceID: joiner, AddedAt: uint64(h.now.UnixMilli())}}}); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.connect(peer)
	at := h.putShared("tag", uuid.New(), 1)
	for i := 0; i < 5; i++ {
		if err := h.step(peer, &protocol.Heartbeat{LibraryID: h.lib, DeviceID: peer, Watermarks: []protocol.Watermark{{DeviceID: h.self, ModelType: "tag", HLC: at}}}); err != nil {
			t.Fatal(err)
		}
		h.tick(time.Second)
	}
	if p := h.prunePoint("tag", h.self).Log; !p.IsZero() {
		t.Errorf("the log is pruned to %s while a member added %v ago acknowledged nothing", p, 5*time.Second)
	}
}

// A shared watermark that moved is acknowledged to each peer within
// AckInterval, without waiting for the next heartbeat.
func TestAcksSentBetweenHeartbeats(t *testing.T) {
	origin, other := uuid.New(), uuid.New()
	h := newHarness(t, origin, other)
	h.connect(origin)
	h.connect(other)
	h.tick(10 * time.Millisecond)
	at := hlc.HLC{Timestamp: uint64(h.now.UnixMilli()) - 100, DeviceID: origin}
	if err := h.step(origin, &protocol.SharedChange{LibraryID: h.lib, HLC: at, ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(t, 1)}); err != nil {
		t.Fatal(err)
	}
	rd := h.tick(h.cfg.AckInterval + 10*time.Millisecond)
	acked := map[uuid.UUID]bool{}
	for _, env := range rd.Messages {
		switch m := env.Message.(type) {
		case *protocol.Heartbeat:
			t.Fatalf("setup: a heartbeat is due %v after the session opened", h.cfg.AckInterval)
		case *protocol.AckSharedChanges:
			if m.UpToHLC == at && m.ModelType == "tag" {
				acked[env.To] = true
			}
		}
	}
	for _, p := range []uuid.UUID{origin, other} {
		if !acked[p] {
			t.Errorf("no AckSharedChanges of tag up to %s went to %s within AckInterval", at, p)
		}
	}
}

// Removing a member closes its session at once, and its messages are
// refused from then on.
func TestRemovedMemberSessionClosed(t *testing.T) {
	peer := uuid.New()
	h := newHarness(t, peer)
	h.connect(peer)
	if err := h.eng.SetMembers(h.now, h.lib, []store.Member{{DeviceID: h.self}}); err != nil {
		t.Fatal(err)
	}
	rd := h.flush()
	closed := false
	for _, d := range rd.Disconnects {
		closed = closed || d.Device == peer
	}
	if !closed || h.eng.IsConnected(h.lib, peer) {
		t.Errorf("the removed member's session is still open (disconnects %+v)", rd.Disconnects)
	}
	err := h.step(peer, &protocol.Heartbeat{LibraryID: h.lib, DeviceID: peer})
	if code := protocol.CodeOf(err).String(); err == nil || code != "not_member" {
		t.Errorf("a removed member's Heartbeat gave %v (code %s); want not_member", err, code)
	}
}

// An entry of a snapshot page carries no prev (a snapshot lists records, not
// their history): it must not extend the watermark past a change this node
// does not hold. (Found by the simulation, seed 502682: a relay's snapshot
// page listed a change beyond its complete bound; the receiver's chain walk
// took it for the next link and skipped the change before it, which it never
// got.)
func TestSnapshotEntriesDoNotChain(t *testing.T) {
	origin, relay := uuid.New(), uuid.New()
	h := newHarness(t, origin, relay)
	h.connect(relay)
	ms := uint64(h.now.UnixMilli())
	t1 := hlc.HLC{Timestamp: ms - 3000, DeviceID: origin}
	t2 := hlc.HLC{Timestamp: ms - 2000, DeviceID: origin} // the relay does not hold it
	t3 := hlc.HLC{Timestamp: ms - 1000, DeviceID: origin} // the relay holds it out of order
	if err := h.eng.CatchUp(h.now, h.lib, relay, engine.Shared, "tag"); err != nil {
		t.Fatal(err)
	}
	rd := h.flush()
	if len(rd.Requests) != 1 {
		t.Fatalf("want one request, have %d", len(rd.Requests))
	}
	page := &protocol.SharedChangeResponse{LibraryID: h.lib, ModelType: "tag", DeviceID: origin, UpTo: t3, Complete: t1, Snapshot: true,
		Entries: []protocol.SharedChangeEntry{
			{HLC: t1, ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Update, Data: cborOf(t, 1)},
			{HLC: t3, ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Update, Data: cborOf(t, 3)},
		}}
	if err := h.eng.StepResponse(h.now, rd.Requests[0].ID, page); err != nil {
		t.Fatal(err)
	}
	h.eng.RequestDone(h.now, rd.Requests[0].ID, nil)
	h.flush()
	if wm := h.watermark("tag", origin); wm != t1 {
		t.Errorf("the watermark is %s, want %s (the page's complete): %s, which nobody sent, lies between", wm, t1, t2)
	}
}
