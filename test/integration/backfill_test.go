package integration

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
)

// 10,000 device-owned records (and 500 shared ones) written on one node
// reach a member added later, every one with its version, nothing is
// refused on the way, and the nodes then see each other live.
func TestBackfillTenThousandRecords(t *testing.T) {
	c := newCluster(t, 1, nil)
	versions := writeOwned(t, c, 0, 10000)
	for k := 0; k < 500; k++ { // shared ones too: both kinds of catch-up at once
		id := uuid.New()
		h, err := c.library(0).PutShared(context.Background(), "tag", id, data(t, k))
		if err != nil {
			t.Fatal(err)
		}
		versions[id] = h
	}
	// The new node has the smaller device ID, so it opens the session: n0
	// then holds the session's inbound stream while it serves both
	// catch-ups (owned and shared) at once.
	n := c.addNode()
	for bytes.Compare(c.infos[n].Device[:], c.infos[0].Device[:]) > 0 {
		c.discardLast()
		n = c.addNode()
	}
	started := time.Now()
	c.addLibrary(0, n)
	s := c.waitConverged(60*time.Second, 0, n)
	t.Logf("%d records backfilled in %v", len(versions), time.Since(started))
	checkBackfill(t, c, n, s, versions)
	// The library may reach n0 before the new node: it may refuse n0's
	// first Hello. Nothing else is refused.
	c.noRefusals("not_member")
}

// A backfill cut short by a restart of the new node resumes from the pages
// it stored and completes.
func TestBackfillResumesAfterRestart(t *testing.T) {
	c := newCluster(t, 1, func(cfg *node.Config) { cfg.PageSize = 100 })
	versions := writeOwned(t, c, 0, 5000)
	n := c.addNode()
	c.addLibrary(0, n)
	var held int
	eventually(t, 30*time.Second, func() bool {
		s, err := dump(context.Background(), c.library(n))
		if err == nil {
			held = s.count()
		}
		return held > 0
	}, func() string { return "the backfill never started" })
	c.stop(n)
	t.Logf("stopped the new node holding %d of %d records", held, len(versions))
	c.restart(n)
	s := c.waitConverged(60*time.Second, 0, n)
	checkBackfill(t, c, n, s, versions)
}

// writeOwned writes total device-owned records (a tenth locations, the rest
// entries) on node i and returns their versions.
func writeOwned(t *testing.T, c *cluster, i, total int) map[uuid.UUID]hlc.HLC {
	t.Helper()
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
				h, err := c.library(i).PutOwned(ctx, model, id, []byte{0x19, byte(k >> 8), byte(k)}) // CBOR uint16 k
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
	return versions
}

// checkBackfill checks that node n holds exactly the records versions
// names, at those versions, and that n and n0 then see each other live.
func checkBackfill(t *testing.T, c *cluster, n int, s snapshot, versions map[uuid.UUID]hlc.HLC) {
	t.Helper()
	ctx := context.Background()
	total := len(versions)
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
