package badgerstore

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// BenchmarkIngest compares Apply with the limit Badger itself sets: it
// ingests N device-owned records of 256-byte payloads in pages of 1,000,
// each page with its stream's watermark, through Store.Apply; then writes the
// same keys and values with a raw Badger WriteBatch, in the same run, each in
// a fresh directory with the same Badger options. It prints both rates and
// reports their ratio (store / raw) as the metric "ratio".
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
	for b.Loop() {
		storeDur = ingestStore(b, b.TempDir(), o, pages, payload)
		rawDur = ingestRaw(b, b.TempDir(), o, pages, payload)
	}
	records := float64(pages * benchPage)
	mb := records * benchPayload / 1e6
	storeRate, rawRate := records/storeDur.Seconds(), records/rawDur.Seconds()
	ratio := storeRate / rawRate
	fmt.Printf("ingest %d records of %d B in pages of %d, SyncWrites=%v:\n", pages*benchPage, benchPayload, benchPage, syncWrites)
	fmt.Printf("  Store.Apply:       %7.2f s  %9.0f records/s  %6.1f MB/s payload\n", storeDur.Seconds(), storeRate, mb/storeDur.Seconds())
	fmt.Printf("  raw WriteBatch:    %7.2f s  %9.0f records/s  %6.1f MB/s payload\n", rawDur.Seconds(), rawRate, mb/rawDur.Seconds())
	fmt.Printf("  ratio Apply/raw:   %.2f\n", ratio)
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

func ingestStore(b *testing.B, dir string, o Options, pages int, payload []byte) time.Duration {
	s, err := Open(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	recs := make([]store.Record, benchPage)
	for p := range pages {
		for i := range recs {
			recs[i] = benchRecord(uint64(p*benchPage+i+1), payload)
		}
		batch := store.Batch{
			PutRecords:    recs,
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
			if err := wb.Set(recordKey(nil, r.Library, r.ModelType, r.ID), appendRecordValue(nil, &r)); err != nil {
				b.Fatal(err)
			}
			if err := wb.Set(indexKey(nil, r.Library, r.ModelType, r.Version, r.ID), flagValues[0]); err != nil {
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
