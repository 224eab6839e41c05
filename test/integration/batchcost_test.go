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
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
)

// Thousands of tiny shared writes in quick succession travel in batches
// that the receiver can store: before batches were bounded by what they
// cost the receiver's store, 10,000 of them made one SharedChangeBatch that
// exceeded the store's batch limit and stopped the receiving node.
func TestManyTinyWritesReachPeers(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx := context.Background()
	c.waitConverged(20*time.Second, 0, 1)
	const writers, each = 50, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := c.library(0).PutShared(ctx, "tag", uuid.New(), []byte{0x01}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() bool {
		n, err := countModel(ctx, c, 1, "tag")
		return err == nil && n == writers*each
	}, func() string {
		n, err := countModel(ctx, c, 1, "tag")
		return fmt.Sprintf("the peer holds %d of %d tags (%v)", n, writers*each, err)
	})
	if n, err := countModel(ctx, c, 0, "tag"); err != nil || n != writers*each {
		t.Fatalf("the writer holds %d tags (%v)", n, err)
	}
}

func countModel(ctx context.Context, c *cluster, i int, model string) (int, error) {
	total := 0
	after := uuid.Nil
	for {
		page, err := c.library(i).List(ctx, model, node.ListOptions{After: after})
		if err != nil {
			return 0, err
		}
		total += len(page)
		if len(page) < 1000 {
			return total, nil
		}
		after = page[len(page)-1].ID
	}
}

// A member's batch that would cost the store more than one message may is
// refused with rate_limited, and the node goes on syncing (it used to stop).
func TestCostlyBatchIsRefused(t *testing.T) {
	c := newCluster(t, 2, nil)
	r := newRogueMember(t, c)
	ctx := context.Background()
	now := uint64(time.Now().UnixMilli())
	batch := &protocol.SharedChangeBatch{LibraryID: c.lib}
	for i := 0; i < protocol.MaxRecordsPerMessage; i++ {
		batch.Entries = append(batch.Entries, protocol.SharedChangeEntry{
			HLC: hlc.HLC{Timestamp: now, Counter: uint32(i), DeviceID: r.device}, ModelType: "tag",
			RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: []byte{0x01}})
	}
	if engine.MessageStoreCost(batch) <= engine.MaxMessageStoreCost {
		t.Fatalf("the test batch costs %d, not above the limit %d", engine.MessageStoreCost(batch), engine.MaxMessageStoreCost)
	}
	if err := batch.Validate(); err != nil {
		t.Fatalf("the test batch is not a valid message: %v", err)
	}
	got, _ := exchange(t, r.h, c.nodes[0].Host().ID(), r.hello(c.lib), batch)
	if code, ok := errorCode(got); !ok || code != "rate_limited" {
		t.Fatalf("got %d frames (error %q), want rate_limited", len(got), code)
	}
	id := uuid.New()
	if _, err := c.library(1).PutShared(ctx, "tag", id, data(t, "still syncing")); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(20*time.Second, 0, "tag", id, data(t, "still syncing"))
	if n, err := countModel(ctx, c, 0, "tag"); err != nil || n != 1 {
		t.Fatalf("node 0 holds %d tags (%v), want only the honest one", n, err)
	}
}
