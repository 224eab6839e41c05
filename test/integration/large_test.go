package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
)

// Concurrent writes of large payloads (up to the 1 MiB limit of one record)
// all succeed and reach a live peer: the node never stores more in one
// batch than the store accepts.
func TestConcurrentLargeWrites(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx := context.Background()
	waitLive(t, c, 0, 1)
	big := data(t, strings.Repeat("x", 1<<20-16)) // a CBOR text just under 1 MiB
	const writers = 12
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var err error
			if w%2 == 0 {
				_, err = c.library(0).PutShared(ctx, "tag", uuid.New(), big)
			} else {
				_, err = c.library(0).PutOwned(ctx, "entry", uuid.New(), big)
			}
			if err != nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	s := c.waitConverged(30 * time.Second)
	if got := s.count(); got != writers {
		t.Fatalf("the nodes hold %d records, want %d", got, writers)
	}
}

// waitLive waits until node i sees node j as live.
func waitLive(t *testing.T, c *cluster, i, j int) {
	t.Helper()
	var peers []node.PeerState
	eventually(t, 10*time.Second, func() bool {
		var err error
		peers, err = c.library(i).Peers(context.Background())
		if err != nil {
			return false
		}
		for _, p := range peers {
			if p.Device == c.infos[j].Device && p.State == "live" {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("n%d does not see n%d live: %+v", i, j, peers) })
}

// Large records written while no peer was connected reach a member added
// later through catch-up. Catch-up pages are cut by a byte budget as well as
// a record count (at least one record a page), so records near the 1 MiB
// payload limit never make a page larger than a frame; before that, such a
// page was refused by the writer and the catch-up retried forever.
func TestBackfillLargeRecords(t *testing.T) {
	c := newCluster(t, 1, nil)
	ctx := context.Background()
	big := data(t, strings.Repeat("y", 1<<20-16))
	for k := 0; k < 6; k++ {
		if _, err := c.library(0).PutOwned(ctx, "entry", uuid.New(), big); err != nil {
			t.Fatal(err)
		}
		if _, err := c.library(0).PutShared(ctx, "tag", uuid.New(), big); err != nil {
			t.Fatal(err)
		}
	}
	n := c.addNode()
	c.addLibrary(0, n)
	if got := c.waitConverged(30*time.Second, 0, n).count(); got != 12 {
		t.Fatalf("the nodes hold %d records, want 12", got)
	}
}
