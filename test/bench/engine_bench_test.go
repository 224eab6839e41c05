// Package bench holds syncnode's benchmarks that compare a component with
// the limit measured in the same run (a raw Badger batch write, ...), and
// print both with their ratio. Run them with
//
//	go test ./test/bench -run '^$' -bench . -benchtime 1x
package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

const payloadSize = 256

// records returns the benchmark size: BENCH_RECORDS, default 200,000.
func records(b *testing.B) int {
	if v := os.Getenv("BENCH_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			b.Fatalf("BENCH_RECORDS=%q: want a number of at least 1000", v)
		}
		return n
	}
	return 200_000
}

func payload(b *testing.B) []byte {
	raw := make([]byte, payloadSize-3) // a CBOR byte string of 256 bytes in all
	if _, err := rand.Read(raw); err != nil {
		b.Fatal(err)
	}
	p, err := cbor.Marshal(raw)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// rawBadgerRate writes n records of the same shape as the engine's (a
// record key and an index key, payload-sized values) through a raw Badger
// WriteBatch with SyncWrites off, and returns records per second.
func rawBadgerRate(b *testing.B, n int, data payloads) float64 {
	dir := b.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	wb := db.NewWriteBatch()
	key := make([]byte, 0, 80)
	for i := 0; i < n; i++ {
		id := uuid.New()
		key = append(key[:0], 'r')
		key = append(key, id[:]...)
		if err := wb.Set(append([]byte(nil), key...), data(i)); err != nil {
			b.Fatal(err)
		}
		key[0] = 'i'
		key = strconv.AppendInt(key, int64(i), 10)
		if err := wb.Set(append([]byte(nil), key...), nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// receiver builds an engine over store.Mem in a library with one peer, and
// returns it with the peer's device ID.
func receiver(b *testing.B, now time.Time) (*engine.Engine, *store.Mem, uuid.UUID, uuid.UUID) {
	self, peer, lib := uuid.New(), uuid.New(), uuid.New()
	st := store.NewMem()
	eng, err := engine.New(engine.Config{Device: self}, st)
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.Load(now); err != nil {
		b.Fatal(err)
	}
	members := []store.Member{{DeviceID: self}, {DeviceID: peer}}
	if err := eng.AddLibrary(now, store.Library{ID: lib, Name: "bench"}, members); err != nil {
		b.Fatal(err)
	}
	if err := eng.Connected(now, lib, peer); err != nil {
		b.Fatal(err)
	}
	apply(b, eng, st)
	return eng, st, lib, peer
}

func apply(b *testing.B, eng *engine.Engine, st *store.Mem) engine.Ready {
	rd, _, _ := timedApply(b, eng, st)
	return rd
}

// timedApply takes the engine's Ready, applies its batch to the store and
// advances, returning the time spent in the engine and in the store.
func timedApply(b *testing.B, eng *engine.Engine, st *store.Mem) (engine.Ready, time.Duration, time.Duration) {
	t0 := time.Now()
	rd := eng.Ready()
	t1 := time.Now()
	if err := st.Apply(&rd.Batch); err != nil {
		b.Fatal(err)
	}
	t2 := time.Now()
	eng.Advance()
	return rd, t1.Sub(t0) + time.Since(t2), t2.Sub(t1)
}

// BenchmarkEngineOwnedPages applies device-owned records arriving in
// catch-up pages of 1,000, through the engine into store.Mem, and compares the
// rate with a raw Badger ingest of as many records in the same run. The engine
// must not be what bounds a backfill: target ratio ≥ 3.
func BenchmarkEngineOwnedPages(b *testing.B) {
	n := records(b)
	data := payload(b)
	var engineRate, withMem float64
	for it := 0; it < b.N; it++ {
		now := time.Now()
		eng, st, lib, peer := receiver(b, now)
		base := uint64(now.Add(-time.Hour).UnixMilli())
		top := hlc.HLC{Timestamp: base + uint64(n), DeviceID: peer}
		if err := eng.Step(now, peer, &protocol.Hello{LibraryID: lib, DeviceID: peer, Versions: []uint32{protocol.Version},
			Watermarks: []protocol.Watermark{{DeviceID: peer, ModelType: "location", HLC: top}}}); err != nil {
			b.Fatal(err)
		}
		rd := apply(b, eng, st)
		if len(rd.Requests) != 1 {
			b.Fatalf("want one catch-up request, got %d", len(rd.Requests))
		}
		id := rd.Requests[0].ID
		pages := make([]*protocol.StateResponse, 0, n/1000)
		for p := 0; p < n/1000; p++ {
			recs := make([]protocol.StateRecord, 1000)
			for i := range recs {
				recs[i] = protocol.StateRecord{RecordUUID: uuid.New(), Data: data,
					Timestamp: hlc.HLC{Timestamp: base + uint64(p*1000+i+1), DeviceID: peer}}
			}
			pages = append(pages, &protocol.StateResponse{LibraryID: lib, ModelType: "location", DeviceID: peer,
				Records: recs, HasMore: p < n/1000-1, UpTo: recs[len(recs)-1].Timestamp, Complete: top})
		}
		var inEngine, inStore time.Duration
		for _, pg := range pages {
			t0 := time.Now()
			if err := eng.StepResponse(now, id, pg); err != nil {
				b.Fatal(err)
			}
			inEngine += time.Since(t0)
			_, e, s := timedApply(b, eng, st)
			inEngine += e
			inStore += s
		}
		engineRate = float64(len(pages)*1000) / inEngine.Seconds()
		withMem = float64(len(pages)*1000) / (inEngine + inStore).Seconds()
	}
	report(b, "owned records/s in pages of 1000", engineRate, withMem, rawBadgerRate(b, n, samePayload(data)))
}

// BenchmarkEngineSharedBatches applies shared changes arriving live in
// batches of 1,000, through the engine into store.Mem (each change also lands
// in the log), beside a raw Badger ingest of as many records.
func BenchmarkEngineSharedBatches(b *testing.B) {
	n := records(b)
	data := payload(b)
	var engineRate, withMem float64
	for it := 0; it < b.N; it++ {
		now := time.Now()
		eng, st, lib, peer := receiver(b, now)
		base := uint64(now.Add(-time.Hour).UnixMilli())
		batches := make([]*protocol.SharedChangeBatch, 0, n/1000)
		var prev *hlc.HLC
		for p := 0; p < n/1000; p++ {
			ens := make([]protocol.SharedChangeEntry, 1000)
			for i := range ens {
				h := hlc.HLC{Timestamp: base + uint64(p*1000+i+1), DeviceID: peer}
				ens[i] = protocol.SharedChangeEntry{HLC: h, ModelType: "tag", RecordUUID: uuid.New(),
					ChangeType: protocol.Insert, Data: data, Prev: prev}
				prev = &ens[i].HLC
			}
			batches = append(batches, &protocol.SharedChangeBatch{LibraryID: lib, Entries: ens})
		}
		var inEngine, inStore time.Duration
		for _, bt := range batches {
			t0 := time.Now()
			if err := eng.Step(now, peer, bt); err != nil {
				b.Fatal(err)
			}
			inEngine += time.Since(t0)
			_, e, s := timedApply(b, eng, st)
			inEngine += e
			inStore += s
		}
		engineRate = float64(len(batches)*1000) / inEngine.Seconds()
		withMem = float64(len(batches)*1000) / (inEngine + inStore).Seconds()
	}
	report(b, "shared changes/s in batches of 1000", engineRate, withMem, rawBadgerRate(b, n, samePayload(data)))
}

// report prints the engine's own rate (time spent in engine calls only),
// the rate with store.Mem applying every batch, and the raw Badger rate of
// the same records measured in the same run, with the ratios.
func report(b *testing.B, what string, engineOnly, withMem, raw float64) {
	b.ReportMetric(engineOnly, "engine-records/s")
	b.ReportMetric(withMem, "with-mem-records/s")
	b.ReportMetric(raw, "badger-records/s")
	b.ReportMetric(engineOnly/raw, "ratio")
	fmt.Printf("%s: engine alone %.0f/s, engine+store.Mem %.0f/s, raw Badger WriteBatch %.0f/s; ratio engine/Badger %.2f (target ≥ 3), engine+Mem/Badger %.2f\n",
		what, engineOnly, withMem, raw, engineOnly/raw, withMem/raw)
}
