package badgerstore

import (
	"testing"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// The record filter grows with the records stored, not with the writes:
// 1,000 records updated 270 times stay in the first Bloom filter (they made
// it grow to two, 1.6 MB, when every put counted).
func TestFilterGrowsWithRecordsNotUpdates(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 270 rounds of records (about 2.5 s); skipped with -short")
	}
	s := openTest(t, t.TempDir(), testOptions())
	<-s.filterDone
	lib, dev := storetest.ID(0x11, 1), storetest.ID(0xd0, 1)
	for round := 0; round < 270; round++ {
		var b store.Batch
		for i := 0; i < 1000; i++ {
			var replaced hlc.HLC
			if round > 0 {
				replaced = hlc.HLC{Timestamp: uint64((round-1)*1000 + i + 1), DeviceID: dev}
			}
			b.PutRecords = append(b.PutRecords, store.Record{Library: lib, ModelType: "entry", ID: storetest.ID(0x7e, uint64(i+1)),
				Version: hlc.HLC{Timestamp: uint64(round*1000 + i + 1), DeviceID: dev}, Data: []byte{1}})
			b.Replaced = append(b.Replaced, replaced)
		}
		if err := s.Apply(&b); err != nil {
			t.Fatal(err)
		}
	}
	if bs := *s.filter.blooms.Load(); len(bs) > 1 {
		t.Fatalf("1,000 records made %d Bloom filters", len(bs))
	}
}
