package sim

import (
	"bytes"
	"errors"
	"sort"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// A byzantine member runs an honest engine and, besides, sends forged
// messages. Each forgery has the outcome the engine owes it: refused with a
// given error code (the node then resets the session, except for an unknown
// model type), or taken without effect (a take-over of a record the sender
// does not own), or taken as a claim that can only harm the liar (lying
// watermarks and acknowledgements, which the oracle does not trust).

// forgery is one kind of forged message.
type forgery struct {
	name string
	// code is the error code the receiver must refuse it with; "" means it
	// must take it (and the check, if any, must hold afterwards).
	code string
	// make builds it for byzantine b and honest receiver dst, from device
	// from (b.id unless the forgery comes from a stranger). ok false: this
	// kind cannot be built now.
	make func(s *Sim, b, dst *node) (from uuid.UUID, m protocol.Message, check func() string, ok bool)
}

var forgeries = []forgery{
	{"SharedChange as another origin", "ownership", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), Counter: 0xfffffff0, DeviceID: v.id}
		return b.id, &protocol.SharedChange{LibraryID: s.lib.ID, HLC: h, ModelType: "tag", RecordUUID: s.shared[0],
			ChangeType: protocol.Update, Data: forgedData()}, nil, true
	}},
	{"SharedChangeBatch as another origin", "ownership", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), Counter: 0xfffffff0, DeviceID: v.id}
		h2 := h
		h2.Counter++
		return b.id, &protocol.SharedChangeBatch{LibraryID: s.lib.ID, Entries: []protocol.SharedChangeEntry{
			{HLC: h, ModelType: "album", RecordUUID: s.shared[1], ChangeType: protocol.Update, Data: forgedData()},
			{HLC: h2, ModelType: "album", RecordUUID: s.shared[2], ChangeType: protocol.Delete, Prev: &h},
		}}, nil, true
	}},
	{"StateChange as another owner", "ownership", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), Counter: 0xfffffff0, DeviceID: v.id}
		return b.id, &protocol.StateChange{LibraryID: s.lib.ID, ModelType: "location", RecordUUID: s.uuid(), DeviceID: v.id,
			Data: forgedData(), Timestamp: h}, nil, true
	}},
	{"StateBatch as another owner", "ownership", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), Counter: 0xfffffff0, DeviceID: v.id}
		h2 := h
		h2.Counter++
		return b.id, &protocol.StateBatch{LibraryID: s.lib.ID, ModelType: "entry", DeviceID: v.id, Records: []protocol.StateRecord{
			{RecordUUID: s.uuid(), Data: forgedData(), Timestamp: h}, {RecordUUID: s.uuid(), Data: forgedData(), Timestamp: h2},
		}}, nil, true
	}},
	{"StateChange taking over a record", "", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		rec, ok := s.takeable(b, dst)
		if !ok {
			return uuid.Nil, nil, nil, false
		}
		t, p := s.takeOverHLCs(b, dst, rec)
		return b.id, &protocol.StateChange{LibraryID: s.lib.ID, ModelType: rec.ModelType, RecordUUID: rec.ID, DeviceID: b.id,
			Data: forgedData(), Timestamp: t, Prev: &p}, s.unchanged(dst, rec), true
	}},
	{"StateBatch taking over a record", "", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		rec, ok := s.takeable(b, dst)
		if !ok {
			return uuid.Nil, nil, nil, false
		}
		t, p := s.takeOverHLCs(b, dst, rec)
		return b.id, &protocol.StateBatch{LibraryID: s.lib.ID, ModelType: rec.ModelType, DeviceID: b.id, Prev: &p,
			Records: []protocol.StateRecord{{RecordUUID: rec.ID, Timestamp: t, Deleted: true}}}, s.unchanged(dst, rec), true
	}},
	{"Hello as another device", "ownership", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		return b.id, &protocol.Hello{LibraryID: s.lib.ID, DeviceID: v.id, Versions: []uint32{protocol.Version}}, nil, true
	}},
	{"Heartbeat as another device", "ownership", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		return b.id, &protocol.Heartbeat{LibraryID: s.lib.ID, DeviceID: v.id, Watermarks: s.liedWatermarks(b, dst)}, nil, true
	}},
	{"AckSharedChanges as another device", "ownership", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		return b.id, &protocol.AckSharedChanges{LibraryID: s.lib.ID, FromDevice: v.id, ModelType: "tag",
			UpToHLC: hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), DeviceID: v.id}}, nil, true
	}},
	{"Heartbeat with lying watermarks", "", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		wms := s.liedWatermarks(b, dst)
		if wms == nil {
			return uuid.Nil, nil, nil, false
		}
		clock := b.eng.Clock()
		clock.DeviceID = b.id
		return b.id, &protocol.Heartbeat{LibraryID: s.lib.ID, DeviceID: b.id, Clock: clock, Watermarks: wms}, nil, true
	}},
	{"AckSharedChanges lying", "", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		v := s.victim(b, dst)
		return b.id, &protocol.AckSharedChanges{LibraryID: s.lib.ID, FromDevice: b.id, ModelType: models.shared[s.rng.Intn(2)],
			UpToHLC: hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()) + uint64(s.rng.Intn(60000)), DeviceID: v.id}}, nil, true
	}},
	{"StateRequest on the session stream", "unexpected", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		return b.id, &protocol.StateRequest{LibraryID: s.lib.ID, Limit: 7}, nil, true
	}},
	{"SharedChangeResponse on the session stream", "unexpected", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), DeviceID: b.id}
		return b.id, &protocol.SharedChangeResponse{LibraryID: s.lib.ID, DeviceID: b.id, ModelType: "tag", UpTo: h, Complete: h}, nil, true
	}},
	{"SharedChange of a device-owned type", "unknown_model_type", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), Counter: 0xfffffff0, DeviceID: b.id}
		return b.id, &protocol.SharedChange{LibraryID: s.lib.ID, HLC: h, ModelType: "location", RecordUUID: s.uuid(),
			ChangeType: protocol.Insert, Data: forgedData()}, nil, true
	}},
	{"Heartbeat from a stranger", "not_member", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		stranger := s.stranger()
		return stranger, &protocol.Heartbeat{LibraryID: s.lib.ID, DeviceID: stranger}, nil, true
	}},
	{"SharedChange from a stranger", "not_member", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		stranger := s.stranger()
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), DeviceID: stranger}
		return stranger, &protocol.SharedChange{LibraryID: s.lib.ID, HLC: h, ModelType: "tag", RecordUUID: s.shared[3],
			ChangeType: protocol.Update, Data: forgedData()}, nil, true
	}},
	{"Heartbeat for another library", "unknown_library", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		return b.id, &protocol.Heartbeat{LibraryID: s.uuid(), DeviceID: b.id}, nil, true
	}},
	{"Error", "", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		return b.id, protocol.NewError(s.lib.ID, protocol.ErrInternal), nil, true
	}},
}

// fieldForgeries are sent besides forgeries in runs with the shared-fields
// workload: live changes of a note whose data is no field patch.
var fieldForgeries = []forgery{
	{"SharedChange of a shared-fields type carrying a field state", "invalid", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		state, _ := cbor.Marshal([]any{nil, []any{}, map[string]any{}})
		return b.id, s.forgedNote(b, state), nil, true
	}},
	{"SharedChange of a shared-fields type setting a field to null", "invalid", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		patch, _ := cbor.Marshal(map[string]any{fieldNames[0]: nil})
		return b.id, s.forgedNote(b, patch), nil, true
	}},
	{"SharedChange of a shared-fields type that is no map", "invalid", func(s *Sim, b, dst *node) (uuid.UUID, protocol.Message, func() string, bool) {
		return b.id, s.forgedNote(b, forgedData()), nil, true
	}},
}

// forgedNote is a live change of a hot note in b's own name with data.
func (s *Sim) forgedNote(b *node, data cbor.RawMessage) *protocol.SharedChange {
	h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), Counter: 0xfffffff0, DeviceID: b.id}
	return &protocol.SharedChange{LibraryID: s.lib.ID, HLC: h, ModelType: models.fields[0], RecordUUID: s.shared[0],
		ChangeType: protocol.Update, Data: data}
}

// forgeriesOf returns the forgeries of a run.
func (s *Sim) forgeriesOf() []forgery {
	if !s.cfg.Fields {
		return forgeries
	}
	return append(append([]forgery{}, forgeries...), fieldForgeries...)
}

// Forgeries lists the forged messages a byzantine member sends in every run
// (fields false), or only in runs with the shared-fields workload (fields
// true), with the refusal code each must get ("" for one that must be taken).
func Forgeries(fields bool) map[string]string {
	if fields {
		out := make(map[string]string, len(fieldForgeries))
		for _, f := range fieldForgeries {
			out[f.name] = f.code
		}
		return out
	}
	out := make(map[string]string, len(forgeries)+1)
	for _, f := range forgeries {
		out[f.name] = f.code
	}
	out["SharedChangeRequest from a stranger"] = "not_member"
	return out
}

func forgedData() cbor.RawMessage {
	b, _ := cbor.Marshal("forged")
	return b
}

// victim picks an honest member other than b and dst whose name b forges
// (dst itself when there is no third).
func (s *Sim) victim(b, dst *node) *node {
	var cands []*node
	for _, n := range s.nodes {
		if n != b && n != dst && s.isMember(n.idx) {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return dst
	}
	return cands[s.rng.Intn(len(cands))]
}

// stranger returns a device that is no member: a removed node, or a new ID.
func (s *Sim) stranger() uuid.UUID {
	for i := range s.nodes {
		if s.removed[i] {
			return s.nodes[i].id
		}
	}
	return s.uuid()
}

// takeable picks a device-owned record that dst holds at the version of
// its owner, another device than b: b may try to take it over.
func (s *Sim) takeable(b, dst *node) (store.Record, bool) {
	ids := make([]uuid.UUID, 0, len(s.ownerOf))
	for id, owner := range s.ownerOf {
		if owner != b.idx {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids[:min(len(ids), 12)] {
		for _, model := range models.owned {
			r, err := dst.st.Record(store.RecordKey{Library: s.lib.ID, ModelType: model, ID: id})
			if err == nil && r.Version.DeviceID == s.nodes[s.ownerOf[id]].id {
				return r, true
			}
		}
	}
	return store.Record{}, false
}

// takeOverHLCs returns the version and prev link of b's forged write of rec:
// newer than rec (so that only the ownership rule stops it), with a prev
// beyond what dst holds of b's stream (so that, refused or not, it cannot
// move dst's watermark past a write of b), and a counter b never issues.
func (s *Sim) takeOverHLCs(b, dst *node, rec store.Record) (t, p hlc.HLC) {
	wm, _ := dst.st.Watermark(store.Stream{Library: s.lib.ID, ModelType: rec.ModelType, Origin: b.id})
	ts := max(wm.Timestamp, rec.Version.Timestamp) + 1
	return hlc.HLC{Timestamp: ts, Counter: 0xfffffff0, DeviceID: b.id}, hlc.HLC{Timestamp: ts, Counter: 0xffffffe0, DeviceID: b.id}
}

// unchanged returns a check that dst still holds rec as it was.
func (s *Sim) unchanged(dst *node, rec store.Record) func() string {
	return func() string {
		r, err := dst.st.Record(store.RecordKey{Library: rec.Library, ModelType: rec.ModelType, ID: rec.ID})
		if err != nil || r.Version != rec.Version || r.Deleted != rec.Deleted || !bytes.Equal(r.Data, rec.Data) {
			return "the record " + rec.ModelType + "/" + rec.ID.String() + " changed under a take-over (invariant 6)"
		}
		return ""
	}
}

// liedWatermarks returns b's watermarks with those of other origins' streams
// raised by up to a second (nil if it holds none).
func (s *Sim) liedWatermarks(b, dst *node) []protocol.Watermark {
	marks, err := b.st.Watermarks(s.lib.ID)
	if err != nil {
		s.fail("n%d watermarks: %v", b.idx, err)
		return nil
	}
	var out []protocol.Watermark
	lied := false
	for _, m := range marks {
		h := m.HLC
		if m.Origin != b.id && s.rng.Intn(2) == 0 {
			h.Timestamp += 1 + uint64(s.rng.Intn(1000))
			lied = true
		}
		out = append(out, protocol.Watermark{DeviceID: m.Origin, ModelType: m.ModelType, HLC: h})
	}
	if !lied {
		return nil
	}
	return out
}

// forge sends one forged message from byzantine node b to a node it has a
// session with, and checks that the receiver does what it owes.
func (s *Sim) forge(b *node) {
	if !b.up {
		return
	}
	var dsts []*node
	for j, n := range s.nodes {
		if s.link[b.idx][j] != 0 && n.up {
			dsts = append(dsts, n)
		}
	}
	if len(dsts) == 0 {
		return
	}
	dst := dsts[s.rng.Intn(len(dsts))]
	list := s.forgeriesOf()
	if s.rng.Intn(len(list)+1) == 0 {
		s.forgeRequest(b, dst)
		return
	}
	f := list[s.rng.Intn(len(list))]
	from, m, check, ok := f.make(s, b, dst)
	if !ok {
		return
	}
	s.Stats.count(&s.Stats.Forged, f.name)
	m, _ = s.wire(m)
	if m == nil {
		return
	}
	s.tracef("forged %s n%d->n%d %s", f.name, b.idx, dst.idx, describe(m))
	err := dst.eng.Step(s.wall(dst), from, m)
	s.flush(dst)
	switch {
	case f.code == "" && err != nil:
		s.fail("n%d refused %s from byzantine n%d, which it must take (harmlessly): %v", dst.idx, f.name, b.idx, err)
		return
	case f.code != "" && err == nil:
		s.fail("n%d accepted %s from byzantine n%d, want a refusal with code %s", dst.idx, f.name, b.idx, f.code)
		return
	case f.code != "" && protocol.CodeOf(err).String() != f.code:
		s.fail("n%d refused %s from byzantine n%d with %v (code %s), want code %s", dst.idx, f.name, b.idx, err, protocol.CodeOf(err), f.code)
		return
	case f.code != "" && from == b.id && f.code != "unknown_model_type":
		s.closeLink(b.idx, dst.idx) // the node resets the session
	case check != nil:
		if msg := check(); msg != "" {
			s.fail("n%d after %s from byzantine n%d: %s", dst.idx, f.name, b.idx, msg)
			return
		}
	}
	s.Stats.count(&s.Stats.Handled, f.name)
}

// forgeRequest sends a catch-up request in a stranger's name: refused.
func (s *Sim) forgeRequest(b, dst *node) {
	const name = "SharedChangeRequest from a stranger"
	s.Stats.count(&s.Stats.Forged, name)
	req, _ := s.wire(&protocol.SharedChangeRequest{LibraryID: s.lib.ID, Limit: 7})
	if req == nil {
		return
	}
	_, err := dst.eng.Serve(s.wall(dst), s.stranger(), req)
	if !errors.Is(err, protocol.ErrNotMember) {
		s.fail("n%d served %s: %v, want a not_member refusal", dst.idx, name, err)
		return
	}
	s.Stats.count(&s.Stats.Handled, name)
}

// corruptPages makes a byzantine responder's pages break the rules of a
// response in one of three ways: a page sent twice (entries not after the
// stream's position), a page of the other strategy (not requested), or a
// page of a stream that already ended (resumed). It returns the pages and
// whether it corrupted them.
func (s *Sim) corruptPages(b, to *node, pages []protocol.Message) ([]protocol.Message, bool) {
	type ref struct {
		i      int
		stream string
		ok     bool
	}
	var refs []ref
	for i, pg := range pages {
		switch m := pg.(type) {
		case *protocol.StateResponse:
			refs = append(refs, ref{i, m.ModelType + m.DeviceID.String(), len(m.Records) > 0})
		case *protocol.SharedChangeResponse:
			refs = append(refs, ref{i, m.ModelType + m.DeviceID.String(), len(m.Entries) > 0})
		}
	}
	clone := func(m protocol.Message) protocol.Message {
		c, _ := s.wire(m)
		return c
	}
	insert := func(at int, m protocol.Message) []protocol.Message {
		out := append([]protocol.Message(nil), pages[:at]...)
		out = append(out, m)
		for _, pg := range pages[at:] {
			out = append(out, pg)
		}
		for i := range out[:len(out)-1] {
			setHasMore(out[i], true)
		}
		return out
	}
	if end := len(pages) - 1; isEndMarker(pages[end]) {
		// A response with nothing to send: the other strategy's page goes
		// before its end marker.
		h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), DeviceID: b.id}
		var other protocol.Message = &protocol.StateResponse{LibraryID: s.lib.ID, ModelType: "location", DeviceID: b.id, UpTo: h, Complete: h}
		if _, ok := pages[0].(*protocol.StateResponse); ok {
			other = &protocol.SharedChangeResponse{LibraryID: s.lib.ID, ModelType: "tag", DeviceID: b.id, UpTo: h, Complete: h}
		}
		s.tracef("n%d corrupts its response to n%d: a page not asked for", b.idx, to.idx)
		return insert(end, other), true
	}
	switch s.rng.Intn(3) {
	case 0: // a non-empty page twice
		for _, r := range refs {
			if r.ok {
				s.tracef("n%d corrupts its response to n%d: a page twice", b.idx, to.idx)
				return insert(r.i+1, clone(pages[r.i])), true
			}
		}
	case 1: // a page of a stream that ended
		for _, r := range refs {
			last := refs[len(refs)-1]
			if r.ok && last.stream != r.stream {
				s.tracef("n%d corrupts its response to n%d: a stream resumed", b.idx, to.idx)
				return insert(len(pages), clone(pages[r.i])), true
			}
		}
	}
	// A page of the other strategy.
	h := hlc.HLC{Timestamp: uint64(s.wall(b).UnixMilli()), DeviceID: b.id}
	var other protocol.Message = &protocol.StateResponse{LibraryID: s.lib.ID, ModelType: "location", DeviceID: b.id, UpTo: h, Complete: h}
	if _, ok := pages[0].(*protocol.StateResponse); ok {
		other = &protocol.SharedChangeResponse{LibraryID: s.lib.ID, ModelType: "tag", DeviceID: b.id, UpTo: h, Complete: h}
	}
	s.tracef("n%d corrupts its response to n%d: a page not asked for", b.idx, to.idx)
	return insert(s.rng.Intn(len(pages)+1), other), true
}

// isEndMarker reports whether m is the one empty page of a response with
// nothing to send.
func isEndMarker(m protocol.Message) bool {
	switch m := m.(type) {
	case *protocol.StateResponse:
		return m.DeviceID == uuid.Nil && len(m.Records) == 0
	case *protocol.SharedChangeResponse:
		return m.DeviceID == uuid.Nil && len(m.Entries) == 0
	}
	return false
}

func setHasMore(m protocol.Message, more bool) {
	switch m := m.(type) {
	case *protocol.StateResponse:
		m.HasMore = more
	case *protocol.SharedChangeResponse:
		m.HasMore = more
	}
}
