package engine_test

import (
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// A snapshot catch-up whose first page drops a record (its version moved on
// at the responder) and whose next page puts it back, handled in one flush
// (the node groups inputs before a flush), gives the store the right
// Batch.Replaced: the version the store holds. (The drop used to record
// "nothing replaced", so Mem refused the batch and Badger kept a stale index
// entry that served the old version to peers; found in review.)
func TestSnapshotDropThenPutReplaced(t *testing.T) {
	now := time.Now()
	self, owner, lib := uuid.New(), uuid.New(), uuid.New()
	st := store.NewMem() // Mem checks Replaced
	eng, err := engine.New(engine.Config{Device: self}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(now); err != nil {
		t.Fatal(err)
	}
	if err := eng.AddLibrary(now, store.Library{ID: lib}, []store.Member{{DeviceID: self}, {DeviceID: owner}}); err != nil {
		t.Fatal(err)
	}
	flush := func() engine.Ready {
		rd := eng.Ready()
		if err := st.Apply(&rd.Batch); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		eng.Advance()
		return rd
	}
	flush()
	id := uuid.New()
	d1, _ := cbor.Marshal("v1")
	d2, _ := cbor.Marshal("v2")
	ms := uint64(now.UnixMilli())
	v1 := hlc.HLC{Timestamp: ms - 3000, DeviceID: owner}
	b1 := hlc.HLC{Timestamp: ms - 2000, DeviceID: owner}
	v2 := hlc.HLC{Timestamp: ms - 1000, DeviceID: owner}
	if err := eng.Step(now, owner, &protocol.StateChange{LibraryID: lib, ModelType: "location", RecordUUID: id, DeviceID: owner, Data: d1, Timestamp: v1}); err != nil {
		t.Fatal(err)
	}
	flush()
	if err := eng.Connected(now, lib, owner); err != nil {
		t.Fatal(err)
	}
	flush()
	if err := eng.CatchUp(now, lib, owner, engine.DeviceOwned, "location"); err != nil {
		t.Fatal(err)
	}
	var reqID uint64
	for _, r := range flush().Requests {
		reqID = r.ID
	}
	if reqID == 0 {
		t.Fatal("no request")
	}
	// Page 1 (snapshot): nothing in (0, b1]; the record moved to v2 at the responder.
	if err := eng.StepResponse(now, reqID, &protocol.StateResponse{LibraryID: lib, ModelType: "location", DeviceID: owner,
		UpTo: b1, Complete: v2, Snapshot: true}); err != nil {
		t.Fatal(err)
	}
	// Page 2 lists it at v2. Same flush.
	if err := eng.StepResponse(now, reqID, &protocol.StateResponse{LibraryID: lib, ModelType: "location", DeviceID: owner,
		Records: []protocol.StateRecord{{RecordUUID: id, Data: d2, Timestamp: v2}}, UpTo: v2, Complete: v2, Snapshot: true}); err != nil {
		t.Fatal(err)
	}
	rd := eng.Ready()
	if err := st.Apply(&rd.Batch); err != nil {
		t.Fatalf("Apply of the catch-up batch: %v (the store holds the record at %s)", err, v1)
	}
}

// A snapshot page of no records that covers 20,000 records this node holds
// drops them in rounds that each fit a store batch, with the watermark never
// passing a record not dropped yet. (One page used to drop them all in one
// batch of 9.3 MB, over store.MaxBatchSize: Apply failed and the node
// stopped syncing, again after every restart; found in review.)
func TestSnapshotDropsFitABatch(t *testing.T) {
	now := time.Now()
	self, owner, lib := uuid.New(), uuid.New(), uuid.New()
	st := store.NewMem()
	ms := uint64(now.UnixMilli()) - 100_000
	const n = 20000
	s := store.Stream{Library: lib, ModelType: "location", Origin: owner}
	var last hlc.HLC
	for p := 0; p < n; p += 5000 {
		var b store.Batch
		for i := p; i < p+5000; i++ {
			last = hlc.HLC{Timestamp: ms + uint64(i), DeviceID: owner}
			b.PutRecords = append(b.PutRecords, store.Record{Library: lib, ModelType: "location", ID: uuid.New(), Version: last, Deleted: true})
		}
		if err := st.Apply(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Apply(&store.Batch{SetWatermarks: []store.Mark{{Stream: s, HLC: last}}}); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Device: self}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(now); err != nil {
		t.Fatal(err)
	}
	if err := eng.AddLibrary(now, store.Library{ID: lib}, []store.Member{{DeviceID: self}, {DeviceID: owner}}); err != nil {
		t.Fatal(err)
	}
	flush := func() (engine.Ready, error) {
		rd := eng.Ready()
		err := st.Apply(&rd.Batch)
		eng.Advance()
		return rd, err
	}
	flush()
	if err := eng.Connected(now, lib, owner); err != nil {
		t.Fatal(err)
	}
	flush()
	if err := eng.CatchUp(now, lib, owner, engine.DeviceOwned, "location"); err != nil {
		t.Fatal(err)
	}
	rd, err := flush()
	if err != nil {
		t.Fatal(err)
	}
	var reqID uint64
	for _, r := range rd.Requests {
		reqID = r.ID
	}
	end := hlc.HLC{Timestamp: last.Timestamp + 1, DeviceID: owner}
	// The owner purged its tombstones: every catch-up gets a snapshot of
	// nothing up to end. Each round drops what fits a batch, and the
	// watermark stops there until the last round.
	for round := 1; ; round++ {
		if round > 20 {
			t.Fatal("20 rounds did not drop 20,000 records")
		}
		page := &protocol.StateResponse{LibraryID: lib, ModelType: "location", DeviceID: owner, UpTo: end, Complete: end, Snapshot: true}
		if err := eng.StepResponse(now, reqID, page); err != nil {
			t.Fatal(err)
		}
		eng.RequestDone(now, reqID, nil)
		rd, err := flush()
		if err != nil {
			t.Fatalf("round %d: storing the snapshot page: %v (%d drops, %d bytes)", round, err, len(rd.Batch.DropRecords), rd.Batch.Size())
		}
		if rd.Batch.Size() > engine.MaxMessageStoreCost {
			t.Fatalf("round %d: a batch of %d bytes", round, rd.Batch.Size())
		}
		left, err := st.StatePage(s, hlc.HLC{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		wm, err := st.Watermark(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(left.Records) == 0 {
			if wm != end {
				t.Fatalf("all dropped after %d rounds, but the watermark is %s, not %s", round, wm, end)
			}
			t.Logf("20,000 drops in %d rounds", round)
			return
		}
		if !wm.Less(left.Records[0].Version) {
			t.Fatalf("round %d: watermark %s passed record %s, which is not dropped yet", round, wm, left.Records[0].Version)
		}
		if err := eng.CatchUp(now, lib, owner, engine.DeviceOwned, "location"); err != nil {
			t.Fatal(err)
		}
		rd, err = flush()
		if err != nil {
			t.Fatal(err)
		}
		reqID = 0
		for _, r := range rd.Requests {
			reqID = r.ID
		}
		if reqID == 0 {
			t.Fatalf("round %d: no new catch-up request", round)
		}
	}
}
