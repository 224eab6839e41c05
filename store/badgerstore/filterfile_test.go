package badgerstore

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// crashClose stops s as a crash would, as far as the record filter is
// concerned: the database closes, the filter is not saved.
func crashClose(s *Store) {
	s.pr.stop()
	s.stopFilter.Do(func() { close(s.filterStop) })
	<-s.filterDone
	s.mu.Lock()
	s.closed = true
	if s.gcStop != nil {
		close(s.gcStop)
		<-s.gcDone
	}
	s.mu.Unlock()
	s.db.Close()
}

// TestFilterSaved: a clean Close saves the record filter and the next Open
// loads it instead of scanning, and answers right; Open removes the file, so
// after a crash the next Open scans; a stale file (the database written
// since it was saved), a corrupt one, a truncated one or one of another
// database is not used, and every record is found all the same.
func TestFilterSaved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, filterFileName)
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
	// check opens dir, waits for its filter and checks that it was loaded
	// (or not), that records 0 to n are found and n to n+2000 not.
	check := func(what string, wantLoaded bool, n int) *Store {
		t.Helper()
		s, err := Open(dir, testOptions())
		if err != nil {
			t.Fatalf("%s: Open: %v", what, err)
		}
		<-s.filterDone
		if s.filterLoaded != wantLoaded {
			t.Fatalf("%s: the filter was loaded: %v, want %v", what, s.filterLoaded, wantLoaded)
		}
		if !s.filter.ready.Load() {
			t.Fatalf("%s: the filter is not ready", what)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: after Open, the filter file: %v, want it removed", what, err)
		}
		for i := 0; i < n; i++ {
			if _, err := s.Record(key(i)); err != nil {
				t.Fatalf("%s: record %d: %v", what, i, err)
			}
		}
		absent := 0
		for i := n; i < n+2000; i++ {
			k := key(i)
			if s.filter.absent(recordKey(nil, k.Library, k.ModelType, k.ID)) {
				absent++
			}
			if _, err := s.Record(k); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: record %d, never written: %v, want ErrNotFound", what, i, err)
			}
		}
		if absent < 1900 {
			t.Errorf("%s: the filter answers %d of 2,000 misses, want about 1,980", what, absent)
		}
		return s
	}
	closeClean := func(s *Store) []byte {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("after a clean Close, the filter file: %v", err)
		}
		return b
	}

	s := openTest(t, dir, testOptions())
	<-s.filterDone
	if s.filterLoaded {
		t.Fatal("a new store loaded a filter")
	}
	write(s, 0, 5000)
	saved := closeClean(s)

	s = check("after a clean Close", true, 5000)
	write(s, 5000, 6000)
	crashClose(s)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after a crash, the filter file: %v, want none", err)
	}
	s = check("after a crash", false, 6000)
	crashClose(s)

	// The first file again: the database was written since it was saved
	// (records 5000 to 6000 are not in it).
	if err := os.WriteFile(path, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	s = check("with a stale file", false, 6000)
	now := closeClean(s)
	if string(now[4+4:4+4+16]) == string(saved[4+4:4+4+16]) {
		t.Error("two clean Closes saved the same nonce")
	}
	// The first file again, with the database's MaxVersion: only its nonce
	// tells it from the database's.
	other := append([]byte(nil), saved...)
	copy(other[4+4+16:4+4+16+8], now[4+4+16:4+4+16+8])
	if err := os.WriteFile(path, resum(other), 0o600); err != nil {
		t.Fatal(err)
	}
	s = check("with another database's file", false, 6000)
	now = closeClean(s)

	corrupt := append([]byte(nil), now...)
	corrupt[len(corrupt)/2] ^= 0x10
	if err := os.WriteFile(path, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	s = check("with a corrupt file", false, 6000)
	now = closeClean(s)
	if err := os.WriteFile(path, now[:len(now)-100], 0o600); err != nil {
		t.Fatal(err)
	}
	s = check("with a truncated file", false, 6000)
	closeClean(s)
	s = check("after a clean Close again", true, 6000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// resum returns a filter file with its checksum made right again.
func resum(b []byte) []byte {
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
	return b
}
