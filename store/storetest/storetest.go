// Package storetest is the conformance suite every store.Store passes: Run
// checks validation, atomicity, orderings, pagination, isolation between
// libraries, the copy rules, pruning and Close, and finishes with a random
// differential test against a plain reference model.
//
// Use it from an implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return store.NewMem() })
//	}
package storetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// Run runs the suite. open returns a new, empty store for each subtest; Run
// closes it when the subtest ends (stores must allow a second Close).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Validation", testValidation},
		{"ReadValidation", testReadValidation},
		{"TooBig", testTooBig},
		{"Atomicity", testAtomicity},
		{"RecordRoundTrip", testRecordRoundTrip},
		{"List", testList},
		{"ModelTypePrefixes", testModelTypePrefixes},
		{"StatePage", testStatePage},
		{"StatePageMoves", testStatePageMoves},
		{"Replaced", testReplaced},
		{"LogPage", testLogPage},
		{"Streams", testStreams},
		{"LibraryIsolation", testLibraryIsolation},
		{"Tombstones", testTombstones},
		{"DropRecords", testDropRecords},
		{"BatchOrder", testBatchOrder},
		{"Marks", testMarks},
		{"Quarantine", testQuarantine},
		{"ClockBound", testClockBound},
		{"Config", testConfig},
		{"PruneLog", testPruneLog},
		{"PurgeTombstones", testPurgeTombstones},
		{"DropLibraries", testDropLibraries},
		{"PurgeLibraries", testPurgeLibraries},
		{"Copies", testCopies},
		{"Concurrent", testConcurrent},
		{"Random", testRandom},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// Fixtures. IDs are built from small numbers so that their byte order is
// the numbers' order and failures read well.

// ID returns a UUID whose first byte is kind and whose last eight bytes are n
// big-endian: IDs of one kind order as their numbers.
func ID(kind byte, n uint64) uuid.UUID {
	var u uuid.UUID
	u[0] = kind
	binary.BigEndian.PutUint64(u[8:], n)
	return u
}

var (
	lib1  = ID(0x11, 1)
	lib2  = ID(0x11, 2)
	devA  = ID(0xd0, 1)
	devB  = ID(0xd0, 2)
	devC  = ID(0xd0, 3)
	model = "entry"
)

func rid(n uint64) uuid.UUID { return ID(0x7e, n) }

func ver(ts uint64, dev uuid.UUID) hlc.HLC {
	return hlc.HLC{Timestamp: ts, DeviceID: dev}
}

func rec(lib uuid.UUID, m string, id uint64, v hlc.HLC, data string) store.Record {
	r := store.Record{Library: lib, ModelType: m, ID: rid(id), Version: v}
	if data != "" {
		r.Data = []byte(data)
	}
	return r
}

func tomb(lib uuid.UUID, m string, id uint64, v hlc.HLC) store.Record {
	return store.Record{Library: lib, ModelType: m, ID: rid(id), Version: v, Deleted: true}
}

func entry(lib uuid.UUID, m string, h hlc.HLC, id uint64, data string) store.LogEntry {
	e := store.LogEntry{Library: lib, ModelType: m, HLC: h, RecordID: rid(id), ChangeType: "Update"}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

func stream(lib uuid.UUID, m string, origin uuid.UUID) store.Stream {
	return store.Stream{Library: lib, ModelType: m, Origin: origin}
}

// Assertions.

func apply(t *testing.T, s store.Store, b *store.Batch) {
	t.Helper()
	if err := s.Apply(b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !equalQuiet(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// show formats records and entries compactly.
func show(v any) string {
	switch x := v.(type) {
	case []store.Record:
		var b bytes.Buffer
		b.WriteString("[")
		for i, r := range x {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s/%d@%d/%d", r.ModelType, binary.BigEndian.Uint64(r.ID[8:]), r.Version.Timestamp, r.Version.DeviceID[15])
			if r.Deleted {
				b.WriteString("(del)")
			} else {
				fmt.Fprintf(&b, "=%q", r.Data)
			}
		}
		b.WriteString("]")
		return b.String()
	case store.Record:
		return show([]store.Record{x})
	case store.Stream:
		return fmt.Sprintf("%q/%x", x.ModelType, x.Origin[15])
	case []store.Stream:
		var parts []string
		for _, st := range x {
			parts = append(parts, show(st))
		}
		return "[" + strings.Join(parts, " ") + "]"
	case []store.LogEntry:
		var b bytes.Buffer
		b.WriteString("[")
		for i, e := range x {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s@%s:%s=%q", e.ModelType, e.HLC, e.ChangeType, e.Data)
		}
		b.WriteString("]")
		return b.String()
	}
	return fmt.Sprintf("%+v", v)
}

func ids(rs []store.Record) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, binary.BigEndian.Uint64(r.ID[8:]))
	}
	return out
}

func stamps(es []store.LogEntry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.HLC.Timestamp)
	}
	return out
}

// isEmpty checks that s holds nothing for the fixtures' libraries and meta
// key "k".
func isEmpty(t *testing.T, s store.Reader) {
	t.Helper()
	for _, lib := range []uuid.UUID{lib1, lib2} {
		if rs, err := s.List(lib, model, uuid.Nil, 100); err != nil || len(rs) != 0 {
			t.Errorf("List: %s, %v; want nothing", show(rs), err)
		}
		for _, f := range []func(uuid.UUID) (int, error){
			func(l uuid.UUID) (int, error) { x, err := s.Streams(l); return len(x), err },
			func(l uuid.UUID) (int, error) { x, err := s.Watermarks(l); return len(x), err },
			func(l uuid.UUID) (int, error) { x, err := s.Acks(l); return len(x), err },
			func(l uuid.UUID) (int, error) { x, err := s.PrunePoints(l); return len(x), err },
			func(l uuid.UUID) (int, error) { x, err := s.Members(l); return len(x), err },
			s.CountQuarantined,
			s.CountLog,
		} {
			if n, err := f(lib); err != nil || n != 0 {
				t.Errorf("a library read saw %d items (err %v), want none", n, err)
			}
		}
	}
	if ls, err := s.Libraries(); err != nil || len(ls) != 0 {
		t.Errorf("Libraries: %v, %v; want none", ls, err)
	}
	if c, err := s.ClockBound(); err != nil || c != 0 {
		t.Errorf("ClockBound: %d, %v; want 0", c, err)
	}
	if _, err := s.Meta("k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Meta(k): err %v, want ErrNotFound", err)
	}
}

// fullBatch returns a valid batch that writes something of every kind.
func fullBatch() *store.Batch {
	return &store.Batch{
		PutRecords:     []store.Record{rec(lib1, model, 1, ver(10, devA), "one")},
		AppendLog:      []store.LogEntry{entry(lib1, model, ver(11, devA), 1, "one")},
		SetWatermarks:  []store.Mark{{Stream: stream(lib1, model, devA), HLC: ver(11, devA)}},
		SetAcks:        []store.Ack{{Stream: stream(lib1, model, devA), Member: devB, HLC: ver(11, devA)}},
		SetPrunePoints: []store.PrunePoint{{Stream: stream(lib1, model, devA), Log: ver(5, devA)}},
		PutQuarantine:  []store.Quarantined{{Library: lib1, HLC: ver(99, devB), From: devB, Message: []byte("m")}},
		ClockBound:     1234,
		PutLibraries:   []store.Library{{ID: lib1, Name: "home"}},
		PutMembers:     []store.Member{{Library: lib1, DeviceID: devA, Name: "a"}},
		PutMeta:        map[string][]byte{"k": []byte("v")},
	}
}

func testValidation(t *testing.T, s store.Store) {
	good := rec(lib1, model, 1, ver(10, devA), "x")
	goodStream := stream(lib1, model, devA)
	cases := []struct {
		name  string
		batch store.Batch
	}{
		{"record empty model type", store.Batch{PutRecords: []store.Record{rec(lib1, "", 1, ver(1, devA), "x")}}},
		{"record model type with NUL", store.Batch{PutRecords: []store.Record{rec(lib1, "a\x00b", 1, ver(1, devA), "x")}}},
		{"record model type too long", store.Batch{PutRecords: []store.Record{rec(lib1, string(bytes.Repeat([]byte("m"), store.MaxModelTypeLen+1)), 1, ver(1, devA), "x")}}},
		{"record nil library", store.Batch{PutRecords: []store.Record{rec(uuid.Nil, model, 1, ver(1, devA), "x")}}},
		{"record nil ID", store.Batch{PutRecords: []store.Record{{Library: lib1, ModelType: model, Version: ver(1, devA)}}}},
		{"record zero version", store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, hlc.HLC{}, "x")}}},
		{"record version without device", store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, ver(5, uuid.Nil), "x")}}},
		{"tombstone with data", store.Batch{PutRecords: []store.Record{{Library: lib1, ModelType: model, ID: rid(1), Version: ver(1, devA), Deleted: true, Data: []byte("x")}}}},
		{"drop nil ID", store.Batch{DropRecords: []store.RecordKey{{Library: lib1, ModelType: model}}}},
		{"drop empty model type", store.Batch{DropRecords: []store.RecordKey{{Library: lib1, ID: rid(1)}}}},
		{"log zero HLC", store.Batch{AppendLog: []store.LogEntry{entry(lib1, model, hlc.HLC{}, 1, "x")}}},
		{"log nil record", store.Batch{AppendLog: []store.LogEntry{{Library: lib1, ModelType: model, HLC: ver(1, devA), ChangeType: "Insert"}}}},
		{"log bad change type", store.Batch{AppendLog: []store.LogEntry{{Library: lib1, ModelType: model, HLC: ver(1, devA), RecordID: rid(1), ChangeType: "Upsert"}}}},
		{"log NUL model type", store.Batch{AppendLog: []store.LogEntry{entry(lib1, "\x00", ver(1, devA), 1, "x")}}},
		{"watermark nil origin", store.Batch{SetWatermarks: []store.Mark{{Stream: stream(lib1, model, uuid.Nil), HLC: ver(1, devA)}}}},
		{"watermark nil library", store.Batch{SetWatermarks: []store.Mark{{Stream: stream(uuid.Nil, model, devA), HLC: ver(1, devA)}}}},
		{"ack nil member", store.Batch{SetAcks: []store.Ack{{Stream: goodStream, HLC: ver(1, devA)}}}},
		{"ack empty model type", store.Batch{SetAcks: []store.Ack{{Stream: stream(lib1, "", devA), Member: devB}}}},
		{"prune point nil origin", store.Batch{SetPrunePoints: []store.PrunePoint{{Stream: stream(lib1, model, uuid.Nil)}}}},
		{"quarantine zero HLC", store.Batch{PutQuarantine: []store.Quarantined{{Library: lib1, From: devB}}}},
		{"quarantine nil sender", store.Batch{PutQuarantine: []store.Quarantined{{Library: lib1, HLC: ver(1, devB)}}}},
		{"drop quarantine nil library", store.Batch{DropQuarantine: []store.QuarantineKey{{HLC: ver(1, devB), From: devB}}}},
		{"library nil ID", store.Batch{PutLibraries: []store.Library{{Name: "x"}}}},
		{"member nil device", store.Batch{PutMembers: []store.Member{{Library: lib1}}}},
		{"drop member nil library", store.Batch{DropMembers: []store.MemberKey{{DeviceID: devA}}}},
		{"meta empty key", store.Batch{PutMeta: map[string][]byte{"": []byte("v")}}},
		{"meta key too long", store.Batch{PutMeta: map[string][]byte{string(bytes.Repeat([]byte("k"), store.MaxMetaKeyLen+1)): nil}}},
		{"drop meta empty key", store.Batch{DropMeta: []string{""}}},
		{"prune log nil origin", store.Batch{PruneLog: []store.Mark{{Stream: stream(lib1, model, uuid.Nil), HLC: ver(1, devA)}}}},
		{"purge tombstones bad model type", store.Batch{PurgeTombstones: []store.Mark{{Stream: stream(lib1, "a\x00", devA), HLC: ver(1, devA)}}}},
		{"drop library nil ID", store.Batch{DropLibraries: []uuid.UUID{lib1, uuid.Nil}}},
		{"purge library nil ID", store.Batch{PurgeLibraries: []uuid.UUID{uuid.Nil}}},
	}
	for _, tc := range cases {
		// Put a valid record first: validation happens before any write, so
		// it must not land either.
		b := tc.batch
		b.PutRecords = append([]store.Record{good}, b.PutRecords...)
		err := s.Apply(&b)
		wantErr(t, tc.name, err, store.ErrInvalid)
	}
	if _, err := s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after only invalid batches, Record: err %v, want ErrNotFound", err)
	}
	// An empty batch is valid and writes nothing.
	apply(t, s, &store.Batch{})
	isEmpty(t, s)
}

func testReadValidation(t *testing.T, s store.Store) {
	bad := stream(lib1, "a\x00", devA)
	checks := []struct {
		name string
		err  error
	}{
		{"Record nil ID", second(s.Record(store.RecordKey{Library: lib1, ModelType: model}))},
		{"Record NUL model type", second(s.Record(store.RecordKey{Library: lib1, ModelType: "\x00", ID: rid(1)}))},
		{"List empty model type", second(s.List(lib1, "", uuid.Nil, 10))},
		{"List nil library", second(s.List(uuid.Nil, model, uuid.Nil, 10))},
		{"List zero limit", second(s.List(lib1, model, uuid.Nil, 0))},
		{"List negative limit", second(s.List(lib1, model, uuid.Nil, -1))},
		{"StatePage NUL model type", second(s.StatePage(bad, hlc.HLC{}, 10))},
		{"StatePage zero limit", second(s.StatePage(stream(lib1, model, devA), hlc.HLC{}, 0))},
		{"StatePage nil origin", second(s.StatePage(stream(lib1, model, uuid.Nil), hlc.HLC{}, 10))},
		{"LogPage NUL model type", second(s.LogPage(bad, hlc.HLC{}, 10))},
		{"LogPage zero limit", second(s.LogPage(stream(lib1, model, devA), hlc.HLC{}, 0))},
		{"Watermark NUL model type", second(s.Watermark(bad))},
		{"Streams nil library", second(s.Streams(uuid.Nil))},
		{"Watermarks nil library", second(s.Watermarks(uuid.Nil))},
		{"Acks nil library", second(s.Acks(uuid.Nil))},
		{"PrunePoints nil library", second(s.PrunePoints(uuid.Nil))},
		{"Quarantined zero limit", second(s.Quarantined(lib1, 0))},
		{"Quarantined nil library", second(s.Quarantined(uuid.Nil, 1))},
		{"CountQuarantined nil library", second(s.CountQuarantined(uuid.Nil))},
		{"CountLog nil library", second(s.CountLog(uuid.Nil))},
		{"Members nil library", second(s.Members(uuid.Nil))},
		{"Meta empty key", second(s.Meta(""))},
	}
	for _, c := range checks {
		wantErr(t, c.name, c.err, store.ErrInvalid)
	}
}

func second[T any](_ T, err error) error { return err }

// testReplaced writes records with Batch.Replaced given right (as the
// engine gives it): the version index must end up as if the store had read
// each record itself.
func testReplaced(t *testing.T, s store.Store) {
	z := hlc.HLC{}
	// New records, a record put twice in one batch, then moves within a
	// stream, across streams and onto a tombstone.
	apply(t, s, &store.Batch{
		PutRecords: []store.Record{rec(lib1, model, 1, ver(10, devA), "a"), rec(lib1, model, 2, ver(11, devA), "b"), rec(lib1, model, 2, ver(12, devA), "c")},
		Replaced:   []hlc.HLC{z, z, ver(11, devA)},
	})
	apply(t, s, &store.Batch{
		PutRecords: []store.Record{rec(lib1, model, 1, ver(20, devB), "d"), tomb(lib1, model, 2, ver(21, devA))},
		Replaced:   []hlc.HLC{ver(10, devA), ver(12, devA)},
	})
	apply(t, s, &store.Batch{
		PutRecords: []store.Record{rec(lib1, model, 2, ver(30, devA), "e")},
		Replaced:   []hlc.HLC{ver(21, devA)},
	})
	pa := must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, model, devA), hlc.HLC{}, 10))
	pb := must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, model, devB), hlc.HLC{}, 10))
	equal(t, "stream of devA", pa.Records, []store.Record{rec(lib1, model, 2, ver(30, devA), "e")})
	equal(t, "stream of devB", pb.Records, []store.Record{rec(lib1, model, 1, ver(20, devB), "d")})
	// A Replaced of the wrong length is refused.
	wantErr(t, "Apply with 2 Replaced for 1 record", s.Apply(&store.Batch{
		PutRecords: []store.Record{rec(lib1, model, 3, ver(40, devA), "f")},
		Replaced:   []hlc.HLC{z, z},
	}), store.ErrInvalid)
}

func testTooBig(t *testing.T, s store.Store) {
	data := make([]byte, 64<<10)
	var b store.Batch
	for i := 0; b.Size() <= store.MaxBatchSize; i++ {
		b.PutRecords = append(b.PutRecords, store.Record{Library: lib1, ModelType: model, ID: rid(uint64(i + 1)), Version: ver(uint64(i+1), devA), Data: data})
	}
	wantErr(t, "Apply of a batch over MaxBatchSize", s.Apply(&b), store.ErrTooBig)
	isEmpty(t, s)
	// Just under the limit is accepted, whatever the store's own limits.
	b.PutRecords = b.PutRecords[:len(b.PutRecords)-1]
	last := &b.PutRecords[len(b.PutRecords)-1]
	last.Data = make([]byte, len(last.Data)+store.MaxBatchSize-b.Size())
	if n := b.Size(); n != store.MaxBatchSize {
		t.Fatalf("test batch of %d bytes, want exactly %d", n, store.MaxBatchSize)
	}
	apply(t, s, &b)
	rs := must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, len(b.PutRecords)+1))
	if len(rs) != len(b.PutRecords) {
		t.Errorf("after a batch of %d records, List returned %d", len(b.PutRecords), len(rs))
	}
	// Many small records: a store with a per-entry count limit must still
	// take anything Size allows.
	b = store.Batch{}
	for i := 0; ; i++ {
		r := store.Record{Library: lib2, ModelType: "m", ID: rid(uint64(i + 1)), Version: ver(uint64(i+1), devB)}
		b.PutRecords = append(b.PutRecords, r)
		if b.Size() > store.MaxBatchSize {
			b.PutRecords = b.PutRecords[:i]
			break
		}
	}
	apply(t, s, &b)
	n := must[int](t, "CountQuarantined")(s.CountQuarantined(lib2))
	equal(t, "quarantine of lib2", n, 0)
	page := must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib2, "m", devB), hlc.HLC{}, len(b.PutRecords)+1))
	equal(t, "records of a batch of small records", len(page.Records), len(b.PutRecords))
	// Rewriting each of them at a new version (which also deletes the old
	// index entry) costs the same by Size, and must fit too.
	for i := range b.PutRecords {
		b.PutRecords[i].Version = ver(uint64(i+1), devC)
	}
	apply(t, s, &b)
	page = must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib2, "m", devC), hlc.HLC{}, len(b.PutRecords)+1))
	equal(t, "records rewritten at new versions", len(page.Records), len(b.PutRecords))
	// And dropping as many records as a maximal batch names.
	var drop store.Batch
	for i := 0; ; i++ {
		drop.DropRecords = append(drop.DropRecords, store.RecordKey{Library: lib2, ModelType: "m", ID: rid(uint64(i + 1))})
		if drop.Size() > store.MaxBatchSize {
			drop.DropRecords = drop.DropRecords[:i]
			break
		}
	}
	apply(t, s, &drop)
	page = must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib2, "m", devC), hlc.HLC{}, len(b.PutRecords)+1))
	equal(t, "records left after a maximal drop", len(page.Records), max(0, len(b.PutRecords)-len(drop.DropRecords)))
}

func testAtomicity(t *testing.T, s store.Store) {
	// Each kind of element can carry the invalid one; nothing may land.
	spoil := []func(b *store.Batch){
		func(b *store.Batch) { b.PutRecords = append(b.PutRecords, rec(lib1, model, 2, hlc.HLC{}, "")) },
		func(b *store.Batch) { b.AppendLog = append(b.AppendLog, store.LogEntry{Library: lib1}) },
		func(b *store.Batch) { b.SetAcks = append(b.SetAcks, store.Ack{}) },
		func(b *store.Batch) { b.PutMembers = append(b.PutMembers, store.Member{}) },
		func(b *store.Batch) { b.DropMeta = append(b.DropMeta, "") },
		func(b *store.Batch) { b.PurgeTombstones = append(b.PurgeTombstones, store.Mark{}) },
	}
	for i, f := range spoil {
		b := fullBatch()
		f(b)
		wantErr(t, fmt.Sprintf("spoiled batch %d", i), s.Apply(b), store.ErrInvalid)
		isEmpty(t, s)
	}
	apply(t, s, fullBatch())
	// The same batch with one invalid element changes nothing already stored.
	b := fullBatch()
	b.PutRecords[0].Data = []byte("changed")
	b.ClockBound = 9999
	b.PutMeta["k"] = []byte("changed")
	b.DropRecords = []store.RecordKey{{Library: lib1, ModelType: model}}
	wantErr(t, "spoiled update", s.Apply(b), store.ErrInvalid)
	r := must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)}))
	equal(t, "record after a failed update", string(r.Data), "one")
	equal(t, "clock bound after a failed update", must[uint64](t, "ClockBound")(s.ClockBound()), uint64(1234))
	equal(t, "meta after a failed update", string(must[[]byte](t, "Meta")(s.Meta("k"))), "v")
}

func testRecordRoundTrip(t *testing.T, s store.Store) {
	k := store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)}
	_, err := s.Record(k)
	wantErr(t, "Record of an empty store", err, store.ErrNotFound)
	want := store.Record{Library: lib1, ModelType: model, ID: rid(1), Version: hlc.HLC{Timestamp: 1 << 62, Counter: 7, DeviceID: devA}, Data: []byte{0xa1, 0x61, 0x61, 0x01}}
	apply(t, s, &store.Batch{PutRecords: []store.Record{want}})
	got := must[store.Record](t, "Record")(s.Record(k))
	equal(t, "Record", got, want)
	// Empty data comes back as nil.
	empty := rec(lib1, model, 2, ver(3, devB), "")
	empty.Data = []byte{}
	apply(t, s, &store.Batch{PutRecords: []store.Record{empty}})
	got = must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(2)}))
	if got.Data != nil {
		t.Errorf("Record with empty data returned Data %#v, want nil", got.Data)
	}
	// A larger payload survives intact.
	big := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 100_000)
	apply(t, s, &store.Batch{PutRecords: []store.Record{{Library: lib1, ModelType: model, ID: rid(3), Version: ver(4, devA), Data: big}}})
	got = must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(3)}))
	if !bytes.Equal(got.Data, big) {
		t.Errorf("Record of %d bytes came back as %d bytes", len(big), len(got.Data))
	}
}

func testList(t *testing.T, s store.Store) {
	// IDs 1..50 written in a scrambled order, versions unrelated to IDs, two
	// origins, some tombstones; another model type and library around them.
	var b store.Batch
	for i := uint64(0); i < 50; i++ {
		n := (i*37)%50 + 1
		dev := devA
		if n%3 == 0 {
			dev = devB
		}
		r := rec(lib1, model, n, ver(1000-n*7, dev), fmt.Sprint(n))
		if n%5 == 0 {
			r = tomb(lib1, model, n, ver(1000-n*7, dev))
		}
		b.PutRecords = append(b.PutRecords, r)
	}
	b.PutRecords = append(b.PutRecords, rec(lib1, "entrz", 7, ver(1, devA), "other model"), rec(lib2, model, 7, ver(1, devA), "other library"))
	apply(t, s, &b)

	all := must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 1000))
	var want []uint64
	for n := uint64(1); n <= 50; n++ {
		want = append(want, n)
	}
	equal(t, "List ids", ids(all), want)
	for _, r := range all {
		n := binary.BigEndian.Uint64(r.ID[8:])
		if r.Deleted != (n%5 == 0) || r.Library != lib1 || r.ModelType != model {
			t.Errorf("List returned %s", show(r))
		}
	}
	// Pages of 7: after is exclusive, limit caps, the concatenation is all.
	var paged []uint64
	after := uuid.Nil
	for pages := 0; ; pages++ {
		rs := must[[]store.Record](t, "List")(s.List(lib1, model, after, 7))
		if len(rs) > 7 {
			t.Fatalf("List with limit 7 returned %d", len(rs))
		}
		if len(rs) == 0 || pages > 20 {
			break
		}
		paged = append(paged, ids(rs)...)
		after = rs[len(rs)-1].ID
	}
	equal(t, "List in pages of 7", paged, want)
	// after need not be a stored ID.
	rs := must[[]store.Record](t, "List")(s.List(lib1, model, ID(0x7e, 0), 2))
	equal(t, "List after an absent ID", ids(rs), []uint64{1, 2})
	rs = must[[]store.Record](t, "List")(s.List(lib1, model, rid(50), 2))
	equal(t, "List after the last ID", len(rs), 0)
	rs = must[[]store.Record](t, "List")(s.List(lib1, "nothing", uuid.Nil, 2))
	equal(t, "List of an unknown model type", len(rs), 0)
}

func testModelTypePrefixes(t *testing.T, s store.Store) {
	// Model types that are prefixes of each other, or differ only after a
	// prefix in low bytes, stay apart everywhere.
	models := []string{"a", "a\x01", "ab", "a\xff", "b"}
	var b store.Batch
	for i, m := range models {
		st := stream(lib1, m, devA)
		b.PutRecords = append(b.PutRecords, rec(lib1, m, 1, ver(uint64(10+i), devA), m))
		b.AppendLog = append(b.AppendLog, entry(lib1, m, ver(uint64(10+i), devA), 1, m))
		b.SetWatermarks = append(b.SetWatermarks, store.Mark{Stream: st, HLC: ver(uint64(10+i), devA)})
		b.SetAcks = append(b.SetAcks, store.Ack{Stream: st, Member: devB, HLC: ver(uint64(10+i), devA)})
		b.SetPrunePoints = append(b.SetPrunePoints, store.PrunePoint{Stream: st, Log: ver(uint64(i+1), devA)})
	}
	apply(t, s, &b)
	for i, m := range models {
		rs := must[[]store.Record](t, "List")(s.List(lib1, m, uuid.Nil, 10))
		if len(rs) != 1 || string(rs[0].Data) != m {
			t.Errorf("List(%q) = %s, want its one record", m, show(rs))
		}
		page := must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, m, devA), hlc.HLC{}, 10))
		if len(page.Records) != 1 || string(page.Records[0].Data) != m || page.Watermark != ver(uint64(10+i), devA) || page.PrunePoint.Log != ver(uint64(i+1), devA) {
			t.Errorf("StatePage(%q) = %s, watermark %v, prune point %+v", m, show(page.Records), page.Watermark, page.PrunePoint)
		}
		lp := must[store.LogPage](t, "LogPage")(s.LogPage(stream(lib1, m, devA), hlc.HLC{}, 10))
		if len(lp.Entries) != 1 || string(lp.Entries[0].Data) != m {
			t.Errorf("LogPage(%q) = %s", m, show(lp.Entries))
		}
	}
	// Orders: Go string order of the model types.
	want := []store.Stream{stream(lib1, "a", devA), stream(lib1, "a\x01", devA), stream(lib1, "ab", devA), stream(lib1, "a\xff", devA), stream(lib1, "b", devA)}
	equal(t, "Streams", must[[]store.Stream](t, "Streams")(s.Streams(lib1)), want)
	var wms []store.Stream
	for _, m := range must[[]store.Mark](t, "Watermarks")(s.Watermarks(lib1)) {
		wms = append(wms, m.Stream)
	}
	equal(t, "Watermarks streams", wms, want)
	var acks []store.Stream
	for _, a := range must[[]store.Ack](t, "Acks")(s.Acks(lib1)) {
		acks = append(acks, a.Stream)
	}
	equal(t, "Acks streams", acks, want)
	var pps []store.Stream
	for _, p := range must[[]store.PrunePoint](t, "PrunePoints")(s.PrunePoints(lib1)) {
		pps = append(pps, p.Stream)
	}
	equal(t, "PrunePoints streams", pps, want)
	// Pruning and purging "a" leave "ab" and "a\x01" alone.
	apply(t, s, &store.Batch{
		PutRecords:      []store.Record{tomb(lib1, "a", 1, ver(50, devA)), tomb(lib1, "ab", 1, ver(50, devA)), tomb(lib1, "a\x01", 1, ver(50, devA))},
		PruneLog:        []store.Mark{{Stream: stream(lib1, "a", devA), HLC: ver(1000, devA)}},
		PurgeTombstones: []store.Mark{{Stream: stream(lib1, "a", devA), HLC: ver(1000, devA)}},
	})
	for _, m := range []string{"a\x01", "ab"} {
		if lp := must[store.LogPage](t, "LogPage")(s.LogPage(stream(lib1, m, devA), hlc.HLC{}, 10)); len(lp.Entries) != 1 {
			t.Errorf("pruning model type %q took %q's log: %s", "a", m, show(lp.Entries))
		}
		if rs := must[[]store.Record](t, "List")(s.List(lib1, m, uuid.Nil, 10)); len(rs) != 1 {
			t.Errorf("purging model type %q took %q's tombstone: %s", "a", m, show(rs))
		}
	}
	if rs := must[[]store.Record](t, "List")(s.List(lib1, "a", uuid.Nil, 10)); len(rs) != 0 {
		t.Errorf("after purge, List(a) = %s, want none", show(rs))
	}
}

func testStatePage(t *testing.T, s store.Store) {
	sa := stream(lib1, model, devA)
	// 30 records of devA with versions 10, 20, ... 300 written out of
	// order; records of devB and of another model interleaved.
	var b store.Batch
	for i := uint64(0); i < 30; i++ {
		n := (i*11)%30 + 1
		b.PutRecords = append(b.PutRecords, rec(lib1, model, 100-n, ver(n*10, devA), fmt.Sprint(n)))
		b.PutRecords = append(b.PutRecords, rec(lib1, model, 200+n, ver(n*10+5, devB), "b"))
		b.PutRecords = append(b.PutRecords, rec(lib1, "other", 100-n, ver(n*10, devA), "o"))
	}
	// Two records sharing a version order by ID.
	b.PutRecords = append(b.PutRecords, rec(lib1, model, 301, ver(305, devA), "tie"), rec(lib1, model, 300, ver(305, devA), "tie"))
	b.SetWatermarks = []store.Mark{{Stream: sa, HLC: ver(300, devA)}}
	b.SetPrunePoints = []store.PrunePoint{{Stream: sa, Log: ver(3, devA), Tombstones: ver(4, devA)}}
	apply(t, s, &b)

	var want []uint64
	for n := uint64(1); n <= 30; n++ {
		want = append(want, 100-n)
	}
	want = append(want, 300, 301)
	page := must[store.StatePage](t, "StatePage")(s.StatePage(sa, hlc.HLC{}, 1000))
	equal(t, "StatePage ids in version order", ids(page.Records), want)
	equal(t, "StatePage watermark", page.Watermark, ver(300, devA))
	equal(t, "StatePage prune point", page.PrunePoint, store.PrunePoint{Stream: sa, Log: ver(3, devA), Tombstones: ver(4, devA)})
	for i := 1; i < len(page.Records); i++ {
		if page.Records[i].Version.Less(page.Records[i-1].Version) {
			t.Errorf("StatePage out of version order at %d: %s", i, show(page.Records[i-1:i+1]))
		}
	}
	// Pages of 4 with after = last version (exclusive).
	var paged []uint64
	after := hlc.HLC{}
	for pages := 0; pages < 20; pages++ {
		p := must[store.StatePage](t, "StatePage")(s.StatePage(sa, after, 4))
		if len(p.Records) > 4 {
			t.Fatalf("StatePage with limit 4 returned %d", len(p.Records))
		}
		if len(p.Records) == 0 {
			break
		}
		paged = append(paged, ids(p.Records)...)
		after = p.Records[len(p.Records)-1].Version
	}
	equal(t, "StatePage in pages of 4", paged, want)
	// after between versions, at a version, and past the end.
	p := must[store.StatePage](t, "StatePage")(s.StatePage(sa, ver(105, devA), 2))
	equal(t, "StatePage after 105", ids(p.Records), []uint64{89, 88})
	p = must[store.StatePage](t, "StatePage")(s.StatePage(sa, ver(110, devA), 2))
	equal(t, "StatePage after 110", ids(p.Records), []uint64{88, 87})
	p = must[store.StatePage](t, "StatePage")(s.StatePage(sa, ver(110, devB), 1))
	equal(t, "StatePage after (110, devB)", ids(p.Records), []uint64{88})
	p = must[store.StatePage](t, "StatePage")(s.StatePage(sa, ver(1000, devA), 5))
	equal(t, "StatePage past the end", len(p.Records), 0)
	equal(t, "StatePage past the end keeps the watermark", p.Watermark, ver(300, devA))
	// The other stream and an unknown one.
	p = must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, model, devB), hlc.HLC{}, 100))
	equal(t, "StatePage of devB", len(p.Records), 30)
	for _, r := range p.Records {
		if r.Version.DeviceID != devB {
			t.Errorf("devB's StatePage holds %s", show(r))
		}
	}
	equal(t, "StatePage of devB: watermark", p.Watermark, hlc.HLC{})
	equal(t, "StatePage of devB: prune point", p.PrunePoint, store.PrunePoint{Stream: stream(lib1, model, devB)})
	p = must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, model, devC), hlc.HLC{}, 100))
	equal(t, "StatePage of an unknown stream", p, store.StatePage{PrunePoint: store.PrunePoint{Stream: stream(lib1, model, devC)}})
}

func testStatePageMoves(t *testing.T, s store.Store) {
	sa, sb := stream(lib1, model, devA), stream(lib1, model, devB)
	apply(t, s, &store.Batch{PutRecords: []store.Record{
		rec(lib1, model, 1, ver(10, devA), "1"), rec(lib1, model, 2, ver(20, devA), "2"), rec(lib1, model, 3, ver(30, devA), "3"),
	}})
	page := func(st store.Stream) []uint64 {
		t.Helper()
		return ids(must[store.StatePage](t, "StatePage")(s.StatePage(st, hlc.HLC{}, 100)).Records)
	}
	// A newer version of record 1 moves it to the end of its stream.
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, ver(40, devA), "1b")}})
	equal(t, "after moving record 1 to version 40", page(sa), []uint64{2, 3, 1})
	p := must[store.StatePage](t, "StatePage")(s.StatePage(sa, ver(30, devA), 100))
	equal(t, "StatePage after 30", ids(p.Records), []uint64{1})
	equal(t, "record 1's data", string(p.Records[0].Data), "1b")
	// The store does not compare versions: an older one moves it back.
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, ver(5, devA), "1c")}})
	equal(t, "after moving record 1 to version 5", page(sa), []uint64{1, 2, 3})
	// A version of devB moves record 2 to devB's stream.
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 2, ver(25, devB), "2b")}})
	equal(t, "devA's stream after record 2 moved", page(sa), []uint64{1, 3})
	equal(t, "devB's stream after record 2 moved", page(sb), []uint64{2})
	// Record 2 moves back, as a tombstone.
	apply(t, s, &store.Batch{PutRecords: []store.Record{tomb(lib1, model, 2, ver(50, devA))}})
	equal(t, "devA's stream after record 2 moved back", page(sa), []uint64{1, 3, 2})
	equal(t, "devB's stream after record 2 moved back", len(page(sb)), 0)
	equal(t, "Streams after devB's stream emptied", must[[]store.Stream](t, "Streams")(s.Streams(lib1)), []store.Stream{sa})
	// Rewriting the same version in place keeps one index entry.
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 3, ver(30, devA), "3b")}})
	equal(t, "after rewriting record 3 in place", page(sa), []uint64{1, 3, 2})
	equal(t, "List after moves", ids(must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 10))), []uint64{1, 2, 3})
}

func testLogPage(t *testing.T, s store.Store) {
	sa := stream(lib1, model, devA)
	var b store.Batch
	for i := uint64(0); i < 25; i++ {
		n := (i*7)%25 + 1
		e := entry(lib1, model, hlc.HLC{Timestamp: n * 10, Counter: uint32(n % 3), DeviceID: devA}, n, fmt.Sprint(n))
		e.Prev = ver(n*10-10, devA)
		e.ChangeType = []string{"Insert", "Update", "Delete"}[n%3]
		b.AppendLog = append(b.AppendLog, e)
		b.AppendLog = append(b.AppendLog, entry(lib1, model, ver(n*10, devB), n, "b"))
		b.AppendLog = append(b.AppendLog, entry(lib1, "other", ver(n*10, devA), n, "o"))
	}
	b.SetWatermarks = []store.Mark{{Stream: sa, HLC: ver(250, devA)}}
	b.SetPrunePoints = []store.PrunePoint{{Stream: sa, Log: ver(1, devA)}}
	apply(t, s, &b)

	page := must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, 100))
	var want []uint64
	for n := uint64(1); n <= 25; n++ {
		want = append(want, n*10)
	}
	equal(t, "LogPage timestamps", stamps(page.Entries), want)
	equal(t, "LogPage watermark", page.Watermark, ver(250, devA))
	equal(t, "LogPage prune point", page.PrunePoint, store.PrunePoint{Stream: sa, Log: ver(1, devA)})
	e := page.Entries[4] // n = 5
	wantE := store.LogEntry{Library: lib1, ModelType: model, HLC: hlc.HLC{Timestamp: 50, Counter: 2, DeviceID: devA}, RecordID: rid(5), ChangeType: "Delete", Data: []byte("5"), Prev: ver(40, devA)}
	equal(t, "LogPage entry 5", e, wantE)
	// Pages of 6.
	var paged []uint64
	after := hlc.HLC{}
	for pages := 0; pages < 20; pages++ {
		p := must[store.LogPage](t, "LogPage")(s.LogPage(sa, after, 6))
		if len(p.Entries) > 6 {
			t.Fatalf("LogPage with limit 6 returned %d", len(p.Entries))
		}
		if len(p.Entries) == 0 {
			break
		}
		paged = append(paged, stamps(p.Entries)...)
		after = p.Entries[len(p.Entries)-1].HLC
	}
	equal(t, "LogPage in pages of 6", paged, want)
	// Overwrite an entry with the same HLC.
	over := wantE
	over.Data, over.ChangeType = []byte("again"), "Update"
	apply(t, s, &store.Batch{AppendLog: []store.LogEntry{over}})
	p := must[store.LogPage](t, "LogPage")(s.LogPage(sa, ver(49, devA), 1))
	equal(t, "overwritten entry", p.Entries, []store.LogEntry{over})
	equal(t, "entries after overwrite", len(must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, 100)).Entries), 25)
	p = must[store.LogPage](t, "LogPage")(s.LogPage(stream(lib1, model, devC), hlc.HLC{}, 10))
	equal(t, "LogPage of an unknown stream", p, store.LogPage{PrunePoint: store.PrunePoint{Stream: stream(lib1, model, devC)}})
}

func testStreams(t *testing.T, s store.Store) {
	equal(t, "Streams of an empty store", len(must[[]store.Stream](t, "Streams")(s.Streams(lib1))), 0)
	// One stream from each kind of content; an ack alone makes none.
	apply(t, s, &store.Batch{
		PutRecords:     []store.Record{rec(lib1, "r", 1, ver(1, devB), "x")},
		AppendLog:      []store.LogEntry{entry(lib1, "l", ver(1, devC), 1, "x")},
		SetWatermarks:  []store.Mark{{Stream: stream(lib1, "w", devA), HLC: ver(1, devA)}},
		SetPrunePoints: []store.PrunePoint{{Stream: stream(lib1, "p", devA)}},
		SetAcks:        []store.Ack{{Stream: stream(lib1, "a", devA), Member: devB, HLC: ver(1, devA)}},
	})
	// Several origins in one model type, and a duplicate via two kinds.
	apply(t, s, &store.Batch{
		PutRecords:    []store.Record{rec(lib1, "r", 2, ver(1, devA), "x"), rec(lib1, "r", 3, ver(2, devA), "x"), rec(lib1, "r", 4, ver(1, devC), "x")},
		SetWatermarks: []store.Mark{{Stream: stream(lib1, "r", devA), HLC: ver(2, devA)}},
		AppendLog:     []store.LogEntry{entry(lib1, "r", ver(9, devB), 1, "x")},
	})
	want := []store.Stream{
		stream(lib1, "l", devC), stream(lib1, "p", devA),
		stream(lib1, "r", devA), stream(lib1, "r", devB), stream(lib1, "r", devC),
		stream(lib1, "w", devA),
	}
	equal(t, "Streams", must[[]store.Stream](t, "Streams")(s.Streams(lib1)), want)
	equal(t, "Streams of another library", len(must[[]store.Stream](t, "Streams")(s.Streams(lib2))), 0)
	// Origins that are all-ones bytes and all-but-zero bytes.
	hi := uuid.UUID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	lo := uuid.UUID{15: 1}
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, "r", 9, ver(1, hi), "x"), rec(lib1, "r", 10, ver(1, lo), "x"), rec(lib1, "r\x01", 1, ver(1, lo), "x")}})
	want = []store.Stream{
		stream(lib1, "l", devC), stream(lib1, "p", devA),
		stream(lib1, "r", lo), stream(lib1, "r", devA), stream(lib1, "r", devB), stream(lib1, "r", devC), stream(lib1, "r", hi),
		stream(lib1, "r\x01", lo), stream(lib1, "w", devA),
	}
	equal(t, "Streams with extreme origins", must[[]store.Stream](t, "Streams")(s.Streams(lib1)), want)
	// A stream whose only content goes away disappears.
	apply(t, s, &store.Batch{
		DropRecords: []store.RecordKey{{Library: lib1, ModelType: "r", ID: rid(4)}, {Library: lib1, ModelType: "r", ID: rid(9)}},
		PruneLog:    []store.Mark{{Stream: stream(lib1, "l", devC), HLC: ver(1, devC)}},
	})
	want = []store.Stream{
		stream(lib1, "p", devA),
		stream(lib1, "r", lo), stream(lib1, "r", devA), stream(lib1, "r", devB),
		stream(lib1, "r\x01", lo), stream(lib1, "w", devA),
	}
	equal(t, "Streams after dropping", must[[]store.Stream](t, "Streams")(s.Streams(lib1)), want)
}

func testLibraryIsolation(t *testing.T, s store.Store) {
	// Two libraries with the same model types, IDs, origins and HLCs.
	write := func(lib uuid.UUID, tag string) {
		st := stream(lib, model, devA)
		apply(t, s, &store.Batch{
			PutRecords:     []store.Record{rec(lib, model, 1, ver(10, devA), tag), tomb(lib, model, 2, ver(11, devA))},
			AppendLog:      []store.LogEntry{entry(lib, model, ver(10, devA), 1, tag)},
			SetWatermarks:  []store.Mark{{Stream: st, HLC: ver(10, devA)}},
			SetAcks:        []store.Ack{{Stream: st, Member: devB, HLC: ver(10, devA)}},
			SetPrunePoints: []store.PrunePoint{{Stream: st, Log: ver(1, devA)}},
			PutQuarantine:  []store.Quarantined{{Library: lib, HLC: ver(99, devB), From: devB, Message: []byte(tag)}},
			PutMembers:     []store.Member{{Library: lib, DeviceID: devA, Name: tag}},
		})
	}
	write(lib1, "one")
	write(lib2, "two")
	check := func(lib uuid.UUID, tag string) {
		t.Helper()
		st := stream(lib, model, devA)
		r := must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib, ModelType: model, ID: rid(1)}))
		equal(t, tag+": Record", string(r.Data), tag)
		rs := must[[]store.Record](t, "List")(s.List(lib, model, uuid.Nil, 10))
		if len(rs) != 2 || string(rs[0].Data) != tag || rs[0].Library != lib || rs[1].Library != lib {
			t.Errorf("%s: List = %s", tag, show(rs))
		}
		sp := must[store.StatePage](t, "StatePage")(s.StatePage(st, hlc.HLC{}, 10))
		if len(sp.Records) != 2 || string(sp.Records[0].Data) != tag {
			t.Errorf("%s: StatePage = %s", tag, show(sp.Records))
		}
		lp := must[store.LogPage](t, "LogPage")(s.LogPage(st, hlc.HLC{}, 10))
		if len(lp.Entries) != 1 || string(lp.Entries[0].Data) != tag || lp.Entries[0].Library != lib {
			t.Errorf("%s: LogPage = %s", tag, show(lp.Entries))
		}
		equal(t, tag+": Streams", must[[]store.Stream](t, "Streams")(s.Streams(lib)), []store.Stream{st})
		equal(t, tag+": Watermarks", must[[]store.Mark](t, "Watermarks")(s.Watermarks(lib)), []store.Mark{{Stream: st, HLC: ver(10, devA)}})
		equal(t, tag+": Acks", must[[]store.Ack](t, "Acks")(s.Acks(lib)), []store.Ack{{Stream: st, Member: devB, HLC: ver(10, devA)}})
		equal(t, tag+": PrunePoints", must[[]store.PrunePoint](t, "PrunePoints")(s.PrunePoints(lib)), []store.PrunePoint{{Stream: st, Log: ver(1, devA)}})
		equal(t, tag+": Quarantined", must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib, 10)), []store.Quarantined{{Library: lib, HLC: ver(99, devB), From: devB, Message: []byte(tag)}})
		equal(t, tag+": CountQuarantined", must[int](t, "CountQuarantined")(s.CountQuarantined(lib)), 1)
		equal(t, tag+": Members", must[[]store.Member](t, "Members")(s.Members(lib)), []store.Member{{Library: lib, DeviceID: devA, Name: tag}})
	}
	check(lib1, "one")
	check(lib2, "two")
	// Deleting in one library leaves the other whole.
	st := stream(lib1, model, devA)
	apply(t, s, &store.Batch{
		DropRecords:     []store.RecordKey{{Library: lib1, ModelType: model, ID: rid(1)}},
		DropQuarantine:  []store.QuarantineKey{{Library: lib1, HLC: ver(99, devB), From: devB}},
		DropMembers:     []store.MemberKey{{Library: lib1, DeviceID: devA}},
		PruneLog:        []store.Mark{{Stream: st, HLC: ver(100, devA)}},
		PurgeTombstones: []store.Mark{{Stream: st, HLC: ver(100, devA)}},
	})
	check(lib2, "two")
	equal(t, "lib1 records after deletes", len(must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 10))), 0)
	equal(t, "lib1 quarantine after deletes", must[int](t, "CountQuarantined")(s.CountQuarantined(lib1)), 0)
}

func testTombstones(t *testing.T, s store.Store) {
	sa := stream(lib1, model, devA)
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, ver(10, devA), "live"), rec(lib1, model, 2, ver(11, devA), "live")}})
	apply(t, s, &store.Batch{PutRecords: []store.Record{tomb(lib1, model, 1, ver(20, devA))}})
	want := tomb(lib1, model, 1, ver(20, devA))
	equal(t, "Record of a tombstone", must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)})), want)
	rs := must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 10))
	equal(t, "List with a tombstone", rs, []store.Record{want, rec(lib1, model, 2, ver(11, devA), "live")})
	p := must[store.StatePage](t, "StatePage")(s.StatePage(sa, hlc.HLC{}, 10))
	equal(t, "StatePage with a tombstone", p.Records, []store.Record{rec(lib1, model, 2, ver(11, devA), "live"), want})
	// A write over a tombstone revives the record (the caller decided).
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, ver(30, devA), "back")}})
	r := must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)}))
	equal(t, "revived record", r, rec(lib1, model, 1, ver(30, devA), "back"))
}

func testDropRecords(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, ver(10, devA), "1"), tomb(lib1, model, 2, ver(11, devA)), rec(lib1, model, 3, ver(12, devB), "3")}})
	apply(t, s, &store.Batch{DropRecords: []store.RecordKey{
		{Library: lib1, ModelType: model, ID: rid(1)},
		{Library: lib1, ModelType: model, ID: rid(2)},
		{Library: lib1, ModelType: model, ID: rid(77)}, // absent: fine
		{Library: lib2, ModelType: model, ID: rid(3)},  // other library: nothing
	}})
	for _, n := range []uint64{1, 2} {
		_, err := s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(n)})
		wantErr(t, fmt.Sprintf("Record %d after drop", n), err, store.ErrNotFound)
	}
	equal(t, "List after drop", ids(must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 10))), []uint64{3})
	equal(t, "devA's StatePage after drop", len(must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, model, devA), hlc.HLC{}, 10)).Records), 0)
	equal(t, "Streams after drop", must[[]store.Stream](t, "Streams")(s.Streams(lib1)), []store.Stream{stream(lib1, model, devB)})
	// Put it back: a dropped record is simply absent, not a tombstone.
	apply(t, s, &store.Batch{PutRecords: []store.Record{rec(lib1, model, 1, ver(5, devA), "again")}})
	equal(t, "List after re-put", ids(must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 10))), []uint64{1, 3})
}

func testBatchOrder(t *testing.T, s store.Store) {
	sa := stream(lib1, model, devA)
	// Later elements win; fields apply in declaration order.
	apply(t, s, &store.Batch{
		PutRecords: []store.Record{
			rec(lib1, model, 1, ver(10, devA), "first"),
			rec(lib1, model, 1, ver(30, devB), "second"),
			rec(lib1, model, 1, ver(20, devA), "third"),
			rec(lib1, model, 2, ver(40, devA), "dropped"),
		},
		DropRecords:   []store.RecordKey{{Library: lib1, ModelType: model, ID: rid(2)}},
		SetWatermarks: []store.Mark{{Stream: sa, HLC: ver(1, devA)}, {Stream: sa, HLC: ver(2, devA)}},
		PutMeta:       map[string][]byte{"k": []byte("v"), "gone": []byte("v")},
		DropMeta:      []string{"gone"},
	})
	equal(t, "record 1", must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)})), rec(lib1, model, 1, ver(20, devA), "third"))
	equal(t, "devA's stream", ids(must[store.StatePage](t, "StatePage")(s.StatePage(sa, hlc.HLC{}, 10)).Records), []uint64{1})
	equal(t, "devB's stream", len(must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, model, devB), hlc.HLC{}, 10)).Records), 0)
	_, err := s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(2)})
	wantErr(t, "record put then dropped in one batch", err, store.ErrNotFound)
	equal(t, "watermark set twice", must[hlc.HLC](t, "Watermark")(s.Watermark(sa)), ver(2, devA))
	_, err = s.Meta("gone")
	wantErr(t, "meta put then dropped", err, store.ErrNotFound)
	// Pruning runs after the atomic part: entries appended in the same
	// batch at or below the mark go.
	apply(t, s, &store.Batch{
		AppendLog:       []store.LogEntry{entry(lib1, model, ver(5, devA), 1, "x"), entry(lib1, model, ver(6, devA), 1, "y")},
		PruneLog:        []store.Mark{{Stream: sa, HLC: ver(5, devA)}},
		PutRecords:      []store.Record{tomb(lib1, model, 3, ver(7, devA))},
		PurgeTombstones: []store.Mark{{Stream: sa, HLC: ver(7, devA)}},
	})
	equal(t, "log after append and prune in one batch", stamps(must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, 10)).Entries), []uint64{6})
	_, err = s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(3)})
	wantErr(t, "tombstone put and purged in one batch", err, store.ErrNotFound)
}

func testMarks(t *testing.T, s store.Store) {
	sa, sb, so := stream(lib1, model, devA), stream(lib1, model, devB), stream(lib1, "album", devB)
	equal(t, "Watermark of an unknown stream", must[hlc.HLC](t, "Watermark")(s.Watermark(sa)), hlc.HLC{})
	apply(t, s, &store.Batch{
		SetWatermarks:  []store.Mark{{Stream: sb, HLC: ver(5, devB)}, {Stream: sa, HLC: ver(3, devA)}, {Stream: so, HLC: ver(1, devB)}},
		SetAcks:        []store.Ack{{Stream: sa, Member: devC, HLC: ver(3, devA)}, {Stream: sa, Member: devB, HLC: ver(2, devA)}, {Stream: so, Member: devA, HLC: ver(1, devB)}},
		SetPrunePoints: []store.PrunePoint{{Stream: sb, Log: ver(1, devB)}, {Stream: sa, Log: ver(1, devA), Tombstones: ver(2, devA)}},
	})
	// Replace, also backwards: the store does not compare.
	apply(t, s, &store.Batch{
		SetWatermarks:  []store.Mark{{Stream: sa, HLC: ver(2, devA)}},
		SetAcks:        []store.Ack{{Stream: sa, Member: devB, HLC: ver(9, devA)}},
		SetPrunePoints: []store.PrunePoint{{Stream: sa, Log: ver(4, devA)}},
	})
	equal(t, "Watermark", must[hlc.HLC](t, "Watermark")(s.Watermark(sa)), ver(2, devA))
	equal(t, "Watermarks", must[[]store.Mark](t, "Watermarks")(s.Watermarks(lib1)), []store.Mark{
		{Stream: so, HLC: ver(1, devB)}, {Stream: sa, HLC: ver(2, devA)}, {Stream: sb, HLC: ver(5, devB)},
	})
	equal(t, "Acks", must[[]store.Ack](t, "Acks")(s.Acks(lib1)), []store.Ack{
		{Stream: so, Member: devA, HLC: ver(1, devB)}, {Stream: sa, Member: devB, HLC: ver(9, devA)}, {Stream: sa, Member: devC, HLC: ver(3, devA)},
	})
	equal(t, "PrunePoints", must[[]store.PrunePoint](t, "PrunePoints")(s.PrunePoints(lib1)), []store.PrunePoint{
		{Stream: sa, Log: ver(4, devA)}, {Stream: sb, Log: ver(1, devB)},
	})
	// Page reads carry the stream's marks.
	p := must[store.StatePage](t, "StatePage")(s.StatePage(sa, hlc.HLC{}, 1))
	equal(t, "StatePage marks", []any{p.Watermark, p.PrunePoint}, []any{ver(2, devA), store.PrunePoint{Stream: sa, Log: ver(4, devA)}})
	lp := must[store.LogPage](t, "LogPage")(s.LogPage(sb, hlc.HLC{}, 1))
	equal(t, "LogPage marks", []any{lp.Watermark, lp.PrunePoint}, []any{ver(5, devB), store.PrunePoint{Stream: sb, Log: ver(1, devB)}})
	equal(t, "Watermarks of another library", len(must[[]store.Mark](t, "Watermarks")(s.Watermarks(lib2))), 0)
}

func testQuarantine(t *testing.T, s store.Store) {
	q := func(ts uint64, from uuid.UUID, msg string) store.Quarantined {
		return store.Quarantined{Library: lib1, HLC: ver(ts, devA), From: from, Message: []byte(msg)}
	}
	apply(t, s, &store.Batch{PutQuarantine: []store.Quarantined{
		q(30, devB, "30b"), q(10, devC, "10c"), q(20, devB, "20b"), q(10, devB, "10b"),
		{Library: lib2, HLC: ver(1, devA), From: devB, Message: []byte("other")},
	}})
	all := must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib1, 100))
	equal(t, "Quarantined in HLC then sender order", all, []store.Quarantined{q(10, devB, "10b"), q(10, devC, "10c"), q(20, devB, "20b"), q(30, devB, "30b")})
	equal(t, "Quarantined limit 2", must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib1, 2)), all[:2])
	equal(t, "CountQuarantined", must[int](t, "CountQuarantined")(s.CountQuarantined(lib1)), 4)
	// Replace one, drop two (one absent).
	apply(t, s, &store.Batch{
		PutQuarantine:  []store.Quarantined{q(20, devB, "20b again")},
		DropQuarantine: []store.QuarantineKey{q(10, devB, "").Key(), q(10, devA, "").Key(), q(30, devB, "").Key()},
	})
	equal(t, "Quarantined after drops", must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib1, 100)), []store.Quarantined{q(10, devC, "10c"), q(20, devB, "20b again")})
	equal(t, "CountQuarantined after drops", must[int](t, "CountQuarantined")(s.CountQuarantined(lib1)), 2)
	equal(t, "CountQuarantined of lib2", must[int](t, "CountQuarantined")(s.CountQuarantined(lib2)), 1)
}

func testClockBound(t *testing.T, s store.Store) {
	steps := []struct{ set, want uint64 }{{0, 0}, {100, 100}, {50, 100}, {0, 100}, {101, 101}, {1 << 63, 1 << 63}, {7, 1 << 63}}
	for _, st := range steps {
		apply(t, s, &store.Batch{ClockBound: st.set})
		equal(t, fmt.Sprintf("ClockBound after setting %d", st.set), must[uint64](t, "ClockBound")(s.ClockBound()), st.want)
	}
}

func testConfig(t *testing.T, s store.Store) {
	libA := store.Library{ID: lib2, Name: "work", Secret: []byte{1, 2, 3}, CreatedAt: 1700000000000}
	libB := store.Library{ID: lib1, Name: "home"}
	apply(t, s, &store.Batch{PutLibraries: []store.Library{libA, libB}})
	equal(t, "Libraries in ID order", must[[]store.Library](t, "Libraries")(s.Libraries()), []store.Library{libB, libA})
	libB.Name = "home 2"
	apply(t, s, &store.Batch{PutLibraries: []store.Library{libB}})
	equal(t, "Libraries after rename", must[[]store.Library](t, "Libraries")(s.Libraries()), []store.Library{libB, libA})

	mC := store.Member{Library: lib1, DeviceID: devC, PeerID: "12D3KooWC", Name: "phone", AddedBy: devA, AddedAt: 5, LastSeen: 9}
	mA := store.Member{Library: lib1, DeviceID: devA, PeerID: "12D3KooWA", Name: "desktop"}
	mB := store.Member{Library: lib1, DeviceID: devB, Name: "laptop"}
	apply(t, s, &store.Batch{PutMembers: []store.Member{mC, mA, mB, {Library: lib2, DeviceID: devA, Name: "elsewhere"}}})
	equal(t, "Members in device order", must[[]store.Member](t, "Members")(s.Members(lib1)), []store.Member{mA, mB, mC})
	mC.LastSeen = 99
	apply(t, s, &store.Batch{PutMembers: []store.Member{mC}, DropMembers: []store.MemberKey{{Library: lib1, DeviceID: devB}, {Library: lib1, DeviceID: ID(0xd0, 77)}}})
	equal(t, "Members after update and drop", must[[]store.Member](t, "Members")(s.Members(lib1)), []store.Member{mA, mC})
	equal(t, "Members of lib2", len(must[[]store.Member](t, "Members")(s.Members(lib2))), 1)

	apply(t, s, &store.Batch{PutMeta: map[string][]byte{"device_id": devA[:], "empty": {}, "x": []byte("1")}})
	equal(t, "Meta", must[[]byte](t, "Meta")(s.Meta("device_id")), devA[:])
	if v, err := s.Meta("empty"); err != nil || v != nil {
		t.Errorf("Meta of an empty value = %#v, %v; want nil, nil", v, err)
	}
	apply(t, s, &store.Batch{PutMeta: map[string][]byte{"x": []byte("2")}, DropMeta: []string{"device_id", "never"}})
	_, err := s.Meta("device_id")
	wantErr(t, "Meta after drop", err, store.ErrNotFound)
	equal(t, "Meta after replace", string(must[[]byte](t, "Meta")(s.Meta("x"))), "2")
}

func testPruneLog(t *testing.T, s store.Store) {
	sa, sb := stream(lib1, model, devA), stream(lib1, model, devB)
	// More entries than one deletion chunk of a store that chunks.
	const n = 2500
	for start := 1; start <= n; start += 1000 {
		var b store.Batch
		for i := start; i < start+1000 && i <= n; i++ {
			b.AppendLog = append(b.AppendLog, entry(lib1, model, ver(uint64(i), devA), uint64(i), ""))
			if i%100 == 0 {
				b.AppendLog = append(b.AppendLog, entry(lib1, model, ver(uint64(i), devB), uint64(i), ""))
			}
		}
		apply(t, s, &b)
	}
	apply(t, s, &store.Batch{
		SetPrunePoints: []store.PrunePoint{{Stream: sa, Log: ver(2200, devA)}},
		PruneLog:       []store.Mark{{Stream: sa, HLC: ver(2200, devA)}},
	})
	p := must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, n))
	if len(p.Entries) != n-2200 || p.Entries[0].HLC != ver(2201, devA) {
		t.Fatalf("after pruning at 2200: %d entries starting at %v, want %d starting at 2201", len(p.Entries), p.Entries[0].HLC, n-2200)
	}
	equal(t, "prune point", p.PrunePoint.Log, ver(2200, devA))
	equal(t, "devB's log untouched", len(must[store.LogPage](t, "LogPage")(s.LogPage(sb, hlc.HLC{}, n)).Entries), n/100)
	// The mark is inclusive, and an HLC between entries works.
	apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: sa, HLC: hlc.HLC{Timestamp: 2300, Counter: 1}}}})
	p = must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, n))
	equal(t, "first entry after pruning at (2300, 1)", p.Entries[0].HLC, ver(2301, devA))
	apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: sa, HLC: ver(2301, devA)}}})
	p = must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, n))
	equal(t, "first entry after pruning at 2301", p.Entries[0].HLC, ver(2302, devA))
	// Idempotent; an unknown stream is fine.
	apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: sa, HLC: ver(2301, devA)}, {Stream: stream(lib2, model, devA), HLC: ver(9999, devA)}}})
	equal(t, "entries after pruning again", len(must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, n)).Entries), n-2301)
	apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: sa, HLC: ver(1<<40, devA)}}})
	equal(t, "entries after pruning everything", len(must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, n)).Entries), 0)
	equal(t, "Streams after pruning devA's log", must[[]store.Stream](t, "Streams")(s.Streams(lib1)), []store.Stream{sa, sb})
}

func testPurgeTombstones(t *testing.T, s store.Store) {
	sa := stream(lib1, model, devA)
	// 2,400 records of devA: every third a live one; another stream's
	// tombstones around.
	const n = 2400
	for start := 1; start <= n; start += 1000 {
		var b store.Batch
		for i := start; i < start+1000 && i <= n; i++ {
			if i%3 == 0 {
				b.PutRecords = append(b.PutRecords, rec(lib1, model, uint64(i), ver(uint64(i), devA), "live"))
			} else {
				b.PutRecords = append(b.PutRecords, tomb(lib1, model, uint64(i), ver(uint64(i), devA)))
			}
			if i%100 == 0 {
				b.PutRecords = append(b.PutRecords, tomb(lib1, model, uint64(10000+i), ver(uint64(i), devB)))
			}
		}
		apply(t, s, &b)
	}
	apply(t, s, &store.Batch{
		SetPrunePoints:  []store.PrunePoint{{Stream: sa, Tombstones: ver(2000, devA)}},
		PurgeTombstones: []store.Mark{{Stream: sa, HLC: ver(2000, devA)}},
	})
	rs := must[store.StatePage](t, "StatePage")(s.StatePage(sa, hlc.HLC{}, 2*n)).Records
	for _, r := range rs {
		ts := r.Version.Timestamp
		if r.Deleted && ts <= 2000 {
			t.Fatalf("tombstone %s at or below the mark survived", show(r))
		}
	}
	want := 2000/3 + (n - 2000)
	equal(t, "records left after purge", len(rs), want)
	for i := uint64(3); i <= 2000; i += 3 {
		if _, err := s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(i)}); err != nil {
			t.Fatalf("live record %d below the mark: %v", i, err)
		}
	}
	_, err := s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)})
	wantErr(t, "purged tombstone", err, store.ErrNotFound)
	equal(t, "List after purge", len(must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 3*n))), want+n/100)
	equal(t, "devB's tombstones untouched", len(must[store.StatePage](t, "StatePage")(s.StatePage(stream(lib1, model, devB), hlc.HLC{}, n)).Records), n/100)
	// A tombstone that moved above the mark in its stream stays.
	apply(t, s, &store.Batch{
		PutRecords:      []store.Record{tomb(lib1, model, 2001, ver(5000, devA))},
		PurgeTombstones: []store.Mark{{Stream: sa, HLC: ver(2001, devA)}},
	})
	if r, err := s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(2001)}); err != nil || r.Version != ver(5000, devA) {
		t.Errorf("tombstone moved above the mark: %s, %v", show(r), err)
	}
}

// writeLibrary fills library lib of s with something of every per-library
// kind, the same model type, IDs, streams and HLCs whatever lib is: n
// records of devA (every third a tombstone) with n log entries, one record
// of devB, marks, an acknowledgement, a quarantined message, the library
// and a member. Data is tagged with tag.
func writeLibrary(t *testing.T, s store.Store, lib uuid.UUID, tag string, n int) {
	t.Helper()
	sa, sb := stream(lib, model, devA), stream(lib, model, devB)
	for start := 1; start <= n; start += 500 {
		var b store.Batch
		for i := start; i < start+500 && i <= n; i++ {
			if i%3 == 0 {
				b.PutRecords = append(b.PutRecords, tomb(lib, model, uint64(i), ver(uint64(i), devA)))
			} else {
				b.PutRecords = append(b.PutRecords, rec(lib, model, uint64(i), ver(uint64(i), devA), tag))
			}
			b.AppendLog = append(b.AppendLog, entry(lib, model, ver(uint64(i), devA), uint64(i), tag))
		}
		apply(t, s, &b)
	}
	apply(t, s, &store.Batch{
		PutRecords:     []store.Record{rec(lib, "album", 1, ver(5, devB), tag)},
		SetWatermarks:  []store.Mark{{Stream: sa, HLC: ver(uint64(n), devA)}, {Stream: sb, HLC: ver(5, devB)}},
		SetAcks:        []store.Ack{{Stream: sa, Member: devB, HLC: ver(uint64(n), devA)}},
		SetPrunePoints: []store.PrunePoint{{Stream: sa, Log: ver(1, devA)}},
		PutQuarantine:  []store.Quarantined{{Library: lib, HLC: ver(99, devB), From: devB, Message: []byte(tag)}},
		PutLibraries:   []store.Library{{ID: lib, Name: tag}},
		PutMembers:     []store.Member{{Library: lib, DeviceID: devA, Name: tag}, {Library: lib, DeviceID: devB, Name: tag}},
	})
}

// checkLibraryData fails unless library lib holds what writeLibrary wrote
// (its configuration aside).
func checkLibraryData(t *testing.T, s store.Store, lib uuid.UUID, tag string, n int) {
	t.Helper()
	sa, sb := stream(lib, model, devA), stream(lib, "album", devB)
	r := must[store.Record](t, "Record")(s.Record(store.RecordKey{Library: lib, ModelType: model, ID: rid(1)}))
	equal(t, tag+": Record", string(r.Data), tag)
	equal(t, tag+": List", len(must[[]store.Record](t, "List")(s.List(lib, model, uuid.Nil, 2*n))), n)
	sp := must[store.StatePage](t, "StatePage")(s.StatePage(sa, hlc.HLC{}, 2*n))
	if len(sp.Records) != n || string(sp.Records[0].Data) != tag || sp.Watermark != ver(uint64(n), devA) || sp.PrunePoint.Log != ver(1, devA) {
		t.Errorf("%s: StatePage: %d records, watermark %v, prune point %+v", tag, len(sp.Records), sp.Watermark, sp.PrunePoint)
	}
	equal(t, tag+": devB's StatePage", len(must[store.StatePage](t, "StatePage")(s.StatePage(sb, hlc.HLC{}, 10)).Records), 1)
	lp := must[store.LogPage](t, "LogPage")(s.LogPage(sa, hlc.HLC{}, 2*n))
	if len(lp.Entries) != n || string(lp.Entries[0].Data) != tag {
		t.Errorf("%s: LogPage: %d entries", tag, len(lp.Entries))
	}
	equal(t, tag+": Streams", must[[]store.Stream](t, "Streams")(s.Streams(lib)), []store.Stream{sb, sa, stream(lib, model, devB)})
	equal(t, tag+": Watermarks", len(must[[]store.Mark](t, "Watermarks")(s.Watermarks(lib))), 2)
	equal(t, tag+": Acks", must[[]store.Ack](t, "Acks")(s.Acks(lib)), []store.Ack{{Stream: sa, Member: devB, HLC: ver(uint64(n), devA)}})
	equal(t, tag+": PrunePoints", must[[]store.PrunePoint](t, "PrunePoints")(s.PrunePoints(lib)), []store.PrunePoint{{Stream: sa, Log: ver(1, devA)}})
	equal(t, tag+": Quarantined", must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib, 10)), []store.Quarantined{{Library: lib, HLC: ver(99, devB), From: devB, Message: []byte(tag)}})
}

// checkLibraryConfig fails unless lib's configuration is listed (listed)
// or gone (!listed).
func checkLibraryConfig(t *testing.T, s store.Store, lib uuid.UUID, tag string, listed bool) {
	t.Helper()
	found := false
	for _, l := range must[[]store.Library](t, "Libraries")(s.Libraries()) {
		if l.ID == lib {
			found = true
		}
	}
	equal(t, tag+": listed by Libraries", found, listed)
	ms := must[[]store.Member](t, "Members")(s.Members(lib))
	if listed {
		equal(t, tag+": Members", ms, []store.Member{{Library: lib, DeviceID: devA, Name: tag}, {Library: lib, DeviceID: devB, Name: tag}})
	} else {
		equal(t, tag+": Members", len(ms), 0)
	}
}

// checkLibraryPurged fails unless every per-library read of lib is empty.
func checkLibraryPurged(t *testing.T, s store.Store, lib uuid.UUID, n int) {
	t.Helper()
	_, err := s.Record(store.RecordKey{Library: lib, ModelType: model, ID: rid(1)})
	wantErr(t, "Record of a purged library", err, store.ErrNotFound)
	for _, m := range []string{model, "album"} {
		if rs := must[[]store.Record](t, "List")(s.List(lib, m, uuid.Nil, 2*n)); len(rs) != 0 {
			t.Errorf("List(%s) of a purged library: %d records", m, len(rs))
		}
	}
	for _, st := range []store.Stream{stream(lib, model, devA), stream(lib, model, devB), stream(lib, "album", devB)} {
		equal(t, "StatePage of a purged library", must[store.StatePage](t, "StatePage")(s.StatePage(st, hlc.HLC{}, 2*n)), store.StatePage{PrunePoint: store.PrunePoint{Stream: st}})
		equal(t, "LogPage of a purged library", must[store.LogPage](t, "LogPage")(s.LogPage(st, hlc.HLC{}, 2*n)), store.LogPage{PrunePoint: store.PrunePoint{Stream: st}})
		equal(t, "Watermark of a purged library", must[hlc.HLC](t, "Watermark")(s.Watermark(st)), hlc.HLC{})
	}
	equal(t, "Streams of a purged library", len(must[[]store.Stream](t, "Streams")(s.Streams(lib))), 0)
	equal(t, "Watermarks of a purged library", len(must[[]store.Mark](t, "Watermarks")(s.Watermarks(lib))), 0)
	equal(t, "Acks of a purged library", len(must[[]store.Ack](t, "Acks")(s.Acks(lib))), 0)
	equal(t, "PrunePoints of a purged library", len(must[[]store.PrunePoint](t, "PrunePoints")(s.PrunePoints(lib))), 0)
	equal(t, "Quarantined of a purged library", len(must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib, 10))), 0)
	equal(t, "CountQuarantined of a purged library", must[int](t, "CountQuarantined")(s.CountQuarantined(lib)), 0)
}

func testDropLibraries(t *testing.T, s store.Store) {
	const n = 30
	writeLibrary(t, s, lib1, "one", n)
	writeLibrary(t, s, lib2, "two", n)
	// A member put in the same batch goes too (fields apply in order); an
	// unknown library is fine.
	apply(t, s, &store.Batch{
		PutMembers:    []store.Member{{Library: lib1, DeviceID: devC}},
		DropLibraries: []uuid.UUID{lib1, ID(0x11, 77)},
	})
	checkLibraryConfig(t, s, lib1, "one", false)
	checkLibraryConfig(t, s, lib2, "two", true)
	// Without a purge the data stays readable.
	checkLibraryData(t, s, lib1, "one", n)
	checkLibraryData(t, s, lib2, "two", n)
	// Dropping again is fine; the library can come back.
	apply(t, s, &store.Batch{DropLibraries: []uuid.UUID{lib1}})
	apply(t, s, &store.Batch{
		PutLibraries: []store.Library{{ID: lib1, Name: "one"}},
		PutMembers:   []store.Member{{Library: lib1, DeviceID: devA, Name: "one"}, {Library: lib1, DeviceID: devB, Name: "one"}},
	})
	checkLibraryConfig(t, s, lib1, "one", true)
	// A library put in the same batch as its drop is dropped: PutLibraries
	// applies before DropLibraries.
	apply(t, s, &store.Batch{PutLibraries: []store.Library{{ID: lib1, Name: "again"}}, DropLibraries: []uuid.UUID{lib1}})
	checkLibraryConfig(t, s, lib1, "one", false)
}

func testPurgeLibraries(t *testing.T, s store.Store) {
	// More than one deletion chunk of a store that chunks.
	const n = 1200
	writeLibrary(t, s, lib1, "one", n)
	writeLibrary(t, s, lib2, "two", n)
	apply(t, s, &store.Batch{DropLibraries: []uuid.UUID{lib1}, PurgeLibraries: []uuid.UUID{lib1}})
	checkLibraryPurged(t, s, lib1, n)
	checkLibraryConfig(t, s, lib1, "one", false)
	checkLibraryData(t, s, lib2, "two", n)
	checkLibraryConfig(t, s, lib2, "two", true)
	// Idempotent; an unknown library is fine.
	apply(t, s, &store.Batch{PurgeLibraries: []uuid.UUID{lib1, lib1, ID(0x11, 77)}})
	checkLibraryPurged(t, s, lib1, n)
	checkLibraryData(t, s, lib2, "two", n)
	// A purge without a drop keeps the configuration; writes after it land.
	writeLibrary(t, s, lib1, "one", 10)
	apply(t, s, &store.Batch{PurgeLibraries: []uuid.UUID{lib1}})
	checkLibraryPurged(t, s, lib1, n)
	checkLibraryConfig(t, s, lib1, "one", true)
	writeLibrary(t, s, lib1, "back", 10)
	checkLibraryData(t, s, lib1, "back", 10)
	// What the batch itself writes is purged too: the purge runs after it.
	apply(t, s, &store.Batch{
		PutRecords:     []store.Record{rec(lib1, model, 1, ver(5000, devA), "x")},
		AppendLog:      []store.LogEntry{entry(lib1, model, ver(5000, devA), 1, "x")},
		PurgeLibraries: []uuid.UUID{lib1},
	})
	checkLibraryPurged(t, s, lib1, n)
	checkLibraryData(t, s, lib2, "two", n)
}

func testCopies(t *testing.T, s store.Store) {
	data := []byte("original")
	secret := []byte("secret")
	msg := []byte("message")
	meta := []byte("meta")
	r := rec(lib1, model, 1, ver(1, devA), "")
	r.Data = data
	e := entry(lib1, model, ver(1, devA), 1, "")
	e.Data = data
	apply(t, s, &store.Batch{
		PutRecords:    []store.Record{r},
		AppendLog:     []store.LogEntry{e},
		PutQuarantine: []store.Quarantined{{Library: lib1, HLC: ver(2, devB), From: devB, Message: msg}},
		PutLibraries:  []store.Library{{ID: lib1, Secret: secret}},
		PutMeta:       map[string][]byte{"k": meta},
	})
	// The caller's slices are not kept.
	for _, b := range [][]byte{data, secret, msg, meta} {
		for i := range b {
			b[i] = 'X'
		}
	}
	k := store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)}
	st := stream(lib1, model, devA)
	check := func(when string) {
		t.Helper()
		equal(t, when+": Record", string(must[store.Record](t, "Record")(s.Record(k)).Data), "original")
		equal(t, when+": log", string(must[store.LogPage](t, "LogPage")(s.LogPage(st, hlc.HLC{}, 1)).Entries[0].Data), "original")
		equal(t, when+": quarantine", string(must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib1, 1))[0].Message), "message")
		equal(t, when+": secret", string(must[[]store.Library](t, "Libraries")(s.Libraries())[0].Secret), "secret")
		equal(t, when+": meta", string(must[[]byte](t, "Meta")(s.Meta("k"))), "meta")
	}
	check("after the caller changed its slices")
	// The slices returned are the caller's.
	scribble := func(b []byte) {
		for i := range b {
			b[i] = 'Y'
		}
	}
	scribble(must[store.Record](t, "Record")(s.Record(k)).Data)
	scribble(must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 1))[0].Data)
	scribble(must[store.StatePage](t, "StatePage")(s.StatePage(st, hlc.HLC{}, 1)).Records[0].Data)
	scribble(must[store.LogPage](t, "LogPage")(s.LogPage(st, hlc.HLC{}, 1)).Entries[0].Data)
	scribble(must[[]store.Quarantined](t, "Quarantined")(s.Quarantined(lib1, 1))[0].Message)
	scribble(must[[]store.Library](t, "Libraries")(s.Libraries())[0].Secret)
	scribble(must[[]byte](t, "Meta")(s.Meta("k")))
	check("after the caller changed returned slices")
}

func testConcurrent(t *testing.T, s store.Store) {
	// Writers and readers at once (run with -race). Each writer owns a
	// stream; each page and its watermark land together, so a reader never
	// sees a watermark above the records it has.
	const writers, pages, per = 3, 20, 20
	done := make(chan error, writers+1)
	for w := 0; w < writers; w++ {
		dev := ID(0xd1, uint64(w+1))
		go func() {
			st := stream(lib1, model, dev)
			for p := 0; p < pages; p++ {
				var b store.Batch
				for i := 0; i < per; i++ {
					n := uint64(p*per + i + 1)
					b.PutRecords = append(b.PutRecords, store.Record{Library: lib1, ModelType: model, ID: ID(0x7f+byte(w), n), Version: ver(n, dev), Data: []byte("x")})
				}
				b.SetWatermarks = []store.Mark{{Stream: st, HLC: ver(uint64((p+1)*per), dev)}}
				if err := s.Apply(&b); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			for w := 0; w < writers; w++ {
				dev := ID(0xd1, uint64(w+1))
				p, err := s.StatePage(stream(lib1, model, dev), hlc.HLC{}, pages*per)
				if err != nil {
					done <- err
					return
				}
				if int(p.Watermark.Timestamp) > len(p.Records) {
					done <- fmt.Errorf("stream %d: watermark %d with only %d records in the same snapshot", w, p.Watermark.Timestamp, len(p.Records))
					return
				}
			}
		}
	}()
	for w := 0; w < writers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	equal(t, "records after concurrent writes", len(must[[]store.Record](t, "List")(s.List(lib1, model, uuid.Nil, 10000))), writers*pages*per)
}

func testClose(t *testing.T, s store.Store) {
	apply(t, s, fullBatch())
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	st := stream(lib1, model, devA)
	calls := map[string]error{
		"Apply":            s.Apply(fullBatch()),
		"Record":           second(s.Record(store.RecordKey{Library: lib1, ModelType: model, ID: rid(1)})),
		"List":             second(s.List(lib1, model, uuid.Nil, 1)),
		"StatePage":        second(s.StatePage(st, hlc.HLC{}, 1)),
		"LogPage":          second(s.LogPage(st, hlc.HLC{}, 1)),
		"Streams":          second(s.Streams(lib1)),
		"Watermark":        second(s.Watermark(st)),
		"Watermarks":       second(s.Watermarks(lib1)),
		"Acks":             second(s.Acks(lib1)),
		"PrunePoints":      second(s.PrunePoints(lib1)),
		"Quarantined":      second(s.Quarantined(lib1, 1)),
		"CountQuarantined": second(s.CountQuarantined(lib1)),
		"CountLog":         second(s.CountLog(lib1)),
		"ClockBound":       second(s.ClockBound()),
		"Libraries":        second(s.Libraries()),
		"Members":          second(s.Members(lib1)),
		"Meta":             second(s.Meta("k")),
	}
	for name, err := range calls {
		wantErr(t, name+" after Close", err, store.ErrClosed)
	}
}

// normalize makes empty result slices nil, so that a store may return either.
func normalize(v any) any {
	switch x := v.(type) {
	case store.StatePage:
		if len(x.Records) == 0 {
			x.Records = nil
		}
		return x
	case store.LogPage:
		if len(x.Entries) == 0 {
			x.Entries = nil
		}
		return x
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.Len() == 0 {
		return reflect.Zero(rv.Type()).Interface()
	}
	return v
}

func equalQuiet(got, want any) bool {
	return reflect.DeepEqual(normalize(got), normalize(want))
}
