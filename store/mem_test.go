package store_test

import (
	"errors"
	"testing"

	"github.com/syncnode/syncnode/hlc"

	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

func TestMemConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMem() })
}

// TestMemChecksReplaced: Mem refuses a batch whose Replaced does not name
// the version each record replaces, so that the simulation catches an engine
// that gets it wrong.
func TestMemChecksReplaced(t *testing.T) {
	lib, dev := storetest.ID(0x11, 1), storetest.ID(0xd0, 1)
	r := store.Record{Library: lib, ModelType: "entry", ID: storetest.ID(0x7e, 1), Version: hlc.HLC{Timestamp: 10, DeviceID: dev}, Data: []byte{0x01}}
	m := store.NewMem()
	for _, c := range []struct {
		name     string
		replaced hlc.HLC
		ok       bool
	}{
		{"a version where none is stored", hlc.HLC{Timestamp: 5, DeviceID: dev}, false},
		{"none where none is stored", hlc.HLC{}, true},
		{"none where one is stored", hlc.HLC{}, false},
		{"another version than the stored one", hlc.HLC{Timestamp: 9, DeviceID: dev}, false},
		{"the stored version", hlc.HLC{Timestamp: 10, DeviceID: dev}, true},
	} {
		err := m.Apply(&store.Batch{PutRecords: []store.Record{r}, Replaced: []hlc.HLC{c.replaced}})
		if c.ok && err != nil {
			t.Errorf("%s: Apply: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Apply returned %v, want ErrInvalid", c.name, err)
		}
		if err == nil {
			r.Version.Timestamp++
		}
	}
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
