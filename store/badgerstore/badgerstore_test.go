package badgerstore

import (
	"testing"

	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/storetest"
)

// testOptions are small and quick: no fsync (tests do not cut power), no GC.
func testOptions() Options {
	o := DefaultOptions()
	o.SyncWrites = false
	o.GCInterval = -1
	return o
}

func openTest(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, t.TempDir(), testOptions()) })
}
