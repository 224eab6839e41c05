package badgerstore

import (
	"testing"
	"time"

	"github.com/syncnode/syncnode/store"
)

// waitGCRuns waits until n GC runs have completed, failing after 20 s.
func waitGCRuns(t *testing.T, s *Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.gcRuns.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d GC runs completed, want %d", s.gcRuns.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitGCAfterKick asks for a GC run and waits until one that began after
// the request has completed.
func waitGCAfterKick(t *testing.T, s *Store) {
	t.Helper()
	begun := s.gcBegun.Load()
	s.kickGC()
	deadline := time.Now().Add(20 * time.Second)
	for s.gcBegun.Load() <= begun {
		if time.Now().After(deadline) {
			t.Fatal("no GC run began in 20 s after kickGC")
		}
		time.Sleep(time.Millisecond)
	}
	waitGCRuns(t, s, begun+1)
}

// payloadLog returns a batch of n log entries of stream A from timestamp
// from on, each with size bytes of data (in the value log).
func payloadLog(from uint64, n, size int) *store.Batch {
	b := logEntries(span(from, from+uint64(n)-1)...)
	data := make([]byte, size)
	for i := range b.AppendLog {
		b.AppendLog[i].ChangeType = "Update"
		b.AppendLog[i].Data = data
	}
	return b
}

// TestGCRunsAfterAValueLogFileOfWrites: with a GC interval of an hour, a
// GC run still happens once Apply has written more than a value-log file's
// worth.
func TestGCRunsAfterAValueLogFileOfWrites(t *testing.T) {
	o := testOptions()
	o.GCInterval = time.Hour
	o.ValueLogFileSize = 1 << 20
	s := openTest(t, t.TempDir(), o)
	for i := range 12 { // 12 × 100 × 1 KiB
		if err := s.Apply(payloadLog(uint64(1+100*i), 100, 1<<10)); err != nil {
			t.Fatal(err)
		}
	}
	waitGCRuns(t, s, 1)
}
