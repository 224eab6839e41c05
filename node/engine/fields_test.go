package engine_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// fieldsRegistry declares a shared-fields type "note" beside a record-level
// shared type "tag".
func fieldsRegistry(t *testing.T) *engine.Registry {
	t.Helper()
	r, err := engine.NewRegistry(
		engine.ModelType{Name: "device", Strategy: engine.Shared},
		engine.ModelType{Name: "tag", Strategy: engine.Shared},
		engine.ModelType{Name: "note", Strategy: engine.SharedFields},
	)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fieldsPair returns two engines of devices a and b, members of one library
// with a shared-fields type, not connected.
func fieldsPair(t *testing.T) (*harness, *harness) {
	t.Helper()
	hs := fieldsGroup(t, uuid.New(), uuid.New())
	return hs[0], hs[1]
}

func (h *harness) patch(model string, id uuid.UUID, v map[string]any) {
	h.t.Helper()
	p := make(map[string]cbor.RawMessage)
	for k, x := range v {
		if x == nil {
			p[k] = protocol.Undefined
			continue
		}
		p[k] = cborOf(h.t, x)
	}
	data, err := protocol.EncodeFieldPatch(p)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.eng.PatchShared(h.now, h.lib, model, id, data); err != nil {
		h.t.Fatalf("PatchShared: %v", err)
	}
	h.flush()
}

// shows returns what an app sees of a shared-fields record (nil: deleted or
// absent).
func (h *harness) shows(model string, id uuid.UUID) map[string]any {
	h.t.Helper()
	rec, ok := h.record(model, id)
	if !ok || rec.Deleted {
		return nil
	}
	data, _, err := engine.VisibleFields(rec)
	if err != nil {
		h.t.Fatal(err)
	}
	var m map[string]any
	if err := cbor.Unmarshal(data, &m); err != nil {
		h.t.Fatal(err)
	}
	return m
}

// TestFieldsConcurrentEditsBothSurvive: two devices edit different fields of
// one record at the same time; after the changes cross, both show both
// edits, and the same bytes.
func TestFieldsConcurrentEditsBothSurvive(t *testing.T) {
	a, b := fieldsPair(t)
	id := uuid.New()
	a.putFields("note", id, map[string]any{"title": "t0", "colour": "red", "size": 1})
	if err := b.step(a.self, sharedChangeOf(t, a)); err != nil {
		t.Fatal(err)
	}
	a.now = a.now.Add(time.Millisecond)
	b.now = b.now.Add(time.Millisecond)
	a.patch("note", id, map[string]any{"title": "renamed"})
	ca := sharedChangeOf(t, a)
	b.patch("note", id, map[string]any{"colour": "blue", "size": nil})
	cb := sharedChangeOf(t, b)
	if err := b.step(a.self, ca); err != nil {
		t.Fatal(err)
	}
	if err := a.step(b.self, cb); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"title": "renamed", "colour": "blue"}
	for _, h := range []*harness{a, b} {
		if got := h.shows("note", id); !reflect.DeepEqual(got, want) {
			t.Errorf("device %s shows %v, want %v", h.self, got, want)
		}
	}
	ra, _ := a.record("note", id)
	rb, _ := b.record("note", id)
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("stored records differ:\n a %+v\n b %+v", ra, rb)
	}
	// The event names the fields that changed.
	evs := a.last.Events
	if len(evs) != 1 || !reflect.DeepEqual(evs[0].Fields, []string{"colour", "size"}) {
		t.Errorf("a's event after b's patch: %+v, want fields [colour size]", evs)
	}
}

// TestFieldsDeleteThenLaterWrite: a delete removes every field written at or
// below it; a concurrent later write brings the record back with only the
// fields written after the delete.
func TestFieldsDeleteThenLaterWrite(t *testing.T) {
	a, b := fieldsPair(t)
	id := uuid.New()
	a.putFields("note", id, map[string]any{"title": "t0", "colour": "red"})
	if err := b.step(a.self, sharedChangeOf(t, a)); err != nil {
		t.Fatal(err)
	}
	a.now = a.now.Add(time.Millisecond)
	if _, err := a.eng.DeleteShared(a.now, a.lib, "note", id); err != nil {
		t.Fatal(err)
	}
	a.flush()
	del := sharedChangeOf(t, a)
	b.now = b.now.Add(2 * time.Millisecond)
	b.patch("note", id, map[string]any{"colour": "green"})
	cb := sharedChangeOf(t, b)
	if err := b.step(a.self, del); err != nil {
		t.Fatal(err)
	}
	if err := a.step(b.self, cb); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"colour": "green"}
	for _, h := range []*harness{a, b} {
		if got := h.shows("note", id); !reflect.DeepEqual(got, want) {
			t.Errorf("device %s shows %v, want %v", h.self, got, want)
		}
	}
}

// TestFieldsPutReplaces: PutShared of a shared-fields record writes the
// whole record: fields it lacks are removed by the change it sends.
func TestFieldsPutReplaces(t *testing.T) {
	a, _ := fieldsPair(t)
	id := uuid.New()
	a.putFields("note", id, map[string]any{"title": "t0", "colour": "red"})
	a.now = a.now.Add(time.Millisecond)
	a.putFields("note", id, map[string]any{"title": "t1"})
	if got, want := a.shows("note", id), map[string]any{"title": "t1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("shows %v, want %v", got, want)
	}
}

// TestFieldsWrongStrategy: a partial update of a record-level shared type is
// refused, and a shared-fields payload must be a map.
func TestFieldsWrongStrategy(t *testing.T) {
	a, _ := fieldsPair(t)
	if _, err := a.eng.PatchShared(a.now, a.lib, "tag", uuid.New(), cborOf(t, map[string]any{"x": 1})); !errors.Is(err, engine.ErrWrongStrategy) {
		t.Errorf("PatchShared of a shared type: %v, want ErrWrongStrategy", err)
	}
	if _, err := a.eng.PutShared(a.now, a.lib, "note", uuid.New(), cborOf(t, []int{1})); !errors.Is(err, engine.ErrInvalidWrite) {
		t.Errorf("PutShared of an array to a shared-fields type: %v, want ErrInvalidWrite", err)
	}
}

// TestFieldsLiveStateRefused: a live change of a shared-fields type must
// carry a patch, not a field state.
func TestFieldsLiveStateRefused(t *testing.T) {
	a, b := fieldsPair(t)
	a.connect(b.self)
	st, err := protocol.EncodeFieldState(protocol.FieldState{})
	if err != nil {
		t.Fatal(err)
	}
	m := &protocol.SharedChange{LibraryID: a.lib, HLC: protocol.HLC{Timestamp: uint64(a.now.UnixMilli()), DeviceID: b.self},
		ModelType: "note", RecordUUID: uuid.New(), ChangeType: protocol.Update, Data: st}
	if err := a.step(b.self, m); !errors.Is(err, protocol.ErrInvalid) {
		t.Errorf("live field state: %v, want ErrInvalid", err)
	}
}

func (h *harness) putFields(model string, id uuid.UUID, v map[string]any) {
	h.t.Helper()
	if _, err := h.eng.PutShared(h.now, h.lib, model, id, cborOf(h.t, v)); err != nil {
		h.t.Fatalf("PutShared: %v", err)
	}
	h.flush()
}

// sharedChangeOf returns the SharedChange of h's last local write, as its
// log holds it (the engines are not connected, so nothing was pushed).
func sharedChangeOf(t *testing.T, h *harness) *protocol.SharedChange {
	t.Helper()
	var last *store.LogEntry
	for _, le := range h.last.Batch.AppendLog {
		le := le
		last = &le
	}
	if last == nil {
		t.Fatal("no log entry in the last Ready")
	}
	return &protocol.SharedChange{LibraryID: h.lib, HLC: last.HLC, ModelType: last.ModelType, RecordUUID: last.RecordID,
		ChangeType: protocol.ChangeType(last.ChangeType), Data: last.Data, Prev: optPtr(last.Prev)}
}

func optPtr(h protocol.HLC) *protocol.HLC {
	if h.IsZero() {
		return nil
	}
	return &h
}

// TestFieldsTombstonesPurgedAtStablePoint: a removed field and a record
// delete stay in the merge state until every member holds them (the stable
// point, the rule that purges record tombstones), then go.
func TestFieldsTombstonesPurgedAtStablePoint(t *testing.T) {
	a, b := fieldsPair(t)
	id := uuid.New()
	a.putFields("note", id, map[string]any{"title": "t0", "colour": "red"})
	a.now = a.now.Add(time.Millisecond)
	a.patch("note", id, map[string]any{"colour": nil})
	removal := sharedChangeOf(t, a).HLC
	state := func() protocol.FieldState {
		rec, ok := a.record("note", id)
		if !ok || rec.Deleted {
			t.Fatal("record missing")
		}
		st, err := protocol.DecodeFieldState(rec.Data, rec.Version)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if _, ok := state().Fields["colour"]; !ok {
		t.Fatal("the removed field's tombstone is not kept")
	}
	// b has not acknowledged the removal: prunes keep it.
	if err := a.eng.Connected(a.now, a.lib, b.self); err != nil {
		t.Fatal(err)
	}
	a.flush()
	bClock := protocol.HLC{Timestamp: uint64(a.now.UnixMilli()) + 10, DeviceID: b.self}
	hello := &protocol.Hello{LibraryID: a.lib, DeviceID: b.self, Versions: []uint32{protocol.Version}, Clock: bClock,
		Watermarks: []protocol.Watermark{{DeviceID: b.self, ModelType: "note"}}}
	if err := a.step(b.self, hello); err != nil {
		t.Fatal(err)
	}
	a.tick(2 * time.Second)
	if _, ok := state().Fields["colour"]; !ok {
		t.Fatal("the removed field's tombstone was purged before every member held it")
	}
	// b acknowledges a's stream past the removal: the next prune drops it.
	if err := a.step(b.self, &protocol.Heartbeat{LibraryID: a.lib, DeviceID: b.self, Clock: bClock,
		Watermarks: []protocol.Watermark{{DeviceID: b.self, ModelType: "note"}, {DeviceID: a.self, ModelType: "note", HLC: removal}}}); err != nil {
		t.Fatal(err)
	}
	a.tick(2 * time.Second)
	st := state()
	if _, ok := st.Fields["colour"]; ok {
		t.Fatalf("the removed field's tombstone is kept past the stable point: %+v", st)
	}
	if got, want := a.shows("note", id), map[string]any{"title": "t0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the purge the record shows %v, want %v", got, want)
	}
}

// fieldsTrio returns three engines, members of one library with a
// shared-fields type, not connected.
func fieldsTrio(t *testing.T) (*harness, *harness, *harness) {
	t.Helper()
	hs := fieldsGroup(t, uuid.New(), uuid.New(), uuid.New())
	return hs[0], hs[1], hs[2]
}

// pruneLog makes h prune its log of origin's notes up to upTo, as if every
// member had acknowledged it.
func pruneLog(t *testing.T, h *harness, origin uuid.UUID, upTo hlc.HLC) {
	t.Helper()
	s := store.Stream{Library: h.lib, ModelType: "note", Origin: origin}
	if err := h.st.Apply(&store.Batch{SetPrunePoints: []store.PrunePoint{{Stream: s, Log: upTo}}, PruneLog: []store.Mark{{Stream: s, HLC: upTo}}}); err != nil {
		t.Fatal(err)
	}
}

// serveCatchUp has from serve to's last catch-up request and to apply its
// pages: all of them, or only the first pages (then the response ends with
// an error, as a reset stream does). It returns the pages applied.
func serveCatchUp(t *testing.T, from, to *harness, pages int) []protocol.Message {
	t.Helper()
	req := lastRequest(t, to)
	resp, err := from.eng.Serve(from.now, to.self, req.Message)
	if err != nil {
		t.Fatal(err)
	}
	var applied []protocol.Message
	for pages == 0 || len(applied) < pages {
		m, err := resp.Next()
		if err != nil {
			break
		}
		if err := to.eng.StepResponse(to.now, req.ID, m); err != nil {
			t.Fatalf("applying %s: %v", m.Name(), err)
		}
		to.flush()
		applied = append(applied, m)
	}
	var done error
	if pages != 0 {
		done = errors.New("stream reset")
	}
	to.eng.RequestDone(to.now, req.ID, done)
	to.flush()
	return applied
}

// notePages returns the snapshot flag of each page of notes, and the order
// of the streams they served.
func notePages(pages []protocol.Message) (snapshot []bool, origins []uuid.UUID) {
	for _, m := range pages {
		if r, ok := m.(*protocol.SharedChangeResponse); ok && r.ModelType == "note" {
			snapshot = append(snapshot, r.Snapshot)
			origins = append(origins, r.DeviceID)
		}
	}
	return snapshot, origins
}

// TestFieldsSnapshotCarriesOtherStreams: a record listed in a snapshot
// page under the stream of its latest write carries the writes of other
// streams too. b holds a's write of a note but missed c's earlier write of
// another field, which a's log no longer holds (pruned): b's catch-up from a
// is served as a snapshot, and b ends with both fields, although the entry
// that carries c's field is at or below b's watermark of a's stream.
func TestFieldsSnapshotCarriesOtherStreams(t *testing.T) {
	a, b, c := fieldsTrio(t)
	id := uuid.New()
	c.patch("note", id, map[string]any{"x": "from c"})
	cc := sharedChangeOf(t, c)
	if err := a.step(c.self, cc); err != nil {
		t.Fatal(err)
	}
	a.now = a.now.Add(time.Millisecond)
	b.now = a.now
	a.patch("note", id, map[string]any{"y": "from a"})
	ca := sharedChangeOf(t, a)
	if err := b.step(a.self, ca); err != nil {
		t.Fatal(err)
	}
	// a prunes its log of c's stream past c's write.
	pruneLog(t, a, c.self, cc.HLC)
	b.connect(a.self,
		protocol.Watermark{DeviceID: c.self, ModelType: "note", HLC: cc.HLC},
		protocol.Watermark{DeviceID: a.self, ModelType: "note", HLC: ca.HLC})
	if snap, _ := notePages(serveCatchUp(t, a, b, 0)); !slices.Contains(snap, true) {
		t.Fatal("a served no snapshot page")
	}
	if got, want := b.shows("note", id), map[string]any{"x": "from c", "y": "from a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the snapshot b shows %v, want %v", got, want)
	}
}

// TestFieldsSnapshotCutOffMovesNoWatermark: a snapshot page of one stream
// of a shared-fields type does not list the records last written in other
// streams, whose states carry its writes (PROTOCOL.md §11.4). b, which holds
// no note, is served the type as a snapshot by a (a pruned c's stream), and
// the response is cut off after its first page: b keeps what it merged but
// moves no watermark of the type, so that its next catch-up asks for the
// whole type again. Served to the end, the same response sets both.
func TestFieldsSnapshotCutOffMovesNoWatermark(t *testing.T) {
	a, b, c := fieldsTrio(t)
	id := uuid.New()
	c.patch("note", id, map[string]any{"x": "from c"})
	cc := sharedChangeOf(t, c)
	if err := a.step(c.self, cc); err != nil {
		t.Fatal(err)
	}
	a.now = a.now.Add(time.Millisecond)
	b.now = a.now
	a.patch("note", id, map[string]any{"y": "from a"})
	ca := sharedChangeOf(t, a)
	cs := store.Stream{Library: a.lib, ModelType: "note", Origin: c.self}
	as := store.Stream{Library: a.lib, ModelType: "note", Origin: a.self}
	pruneLog(t, a, c.self, cc.HLC)
	wms := func() (hlc.HLC, hlc.HLC) {
		t.Helper()
		wa, err := b.st.Watermark(as)
		if err != nil {
			t.Fatal(err)
		}
		wc, err := b.st.Watermark(cs)
		if err != nil {
			t.Fatal(err)
		}
		return wa, wc
	}
	catchUp := func(pages int) int {
		t.Helper()
		applied := serveCatchUp(t, a, b, pages)
		if snap, origins := notePages(applied); slices.Contains(snap, false) {
			t.Fatalf("a served the note streams %v with snapshot flags %v, want the whole type as a snapshot", origins, snap)
		}
		return len(applied)
	}

	b.connect(a.self,
		protocol.Watermark{DeviceID: c.self, ModelType: "note", HLC: cc.HLC},
		protocol.Watermark{DeviceID: a.self, ModelType: "note", HLC: ca.HLC})
	catchUp(1)
	if wa, wc := wms(); !wa.IsZero() || !wc.IsZero() {
		t.Fatalf("after a response cut off after its first page, b's watermarks of the note streams are %s (a) and %s (c), want both zero", wa, wc)
	}

	b.tick(time.Minute)
	a.now = b.now
	if n := catchUp(0); n < 2 {
		t.Fatalf("a's second response had %d pages, want one per note stream", n)
	}
	if wa, wc := wms(); wa != ca.HLC || wc != cc.HLC {
		t.Fatalf("after the whole response, b's watermarks are %s (a) and %s (c), want %s and %s", wa, wc, ca.HLC, cc.HLC)
	}
	if got, want := b.shows("note", id), map[string]any{"x": "from c", "y": "from a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the snapshot b shows %v, want %v", got, want)
	}
}

// TestFieldsStateFitsAPayload: each patch fits a payload, but a write whose
// record state would not (so that no snapshot page could carry it) is
// refused, and the record keeps what it showed.
func TestFieldsStateFitsAPayload(t *testing.T) {
	a, _ := fieldsPair(t)
	id := uuid.New()
	big := strings.Repeat("x", engine.MaxPayloadSize*6/10)
	a.patch("note", id, map[string]any{"one": big})
	data, err := protocol.EncodeFieldPatch(map[string]cbor.RawMessage{"two": cborOf(t, big)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.eng.PatchShared(a.now, a.lib, "note", id, data); !errors.Is(err, engine.ErrInvalidWrite) {
		t.Fatalf("a patch that makes the record's state %d bytes: %v, want ErrInvalidWrite", 2*len(big), err)
	}
	a.flush()
	if got := a.shows("note", id); len(got) != 1 || got["one"] != big {
		t.Fatalf("after the refused patch the note shows %d fields, want only \"one\"", len(got))
	}
}

// fieldsGroup returns engines of the given devices, members of one library
// with a shared-fields type, not connected. Fixed IDs fix the order in which
// a responder serves their streams (by origin).
func fieldsGroup(t *testing.T, ids ...uuid.UUID) []*harness {
	t.Helper()
	lib := uuid.New()
	var members []store.Member
	for _, id := range ids {
		members = append(members, store.Member{DeviceID: id})
	}
	var hs []*harness
	for _, self := range ids {
		cfg := fastConfig(self)
		cfg.Registry = fieldsRegistry(t)
		h := &harness{t: t, cfg: cfg, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), self: self, lib: lib, st: store.NewMem()}
		h.start()
		if err := h.eng.AddLibrary(h.now, store.Library{ID: lib, Name: "test"}, members); err != nil {
			t.Fatal(err)
		}
		h.flush()
		hs = append(hs, h)
	}
	return hs
}

// lastRequest returns the catch-up request of h's last Ready.
func lastRequest(t *testing.T, h *harness) *engine.Request {
	t.Helper()
	var req *engine.Request
	for i := range h.last.Requests {
		req = &h.last.Requests[i]
	}
	if req == nil {
		t.Fatal("no catch-up request")
	}
	return req
}

// TestFieldsSnapshotMixedMovesNoWatermark: a response that serves one
// stream of a shared-fields type as log pages (the responder pruned between
// pages, say) and another as a snapshot sets the log stream's watermark but
// not the snapshot's: the records listed under the log stream do not carry
// the snapshot stream's writes (PROTOCOL.md §11.4).
func TestFieldsSnapshotMixedMovesNoWatermark(t *testing.T) {
	hs := fieldsGroup(t, uuid.MustParse("02000000-0000-4000-8000-000000000000"), uuid.MustParse("03000000-0000-4000-8000-000000000000"),
		uuid.MustParse("01000000-0000-4000-8000-000000000000"))
	a, b, c := hs[0], hs[1], hs[2]
	a.patch("note", uuid.New(), map[string]any{"y": "from a"})
	ca := sharedChangeOf(t, a)
	hc := hlc.HLC{Timestamp: uint64(b.now.UnixMilli()), DeviceID: c.self}
	b.connect(a.self,
		protocol.Watermark{DeviceID: c.self, ModelType: "note", HLC: hc},
		protocol.Watermark{DeviceID: a.self, ModelType: "note", HLC: ca.HLC})
	req := lastRequest(t, b)
	pages := []*protocol.SharedChangeResponse{
		{LibraryID: b.lib, DeviceID: a.self, ModelType: "note", UpTo: ca.HLC, Complete: ca.HLC, HasMore: true,
			Entries: []protocol.SharedChangeEntry{{HLC: ca.HLC, ModelType: "note", RecordUUID: ca.RecordUUID, ChangeType: ca.ChangeType, Data: ca.Data}}},
		{LibraryID: b.lib, DeviceID: c.self, ModelType: "note", UpTo: hc, Complete: hc, Snapshot: true},
	}
	for _, m := range pages {
		if err := b.eng.StepResponse(b.now, req.ID, m); err != nil {
			t.Fatalf("b applying the page of %s: %v", m.DeviceID, err)
		}
		b.flush()
	}
	b.eng.RequestDone(b.now, req.ID, nil)
	b.flush()
	wa, err := b.st.Watermark(store.Stream{Library: b.lib, ModelType: "note", Origin: a.self})
	if err != nil {
		t.Fatal(err)
	}
	wc, err := b.st.Watermark(store.Stream{Library: b.lib, ModelType: "note", Origin: c.self})
	if err != nil {
		t.Fatal(err)
	}
	if wa != ca.HLC || !wc.IsZero() {
		t.Fatalf("b's watermarks: %s (a, log page) and %s (c, snapshot page); want %s and zero", wa, wc, ca.HLC)
	}
}

// TestFieldsUnlistedLiveRecordKept: a snapshot page does not drop a live
// shared-fields record it leaves out, whose state may hold writes the
// responder lacks (PROTOCOL.md §11.4). b holds a note with d's field z and
// c's field x (listed under c's stream at b); a holds it with x and its own
// later y (listed under a's stream at a) but never got z, and pruned c's
// stream past b. a's snapshot of c's stream, served first, leaves the note
// out; b must keep it, and ends with all three fields.
func TestFieldsUnlistedLiveRecordKept(t *testing.T) {
	hs := fieldsGroup(t, uuid.MustParse("02000000-0000-4000-8000-000000000000"), uuid.MustParse("03000000-0000-4000-8000-000000000000"),
		uuid.MustParse("01000000-0000-4000-8000-000000000000"), uuid.MustParse("04000000-0000-4000-8000-000000000000"))
	a, b, c, d := hs[0], hs[1], hs[2], hs[3]
	id, other := uuid.New(), uuid.New()
	later := func() {
		for _, h := range hs {
			h.now = h.now.Add(time.Millisecond)
		}
	}
	d.patch("note", id, map[string]any{"z": "from d"})
	if err := b.step(d.self, sharedChangeOf(t, d)); err != nil {
		t.Fatal(err)
	}
	later()
	c.patch("note", id, map[string]any{"x": "from c"})
	cc1 := sharedChangeOf(t, c)
	for _, h := range []*harness{a, b} {
		if err := h.step(c.self, cc1); err != nil {
			t.Fatal(err)
		}
	}
	later()
	c.patch("note", other, map[string]any{"w": "from c"})
	cc2 := sharedChangeOf(t, c)
	if err := a.step(c.self, cc2); err != nil {
		t.Fatal(err)
	}
	later()
	a.patch("note", id, map[string]any{"y": "from a"})
	ca := sharedChangeOf(t, a)
	pruneLog(t, a, c.self, cc2.HLC)
	b.connect(a.self,
		protocol.Watermark{DeviceID: c.self, ModelType: "note", HLC: cc2.HLC},
		protocol.Watermark{DeviceID: a.self, ModelType: "note", HLC: ca.HLC})
	_, order := notePages(serveCatchUp(t, a, b, 0))
	if len(order) < 2 || order[0] != c.self {
		t.Fatalf("a served the note streams in the order %v; the test needs c's first", order)
	}
	if got, want := b.shows("note", id), map[string]any{"x": "from c", "y": "from a", "z": "from d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the snapshot b shows %v, want %v", got, want)
	}
}
