package integration

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/store"
	"github.com/syncnode/syncnode/store/badgerstore"
)

// gatedStore is a Badger store whose writes can be held back, which stalls
// the node's engine loop as a slow disk would.
type gatedStore struct {
	store.Store
	gate sync.RWMutex
}

func (g *gatedStore) Apply(b *store.Batch) error {
	g.gate.RLock()
	defer g.gate.RUnlock()
	return g.Store.Apply(b)
}

func (g *gatedStore) hold()    { g.gate.Lock() }
func (g *gatedStore) release() { g.gate.Unlock() }

// A peer that stops reading (its disk stalls) makes the sender's queue for
// it overflow: live pushes are dropped, counted, and the peer is caught up
// from the store once it reads again.
func TestFullSendQueueIsCaughtUp(t *testing.T) {
	c := newCluster(t, 1, func(cfg *node.Config) { cfg.SendQueue = 16 })
	ctx := context.Background()

	opts := badgerstore.DefaultOptions()
	opts.SyncWrites = false
	bs, err := badgerstore.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	slowStore := &gatedStore{Store: bs}
	t.Cleanup(func() { _ = bs.Close() }) // after the node's Close (cleanups run last first)
	slow, err := node.New(c.cfg, node.WithStore(slowStore), node.WithLogger(logger().With("node", "slow")))
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := c.adopt(slow, "slow")
	c.addLibrary(0, s)
	first := uuid.New()
	if _, err := c.library(0).PutShared(ctx, "tag", first, data(t, "first")); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(10*time.Second, s, "tag", first, data(t, "first"))

	slowStore.hold()
	held := true
	defer func() {
		if held {
			slowStore.release()
		}
	}()
	payload := data(t, strings.Repeat("x", 4000))
	const writes = 1500
	for k := 0; k < writes; k++ {
		var err error
		if k%2 == 0 {
			_, err = c.library(0).PutShared(ctx, "tag", uuid.New(), payload)
		} else {
			_, err = c.library(0).PutOwned(ctx, "entry", uuid.New(), payload)
		}
		if err != nil {
			t.Fatalf("write %d: %v", k, err)
		}
	}
	dropped := c.nodes[0].Metrics().Dropped
	slowStore.release()
	held = false
	if dropped == 0 {
		t.Errorf("no live message was dropped: the test did not fill the queue")
	}
	got := c.waitConverged(30 * time.Second)
	if n := got.count(); n != writes+1 {
		t.Fatalf("the nodes hold %d records, want %d", n, writes+1)
	}
	t.Logf("%d live messages dropped", dropped)
}
