package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
)

// 10,000 device-owned records written on one node reach a member added
// later, every one with its version, and the new node then sees the writer
// as live.
func TestBackfillTenThousandRecords(t *testing.T) {
	const total = 10000
	c := newCluster(t, 1, nil)
	ctx := context.Background()

	// Several writers at once, so that the node stores them in groups.
	const writers = 8
	versions := make(map[uuid.UUID]hlc.HLC, total)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < total; k += writers {
				model := "entry"
				if k%10 == 0 {
					model = "location"
				}
				id := uuid.New()
				h, err := c.library(0).PutOwned(ctx, model, id, []byte{0x19, byte(k >> 8), byte(k)}) // CBOR uint16 k
				if err != nil {
					errs <- fmt.Errorf("writing record %d: %w", k, err)
					return
				}
				mu.Lock()
				versions[id] = h
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	started := time.Now()
	n := c.addNode()
	c.addLibrary(0, n)
	s := c.waitConverged(60*time.Second, 0, n)
	t.Logf("%d records backfilled in %v", total, time.Since(started))
	if got := s.count(); got != total {
		t.Fatalf("the new node holds %d records, want %d", got, total)
	}
	for _, recs := range s {
		for _, r := range recs {
			if want, ok := versions[r.ID]; !ok || r.Version != want || r.Deleted {
				t.Fatalf("%s %s: version %v deleted %v, want version %v", r.ModelType, r.ID, r.Version, r.Deleted, want)
			}
		}
	}
	for _, pair := range [][2]int{{n, 0}, {0, n}} {
		at, of := pair[0], pair[1]
		var peers []node.PeerState
		eventually(t, 10*time.Second, func() bool {
			var err error
			peers, err = c.library(at).Peers(ctx)
			return err == nil && len(peers) == 1 && peers[0].Device == c.infos[of].Device &&
				peers[0].State == "live" && peers[0].Lag == 0
		}, func() string { return fmt.Sprintf("n%d's Peers() = %+v, want n%d live with no lag", at, peers, of) })
	}
}
