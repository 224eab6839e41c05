package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"

	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// testOptions are small and quick: no fsync (tests do not cut power), no GC.
func testOptions() Options {
	o := DefaultOptions()
	o.SyncWrites = false
	o.GCInterval = -1
	return o
}

func openTest(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the suite on a Store whose Apply also waits for the
// batch's pruning (which a Store runs in the background), because the suite
// reads right after Apply what PruneLog and PurgeTombstones deleted.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return waitingStore{openTest(t, t.TempDir(), testOptions())} })
}

// waitingStore is a Store whose Apply returns once the batch's pruning ran.
type waitingStore struct{ *Store }

func (w waitingStore) Apply(b *store.Batch) error {
	if err := w.Store.Apply(b); err != nil {
		return err
	}
	return w.WaitPruned()
}

var (
	lib   = storetest.ID(0x11, 1)
	devA  = storetest.ID(0xd0, 1)
	devB  = storetest.ID(0xd0, 2)
	model = "entry"
)

func ver(ts uint64, dev uuid.UUID) hlc.HLC { return hlc.HLC{Timestamp: ts, DeviceID: dev} }

// snapshot reads everything the fixtures below write, for comparisons.
type snapshot struct {
	Records     []store.Record
	StateA      store.StatePage
	LogA        store.LogPage
	Streams     []store.Stream
	Watermarks  []store.Mark
	Acks        []store.Ack
	PrunePoints []store.PrunePoint
	Quarantined []store.Quarantined
	Clock       uint64
	Libraries   []store.Library
	Members     []store.Member
	Meta        []byte
}

func readAll(t *testing.T, s store.Reader) snapshot {
	t.Helper()
	var sn snapshot
	var err error
	check := func(what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	st := store.Stream{Library: lib, ModelType: model, Origin: devA}
	sn.Records, err = s.List(lib, model, uuid.Nil, 1<<20)
	check("List")
	sn.StateA, err = s.StatePage(st, hlc.HLC{}, 1<<20)
	check("StatePage")
	sn.LogA, err = s.LogPage(st, hlc.HLC{}, 1<<20)
	check("LogPage")
	sn.Streams, err = s.Streams(lib)
	check("Streams")
	sn.Watermarks, err = s.Watermarks(lib)
	check("Watermarks")
	sn.Acks, err = s.Acks(lib)
	check("Acks")
	sn.PrunePoints, err = s.PrunePoints(lib)
	check("PrunePoints")
	sn.Quarantined, err = s.Quarantined(lib, 100)
	check("Quarantined")
	sn.Clock, err = s.ClockBound()
	check("ClockBound")
	sn.Libraries, err = s.Libraries()
	check("Libraries")
	sn.Members, err = s.Members(lib)
	check("Members")
	sn.Meta, err = s.Meta("k")
	check("Meta")
	return sn
}

// fill writes some of everything, in several batches.
func fill(t *testing.T, s store.Store) {
	t.Helper()
	st := store.Stream{Library: lib, ModelType: model, Origin: devA}
	for p := uint64(0); p < 5; p++ {
		var b store.Batch
		for i := uint64(1); i <= 500; i++ {
			n := p*500 + i
			dev := devA
			if n%4 == 0 {
				dev = devB
			}
			r := store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, n), Version: ver(n, dev), Data: fmt.Appendf(nil, "record %d", n)}
			if n%7 == 0 {
				r.Data, r.Deleted = nil, true
			}
			b.PutRecords = append(b.PutRecords, r)
			if n%5 == 0 {
				b.AppendLog = append(b.AppendLog, store.LogEntry{Library: lib, ModelType: model, HLC: ver(n, devA), RecordID: r.ID, ChangeType: "Insert", Data: r.Data, Prev: ver(n-5, devA)})
			}
		}
		b.SetWatermarks = []store.Mark{{Stream: st, HLC: ver((p+1)*500, devA)}}
		apply(t, s, &b)
	}
	apply(t, s, &store.Batch{
		SetAcks:         []store.Ack{{Stream: st, Member: devB, HLC: ver(100, devA)}},
		SetPrunePoints:  []store.PrunePoint{{Stream: st, Log: ver(50, devA), Tombstones: ver(70, devA)}},
		PruneLog:        []store.Mark{{Stream: st, HLC: ver(50, devA)}},
		PurgeTombstones: []store.Mark{{Stream: st, HLC: ver(70, devA)}},
		PutQuarantine:   []store.Quarantined{{Library: lib, HLC: ver(1<<45, devB), From: devB, Message: []byte("later")}},
		ClockBound:      777,
		PutLibraries:    []store.Library{{ID: lib, Name: "home", Secret: []byte("s3cret"), CreatedAt: 17}},
		PutMembers:      []store.Member{{Library: lib, DeviceID: devA, PeerID: "12D3KooWA", Name: "desktop", AddedAt: 1, LastSeen: 2}, {Library: lib, DeviceID: devB, AddedBy: devA}},
		PutMeta:         map[string][]byte{"k": []byte("v")},
	})
	if bs, ok := s.(*Store); ok {
		if err := bs.WaitPruned(); err != nil {
			t.Fatalf("WaitPruned: %v", err)
		}
	}
}

func apply(t *testing.T, s store.Store, b *store.Batch) {
	t.Helper()
	if err := s.Apply(b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	before := readAll(t, s)
	if len(before.Records) < 2000 || len(before.LogA.Entries) == 0 || len(before.Streams) != 2 {
		t.Fatalf("fixture too small: %d records, %d log entries, %d streams", len(before.Records), len(before.LogA.Entries), len(before.Streams))
	}
	// The same batches on Mem read the same.
	m := store.NewMem()
	fill(t, m)
	if mem := readAll(t, m); !reflect.DeepEqual(mem, before) {
		t.Errorf("Badger and Mem differ after the same batches")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, o)
	if after := readAll(t, s); !reflect.DeepEqual(after, before) {
		t.Errorf("after reopening, the store reads differently")
	}
}

func TestDefaultOptions(t *testing.T) {
	o, err := DefaultOptions().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	bo := badgerOptions(t.TempDir(), o)
	got := fmt.Sprint(bo.MemTableSize, bo.NumMemtables, bo.Compression, bo.BlockCacheSize, bo.IndexCacheSize, bo.SyncWrites)
	want := fmt.Sprint(int64(DefaultMemTableSize), 2, options.None, int64(8<<20), int64(4<<20), true)
	if got != want {
		t.Errorf("Badger options from DefaultOptions: %s, want %s", got, want)
	}
}

// TestCompressionSwitch writes tables with Compression and reads them
// without it, and the other way round.
func TestCompressionSwitch(t *testing.T) {
	dir := t.TempDir()
	o := testOptions()
	o.Compression = true
	s := openTest(t, dir, o)
	fill(t, s)
	before := readAll(t, s)
	if err := s.Close(); err != nil { // flushes the memtable to a table
		t.Fatal(err)
	}
	for _, compress := range []bool{false, true} {
		o.Compression = compress
		s = openTest(t, dir, o)
		if after := readAll(t, s); !reflect.DeepEqual(after, before) {
			t.Fatalf("reopened with Compression %v, the store reads differently", compress)
		}
		apply(t, s, &store.Batch{PutMeta: map[string][]byte{fmt.Sprint(compress): []byte("x")}})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDataDirectoryMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	openTest(t, dir, testOptions())
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data directory mode %v, want 0700", perm)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{MemTableSize: DefaultMemTableSize - 1},
		{ValueThreshold: 1000, MemTableSize: DefaultMemTableSize},
		{ValueThreshold: 2 << 20},
		{NumMemtables: -1},
		{BlockCacheSize: 1000},
		{ValueLogFileSize: 2 << 30},
	} {
		if s, err := Open(t.TempDir(), o); err == nil {
			s.Close()
			t.Errorf("Open with %+v succeeded, want an error", o)
		}
	}
}

// rawBadger opens dir directly, for tests that write what the store never
// would.
func rawBadger(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(DefaultMemTableSize))
	if err != nil {
		t.Fatalf("opening %s with Badger: %v", dir, err)
	}
	return db
}

func rawSet(t *testing.T, dir string, kv ...[]byte) {
	t.Helper()
	db := rawBadger(t, dir)
	err := db.Update(func(txn *badger.Txn) error {
		for i := 0; i < len(kv); i += 2 {
			if err := txn.Set(kv[i], kv[i+1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaRefusal(t *testing.T) {
	t.Run("newer", func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir, testOptions())
		fill(t, s)
		s.Close()
		rawSet(t, dir, schemaKey, appendSchemaValue(nil, 7))
		_, err := Open(dir, testOptions())
		if !errors.Is(err, store.ErrSchema) {
			t.Fatalf("Open of schema 7: err %v, want ErrSchema", err)
		}
		for _, want := range []string{dir, "schema version 7", fmt.Sprint("supports up to ", SchemaVersion)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		// The refusal changed nothing: back at the current version, all is
		// there.
		rawSet(t, dir, schemaKey, appendSchemaValue(nil, SchemaVersion))
		s = openTest(t, dir, testOptions())
		if rs, err := s.List(lib, model, uuid.Nil, 10); err != nil || len(rs) != 10 {
			t.Errorf("after restoring the schema version: %d records, %v", len(rs), err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		rawSet(t, dir, []byte("someone else's key"), []byte("value"))
		_, err := Open(dir, testOptions())
		if !errors.Is(err, store.ErrSchema) || !strings.Contains(err.Error(), "without a schema version") {
			t.Fatalf("Open of a foreign Badger directory: err %v, want ErrSchema saying the version is missing", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		rawSet(t, dir, schemaKey, []byte{9, 9})
		_, err := Open(dir, testOptions())
		if !errors.Is(err, store.ErrSchema) || !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("Open with a garbage schema value: err %v, want ErrSchema and ErrCorrupt", err)
		}
	})
	t.Run("fresh", func(t *testing.T) {
		dir := t.TempDir()
		openTest(t, dir, testOptions()).Close()
		db := rawBadger(t, dir)
		defer db.Close()
		err := db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(schemaKey)
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error {
				n, err := decodeSchema(schemaKey, v)
				if err == nil && n != SchemaVersion {
					err = fmt.Errorf("schema version %d, want %d", n, SchemaVersion)
				}
				return err
			})
		})
		if err != nil {
			t.Fatalf("a fresh store's schema key: %v", err)
		}
	})
}

func TestCorruptValues(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	fill(t, s)
	s.Close()
	st := store.Stream{Library: lib, ModelType: model, Origin: devA}
	id := storetest.ID(0x7e, 1) // version 1, devA
	rawSet(t, dir,
		recordKey(nil, lib, model, id), []byte("garbage"),
		indexKey(nil, lib, model, ver(1, devA), id), []byte("garbage"), // user meta 0: read as schema 1
		streamPrefix(nil, kindWatermark, store.Stream{Library: lib, ModelType: model, Origin: devB}), []byte{1, 2, 3},
		logKey(nil, &store.LogEntry{Library: lib, ModelType: model, HLC: ver(2000, devA)}), []byte{1, 9},
		libPrefix(nil, kindLibrary, lib), []byte{0xff, 0xff},
		memberKey(nil, lib, devA), []byte{0xa1},
		quarantineKey(nil, store.QuarantineKey{Library: lib, HLC: ver(1, devB), From: devB}), nil,
		clockKey, []byte{1, 2},
	)
	s = openTest(t, dir, testOptions())
	errs := map[string]error{}
	_, errs["Record"] = s.Record(store.RecordKey{Library: lib, ModelType: model, ID: id})
	_, errs["List"] = s.List(lib, model, uuid.Nil, 10)
	_, errs["StatePage"] = s.StatePage(st, hlc.HLC{}, 10)
	_, errs["Watermark"] = s.Watermark(store.Stream{Library: lib, ModelType: model, Origin: devB})
	_, errs["Watermarks"] = s.Watermarks(lib)
	_, errs["StatePage of devB"] = s.StatePage(store.Stream{Library: lib, ModelType: model, Origin: devB}, hlc.HLC{}, 10)
	_, errs["LogPage"] = s.LogPage(st, ver(1990, devA), 10)
	_, errs["Libraries"] = s.Libraries()
	_, errs["Members"] = s.Members(lib)
	_, errs["Quarantined"] = s.Quarantined(lib, 10)
	_, errs["ClockBound"] = s.ClockBound()
	errs["Apply over the corrupt record"] = s.Apply(&store.Batch{PutRecords: []store.Record{{Library: lib, ModelType: model, ID: id, Version: ver(5, devA)}}})
	errs["Apply raising the clock"] = s.Apply(&store.Batch{ClockBound: 1 << 50})
	for name, err := range errs {
		if !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
	if err := errs["Record"]; err != nil && !strings.Contains(err.Error(), "record key") {
		t.Errorf("Record error %q does not name the key kind", err)
	}
	// What is not corrupt still reads.
	if _, err := s.Record(store.RecordKey{Library: lib, ModelType: model, ID: storetest.ID(0x7e, 2)}); err != nil {
		t.Errorf("Record of an intact record: %v", err)
	}
	if _, err := s.List(lib, model, id, 10); err != nil {
		t.Errorf("List past the corrupt record: %v", err)
	}
}

// TestCloseStopsGC runs the GC goroutine on a short interval and checks that
// Close stops it and leaves no goroutine behind.
func TestCloseStopsGC(t *testing.T) {
	baseline := runtime.NumGoroutine()
	o := testOptions()
	o.GCInterval = 5 * time.Millisecond
	var logs bytes.Buffer
	var logMu sync.Mutex
	o.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	defer func() {
		logMu.Lock()
		defer logMu.Unlock()
		if logs.Len() > 0 {
			t.Errorf("the store logged:\n%s", logs.String())
		}
	}()
	s, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for s.gcRuns.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("GC ran %d times in 10 s, want 3", s.gcRuns.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-s.gcDone:
	default:
		t.Fatal("Close returned with the GC goroutine running")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.ClockBound(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ClockBound after Close: %v, want ErrClosed", err)
	}
	for n := runtime.NumGoroutine(); n > baseline; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before Open:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCloseWaitsForCalls closes while readers and writers run: every call
// either completes or returns ErrClosed, and nothing panics.
func TestCloseWaitsForCalls(t *testing.T) {
	s, err := Open(t.TempDir(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var err error
				if w%2 == 0 {
					_, err = s.StatePage(store.Stream{Library: lib, ModelType: model, Origin: devA}, hlc.HLC{}, 100)
				} else {
					err = s.Apply(&store.Batch{PutRecords: []store.Record{{Library: lib, ModelType: model, ID: storetest.ID(0x7f, uint64(i+1)), Version: ver(uint64(i+1), devB)}}})
				}
				if errors.Is(err, store.ErrClosed) {
					return
				}
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("call during Close: %v", err)
	}
}

// TestMinMemTableSize fills batches up to store.MaxBatchSize with the
// elements that cost Badger most per byte of Size (records, log entries and
// watermarks with tiny values and short model types) and applies each to a
// store with the smallest memtable its ValueThreshold allows.
func TestMinMemTableSize(t *testing.T) {
	if testing.Short() {
		t.Skip("fills batches up to the store's limit (about 6 s); skipped with -short")
	}
	lib := storetest.ID(0x11, 1)
	dev := storetest.ID(0xd0, 1)
	fill := func(add func(b *store.Batch, i int)) *store.Batch {
		var b store.Batch
		for i := 0; ; i++ {
			next := b
			add(&next, i)
			if next.Size() > store.MaxBatchSize {
				return &b
			}
			b = next
		}
	}
	version := func(i int) hlc.HLC { return hlc.HLC{Timestamp: uint64(1_700_000_000_000 + i), DeviceID: dev} }
	batches := map[string]*store.Batch{
		"records": fill(func(b *store.Batch, i int) {
			b.PutRecords = append(b.PutRecords, store.Record{Library: lib, ModelType: "m", ID: storetest.ID(1, uint64(i+1)), Version: version(i), Data: []byte{byte(i)}})
		}),
		"log": fill(func(b *store.Batch, i int) {
			b.AppendLog = append(b.AppendLog, store.LogEntry{Library: lib, ModelType: "m", HLC: version(i), RecordID: storetest.ID(2, uint64(i+1)), ChangeType: "Insert", Data: []byte{1, 2, 3}})
		}),
		"watermarks": fill(func(b *store.Batch, i int) {
			b.SetWatermarks = append(b.SetWatermarks, store.Mark{Stream: store.Stream{Library: lib, ModelType: "m", Origin: storetest.ID(3, uint64(i+1))}, HLC: version(i)})
		}),
	}
	for _, vt := range []int64{1, DefaultValueThreshold, 100, 1 << 20} {
		o := testOptions()
		o.ValueThreshold, o.MemTableSize = vt, MinMemTableSize(vt)
		s := openTest(t, t.TempDir(), o)
		for name, b := range batches {
			if err := s.Apply(b); err != nil {
				t.Errorf("ValueThreshold %d, MemTableSize %d: Apply of a maximal batch of %s (Size %d): %v", vt, o.MemTableSize, name, b.Size(), err)
			}
			// Rewriting the records at new versions also deletes their
			// old index entries: the costliest batch of all.
			if name == "records" {
				for i := range b.PutRecords {
					b.PutRecords[i].Version.Counter++
				}
				if err := s.Apply(b); err != nil {
					t.Errorf("ValueThreshold %d: Apply of a maximal batch of rewritten records: %v", vt, err)
				}
			}
		}
	}
}

// TestSchema1Read opens a directory of schema 1 (records with their data
// under the record key, index entries of flags only): it is read as before,
// raised to schema 2, and its records move to the layout of schema 2 as
// they are rewritten; its tombstones are purged.
func TestSchema1Read(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, testOptions()).Close()
	st := store.Stream{Library: lib, ModelType: model, Origin: devA}
	var want []store.Record
	var kv [][]byte
	for i := uint64(1); i <= 20; i++ {
		r := store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, i), Version: ver(i, devA), Data: []byte{0x41, byte(i)}}
		if i%5 == 0 {
			r.Data, r.Deleted = nil, true
		}
		want = append(want, r)
		kv = append(kv, recordKey(nil, lib, model, r.ID), appendRecordValue(nil, &r),
			indexKey(nil, lib, model, r.Version, r.ID), []byte{recordFlags(&r)})
	}
	kv = append(kv, schemaKey, appendSchemaValue(nil, 1))
	rawSet(t, dir, kv...)
	s := openTest(t, dir, testOptions())
	page, err := s.StatePage(st, hlc.HLC{}, 100)
	if err != nil || !reflect.DeepEqual(page.Records, want) {
		t.Fatalf("StatePage of schema 1 records: %v\n got %+v\nwant %+v", err, page.Records, want)
	}
	if r, err := s.Record(store.RecordKey{Library: lib, ModelType: model, ID: want[2].ID}); err != nil || !reflect.DeepEqual(r, want[2]) {
		t.Fatalf("Record of a schema 1 record: %+v, %v", r, err)
	}
	// Rewrite half of them (the new layout), then read all again, also
	// after a reopen.
	var b store.Batch
	for i := range want {
		if i%2 == 0 {
			want[i].Version = ver(uint64(100+i), devA)
			want[i].Data, want[i].Deleted = []byte{0x42, byte(i)}, false
			b.PutRecords = append(b.PutRecords, want[i])
		}
	}
	apply(t, s, &b)
	sorted := append([]store.Record(nil), want...)
	slices.SortFunc(sorted, func(a, b store.Record) int { return a.Version.Compare(b.Version) })
	for round := 0; round < 2; round++ {
		page, err = s.StatePage(st, hlc.HLC{}, 100)
		if err != nil || !reflect.DeepEqual(page.Records, sorted) {
			t.Fatalf("round %d: StatePage of mixed records: %v\n got %+v\nwant %+v", round, err, page.Records, sorted)
		}
		list, err := s.List(lib, model, uuid.Nil, 100)
		if err != nil || len(list) != len(want) {
			t.Fatalf("round %d: List: %d records, %v", round, len(list), err)
		}
		for _, r := range list {
			got, err := s.Record(store.RecordKey{Library: lib, ModelType: model, ID: r.ID})
			if err != nil || !reflect.DeepEqual(got, r) {
				t.Fatalf("round %d: Record %s: %+v, %v; List says %+v", round, r.ID, got, err, r)
			}
		}
		s.Close()
		s = openTest(t, dir, testOptions())
	}
	// The schema version was raised.
	s.Close()
	db := rawBadger(t, dir)
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(schemaKey)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			n, err := decodeSchema(schemaKey, v)
			if err == nil && n != SchemaVersion {
				err = fmt.Errorf("schema version %d, want %d", n, SchemaVersion)
			}
			return err
		})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The schema 1 tombstones left (records 10 and 20; 5 and 15 were
	// rewritten) are purged.
	s = openTest(t, dir, testOptions())
	apply(t, s, &store.Batch{PurgeTombstones: []store.Mark{{Stream: st, HLC: ver(99, devA)}}})
	if err := s.WaitPruned(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(store.RecordKey{Library: lib, ModelType: model, ID: storetest.ID(0x7e, 10)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a schema 1 tombstone after the purge: %v, want ErrNotFound", err)
	}
	page, err = s.StatePage(st, hlc.HLC{}, 100)
	if err != nil || len(page.Records) != len(want)-2 {
		for _, r := range page.Records {
			t.Logf("left: %s %s deleted %v", r.ID, r.Version, r.Deleted)
		}
		t.Errorf("after the purge: %d records, %v; want %d", len(page.Records), err, len(want)-2)
	}
}
