package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
)

// Three nodes update (and now and then delete) one shared record at once,
// many rounds: every node ends with the same winner, the write with the
// greatest HLC.
func TestConcurrentSharedUpdatesPickOneWinner(t *testing.T) {
	c := newCluster(t, 3, keepTombstones)
	ctx := context.Background()
	id := uuid.New()
	if _, err := c.library(0).PutShared(ctx, "tag", id, data(t, "first")); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		c.waitRecord(10*time.Second, i, "tag", id, data(t, "first"))
	}

	const rounds = 100
	var (
		mu     sync.Mutex
		newest hlc.HLC
		winner []byte
		wg     sync.WaitGroup
		errs   = make(chan error, len(c.nodes))
	)
	start := make(chan struct{})
	for i := range c.nodes {
		lib := c.library(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for r := 0; r < rounds; r++ {
				var (
					d   []byte // nil: a delete
					h   hlc.HLC
					err error
				)
				if (r+i)%7 == 3 {
					h, err = lib.DeleteShared(ctx, "tag", id)
				} else {
					d, _ = cbor.Marshal(fmt.Sprintf("n%d round %d", i, r))
					h, err = lib.PutShared(ctx, "tag", id, d)
				}
				if err != nil {
					errs <- fmt.Errorf("n%d round %d: %w", i, r, err)
					return
				}
				mu.Lock()
				if h.After(newest) {
					newest, winner = h, d
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	c.waitConverged(10 * time.Second)
	for i := range c.nodes {
		r, err := c.library(i).Get(ctx, "tag", id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != newest || r.Deleted != (winner == nil) || string(r.Data) != string(winner) {
			t.Errorf("n%d holds %s, want the newest write %s", i, show(r), show(node.Record{Version: newest, Data: winner, Deleted: winner == nil}))
		}
	}
}
