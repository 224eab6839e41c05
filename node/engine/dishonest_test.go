package engine_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// The tests of this file feed an engine messages of every type from a member
// that lies (or from a stranger), and check that each gets the refusal code it
// owes, or is taken without effect, and that a refused one changes nothing.

// liar is a harness with three other devices: peer, a connected member that
// sends the forged messages; victim, a member whose name and records peer
// forges; stranger, no member.
type liar struct {
	*harness
	peer, victim, stranger uuid.UUID
	// owned is a device-owned record of the victim, and tag a shared
	// change of the victim, that the engine holds.
	owned, tag store.Record
	ms         uint64 // now, in ms
}

func newLiar(t *testing.T) *liar {
	t.Helper()
	l := &liar{peer: uuid.New(), victim: uuid.New(), stranger: uuid.New()}
	l.harness = newHarness(t, l.peer, l.victim)
	l.ms = uint64(l.now.UnixMilli())
	l.connect(l.victim)
	l.connect(l.peer)
	v1 := hlc.HLC{Timestamp: l.ms - 5000, DeviceID: l.victim}
	v2 := hlc.HLC{Timestamp: l.ms - 4000, DeviceID: l.victim}
	id, tagID := uuid.New(), uuid.New()
	if err := l.step(l.victim, &protocol.StateChange{LibraryID: l.lib, ModelType: "location", RecordUUID: id, DeviceID: l.victim, Data: cborOf(t, "the victim's"), Timestamp: v1}); err != nil {
		t.Fatal(err)
	}
	if err := l.step(l.victim, &protocol.SharedChange{LibraryID: l.lib, HLC: v2, ModelType: "tag", RecordUUID: tagID, ChangeType: protocol.Insert, Data: cborOf(t, "tag")}); err != nil {
		t.Fatal(err)
	}
	var ok bool
	if l.owned, ok = l.record("location", id); !ok {
		t.Fatal("setup: the victim's record was not stored")
	}
	if l.tag, ok = l.record("tag", tagID); !ok {
		t.Fatal("setup: the victim's shared change was not stored")
	}
	return l
}

// hlcOf returns an HLC of device d, offset ms from now.
func (l *liar) hlcOf(d uuid.UUID, offset int64) hlc.HLC {
	return hlc.HLC{Timestamp: uint64(int64(l.ms) + offset), DeviceID: d}
}

// state is everything of the library the engine stored, and its clock: a
// refused message must leave it as it was.
func (l *liar) state() string {
	l.t.Helper()
	var b strings.Builder
	for _, model := range l.eng.Registry().Ordered(0) {
		recs, err := l.st.List(l.lib, model, uuid.Nil, 1000)
		if err != nil {
			l.t.Fatal(err)
		}
		for _, r := range recs {
			fmt.Fprintf(&b, "record %s/%s %s del=%v %x\n", model, r.ID, r.Version, r.Deleted, r.Data)
		}
	}
	wms, err := l.st.Watermarks(l.lib)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, w := range wms {
		fmt.Fprintf(&b, "watermark %s/%s %s\n", w.ModelType, w.Origin, w.HLC)
	}
	n, err := l.st.CountLog(l.lib)
	if err != nil {
		l.t.Fatal(err)
	}
	q, err := l.st.CountQuarantined(l.lib)
	if err != nil {
		l.t.Fatal(err)
	}
	fmt.Fprintf(&b, "log %d quarantined %d clock %s\n", n, q, l.eng.Clock())
	return b.String()
}

// Every session message that lies about who sends it, or comes from a
// stranger, or names a library this node does not hold, or has no business
// on a session stream, is refused with its code and changes nothing.
func TestDishonestSessionMessagesRefused(t *testing.T) {
	type build func(l *liar) (from uuid.UUID, m protocol.Message)
	cases := []struct {
		name string
		code string
		make build
	}{
		{"StateChange claiming another owner", "ownership", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.StateChange{LibraryID: l.lib, ModelType: "location", RecordUUID: l.owned.ID, DeviceID: l.victim,
				Data: cborOf(t, "forged"), Timestamp: l.hlcOf(l.victim, 0)}
		}},
		{"StateBatch claiming another owner", "ownership", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.StateBatch{LibraryID: l.lib, ModelType: "location", DeviceID: l.victim,
				Records: []protocol.StateRecord{{RecordUUID: l.owned.ID, Timestamp: l.hlcOf(l.victim, 0), Deleted: true}}}
		}},
		{"SharedChange of another origin", "ownership", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.SharedChange{LibraryID: l.lib, HLC: l.hlcOf(l.victim, 0), ModelType: "tag", RecordUUID: l.tag.ID,
				ChangeType: protocol.Delete}
		}},
		{"SharedChangeBatch of another origin", "ownership", func(l *liar) (uuid.UUID, protocol.Message) {
			h1, h2 := l.hlcOf(l.victim, 0), l.hlcOf(l.victim, 1)
			return l.peer, &protocol.SharedChangeBatch{LibraryID: l.lib, Entries: []protocol.SharedChangeEntry{
				{HLC: h1, ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(t, "x")},
				{HLC: h2, ModelType: "tag", RecordUUID: l.tag.ID, ChangeType: protocol.Delete, Prev: &h1},
			}}
		}},
		{"Hello claiming another device", "ownership", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.Hello{LibraryID: l.lib, DeviceID: l.victim, Versions: []uint32{protocol.Version}}
		}},
		{"Heartbeat claiming another device", "ownership", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.Heartbeat{LibraryID: l.lib, DeviceID: l.victim}
		}},
		{"AckSharedChanges claiming another device", "ownership", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.AckSharedChanges{LibraryID: l.lib, FromDevice: l.victim, ModelType: "tag", UpToHLC: l.hlcOf(l.self, 0)}
		}},
		{"Hello of no version spoken here", "unsupported_version", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.Hello{LibraryID: l.lib, DeviceID: l.peer, Versions: []uint32{protocol.Version + 1}}
		}},
		{"SharedChange of a device-owned model type", "unknown_model_type", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.SharedChange{LibraryID: l.lib, HLC: l.hlcOf(l.peer, 0), ModelType: "location", RecordUUID: l.owned.ID,
				ChangeType: protocol.Update, Data: cborOf(t, "x")}
		}},
		{"StateChange of a shared model type", "unknown_model_type", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.StateChange{LibraryID: l.lib, ModelType: "tag", RecordUUID: l.tag.ID, DeviceID: l.peer,
				Data: cborOf(t, "x"), Timestamp: l.hlcOf(l.peer, 0)}
		}},
		{"AckSharedChanges of an unknown model type", "unknown_model_type", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.AckSharedChanges{LibraryID: l.lib, FromDevice: l.peer, ModelType: "nope", UpToHLC: l.hlcOf(l.self, 0)}
		}},
		{"StateRequest on the session stream", "unexpected", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.StateRequest{LibraryID: l.lib, Limit: 10}
		}},
		{"SharedChangeRequest on the session stream", "unexpected", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.SharedChangeRequest{LibraryID: l.lib, Limit: 10}
		}},
		{"StateResponse on the session stream", "unexpected", func(l *liar) (uuid.UUID, protocol.Message) {
			h := l.hlcOf(l.victim, 0)
			return l.peer, &protocol.StateResponse{LibraryID: l.lib, ModelType: "location", DeviceID: l.victim, UpTo: h, Complete: h, Snapshot: true}
		}},
		{"SharedChangeResponse on the session stream", "unexpected", func(l *liar) (uuid.UUID, protocol.Message) {
			h := l.hlcOf(l.victim, 0)
			return l.peer, &protocol.SharedChangeResponse{LibraryID: l.lib, ModelType: "tag", DeviceID: l.victim, UpTo: h, Complete: h, Snapshot: true}
		}},
		{"StateChange whose version is another device's", "invalid", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.StateChange{LibraryID: l.lib, ModelType: "location", RecordUUID: l.owned.ID, DeviceID: l.peer,
				Data: cborOf(t, "x"), Timestamp: l.hlcOf(l.victim, 0)}
		}},
		{"SharedChangeBatch of two origins", "invalid", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, &protocol.SharedChangeBatch{LibraryID: l.lib, Entries: []protocol.SharedChangeEntry{
				{HLC: l.hlcOf(l.peer, 0), ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(t, "x")},
				{HLC: l.hlcOf(l.victim, 1), ModelType: "tag", RecordUUID: l.tag.ID, ChangeType: protocol.Delete},
			}}
		}},
	}
	// Every message type from a stranger, and for a library not held here.
	for _, m := range everyMessage() {
		m := m
		cases = append(cases, struct {
			name string
			code string
			make build
		}{m.name + " from a stranger", "not_member", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.stranger, m.make(l, l.lib, l.stranger)
		}})
		cases = append(cases, struct {
			name string
			code string
			make build
		}{m.name + " for another library", "unknown_library", func(l *liar) (uuid.UUID, protocol.Message) {
			return l.peer, m.make(l, uuid.New(), l.peer)
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLiar(t)
			before := l.state()
			from, m := tc.make(l)
			err := l.step(from, m)
			if err == nil {
				t.Fatalf("%s was accepted; want a refusal with code %s", m.Name(), tc.code)
			}
			if code := protocol.CodeOf(err).String(); code != tc.code {
				t.Fatalf("%s was refused with %v (code %s); want code %s", m.Name(), err, code, tc.code)
			}
			if after := l.state(); after != before {
				t.Errorf("the refused %s changed the store:\nbefore:\n%s\nafter:\n%s", m.Name(), before, after)
			}
			if r, ok := l.record("location", l.owned.ID); !ok || r.Version != l.owned.Version || !bytes.Equal(r.Data, l.owned.Data) {
				t.Errorf("the victim's record is now %+v (present %v), want it as the victim wrote it", r, ok)
			}
		})
	}
}

// sample is one message of each type, built for a library and a sender.
type sample struct {
	name string
	make func(l *liar, lib, from uuid.UUID) protocol.Message
}

func everyMessage() []sample {
	return []sample{
		{"StateChange", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.StateChange{LibraryID: lib, ModelType: "location", RecordUUID: uuid.New(), DeviceID: from, Data: cborOf(l.t, 1), Timestamp: l.hlcOf(from, 0)}
		}},
		{"StateBatch", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.StateBatch{LibraryID: lib, ModelType: "location", DeviceID: from, Records: []protocol.StateRecord{{RecordUUID: uuid.New(), Data: cborOf(l.t, 1), Timestamp: l.hlcOf(from, 0)}}}
		}},
		{"StateRequest", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.StateRequest{LibraryID: lib, Limit: 10}
		}},
		{"StateResponse", func(l *liar, lib, from uuid.UUID) protocol.Message {
			h := l.hlcOf(from, 0)
			return &protocol.StateResponse{LibraryID: lib, ModelType: "location", DeviceID: from, UpTo: h, Complete: h}
		}},
		{"SharedChange", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.SharedChange{LibraryID: lib, HLC: l.hlcOf(from, 0), ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(l.t, 1)}
		}},
		{"SharedChangeBatch", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.SharedChangeBatch{LibraryID: lib, Entries: []protocol.SharedChangeEntry{{HLC: l.hlcOf(from, 0), ModelType: "tag", RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(l.t, 1)}}}
		}},
		{"SharedChangeRequest", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.SharedChangeRequest{LibraryID: lib, Limit: 10}
		}},
		{"SharedChangeResponse", func(l *liar, lib, from uuid.UUID) protocol.Message {
			h := l.hlcOf(from, 0)
			return &protocol.SharedChangeResponse{LibraryID: lib, ModelType: "tag", DeviceID: from, UpTo: h, Complete: h}
		}},
		{"AckSharedChanges", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.AckSharedChanges{LibraryID: lib, FromDevice: from, ModelType: "tag", UpToHLC: l.hlcOf(l.self, 0)}
		}},
		{"Hello", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.Hello{LibraryID: lib, DeviceID: from, Versions: []uint32{protocol.Version}}
		}},
		{"Heartbeat", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return &protocol.Heartbeat{LibraryID: lib, DeviceID: from}
		}},
		{"Error", func(l *liar, lib, from uuid.UUID) protocol.Message {
			return protocol.NewError(lib, protocol.ErrInternal)
		}},
	}
}

// A member's write of a device-owned record it does not own (a take-over,
// newer than the owner's version) is taken without effect: the record stays
// the owner's. So is a peer's Error message.
func TestDishonestTakeOverIgnored(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(l *liar) protocol.Message
	}{
		{"StateChange", func(l *liar) protocol.Message {
			return &protocol.StateChange{LibraryID: l.lib, ModelType: "location", RecordUUID: l.owned.ID, DeviceID: l.peer,
				Data: cborOf(t, "the thief's"), Timestamp: l.hlcOf(l.peer, 0)}
		}},
		{"StateBatch", func(l *liar) protocol.Message {
			return &protocol.StateBatch{LibraryID: l.lib, ModelType: "location", DeviceID: l.peer,
				Records: []protocol.StateRecord{{RecordUUID: l.owned.ID, Timestamp: l.hlcOf(l.peer, 0), Deleted: true}}}
		}},
		{"Error", func(l *liar) protocol.Message { return protocol.NewError(l.lib, protocol.ErrInternal) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLiar(t)
			if err := l.step(l.peer, tc.make(l)); err != nil {
				t.Fatalf("refused with %v; want it taken without effect", err)
			}
			r, ok := l.record("location", l.owned.ID)
			if !ok || r.Version != l.owned.Version || r.Deleted || !bytes.Equal(r.Data, l.owned.Data) {
				t.Errorf("the victim's record is now %+v (present %v), want %s as the victim wrote it", r, ok, l.owned.Version)
			}
		})
	}
}

// A change stamped beyond MaxDrift is not an error but is neither applied
// nor merged into the clock, and the sender is told; a Hello or Heartbeat
// whose clock is beyond MaxDrift is taken, its clock not merged.
func TestDishonestFutureStampsNotAdopted(t *testing.T) {
	far := int64((hlc.DefaultMaxDrift + time.Hour) / time.Millisecond)
	for _, tc := range []struct {
		name string
		make func(l *liar) protocol.Message
	}{
		{"SharedChange", func(l *liar) protocol.Message {
			return &protocol.SharedChange{LibraryID: l.lib, HLC: l.hlcOf(l.peer, far), ModelType: "tag", RecordUUID: l.tag.ID, ChangeType: protocol.Delete}
		}},
		{"StateChange", func(l *liar) protocol.Message {
			return &protocol.StateChange{LibraryID: l.lib, ModelType: "location", RecordUUID: uuid.New(), DeviceID: l.peer, Data: cborOf(t, 1), Timestamp: l.hlcOf(l.peer, far)}
		}},
		{"Heartbeat", func(l *liar) protocol.Message {
			return &protocol.Heartbeat{LibraryID: l.lib, DeviceID: l.peer, Clock: l.hlcOf(l.peer, far)}
		}},
		{"Hello", func(l *liar) protocol.Message {
			return &protocol.Hello{LibraryID: l.lib, DeviceID: l.peer, Versions: []uint32{protocol.Version}, Clock: l.hlcOf(l.peer, far)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLiar(t)
			m := tc.make(l)
			if err := l.step(l.peer, m); err != nil {
				t.Fatalf("refused with %v; a future stamp is quarantined or ignored, not refused", err)
			}
			if c := l.eng.Clock(); c.Timestamp > l.ms+uint64(hlc.DefaultMaxDrift.Milliseconds()) {
				t.Errorf("the clock merged %s, beyond MaxDrift", c)
			}
			if r, _ := l.record("tag", l.tag.ID); r.Deleted || r.Version != l.tag.Version {
				t.Errorf("the far-future delete was applied: %+v", r)
			}
			switch m.(type) {
			case *protocol.SharedChange, *protocol.StateChange:
				if l.eng.QuarantineCount(l.lib) != 1 {
					t.Errorf("%d messages quarantined, want 1", l.eng.QuarantineCount(l.lib))
				}
				told := false
				for _, env := range l.last.Messages {
					if e, ok := env.Message.(*protocol.Error); ok && env.To == l.peer && e.Code == protocol.CodeClockSkew {
						told = true
					}
				}
				if !told {
					t.Error("the sender was not told of the skew")
				}
			}
		})
	}
}

// Lying watermarks and acknowledgements are taken (nothing can prove them
// lies), and harm nobody but the liar: this node's watermarks do not move,
// its log is not pruned past what an honest member acknowledged, and a
// catch-up from the liar that shows the lie is not asked for again and again.
func TestDishonestWatermarksHarmOnlyTheLiar(t *testing.T) {
	l := newLiar(t)
	mine := l.putShared("album", uuid.New(), 1)
	// The victim acknowledges this node's write; then the liar claims far
	// more of every stream than exists.
	if err := l.step(l.victim, &protocol.AckSharedChanges{LibraryID: l.lib, FromDevice: l.victim, ModelType: "album", UpToHLC: mine}); err != nil {
		t.Fatal(err)
	}
	mine2 := l.putShared("album", uuid.New(), 2)
	lie := l.hlcOf(l.victim, 60_000)
	wms := []protocol.Watermark{
		{DeviceID: l.victim, ModelType: "tag", HLC: lie},
		{DeviceID: l.victim, ModelType: "location", HLC: lie},
		{DeviceID: l.self, ModelType: "album", HLC: l.hlcOf(l.self, 60_000)},
	}
	before := map[string]hlc.HLC{"tag": l.watermark("tag", l.victim), "location": l.watermark("location", l.victim)}
	if err := l.step(l.peer, &protocol.Heartbeat{LibraryID: l.lib, DeviceID: l.peer, Watermarks: wms}); err != nil {
		t.Fatalf("a Heartbeat with lying watermarks was refused: %v", err)
	}
	pending := l.last.Requests
	if err := l.step(l.peer, &protocol.AckSharedChanges{LibraryID: l.lib, FromDevice: l.peer, ModelType: "album", UpToHLC: l.hlcOf(l.self, 60_000)}); err != nil {
		t.Fatalf("a lying AckSharedChanges was refused: %v", err)
	}
	requests := 0
	pending = append(pending, l.last.Requests...)
	for round := 0; round < 10; round++ {
		pending = append(pending, l.tick(time.Second).Requests...)
		for _, r := range pending {
			requests++
			// The liar's engine answers honestly: it holds the streams only
			// as far as this node does.
			var page protocol.Message
			switch r.Message.(type) {
			case *protocol.StateRequest:
				h := l.watermark("location", l.victim)
				page = &protocol.StateResponse{LibraryID: l.lib, ModelType: "location", DeviceID: l.victim, UpTo: h, Complete: h}
			default:
				h := l.watermark("tag", l.victim)
				page = &protocol.SharedChangeResponse{LibraryID: l.lib, ModelType: "tag", DeviceID: l.victim, UpTo: h, Complete: h}
			}
			if err := l.eng.StepResponse(l.now, r.ID, page); err != nil {
				t.Fatalf("the honest page was refused: %v", err)
			}
			l.eng.RequestDone(l.now, r.ID, nil)
			l.flush()
		}
		pending = nil
		if err := l.step(l.victim, &protocol.Heartbeat{LibraryID: l.lib, DeviceID: l.victim}); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, l.last.Requests...)
	}
	for model, h := range before {
		if w := l.watermark(model, l.victim); w != h {
			t.Errorf("the lie moved the watermark of %s/victim from %s to %s", model, h, w)
		}
	}
	if p := l.prunePoint("album", l.self).Log; mine.Less(p) {
		t.Errorf("the log is pruned to %s, past %s which the honest member acknowledged (this node wrote up to %s)", p, mine, mine2)
	}
	if requests == 0 || requests > 2 {
		t.Errorf("the lying watermarks led to %d catch-up requests to the liar in 10 s; want one (or two), not one per retry", requests)
	}
}

// Catch-up responses that break the rules of the exchange are refused: a
// page nobody asked for, of the other strategy, of a stream not requested,
// repeated, of a stream that ended, of another library, or not well formed.
func TestDishonestResponsesRefused(t *testing.T) {
	type step struct {
		page func(l *liar, id uint64) protocol.Message
		code string // "" for a page that must be taken
	}
	page := func(l *liar, model string, from uuid.UUID, offsets ...int64) protocol.Message {
		var up hlc.HLC
		var recs []protocol.StateRecord
		var ens []protocol.SharedChangeEntry
		for _, o := range offsets {
			up = l.hlcOf(from, o)
			recs = append(recs, protocol.StateRecord{RecordUUID: uuid.New(), Data: cborOf(l.t, o), Timestamp: up})
			ens = append(ens, protocol.SharedChangeEntry{HLC: up, ModelType: model, RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: cborOf(l.t, o)})
		}
		if l.eng.Registry().Strategy(model) == engine.Shared {
			return &protocol.SharedChangeResponse{LibraryID: l.lib, ModelType: model, DeviceID: from, Entries: ens, UpTo: up, Complete: up, HasMore: true}
		}
		return &protocol.StateResponse{LibraryID: l.lib, ModelType: model, DeviceID: from, Records: recs, UpTo: up, Complete: up, HasMore: true}
	}
	for _, tc := range []struct {
		name  string
		kind  engine.Strategy
		steps []step
	}{
		{"StateResponse to a SharedChangeRequest", engine.Shared, []step{
			{func(l *liar, id uint64) protocol.Message { return page(l, "location", l.victim, -100) }, "unexpected"},
		}},
		{"SharedChangeResponse to a StateRequest", engine.DeviceOwned, []step{
			{func(l *liar, id uint64) protocol.Message { return page(l, "tag", l.victim, -100) }, "unexpected"},
		}},
		{"a page of a model type not requested", engine.Shared, []step{
			{func(l *liar, id uint64) protocol.Message { return page(l, "album", l.victim, -100) }, "unexpected"},
		}},
		{"a page sent twice", engine.Shared, []step{
			{func(l *liar, id uint64) protocol.Message { return page(l, "tag", l.victim, -100, -90) }, ""},
			{func(l *liar, id uint64) protocol.Message { return page(l, "tag", l.victim, -100, -90) }, "unexpected"},
		}},
		{"a stream resumed after it ended", engine.Shared, []step{
			{func(l *liar, id uint64) protocol.Message { return page(l, "tag", l.victim, -100) }, ""},
			{func(l *liar, id uint64) protocol.Message { return page(l, "tag", l.peer, -80) }, ""},
			{func(l *liar, id uint64) protocol.Message { return page(l, "tag", l.victim, -50) }, "unexpected"},
		}},
		{"a page for another library", engine.Shared, []step{
			{func(l *liar, id uint64) protocol.Message {
				m := page(l, "tag", l.victim, -100).(*protocol.SharedChangeResponse)
				m.LibraryID = uuid.New()
				return m
			}, "unexpected"},
		}},
		{"a page whose entry is another device's", engine.Shared, []step{
			{func(l *liar, id uint64) protocol.Message {
				m := page(l, "tag", l.victim, -100).(*protocol.SharedChangeResponse)
				m.Entries[0].HLC.DeviceID = l.peer
				return m
			}, "invalid"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLiar(t)
			model := map[engine.Strategy]string{engine.Shared: "tag", engine.DeviceOwned: "location"}[tc.kind]
			if err := l.eng.CatchUp(l.now, l.lib, l.peer, tc.kind, model); err != nil {
				t.Fatal(err)
			}
			rd := l.flush()
			if len(rd.Requests) != 1 {
				t.Fatalf("want one request, have %d", len(rd.Requests))
			}
			id := rd.Requests[0].ID
			var before string
			for i, s := range tc.steps {
				before = l.state()
				err := l.eng.StepResponse(l.now, id, s.page(l, id))
				l.flush()
				switch {
				case s.code == "" && err != nil:
					t.Fatalf("page %d was refused with %v; want it taken", i, err)
				case s.code == "":
					continue
				case err == nil:
					t.Fatalf("page %d was taken; want a refusal with code %s", i, s.code)
				case protocol.CodeOf(err).String() != s.code:
					t.Fatalf("page %d was refused with %v (code %s); want code %s", i, err, protocol.CodeOf(err), s.code)
				}
				if after := l.state(); after != before {
					t.Errorf("the refused page changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			}
		})
	}
	t.Run("a response to no request", func(t *testing.T) {
		l := newLiar(t)
		err := l.eng.StepResponse(l.now, 12345, page(l, "tag", l.victim, -100))
		if code := protocol.CodeOf(err).String(); err == nil || code != "unexpected" {
			t.Fatalf("a response to no open request gave %v (code %s); want code unexpected", err, code)
		}
	})
}

// A relay's page of this node's own stream cannot change this node's own
// records: the node is the authority on its own streams.
func TestDishonestPageOfOwnStreamIgnored(t *testing.T) {
	l := newLiar(t)
	id := uuid.New()
	data := cborOf(t, "mine")
	v, err := l.eng.PutOwned(l.now, l.lib, "location", id, data)
	if err != nil {
		t.Fatal(err)
	}
	l.flush()
	if err := l.eng.CatchUp(l.now, l.lib, l.peer, engine.DeviceOwned, "location"); err != nil {
		t.Fatal(err)
	}
	rd := l.flush()
	forged := hlc.HLC{Timestamp: v.Timestamp + 10, DeviceID: l.self}
	page := &protocol.StateResponse{LibraryID: l.lib, ModelType: "location", DeviceID: l.self, UpTo: forged, Complete: forged,
		Records: []protocol.StateRecord{{RecordUUID: id, Timestamp: forged, Deleted: true}}}
	if err := l.eng.StepResponse(l.now, rd.Requests[0].ID, page); err != nil {
		t.Fatalf("refused with %v; want it taken and ignored", err)
	}
	l.flush()
	if r, ok := l.record("location", id); !ok || r.Version != v || r.Deleted {
		t.Errorf("this node's own record is now %+v (present %v), want %s as it wrote it", r, ok, v)
	}
}

// Serve refuses a request from a stranger, for a library not held here, or
// that is no request; a request whose positions lie is served (it only gets
// less).
func TestDishonestRequestsRefused(t *testing.T) {
	l := newLiar(t)
	for _, tc := range []struct {
		name string
		from uuid.UUID
		m    protocol.Message
		code string
	}{
		{"from a stranger", l.stranger, &protocol.SharedChangeRequest{LibraryID: l.lib, Limit: 10}, "not_member"},
		{"for another library", l.peer, &protocol.StateRequest{LibraryID: uuid.New(), Limit: 10}, "unknown_library"},
		{"a Heartbeat", l.peer, &protocol.Heartbeat{LibraryID: l.lib, DeviceID: l.peer}, "unexpected"},
		{"a response", l.peer, &protocol.StateResponse{LibraryID: l.lib}, "unexpected"},
		{"from this node's own device", l.self, &protocol.StateRequest{LibraryID: l.lib, Limit: 10}, "not_member"},
	} {
		_, err := l.eng.Serve(l.now, tc.from, tc.m)
		if code := protocol.CodeOf(err).String(); err == nil || code != tc.code {
			t.Errorf("%s: Serve gave %v (code %s); want code %s", tc.name, err, code, tc.code)
		}
	}
	lying := &protocol.SharedChangeRequest{LibraryID: l.lib, Limit: 10, Watermarks: []protocol.Watermark{{DeviceID: l.victim, ModelType: "tag", HLC: l.hlcOf(l.victim, 60_000)}}}
	r, err := l.eng.Serve(l.now, l.peer, lying)
	if err != nil {
		t.Fatalf("a request with lying positions was refused: %v", err)
	}
	var sent []string
	for {
		m, err := r.Next()
		if err != nil {
			break
		}
		if p, ok := m.(*protocol.SharedChangeResponse); ok {
			for _, e := range p.Entries {
				sent = append(sent, e.HLC.String())
			}
		}
	}
	sort.Strings(sent)
	for _, h := range sent {
		if h == l.tag.Version.String() {
			t.Errorf("the victim's change %s, below the position the request claimed, was sent", h)
		}
	}
}
