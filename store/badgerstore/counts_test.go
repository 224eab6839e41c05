package badgerstore

import (
	"maps"
	"testing"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// TestCountRecords: the counts follow puts (new records and updates),
// tombstones, drops and the purge of tombstones; Open of a directory of
// schema 2 counts its records (whatever counts it holds) and raises it to 3.
func TestCountRecords(t *testing.T) {
	dir := t.TempDir()
	lib, dev := storetest.ID(0x11, 1), storetest.ID(0xd0, 1)
	s := openTest(t, dir, testOptions())
	check := func(what string, want map[string]int) {
		t.Helper()
		got, err := s.CountRecords(lib)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("%s: CountRecords = %v, %v; want %v", what, got, err, want)
		}
	}
	check("empty", map[string]int{})
	rec := func(model string, i, ts int, deleted bool) store.Record {
		r := store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, uint64(i)),
			Version: hlc.HLC{Timestamp: uint64(ts), DeviceID: dev}, Deleted: deleted}
		if !deleted {
			r.Data = []byte{0x01}
		}
		return r
	}
	apply := func(b *store.Batch) {
		t.Helper()
		if err := s.Apply(b); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitPruned(); err != nil {
			t.Fatal(err)
		}
	}
	var b store.Batch
	for i := 1; i <= 30; i++ {
		b.PutRecords = append(b.PutRecords, rec("entry", i, i, false))
	}
	b.PutRecords = append(b.PutRecords, rec("tag", 1, 1, false), rec("tag", 2, 2, false))
	apply(&b)
	check("30 entries, 2 tags", map[string]int{"entry": 30, "tag": 2})
	// Updates (one with Replaced, as the engine gives it, one without) and
	// a delete (a tombstone) add nothing; a new record adds one.
	apply(&store.Batch{PutRecords: []store.Record{rec("entry", 1, 100, false)}, Replaced: []hlc.HLC{{Timestamp: 1, DeviceID: dev}}})
	apply(&store.Batch{PutRecords: []store.Record{rec("entry", 2, 101, false), rec("entry", 3, 102, true), rec("entry", 31, 103, false)}})
	check("after updates, a tombstone and a new entry", map[string]int{"entry": 31, "tag": 2})
	apply(&store.Batch{DropRecords: []store.RecordKey{{Library: lib, ModelType: "tag", ID: storetest.ID(0x7e, 1)}, {Library: lib, ModelType: "tag", ID: storetest.ID(0x7e, 9)}}})
	check("after dropping a tag and one never stored", map[string]int{"entry": 31, "tag": 1})
	apply(&store.Batch{PurgeTombstones: []store.Mark{{Stream: store.Stream{Library: lib, ModelType: "entry", Origin: dev}, HLC: hlc.HLC{Timestamp: 200, DeviceID: dev}}}})
	check("after purging the tombstone", map[string]int{"entry": 30, "tag": 1})
	apply(&store.Batch{DropRecords: []store.RecordKey{{Library: lib, ModelType: "tag", ID: storetest.ID(0x7e, 2)}}})
	check("after dropping the last tag", map[string]int{"entry": 30})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A directory of schema 2, with a count that is wrong.
	rawSet(t, dir, schemaKey, appendSchemaValue(nil, 2), modelPrefix(nil, kindCount, lib, "entry"), appendUint64Value(nil, 999),
		modelPrefix(nil, kindCount, lib, "album"), appendUint64Value(nil, 5))
	s = openTest(t, dir, testOptions())
	check("after raising schema 2", map[string]int{"entry": 30})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, testOptions())
	check("after reopening", map[string]int{"entry": 30})
}
