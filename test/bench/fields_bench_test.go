package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// fieldsReceiver is receiver with a registry where "tag" is shared and
// "note" shared-fields.
func fieldsReceiver(b *testing.B, now time.Time) (*engine.Engine, *store.Mem, uuid.UUID, uuid.UUID) {
	reg, err := engine.NewRegistry(
		engine.ModelType{Name: "device", Strategy: engine.Shared},
		engine.ModelType{Name: "tag", Strategy: engine.Shared},
		engine.ModelType{Name: "note", Strategy: engine.SharedFields},
	)
	if err != nil {
		b.Fatal(err)
	}
	self, peer, lib := uuid.New(), uuid.New(), uuid.New()
	st := store.NewMem()
	eng, err := engine.New(engine.Config{Device: self, Registry: reg}, st)
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.Load(now); err != nil {
		b.Fatal(err)
	}
	if err := eng.AddLibrary(now, store.Library{ID: lib, Name: "bench"}, []store.Member{{DeviceID: self}, {DeviceID: peer}}); err != nil {
		b.Fatal(err)
	}
	if err := eng.Connected(now, lib, peer); err != nil {
		b.Fatal(err)
	}
	apply(b, eng, st)
	return eng, st, lib, peer
}

// BenchmarkFieldsMerge compares a shared-fields model type with a
// record-level shared one on the same edits: n/10 records of four fields
// (a title, a colour, a size and a 200-byte body), each inserted whole and
// then edited four times, one field an edit, by a peer's live batches of
// 1,000 changes. A shared change carries the whole record each time (that is
// what a record-level write is); a shared-fields change only the field it
// edits. It reports the engine's merge rate (changes/s, time in engine calls
// only), the stored bytes per record (the record's value: the payload, or
// the field state with its per-field versions) and the bytes per change on
// the wire (its data).
func BenchmarkFieldsMerge(b *testing.B) {
	nrec := records(b) / 10
	body := make([]byte, 200)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	whole := func(edit int) map[string]any {
		return map[string]any{"title": fmt.Sprintf("title %d", edit), "colour": []string{"red", "blue"}[edit%2], "size": edit, "body": string(body)}
	}
	fields := []string{"title", "colour", "size", "body"}
	for _, model := range []string{"tag", "note"} {
		var rate, bytesPerRecord, wirePerChange float64
		for it := 0; it < b.N; it++ {
			now := time.Now()
			eng, st, lib, peer := fieldsReceiver(b, now)
			base := uint64(now.Add(-time.Hour).UnixMilli())
			ids := make([]uuid.UUID, nrec)
			for i := range ids {
				ids[i] = uuid.New()
			}
			var ens []protocol.SharedChangeEntry
			var prev *hlc.HLC
			wire := 0
			for edit := 0; edit < 5; edit++ {
				for _, id := range ids {
					h := hlc.HLC{Timestamp: base + uint64(len(ens)+1), DeviceID: peer}
					var v any = whole(edit)
					ct := protocol.Update
					if edit == 0 {
						ct = protocol.Insert
					} else if model == "note" {
						f := fields[(edit-1)%len(fields)]
						v = map[string]any{f: whole(edit)[f]}
					}
					data, err := cbor.Marshal(v)
					if err != nil {
						b.Fatal(err)
					}
					wire += len(data)
					ens = append(ens, protocol.SharedChangeEntry{HLC: h, ModelType: model, RecordUUID: id, ChangeType: ct, Data: data, Prev: prev})
					prev = &ens[len(ens)-1].HLC
				}
			}
			var inEngine time.Duration
			for i := 0; i < len(ens); i += 1000 {
				bt := &protocol.SharedChangeBatch{LibraryID: lib, Entries: ens[i:min(i+1000, len(ens))]}
				t0 := time.Now()
				if err := eng.Step(now, peer, bt); err != nil {
					b.Fatal(err)
				}
				inEngine += time.Since(t0)
				_, e, _ := timedApply(b, eng, st)
				inEngine += e
			}
			stored := 0
			for _, id := range ids {
				r, err := st.Record(store.RecordKey{Library: lib, ModelType: model, ID: id})
				if err != nil {
					b.Fatal(err)
				}
				stored += len(r.Data)
			}
			rate = float64(len(ens)) / inEngine.Seconds()
			bytesPerRecord = float64(stored) / float64(nrec)
			wirePerChange = float64(wire) / float64(len(ens))
		}
		strategy := map[string]string{"tag": "shared", "note": "shared-fields"}[model]
		b.ReportMetric(rate, strategy+"-changes/s")
		b.ReportMetric(bytesPerRecord, strategy+"-B/record")
		fmt.Printf("%s: %d records, 5 writes each: engine merges %.0f changes/s; %.0f bytes stored per record; %.0f bytes of data per change\n",
			strategy, nrec, rate, bytesPerRecord, wirePerChange)
	}
}
