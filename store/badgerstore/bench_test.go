package badgerstore

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// BenchmarkIngest compares Apply with the limit Badger itself sets: it
// ingests N device-owned records of 256-byte payloads in pages of 1,000,
// each page with its stream's watermark, through Store.Apply (with
// Batch.Replaced, as the engine gives it); then writes the
// same keys and values with a raw Badger WriteBatch, in the same run, each in
// a fresh directory with the same Badger options. It prints both rates and
// reports their ratio (store / raw) as the metric "ratio", and the disk
// both directories take after Close (allocated blocks).
//
//	go test -run '^$' -bench Ingest -benchtime 1x ./store/badgerstore/
//	BADGERSTORE_BENCH_RECORDS=100000 BADGERSTORE_BENCH_SYNC=0 go test -run '^$' -bench Ingest -benchtime 1x ./store/badgerstore/
//
// BADGERSTORE_BENCH_RECORDS (or -ingest.records) sets N, default 1,000,000;
// BADGERSTORE_BENCH_SYNC=0 (or -ingest.sync=false) turns SyncWrites off for
// both sides (default on, as in production).
func BenchmarkIngest(b *testing.B) {
	n := envInt("BADGERSTORE_BENCH_RECORDS", *benchRecords)
	syncWrites := *benchSync
	if v := os.Getenv("BADGERSTORE_BENCH_SYNC"); v != "" {
		syncWrites = v != "0" && v != "false"
	}
	o := DefaultOptions()
	o.SyncWrites = syncWrites
	o.GCInterval = -1
	pages := (n + benchPage - 1) / benchPage
	payload := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	var storeDur, rawDur time.Duration
	var storeDisk, rawDisk int64
	for range b.N {
		storeDir, rawDir := b.TempDir(), b.TempDir()
		storeDur = ingestStore(b, storeDir, o, pages, payload)
		rawDur = ingestRaw(b, rawDir, o, pages, payload)
		storeDisk, rawDisk = diskUsage(b, storeDir), diskUsage(b, rawDir)
	}
	records := float64(pages * benchPage)
	mb := records * benchPayload / 1e6
	storeRate, rawRate := records/storeDur.Seconds(), records/rawDur.Seconds()
	ratio := storeRate / rawRate
	fmt.Printf("ingest %d records of %d B in pages of %d, SyncWrites=%v:\n", pages*benchPage, benchPayload, benchPage, syncWrites)
	fmt.Printf("  Store.Apply:       %7.2f s  %9.0f records/s  %6.1f MB/s payload\n", storeDur.Seconds(), storeRate, mb/storeDur.Seconds())
	fmt.Printf("  raw WriteBatch:    %7.2f s  %9.0f records/s  %6.1f MB/s payload\n", rawDur.Seconds(), rawRate, mb/rawDur.Seconds())
	fmt.Printf("  ratio Apply/raw:   %.2f\n", ratio)
	fmt.Printf("  disk after Close:  store %.1f MB (%.0f B/record), raw %.1f MB (%.0f B/record), ratio %.2f\n",
		float64(storeDisk)/1e6, float64(storeDisk)/records, float64(rawDisk)/1e6, float64(rawDisk)/records, float64(storeDisk)/float64(rawDisk))
	b.ReportMetric(float64(storeDisk)/records, "disk-B/record")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(storeRate, "records/s")
	b.ReportMetric(rawRate, "raw-records/s")
}

var (
	benchRecords = flag.Int("ingest.records", 1_000_000, "records BenchmarkIngest writes")
	benchSync    = flag.Bool("ingest.sync", true, "SyncWrites for BenchmarkIngest")
)

const (
	benchPage    = 1000
	benchPayload = 256
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var benchStream = store.Stream{Library: storetest.ID(0x11, 1), ModelType: "entry", Origin: storetest.ID(0xd0, 1)}

// benchRecord is record n: a random-looking ID (records arrive in version
// order, not ID order), version n, 256 bytes of payload.
func benchRecord(n uint64, payload []byte) store.Record {
	id := storetest.ID(byte(n*0x9e37), n*0x9e3779b97f4a7c15)
	off := int(n*977) % (len(payload) - benchPayload)
	return store.Record{
		Library: benchStream.Library, ModelType: benchStream.ModelType, ID: id,
		Version: hlc.HLC{Timestamp: 1_700_000_000_000 + n, DeviceID: benchStream.Origin},
		Data:    payload[off : off+benchPayload],
	}
}

// benchOptions applies the experiments the environment asks for to o:
// BADGERSTORE_BENCH_VALUE_THRESHOLD (bytes; the memtable then defaults to
// its minimum), BADGERSTORE_BENCH_MEMTABLE_MB, BADGERSTORE_BENCH_MEMTABLES
// (NumMemtables) and BADGERSTORE_BENCH_VLOG_MB (ValueLogFileSize).
func benchOptions(o *Options) {
	if v := envInt("BADGERSTORE_BENCH_VALUE_THRESHOLD", 0); v > 0 {
		o.ValueThreshold, o.MemTableSize = int64(v), MinMemTableSize(int64(v))
	}
	if v := envInt("BADGERSTORE_BENCH_MEMTABLE_MB", 0); v > 0 {
		o.MemTableSize = int64(v) << 20
	}
	if v := envInt("BADGERSTORE_BENCH_MEMTABLES", 0); v > 0 {
		o.NumMemtables = v
	}
	if v := envInt("BADGERSTORE_BENCH_VLOG_MB", 0); v > 0 {
		o.ValueLogFileSize = int64(v) << 20
	}
}

func ingestStore(b *testing.B, dir string, o Options, pages int, payload []byte) time.Duration {
	benchOptions(&o)
	s, err := Open(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	recs := make([]store.Record, benchPage)
	replaced := make([]hlc.HLC, benchPage)
	for p := range pages {
		for i := range recs {
			recs[i] = benchRecord(uint64(p*benchPage+i+1), payload)
		}
		batch := store.Batch{
			PutRecords:    recs,
			Replaced:      replaced, // new records, as the engine says
			SetWatermarks: []store.Mark{{Stream: benchStream, HLC: recs[len(recs)-1].Version}},
		}
		if err := s.Apply(&batch); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

func ingestRaw(b *testing.B, dir string, o Options, pages int, payload []byte) time.Duration {
	o, err := o.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	db, err := badger.Open(badgerOptions(dir, o))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for p := range pages {
		var last hlc.HLC
		for i := range benchPage {
			r := benchRecord(uint64(p*benchPage+i+1), payload)
			if err := wb.Set(recordKey(nil, r.Library, r.ModelType, r.ID), appendRecordHead(nil, &r)); err != nil {
				b.Fatal(err)
			}
			if err := wb.SetEntry(badger.NewEntry(indexKey(nil, r.Library, r.ModelType, r.Version, r.ID), r.Data).WithMeta(indexV2)); err != nil {
				b.Fatal(err)
			}
			last = r.Version
		}
		if err := wb.Set(streamPrefix(nil, kindWatermark, benchStream), appendHLCValue(nil, last)); err != nil {
			b.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkIngestRSS measures the memory an ingest costs: a child process
// (this test binary, re-executed) opens a store with DefaultOptions and
// ingests N records as BenchmarkIngest's Store side does, then reports its
// peak RSS (VmHWM from /proc/self/status) and, sampled every 100 ms, the peaks
// of its anonymous RSS (Go heap and runtime), of its file-backed RSS (Badger's
// memory-mapped tables, write-ahead logs and value logs: page cache the kernel
// can reclaim, but counted in RSS) and of its Go heap in use. The metrics are
// "peak-RSS-MB", "peak-anon-MB", "peak-file-MB" and "peak-heap-MB".
//
//	BADGERSTORE_BENCH_RECORDS=1000000 go test -run '^$' -bench IngestRSS -benchtime 1x ./store/badgerstore/
func BenchmarkIngestRSS(b *testing.B) {
	n := envInt("BADGERSTORE_BENCH_RECORDS", *benchRecords)
	syncWrites := *benchSync
	if v := os.Getenv("BADGERSTORE_BENCH_SYNC"); v != "" {
		syncWrites = v != "0" && v != "false"
	}
	var res rssResult
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIngestRSSHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), rssDirEnv+"="+b.TempDir(), rssRecordsEnv+"="+strconv.Itoa(n), rssSyncEnv+"="+strconv.FormatBool(syncWrites))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		line, ok := "", false
		for l := range strings.Lines(string(out)) {
			if strings.HasPrefix(l, "rss ") {
				line, ok = l, true
			}
			if strings.HasPrefix(l, "mappings: ") {
				fmt.Print(l)
			}
		}
		if !ok {
			b.Fatalf("child printed no result:\n%s", out)
		}
		if _, err := fmt.Sscanf(line, "rss %d %d %d %d %d", &res.vmHWMkB, &res.heapPeak, &res.elapsedMs, &res.anonPeakKB, &res.filePeakKB); err != nil {
			b.Fatalf("child printed %q: %v", line, err)
		}
	}
	fmt.Printf("ingest of %d records (SyncWrites=%v) in a child process: peak RSS (VmHWM) %.0f MB; sampled peaks: RssAnon %.0f MB, RssFile %.0f MB (memory-mapped files), Go HeapInuse %.0f MB; %.2f s\n",
		n, syncWrites, float64(res.vmHWMkB)/1024, float64(res.anonPeakKB)/1024, float64(res.filePeakKB)/1024, float64(res.heapPeak)/(1<<20), float64(res.elapsedMs)/1000)
	b.ReportMetric(float64(res.vmHWMkB)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(res.anonPeakKB)/1024, "peak-anon-MB")
	b.ReportMetric(float64(res.filePeakKB)/1024, "peak-file-MB")
	b.ReportMetric(float64(res.heapPeak)/(1<<20), "peak-heap-MB")
}

const (
	rssDirEnv     = "BADGERSTORE_RSS_DIR"
	rssRecordsEnv = "BADGERSTORE_RSS_RECORDS"
	rssSyncEnv    = "BADGERSTORE_RSS_SYNC"
)

type rssResult struct {
	vmHWMkB, heapPeak, elapsedMs, anonPeakKB, filePeakKB int64
}

// TestIngestRSSHelper is BenchmarkIngestRSS's child: it runs only when the
// benchmark starts it.
func TestIngestRSSHelper(t *testing.T) {
	dir := os.Getenv(rssDirEnv)
	if dir == "" {
		t.Skip("run by BenchmarkIngestRSS")
	}
	n, err := strconv.Atoi(os.Getenv(rssRecordsEnv))
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.SyncWrites = os.Getenv(rssSyncEnv) == "true"
	o.GCInterval = -1
	benchOptions(&o)
	payload := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	// Sample the Go heap and the anonymous and file-backed parts of the RSS
	// while the ingest runs.
	var heapPeak, anonPeak, filePeak atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > heapPeak.Load() {
				heapPeak.Store(ms.HeapInuse)
			}
			if kb := uint64(procStatusKB("RssAnon")); kb > anonPeak.Load() {
				anonPeak.Store(kb)
			}
			if kb := uint64(procStatusKB("RssFile")); kb > filePeak.Load() {
				filePeak.Store(kb)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	recs := make([]store.Record, benchPage)
	for p := range (n + benchPage - 1) / benchPage {
		for i := range recs {
			recs[i] = benchRecord(uint64(p*benchPage+i+1), payload)
		}
		batch := store.Batch{
			PutRecords:    recs,
			SetWatermarks: []store.Mark{{Stream: benchStream, HLC: recs[len(recs)-1].Version}},
		}
		if err := s.Apply(&batch); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	fmt.Printf("mappings: resident kB at the end by kind: %s\n", rssByMapping())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rss %d %d %d %d %d\n", procStatusKB("VmHWM"), heapPeak.Load(), elapsed.Milliseconds(), anonPeak.Load(), filePeak.Load())
}

// rssByMapping sums the resident kB of the process's mappings by kind:
// anonymous memory, and files by their extension (Badger's .vlog value
// logs, .sst tables, .mem memtable logs; the test binary).
func rssByMapping() string {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return err.Error()
	}
	kinds := make(map[string]int64)
	kind := ""
	for l := range strings.Lines(string(data)) {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") { // a mapping's header line
			kind = "anon"
			if len(f) >= 6 {
				kind = f[5]
				if i := strings.LastIndexAny(kind, "./"); i >= 0 && kind[i] == '.' {
					kind = kind[i:]
				}
			}
			continue
		}
		if len(f) >= 2 && f[0] == "Rss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			kinds[kind] += kb
		}
	}
	var out []string
	for k, kb := range kinds {
		if kb >= 1024 {
			out = append(out, fmt.Sprintf("%s %d", k, kb))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// procStatusKB reads a kB field of /proc/self/status (0 if it cannot).
func procStatusKB(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb
		}
	}
	return 0
}

// BenchmarkPrune measures what pruning costs the caller of Apply, as a node
// prunes: a stream of N records (one in ten a tombstone) and N log entries,
// then 20 Applies that each move the stream's prune point by N/20 and ask
// for PruneLog and PurgeTombstones up to it, each followed by 5 pages of
// 1,000 new records (as a node goes on receiving while it prunes). It
// reports the longest and the mean Apply of a pruning batch
// ("prune-apply-max-ms", "prune-apply-mean-ms"), the median, 99th percentile
// and longest Apply of a page ("page-apply-p50-ms", "page-apply-p99-ms",
// "page-apply-max-ms") and the time until all the pruning was done
// ("total-s"; a store that prunes in the background is waited for with its
// WaitPruned method).
//
//	BADGERSTORE_BENCH_RECORDS=100000 go test -run '^$' -bench Prune -benchtime 1x ./store/badgerstore/
func BenchmarkPrune(b *testing.B) {
	n := envInt("BADGERSTORE_BENCH_RECORDS", 100_000)
	o := DefaultOptions()
	o.SyncWrites = false
	o.GCInterval = -1
	payload := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	const steps = 20
	var pruneMax, pruneSum time.Duration
	var pages []time.Duration
	var total time.Duration
	for range b.N {
		b.StopTimer()
		s, err := Open(b.TempDir(), o)
		if err != nil {
			b.Fatal(err)
		}
		page := func(first int) *store.Batch {
			var batch store.Batch
			for i := first; i < first+benchPage; i++ {
				r := benchRecord(uint64(i), payload)
				if i%10 == 0 {
					r.Data, r.Deleted = nil, true
				}
				batch.PutRecords = append(batch.PutRecords, r)
				batch.AppendLog = append(batch.AppendLog, store.LogEntry{Library: r.Library, ModelType: r.ModelType, HLC: r.Version, RecordID: r.ID, ChangeType: "Insert", Data: r.Data})
			}
			return &batch
		}
		for p := 0; p < n/benchPage; p++ {
			if err := s.Apply(page(p*benchPage + 1)); err != nil {
				b.Fatal(err)
			}
		}
		waiter, _ := any(s).(interface{ WaitPruned() error })
		b.StartTimer()
		start := time.Now()
		pruneMax, pruneSum, pages = 0, 0, nil
		next := n + 1
		for i := 1; i <= steps; i++ {
			mark := hlc.HLC{Timestamp: 1_700_000_000_000 + uint64(n*i/steps), DeviceID: benchStream.Origin}
			t0 := time.Now()
			err := s.Apply(&store.Batch{
				SetPrunePoints:  []store.PrunePoint{{Stream: benchStream, Log: mark, Tombstones: mark}},
				PruneLog:        []store.Mark{{Stream: benchStream, HLC: mark}},
				PurgeTombstones: []store.Mark{{Stream: benchStream, HLC: mark}},
			})
			d := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			pruneMax, pruneSum = max(pruneMax, d), pruneSum+d
			for range 5 {
				t0 = time.Now()
				if err := s.Apply(page(next)); err != nil {
					b.Fatal(err)
				}
				pages = append(pages, time.Since(t0))
				next += benchPage
			}
		}
		if waiter != nil {
			if err := waiter.WaitPruned(); err != nil {
				b.Fatal(err)
			}
		}
		total = time.Since(start)
		b.StopTimer()
		if p, err := s.LogPage(benchStream, hlc.HLC{}, 1); err != nil || len(p.Entries) != 1 || p.Entries[0].HLC.Timestamp != 1_700_000_000_000+uint64(n)+1 {
			b.Fatalf("after pruning everything, the log starts with %v (%v)", p.Entries[0].HLC, err)
		}
		s.Close()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	slices.Sort(pages)
	pct := func(q float64) time.Duration { return pages[min(len(pages)-1, int(q*float64(len(pages))))] }
	fmt.Printf("prune %d records and log entries in %d steps: Apply of a pruning batch max %.1f ms, mean %.1f ms; Apply of a page p50 %.1f ms, p99 %.1f ms, max %.1f ms; all pruned after %.2f s\n",
		n, steps, ms(pruneMax), ms(pruneSum/steps), ms(pct(0.5)), ms(pct(0.99)), ms(pages[len(pages)-1]), total.Seconds())
	b.ReportMetric(ms(pruneMax), "prune-apply-max-ms")
	b.ReportMetric(ms(pruneSum/steps), "prune-apply-mean-ms")
	b.ReportMetric(ms(pct(0.5)), "page-apply-p50-ms")
	b.ReportMetric(ms(pct(0.99)), "page-apply-p99-ms")
	b.ReportMetric(ms(pages[len(pages)-1]), "page-apply-max-ms")
	b.ReportMetric(total.Seconds(), "total-s")
}
