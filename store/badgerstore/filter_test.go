package badgerstore

import (
	"errors"
	"testing"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// TestRecordFilter: records written before Open, during the filter's fill
// and after it are all found once the filter is ready; records never written
// are not found, mostly without asking Badger (the false-positive rate
// stays near 1% also after the filter grew); a dropped record is not found.
func TestRecordFilter(t *testing.T) {
	dir := t.TempDir()
	lib, dev := storetest.ID(0x11, 1), storetest.ID(0xd0, 1)
	key := func(i int) store.RecordKey {
		return store.RecordKey{Library: lib, ModelType: "entry", ID: storetest.ID(0x7e, uint64(i+1))}
	}
	write := func(s *Store, from, to int) {
		t.Helper()
		for p := from; p < to; p += 1000 {
			var b store.Batch
			for i := p; i < min(to, p+1000); i++ {
				k := key(i)
				b.PutRecords = append(b.PutRecords, store.Record{Library: k.Library, ModelType: k.ModelType, ID: k.ID,
					Version: hlc.HLC{Timestamp: uint64(i + 1), DeviceID: dev}, Data: []byte{0x01}})
			}
			if err := s.Apply(&b); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := openTest(t, dir, testOptions())
	write(s, 0, 5000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, testOptions())
	write(s, 5000, 10000) // perhaps while the filter fills
	<-s.filterDone
	if !s.filter.ready.Load() {
		t.Fatal("the record filter is not ready after filling")
	}
	const stored = filterFirstKeys + 10000 // beyond the first Bloom filter
	write(s, 10000, stored)
	for i := 0; i < stored; i += 7 {
		if _, err := s.Record(key(i)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	falsePositives := 0
	const probes = 20000
	for i := stored; i < stored+probes; i++ {
		k := key(i)
		if !s.filter.absent(recordKey(nil, k.Library, k.ModelType, k.ID)) {
			falsePositives++
		}
		if _, err := s.Record(k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("record %d, never written: %v, want ErrNotFound", i, err)
		}
	}
	if rate := float64(falsePositives) / probes; rate > 0.03 {
		t.Errorf("false-positive rate %.3f, want about 0.01", rate)
	}
	if err := s.Apply(&store.Batch{DropRecords: []store.RecordKey{key(3)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(key(3)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a dropped record: %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(key(stored + 1)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Record of a closed store: %v, want ErrClosed", err)
	}
}
