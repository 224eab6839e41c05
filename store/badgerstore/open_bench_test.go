package badgerstore

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkOpen measures how long a store of N records takes to open and be
// ready to sync (its record filter complete), on a clean open that loads the
// filter the last Close saved, beside the full scan of every record key that
// rebuilds it (the file removed), in the same run. Target (issue 16): ready
// in at most 2 s at 10M records.
//
//	BADGERSTORE_BENCH_OPEN_RECORDS=1000000,3000000,10000000 BADGERSTORE_BENCH_DIR=/tmp/openbench \
//	  go test ./store/badgerstore -run '^$' -bench '^BenchmarkOpen$' -benchtime 1x -timeout 60m
//
// BADGERSTORE_BENCH_OPEN_RECORDS lists the sizes (default 100000). The
// stores are built by Apply in pages of 1,000 records of 256 bytes,
// SyncWrites off; with BADGERSTORE_BENCH_DIR they are kept in
// <dir>/open-<N> and reused by later runs (10M records take about 3 GB and
// a minute or two to build).
func BenchmarkOpen(b *testing.B) {
	sizes := []int{100_000}
	if v := os.Getenv("BADGERSTORE_BENCH_OPEN_RECORDS"); v != "" {
		sizes = sizes[:0]
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < benchPage {
				b.Fatalf("BADGERSTORE_BENCH_OPEN_RECORDS: %q is not a number of records of at least %d", f, benchPage)
			}
			sizes = append(sizes, n)
		}
	}
	o := DefaultOptions()
	o.SyncWrites = false
	o.GCInterval = -1
	payload := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "store")
			if base := os.Getenv("BADGERSTORE_BENCH_DIR"); base != "" {
				dir = filepath.Join(base, fmt.Sprintf("open-%d", n))
			}
			if _, err := os.Stat(filepath.Join(dir, "built")); err != nil {
				os.RemoveAll(dir)
				d := ingestStore(b, dir, o, (n+benchPage-1)/benchPage, payload) // closes: saves the filter
				if err := os.WriteFile(filepath.Join(dir, "built"), nil, 0o600); err != nil {
					b.Fatal(err)
				}
				fmt.Printf("built %d records in %.1f s\n", n, d.Seconds())
			}
			// open returns the time until Open returned and until the filter
			// was complete, and whether it was loaded.
			open := func() (opened, ready time.Duration, loaded bool) {
				start := time.Now()
				s, err := Open(dir, o)
				if err != nil {
					b.Fatal(err)
				}
				opened = time.Since(start)
				<-s.filterDone
				ready = time.Since(start)
				loaded = s.filterLoaded
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				return opened, ready, loaded
			}
			// A first open: a scan if no filter was saved, the count of the
			// records if the directory is of an older schema.
			first, _, _ := open()
			fmt.Printf("first open of %d records (a schema raise or a scan, if any is due): %.3f s\n", n, first.Seconds())
			var loadedReady, scanReady, badgerOpen time.Duration
			var fileSize int64
			for b.Loop() {
				info, err := os.Stat(filepath.Join(dir, filterFileName))
				if err != nil {
					b.Fatalf("no saved filter before the clean open: %v", err)
				}
				fileSize = info.Size()
				_, ready, loaded := open()
				if !loaded {
					b.Fatal("the clean open scanned instead of loading the saved filter")
				}
				loadedReady = ready
				if err := os.Remove(filepath.Join(dir, filterFileName)); err != nil {
					b.Fatal(err)
				}
				opened, ready, loaded := open()
				if loaded {
					b.Fatal("loaded a filter after its file was removed")
				}
				badgerOpen, scanReady = opened, ready
			}
			// What a status and a join's estimate read, beside a scan.
			st, err := Open(dir, o)
			if err != nil {
				b.Fatal(err)
			}
			const calls = 100
			start := time.Now()
			var total int
			for range calls {
				counts, err := st.CountRecords(benchStream.Library)
				if err != nil {
					b.Fatal(err)
				}
				total = counts[benchStream.ModelType]
			}
			countDur := time.Since(start) / calls
			start = time.Now()
			for range calls {
				if _, err := st.CountLog(benchStream.Library); err != nil {
					b.Fatal(err)
				}
				if _, err := st.PrunePoints(benchStream.Library); err != nil {
					b.Fatal(err)
				}
			}
			logDur := time.Since(start) / calls
			start = time.Now()
			scanned := 0
			if err := st.view(func(txn *badger.Txn) error {
				prefix := []byte{kindRecord}
				it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
				defer it.Close()
				for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
					scanned++
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			scanDur := time.Since(start)
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			if total != n || scanned != n {
				b.Fatalf("CountRecords says %d records, a scan %d, want %d", total, scanned, n)
			}
			fmt.Printf("count %d records: CountRecords %.1f µs, CountLog+PrunePoints (the rest of what Status reads) %.1f µs; a scan of the record keys %.3f s\n",
				n, float64(countDur)/1e3, float64(logDur)/1e3, scanDur.Seconds())
			b.ReportMetric(float64(countDur)/1e3, "count-µs")
			fmt.Printf("open %d records: ready in %.3f s with the saved filter (%.1f MB file), %.3f s with a full scan (Open itself %.3f s); %.2f of the 2 s target\n",
				n, loadedReady.Seconds(), float64(fileSize)/1e6, scanReady.Seconds(), badgerOpen.Seconds(), loadedReady.Seconds()/2)
			b.ReportMetric(loadedReady.Seconds(), "ready-s")
			b.ReportMetric(scanReady.Seconds(), "scan-ready-s")
			b.ReportMetric(loadedReady.Seconds()/2, "of-target")
		})
	}
}
