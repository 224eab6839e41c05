package badgerstore

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// BenchmarkHotSet applies U updates (BADGERSTORE_BENCH_HOT_UPDATES, default
// 200,000; issue 16: 10M) to a hot set of 10,000 shared records, as the
// engine would write them: pages of 1,000 changes, each a put (with
// Batch.Replaced) and its log entry; one change in ten is a delete (a
// tombstone, recreated by a later change); every page prunes the log and
// purges the tombstones up to the previous page (as if every member had
// acknowledged it). The value-log GC runs on the store's own schedule:
// every BADGERSTORE_BENCH_HOT_GC_SECONDS (default 300, production's 5
// minutes), and whenever a value-log file's worth has been written or
// deleted since the last run. It prints, at every tenth of the run, the disk the directory
// takes (allocated blocks), the log entries kept and the Go heap in use,
// then the same after the last prune and one more GC run; the metric
// "disk-MB" is the final size.
//
//	BADGERSTORE_BENCH_HOT_UPDATES=3000000 go test ./store/badgerstore -run '^$' -bench HotSet -benchtime 1x -timeout 60m
func BenchmarkHotSet(b *testing.B) {
	updates := envInt("BADGERSTORE_BENCH_HOT_UPDATES", 200_000)
	gc := time.Duration(envInt("BADGERSTORE_BENCH_HOT_GC_SECONDS", 300)) * time.Second
	const hot = 10_000
	o := DefaultOptions()
	o.SyncWrites = false
	o.GCInterval = gc
	payload := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	lib, origin := storetest.ID(0x11, 2), storetest.ID(0xd0, 2)
	stream := store.Stream{Library: lib, ModelType: "tag", Origin: origin}
	for range b.N { // not b.Loop: go1.26.8 fails to compile this body in one (an internal compiler error)
		dir := b.TempDir()
		s, err := Open(dir, o)
		if err != nil {
			b.Fatal(err)
		}
		versions := make([]hlc.HLC, hot)
		deleted := make([]bool, hot)
		var prev, lastPage, lastMark hlc.HLC
		start := time.Now()
		report := func(done int) {
			logN, err := s.CountLog(lib)
			if err != nil {
				b.Fatal(err)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			d := diskByKind(b, dir)
			fmt.Printf("  %9d updates  %6.1f s  disk %7.1f MB (vlog %6.1f, sst %6.1f, other %5.1f)  log entries %7d  heap in use %5.1f MB  GC runs %d\n",
				done, time.Since(start).Seconds(), float64(d.total())/1e6, float64(d.vlog)/1e6, float64(d.sst)/1e6, float64(d.other)/1e6,
				logN, float64(ms.HeapInuse)/1e6, s.gcRuns.Load())
		}
		every := updates / 10
		if every < benchPage {
			every = benchPage
		}
		fmt.Printf("hot set: %d updates of %d shared records of %d B, value-log GC every %v:\n", updates, hot, benchPayload, gc)
		for u := 0; u < updates; u += benchPage {
			var batch store.Batch
			end := u + benchPage
			if end > updates {
				end = updates
			}
			for i := u; i < end; i++ {
				idx := i % hot
				id := storetest.ID(0x7e, uint64(idx+1))
				v := hlc.HLC{Timestamp: 1_700_000_000_000 + uint64(i) + 1, DeviceID: origin}
				del := rng.IntN(10) == 0 && !versions[idx].IsZero() && !deleted[idx]
				replaced := versions[idx]
				if deleted[idx] {
					// A tombstone may have been purged: read it, as the
					// engine does.
					r, err := s.Record(store.RecordKey{Library: lib, ModelType: stream.ModelType, ID: id})
					switch {
					case errors.Is(err, store.ErrNotFound):
						replaced = hlc.HLC{}
					case err != nil:
						b.Fatal(err)
					default:
						replaced = r.Version
					}
				}
				r := store.Record{Library: lib, ModelType: stream.ModelType, ID: id, Version: v, Deleted: del}
				change := "Update"
				switch {
				case del:
					change = "Delete"
				case replaced.IsZero():
					change = "Insert"
				}
				if !del {
					off := (i * 977) % (len(payload) - benchPayload)
					r.Data = payload[off : off+benchPayload]
				}
				batch.PutRecords = append(batch.PutRecords, r)
				batch.Replaced = append(batch.Replaced, replaced)
				batch.AppendLog = append(batch.AppendLog, store.LogEntry{Library: lib, ModelType: stream.ModelType, HLC: v,
					RecordID: id, ChangeType: change, Data: r.Data, Prev: prev})
				versions[idx], deleted[idx], prev = v, del, v
			}
			batch.SetWatermarks = []store.Mark{{Stream: stream, HLC: prev}}
			if !lastPage.IsZero() {
				batch.SetPrunePoints = []store.PrunePoint{{Stream: stream, Log: lastPage, Tombstones: lastPage}}
				batch.PruneLog = []store.Mark{{Stream: stream, HLC: lastPage}}
				batch.PurgeTombstones = []store.Mark{{Stream: stream, HLC: lastPage}}
				lastMark = lastPage
			}
			if err := s.Apply(&batch); err != nil {
				b.Fatal(err)
			}
			lastPage = prev
			if done := u + benchPage; done%every == 0 {
				report(done)
			}
		}
		elapsed := time.Since(start)
		if err := s.WaitPruned(); err != nil {
			b.Fatal(err)
		}
		for range 2 { // two GC runs begun after the last prune
			begun := s.gcBegun.Load()
			s.kickGC()
			for s.gcBegun.Load() <= begun || s.gcRuns.Load() <= begun {
				time.Sleep(100 * time.Millisecond)
			}
		}
		report(updates)
		// Everything up to the last mark was pruned: only the last page is
		// left. (With Badger's DB.Flatten in the GC runs, deleted entries
		// came back: see collect.)
		if pg, err := s.LogPage(stream, hlc.HLC{}, 1); err != nil {
			b.Fatal(err)
		} else if len(pg.Entries) > 0 && !lastMark.Less(pg.Entries[0].HLC) {
			b.Fatalf("log entry %s left at or below the last prune mark %s after WaitPruned", pg.Entries[0].HLC, lastMark)
		}
		live := 0
		for i := range versions {
			if !versions[i].IsZero() && !deleted[i] {
				live++
			}
		}
		disk := diskUsage(b, dir)
		fmt.Printf("  %d updates in %.1f s (%.0f/s); after the last prune and two GC runs: disk %.1f MB for %d live records (%.1f MB of payload)\n",
			updates, elapsed.Seconds(), float64(updates)/elapsed.Seconds(), float64(disk)/1e6, live, float64(live*benchPayload)/1e6)
		b.ReportMetric(float64(disk)/1e6, "disk-MB")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// diskKinds splits the disk a directory takes by Badger file kind: value
// log (.vlog), tables (.sst), and the rest (memtable logs, manifest, ...).
type diskKinds struct{ vlog, sst, other int64 }

func (d diskKinds) total() int64 { return d.vlog + d.sst + d.other }

func diskByKind(tb testing.TB, dir string) diskKinds {
	var d diskKinds
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		switch n := st.Blocks * 512; filepath.Ext(path) {
		case ".vlog":
			d.vlog += n
		case ".sst":
			d.sst += n
		default:
			d.other += n
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// diskUsage returns the bytes the files under dir take on disk (allocated
// blocks: Badger's files can be sparse).
func diskUsage(tb testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
