package badgerstore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

var streamA = store.Stream{Library: lib, ModelType: model, Origin: devA}

// gate holds the pruning goroutine before its next run until the test
// sends on (or closes) the returned channel.
func gate(s *Store) chan struct{} {
	g := make(chan struct{})
	s.pr.mu.Lock()
	s.pr.gate = g
	s.pr.mu.Unlock()
	return g
}

func waitPruned(t *testing.T, s *Store) {
	t.Helper()
	if err := s.WaitPruned(); err != nil {
		t.Fatalf("WaitPruned: %v", err)
	}
}

// logEntries appends log entries of stream A at the given timestamps.
func logEntries(ts ...uint64) *store.Batch {
	var b store.Batch
	for _, n := range ts {
		b.AppendLog = append(b.AppendLog, store.LogEntry{Library: lib, ModelType: model, HLC: ver(n, devA), RecordID: storetest.ID(0x7e, n), ChangeType: "Delete"})
	}
	return &b
}

// tombstones puts tombstones of stream A, record n at version n.
func tombstones(ts ...uint64) *store.Batch {
	var b store.Batch
	for _, n := range ts {
		b.PutRecords = append(b.PutRecords, store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, n), Version: ver(n, devA), Deleted: true})
	}
	return &b
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

// logStamps returns the timestamps of stream A's log.
func logStamps(t *testing.T, s store.Reader) []uint64 {
	t.Helper()
	p, err := s.LogPage(streamA, hlc.HLC{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range p.Entries {
		out = append(out, e.HLC.Timestamp)
	}
	return out
}

// stateOf returns stream A's records as "n" (live) or "n†" (tombstone), by
// version.
func stateOf(t *testing.T, s store.Reader) []string {
	t.Helper()
	p, err := s.StatePage(streamA, hlc.HLC{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range p.Records {
		tag := fmt.Sprint(r.Version.Timestamp)
		if r.Deleted {
			tag += "†"
		}
		out = append(out, tag)
	}
	return out
}

func TestPruneRunsInBackground(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	apply(t, s, logEntries(span(1, 3000)...))
	apply(t, s, tombstones(span(1, 900)...))
	g := gate(s)
	apply(t, s, &store.Batch{
		SetPrunePoints:  []store.PrunePoint{{Stream: streamA, Log: ver(2500, devA), Tombstones: ver(800, devA)}},
		PruneLog:        []store.Mark{{Stream: streamA, HLC: ver(2500, devA)}},
		PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(800, devA)}},
	})
	// Apply returned with the pruning held back: nothing is deleted yet,
	// and the prune point is set.
	if n := len(logStamps(t, s)); n != 3000 {
		t.Fatalf("%d log entries before the pruning ran, want 3000", n)
	}
	if n := len(stateOf(t, s)); n != 900 {
		t.Fatalf("%d records before the purge ran, want 900", n)
	}
	pps, err := s.PrunePoints(lib)
	if err != nil || len(pps) != 1 || pps[0].Log != ver(2500, devA) {
		t.Fatalf("prune points %v, %v: want the one just set", pps, err)
	}
	close(g)
	waitPruned(t, s)
	if got := logStamps(t, s); len(got) != 500 || got[0] != 2501 {
		t.Fatalf("after the pruning: %d entries starting at %v, want 500 from 2501", len(got), got[:min(1, len(got))])
	}
	if got := stateOf(t, s); len(got) != 100 || got[0] != "801†" {
		t.Fatalf("after the purge: %d records starting at %v, want 100 from 801", len(got), got[:min(1, len(got))])
	}
}

func TestPruneCoalesces(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	apply(t, s, logEntries(span(1, 100)...))
	streamB := store.Stream{Library: lib, ModelType: model, Origin: devB}
	g := gate(s)
	for _, n := range []uint64{10, 30, 20} {
		apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: streamA, HLC: ver(n, devA)}, {Stream: streamB, HLC: ver(n, devB)}}})
	}
	apply(t, s, &store.Batch{PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(5, devA)}}})
	s.pr.mu.Lock()
	want := map[pruneKey]hlc.HLC{
		{kindLog, streamA}:   ver(30, devA),
		{kindLog, streamB}:   ver(30, devB),
		{kindIndex, streamA}: ver(5, devA),
	}
	pending, queue := fmt.Sprint(s.pr.pending), fmt.Sprint(s.pr.queue)
	ok := fmt.Sprint(want) == pending && len(s.pr.queue) == 3 && s.pr.queue[0] == pruneKey{kindLog, streamA}
	s.pr.mu.Unlock()
	if !ok {
		t.Fatalf("waiting marks %s in order %s, want %v in the order first asked", pending, queue, want)
	}
	close(g)
	waitPruned(t, s)
	if got := logStamps(t, s); len(got) != 70 || got[0] != 31 {
		t.Fatalf("after the pruning: %d entries from %v, want 70 from 31", len(got), got[:min(1, len(got))])
	}
}

// TestPruneIncremental checks that a prune reads only what the previous one
// of the stream did not: the log entries and index entries above its mark.
func TestPruneIncremental(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	apply(t, s, logEntries(span(1, 5000)...))
	var b store.Batch
	for n := uint64(1); n <= 5000; n++ {
		r := store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, n), Version: ver(n, devA), Data: []byte("live")}
		if n%2 == 0 {
			r.Data, r.Deleted = nil, true
		}
		b.PutRecords = append(b.PutRecords, r)
	}
	apply(t, s, &b)
	prune := func(n uint64) int64 {
		t.Helper()
		before := s.pr.examined.Load()
		apply(t, s, &store.Batch{
			PruneLog:        []store.Mark{{Stream: streamA, HLC: ver(n, devA)}},
			PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(n, devA)}},
		})
		waitPruned(t, s)
		return s.pr.examined.Load() - before
	}
	// The log entries up to the mark, and the index entries (live ones
	// too) up to it.
	if n := prune(2500); n != 2500+2500 {
		t.Errorf("first prune read %d keys, want 5000", n)
	}
	// Only what lies above the previous mark, and at most the one key at it.
	if n := prune(3000); n > 500+500+2 {
		t.Errorf("second prune read %d keys, want about 1000", n)
	}
	if n := prune(3000); n > 2 {
		t.Errorf("the same prune again read %d keys, want none", n)
	}
	if got := logStamps(t, s); len(got) != 2000 || got[0] != 3001 {
		t.Fatalf("log: %d entries from %v, want 2000 from 3001", len(got), got[:min(1, len(got))])
	}
	got := stateOf(t, s)
	if len(got) != 1500+2000 {
		t.Fatalf("%d records left, want 3500", len(got))
	}
	for _, r := range got[:1500] {
		if r[len(r)-1] != '1' && r[len(r)-1] != '3' && r[len(r)-1] != '5' && r[len(r)-1] != '7' && r[len(r)-1] != '9' {
			t.Fatalf("record %s below the mark survived the purge", r)
		}
	}
	// After a restart the first prune reads from the start once.
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, testOptions())
	if n := prune(3100); n < 100+100 {
		t.Errorf("first prune after a restart read %d keys", n)
	}
	if n := prune(3200); n > 100+100+2 {
		t.Errorf("second prune after a restart read %d keys, want about 200", n)
	}
}

// TestPruneSeesWritesBelowProgress writes log entries and tombstones below
// the point the previous prune of their stream reached, and checks that the
// next prune deletes them, and that live records stay.
func TestPruneSeesWritesBelowProgress(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	apply(t, s, logEntries(span(1000, 2000)...))
	apply(t, s, tombstones(span(1000, 2000)...))
	prune := func(n uint64) {
		t.Helper()
		apply(t, s, &store.Batch{
			PruneLog:        []store.Mark{{Stream: streamA, HLC: ver(n, devA)}},
			PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(n, devA)}},
		})
		waitPruned(t, s)
	}
	prune(1500)
	// Late arrivals below 1500, one exactly at it, and live records.
	late := logEntries(10, 1499, 1500)
	late.PutRecords = append(tombstones(20, 1400, 1500).PutRecords,
		store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, 30), Version: ver(30, devA), Data: []byte("live")},
		store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, 1200), Version: ver(1200, devA), Data: []byte("revived")})
	apply(t, s, late)
	prune(1600)
	if got := logStamps(t, s); len(got) != 400 || got[0] != 1601 {
		t.Fatalf("log: %d entries from %v, want 400 from 1601", len(got), got[:min(2, len(got))])
	}
	got := stateOf(t, s)
	if len(got) != 2+400 || got[0] != "30" || got[1] != "1200" || got[2] != "1601†" {
		t.Fatalf("records %v..., want 30, 1200 and 400 tombstones from 1601", got[:min(4, len(got))])
	}
	// The same while a run is in progress: writes land at or below the
	// running mark after its snapshot.
	var once sync.Once
	s.pr.afterScan = func() {
		once.Do(func() {
			b := tombstones(1700, 1800)
			for i := range b.PutRecords {
				b.PutRecords[i].ID = storetest.ID(0x7f, uint64(i)) // new records
			}
			if err := s.Apply(b); err != nil {
				t.Error(err)
			}
		})
	}
	prune(1800)
	s.pr.afterScan = nil
	prune(1801)
	if got := stateOf(t, s); len(got) != 2+199 || got[2] != "1802†" {
		t.Fatalf("records %v..., want 30, 1200 and 199 tombstones from 1802", got[:min(4, len(got))])
	}
	// A write below a stream's point while no run is in progress.
	apply(t, s, logEntries(5))
	prune(1801)
	if got := logStamps(t, s); len(got) != 199 || got[0] != 1802 {
		t.Fatalf("log: %d entries from %v, want 199 from 1802", len(got), got[:min(2, len(got))])
	}
}

// TestPurgeLeavesRewrittenRecords rewrites tombstones between the snapshot
// a purge read and its deleting transaction: revived, moved to a newer
// tombstone, or dropped, they are left as they are.
func TestPurgeLeavesRewrittenRecords(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	apply(t, s, tombstones(span(1, 10)...))
	rec := func(n, v uint64, data string) store.Record {
		r := store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, n), Version: ver(v, devA), Data: []byte(data)}
		if data == "" {
			r.Deleted = true
		}
		return r
	}
	s.pr.afterScan = func() {
		err := s.Apply(&store.Batch{
			PutRecords: []store.Record{
				rec(2, 2, "live at the same version"),
				rec(3, 20, "live at a newer version"),
				rec(4, 30, ""),       // a newer tombstone, above the mark
				rec(5, 6, "live"),    // moved onto another tombstone's version
				rec(7, 7, "revived"), // same version
			},
			DropRecords: []store.RecordKey{{Library: lib, ModelType: model, ID: storetest.ID(0x7e, 8)}},
		})
		if err != nil {
			t.Error(err)
		}
	}
	apply(t, s, &store.Batch{PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(10, devA)}}})
	waitPruned(t, s)
	s.pr.afterScan = nil
	rs, err := s.List(lib, model, uuid.Nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%d@%d:%q", r.ID[15], r.Version.Timestamp, r.Data))
	}
	want := []string{`2@2:"live at the same version"`, `3@20:"live at a newer version"`, `4@30:""`, `5@6:"live"`, `7@7:"revived"`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records after the purge:\n got %v\nwant %v", got, want)
	}
	if got := stateOf(t, s); fmt.Sprint(got) != "[2 6 7 20 30†]" {
		t.Fatalf("index after the purge: %v", got)
	}
}

// TestPruneConcurrent prunes while writers append log entries and put
// tombstones and live records at random versions, some below the marks
// already pruned; a final prune at a mark then leaves nothing prunable at or
// below it, and everything else.
func TestPruneConcurrent(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	const writers, batches, per, top = 2, 40, 50, 4000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range batches {
				var b store.Batch
				for range per {
					n := 1 + rng.Uint64N(top)
					b.AppendLog = append(b.AppendLog, logEntries(n).AppendLog...)
					id := uint64(w)<<32 | rng.Uint64N(500)
					r := store.Record{Library: lib, ModelType: model, ID: storetest.ID(0x7e, id), Version: ver(n, devA)}
					if rng.IntN(2) == 0 {
						r.Deleted = true
					} else {
						r.Data = []byte("live")
					}
					b.PutRecords = append(b.PutRecords, r)
				}
				if err := s.Apply(&b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m := uint64(100); m <= 3*top/4; m += 100 {
			if err := s.Apply(&store.Batch{
				PruneLog:        []store.Mark{{Stream: streamA, HLC: ver(m, devA)}},
				PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(m, devA)}},
			}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	waitPruned(t, s)
	// Everything the writers left that a prune at final may take.
	const final = top / 2
	logBefore := logStamps(t, s)
	stateBefore, err := s.StatePage(streamA, hlc.HLC{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, &store.Batch{
		PruneLog:        []store.Mark{{Stream: streamA, HLC: ver(final, devA)}},
		PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(final, devA)}},
	})
	waitPruned(t, s)
	var wantLog []uint64
	for _, n := range logBefore {
		if n > final {
			wantLog = append(wantLog, n)
		}
	}
	if got := logStamps(t, s); fmt.Sprint(got) != fmt.Sprint(wantLog) {
		t.Errorf("log after the final prune: %d entries, want %d", len(got), len(wantLog))
	}
	var wantState []string
	for _, r := range stateBefore.Records {
		if r.Deleted && r.Version.Timestamp <= final {
			continue
		}
		tag := fmt.Sprint(r.Version.Timestamp)
		if r.Deleted {
			tag += "†"
		}
		wantState = append(wantState, tag)
	}
	if got := stateOf(t, s); fmt.Sprint(got) != fmt.Sprint(wantState) {
		t.Errorf("records after the final purge: %d, want %d", len(got), len(wantState))
	}
	// And compared with a full scan: a fresh store process knows nothing.
	dir := s.dir
	s.Close()
	s = openTest(t, dir, testOptions())
	apply(t, s, &store.Batch{
		PruneLog:        []store.Mark{{Stream: streamA, HLC: ver(final, devA)}},
		PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(final, devA)}},
	})
	waitPruned(t, s)
	if got := logStamps(t, s); fmt.Sprint(got) != fmt.Sprint(wantLog) {
		t.Errorf("a full scan found more to prune: %d entries left, want %d", len(got), len(wantLog))
	}
	if got := stateOf(t, s); fmt.Sprint(got) != fmt.Sprint(wantState) {
		t.Errorf("a full scan found more to purge: %d records left, want %d", len(got), len(wantState))
	}
}

func TestCloseDrainsPruning(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	apply(t, s, logEntries(span(1, 3000)...))
	g := gate(s)
	apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: streamA, HLC: ver(2000, devA)}}})
	go func() { time.Sleep(10 * time.Millisecond); close(g) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitPruned(); err != nil {
		t.Errorf("WaitPruned after a Close that drained: %v", err)
	}
	s = openTest(t, dir, testOptions())
	if got := logStamps(t, s); len(got) != 1000 {
		t.Fatalf("after Close and reopening: %d log entries, want 1000 (Close drains waiting prunes)", len(got))
	}
}

func TestCloseAbandonsPruning(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	apply(t, s, logEntries(span(1, 3000)...))
	s.pr.drain = 0
	gate(s) // never opened
	apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: streamA, HLC: ver(2000, devA)}}})
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := s.WaitPruned(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("WaitPruned after a Close that abandoned pruning: %v, want ErrClosed", err)
	}
	// Abandoned, not lost: the entries are there, and pruning again works.
	s = openTest(t, dir, testOptions())
	if got := logStamps(t, s); len(got) != 3000 {
		t.Fatalf("after reopening: %d log entries, want 3000", len(got))
	}
	apply(t, s, &store.Batch{PruneLog: []store.Mark{{Stream: streamA, HLC: ver(2000, devA)}}})
	waitPruned(t, s)
	if got := logStamps(t, s); len(got) != 1000 {
		t.Fatalf("after pruning again: %d log entries, want 1000", len(got))
	}
}

func TestPurgeReportsCorruption(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	apply(t, s, tombstones(1, 2, 3))
	s.Close()
	// An index entry (a tombstone at 2) whose record is missing.
	rawSet(t, dir, indexKey(nil, lib, model, ver(2, devA), storetest.ID(0x7e, 99)), []byte{flagTombstone})
	s = openTest(t, dir, testOptions())
	apply(t, s, &store.Batch{PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(3, devA)}}})
	err := s.WaitPruned()
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("WaitPruned after purging over a corrupt index entry: %v, want ErrCorrupt", err)
	}
	if err := s.WaitPruned(); err != nil {
		t.Errorf("a second WaitPruned: %v, want nil (errors are reported once)", err)
	}
}

// libraryKeys returns every key of the store that names library id.
func libraryKeys(t *testing.T, s *Store, id uuid.UUID) [][]byte {
	t.Helper()
	var keys [][]byte
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); len(k) >= 1+idSize && uuid.UUID(k[1:1+idSize]) == id {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// fillLibrary writes n records (every other a tombstone) and n log entries
// of stream (id, model, devA), and something of every other kind.
func fillLibrary(t *testing.T, s store.Store, id uuid.UUID, n int) {
	t.Helper()
	st := store.Stream{Library: id, ModelType: model, Origin: devA}
	var b store.Batch
	for i := 1; i <= n; i++ {
		r := store.Record{Library: id, ModelType: model, ID: storetest.ID(0x7e, uint64(i)), Version: ver(uint64(i), devA), Deleted: i%2 == 0}
		if !r.Deleted {
			r.Data = []byte("data")
		}
		b.PutRecords = append(b.PutRecords, r)
		b.AppendLog = append(b.AppendLog, store.LogEntry{Library: id, ModelType: model, HLC: ver(uint64(i), devA), RecordID: r.ID, ChangeType: "Insert"})
	}
	b.SetWatermarks = []store.Mark{{Stream: st, HLC: ver(uint64(n), devA)}}
	b.SetAcks = []store.Ack{{Stream: st, Member: devB, HLC: ver(1, devA)}}
	b.SetPrunePoints = []store.PrunePoint{{Stream: st, Log: ver(1, devA)}}
	b.PutQuarantine = []store.Quarantined{{Library: id, HLC: ver(9, devB), From: devB, Message: []byte("m")}}
	b.PutLibraries = []store.Library{{ID: id, Name: "lib"}}
	b.PutMembers = []store.Member{{Library: id, DeviceID: devA}, {Library: id, DeviceID: devB}}
	apply(t, s, &b)
}

func TestPurgeLibraryLeavesNoKey(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	other := storetest.ID(0x11, 2)
	fillLibrary(t, s, lib, 2500)
	fillLibrary(t, s, other, 10)
	before := len(libraryKeys(t, s, other))
	s.Close()
	// Leftovers of a corrupt store go too: an index entry without its
	// record, and a record value that does not decode.
	rawSet(t, dir,
		indexKey(nil, lib, model, ver(2, devA), storetest.ID(0x7e, 9999)), []byte{flagTombstone},
		recordKey(nil, lib, "album", storetest.ID(0x7e, 1)), []byte{0xff})
	s = openTest(t, dir, testOptions())
	apply(t, s, &store.Batch{DropLibraries: []uuid.UUID{lib}, PurgeLibraries: []uuid.UUID{lib}})
	waitPruned(t, s)
	if keys := libraryKeys(t, s, lib); len(keys) != 0 {
		t.Errorf("after DropLibraries and PurgeLibraries: %d keys of the library left, the first %x", len(keys), keys[0])
	}
	if n := len(libraryKeys(t, s, other)); n != before {
		t.Errorf("the other library has %d keys, had %d", n, before)
	}
	s.pr.mu.Lock()
	defer s.pr.mu.Unlock()
	for k := range s.pr.progress {
		if k.stream.Library == lib {
			t.Errorf("progress of %s kept after the purge", k)
		}
	}
}

func TestPurgeLibraryKeepsConcurrentWrites(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	fillLibrary(t, s, lib, 3000)
	apply(t, s, &store.Batch{PurgeLibraries: []uuid.UUID{lib}})
	// Rewrite records while the purge runs: whatever survives, every record
	// stays in step with its index entry.
	for i := 1; i <= 200; i++ {
		id := storetest.ID(0x7e, uint64(1+(i*37)%3000))
		apply(t, s, &store.Batch{PutRecords: []store.Record{{Library: lib, ModelType: model, ID: id, Version: ver(uint64(5000+i), devB), Data: []byte("new")}}})
	}
	waitPruned(t, s)
	for _, dev := range []uuid.UUID{devA, devB} {
		page, err := s.StatePage(store.Stream{Library: lib, ModelType: model, Origin: dev}, hlc.HLC{}, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if r.Version.DeviceID != dev {
				t.Fatalf("record %s at %s in the index of %s", r.ID, r.Version, dev)
			}
		}
	}
	all, err := s.List(lib, model, uuid.Nil, 10000)
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.StatePage(store.Stream{Library: lib, ModelType: model, Origin: devB}, hlc.HLC{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(page.Records) {
		t.Errorf("List has %d records, the index %d", len(all), len(page.Records))
	}
	for _, r := range all {
		if r.Version.DeviceID != devB {
			t.Errorf("record %s at %s survived the purge", r.ID, r.Version)
		}
	}
}

func TestCloseAbandonsPurge(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testOptions())
	fillLibrary(t, s, lib, 100)
	s.pr.drain = 0
	gate(s) // never opened
	apply(t, s, &store.Batch{PurgeLibraries: []uuid.UUID{lib}})
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := s.WaitPruned(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("WaitPruned after a Close that abandoned a purge: %v, want ErrClosed", err)
	}
	// Abandoned, not done: asking again after reopening purges.
	s = openTest(t, dir, testOptions())
	if keys := libraryKeys(t, s, lib); len(keys) == 0 {
		t.Fatal("an abandoned purge deleted everything")
	}
	apply(t, s, &store.Batch{PurgeLibraries: []uuid.UUID{lib}})
	waitPruned(t, s)
	if keys := libraryKeys(t, s, lib); len(keys) != 3 { // the library and two members
		t.Errorf("after purging again: %d keys left, want 3 (the configuration)", len(keys))
	}
}

// TestPruneBehindTakesBiggerChunks: a run that finds its chunks full (the
// pruner is behind the marks it was given) deletes more keys per
// transaction, so that 40,000 log entries go in far fewer than 40
// transactions of deleteChunk; what is left is exactly what was asked.
func TestPruneBehindTakesBiggerChunks(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	const n = 40 * deleteChunk
	for from := uint64(1); from <= n; from += 4000 {
		if err := s.Apply(logEntries(span(from, from+3999)...)); err != nil {
			t.Fatal(err)
		}
	}
	g := gate(s)
	if err := s.Apply(&store.Batch{PruneLog: []store.Mark{{Stream: streamA, HLC: ver(n-5, devA)}}}); err != nil {
		t.Fatal(err)
	}
	close(g)
	waitPruned(t, s)
	if got := logStamps(t, s); len(got) != 5 || got[0] != n-4 {
		t.Fatalf("log after the prune: %d entries from %v, want 5 from %d", len(got), got[:min(len(got), 1)], n-4)
	}
	// 1k, 2k, 4k, 8k, 16k, then 9k in a chunk of 16k: 6 transactions.
	if txns := s.pr.txns.Load(); txns > 6 {
		t.Fatalf("%d deleting transactions for %d log entries, want at most 6 (chunks growing while the run is behind)", txns, n)
	}
	if got := s.chunkLimit(len(logKey(nil, &store.LogEntry{Library: lib, ModelType: model}))); got != maxDeleteChunk {
		t.Fatalf("chunk limit for log keys with the default memtable: %d, want %d", got, maxDeleteChunk)
	}
}

// TestPurgeBehindTakesBiggerChunks is TestPruneBehindTakesBiggerChunks for
// PurgeTombstones: 20,000 tombstones in far fewer than 40 transactions.
func TestPurgeBehindTakesBiggerChunks(t *testing.T) {
	s := openTest(t, t.TempDir(), testOptions())
	const n = 20 * deleteChunk
	for from := uint64(1); from <= n; from += 2000 {
		if err := s.Apply(tombstones(span(from, from+1999)...)); err != nil {
			t.Fatal(err)
		}
	}
	g := gate(s)
	if err := s.Apply(&store.Batch{PurgeTombstones: []store.Mark{{Stream: streamA, HLC: ver(n, devA)}}}); err != nil {
		t.Fatal(err)
	}
	close(g)
	waitPruned(t, s)
	if got := stateOf(t, s); len(got) != 0 {
		t.Fatalf("%d tombstones left, want 0", len(got))
	}
	// Halves of 1k, 2k, 4k, 8k chunks (7.5k tombstones), then 12.5k in
	// halves of 16k: 6 transactions.
	if txns := s.pr.txns.Load(); txns > 6 {
		t.Fatalf("%d deleting transactions for %d tombstones, want at most 6", txns, n)
	}
}
