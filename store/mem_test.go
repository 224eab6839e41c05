package store_test

import (
	"testing"

	"github.com/syncnode/syncnode/hlc"

	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

func TestMemConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMem() })
}

// BenchmarkMemIngest writes pages of 100 records and a watermark, then reads
// them back a page at a time, the simulation's usual load.
func BenchmarkMemIngest(b *testing.B) {
	lib, dev := storetest.ID(0x11, 1), storetest.ID(0xd0, 1)
	st := store.Stream{Library: lib, ModelType: "entry", Origin: dev}
	data := make([]byte, 64)
	for b.Loop() {
		m := store.NewMem()
		for p := range 10 {
			var batch store.Batch
			for i := range 100 {
				n := uint64(p*100 + i + 1)
				batch.PutRecords = append(batch.PutRecords, store.Record{Library: lib, ModelType: "entry", ID: storetest.ID(byte(n), n), Version: hlc.HLC{Timestamp: n, DeviceID: dev}, Data: data})
			}
			batch.SetWatermarks = []store.Mark{{Stream: st, HLC: hlc.HLC{Timestamp: uint64(p*100 + 100), DeviceID: dev}}}
			if err := m.Apply(&batch); err != nil {
				b.Fatal(err)
			}
		}
		var after hlc.HLC
		for {
			page, err := m.StatePage(st, after, 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(page.Records) == 0 {
				break
			}
			after = page.Records[len(page.Records)-1].Version
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/record")
}
