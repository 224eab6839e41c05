package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
)

// deletedRecords are records that must end deleted or purged.
type deletedRecords map[uuid.UUID]string // id -> model type

// alive returns "" if no node of idx holds a live copy of any of the
// records, else which one does.
func (c *cluster) alive(del deletedRecords, idx ...int) string {
	for _, i := range idx {
		for id, model := range del {
			r, err := c.library(i).Get(context.Background(), model, id)
			if err == nil && !r.Deleted {
				return fmt.Sprintf("n%d holds %s %s alive: %s", i, model, id, show(r))
			}
		}
	}
	return ""
}

// purged returns "" if no node of idx holds any of the records, not even a
// tombstone.
func (c *cluster) purged(del deletedRecords, idx ...int) string {
	for _, i := range idx {
		for id, model := range del {
			if r, err := c.library(i).Get(context.Background(), model, id); err == nil {
				return fmt.Sprintf("n%d still holds %s %s: %s", i, model, id, show(r))
			}
		}
	}
	return ""
}

// setUpDeletes writes an owned and two shared records, one of them by the
// node that will go away, waits until all hold them, stops node away, and
// deletes the three on the others.
func setUpDeletes(t *testing.T, c *cluster, away int) deletedRecords {
	t.Helper()
	ctx := context.Background()
	del := deletedRecords{}
	own, tagAway, tag := uuid.New(), uuid.New(), uuid.New()
	if _, err := c.library(0).PutOwned(ctx, "location", own, data(t, "n0's location")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.library(away).PutShared(ctx, "tag", tagAway, data(t, "tag of the node that goes away")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.library(0).PutShared(ctx, "tag", tag, data(t, "n0's tag")); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(10 * time.Second)
	c.stop(away)
	if _, err := c.library(0).DeleteOwned(ctx, "location", own); err != nil {
		t.Fatal(err)
	}
	if _, err := c.library(1).DeleteShared(ctx, "tag", tagAway); err != nil {
		t.Fatal(err)
	}
	if _, err := c.library(1).DeleteShared(ctx, "tag", tag); err != nil {
		t.Fatal(err)
	}
	del[own], del[tagAway], del[tag] = "location", "tag", "tag"
	return del
}

// Records deleted while a member was away (a tombstone cannot be purged
// meanwhile: the away member might still push an older write) are deleted
// on it when it returns; the tombstones are then purged everywhere, and
// nothing comes back.
func TestPurgedTombstonesStayDeleted(t *testing.T) {
	slow(t, "waits out a tombstone purge round")
	c := newCluster(t, 3, nil)
	const away = 2
	del := setUpDeletes(t, c, away)
	c.restart(away)
	waitDeletedThenPurged(t, c, del)
}

// A member away for longer than the horizon stops holding log pruning back
// (the others drop the log entries it lacks). When it returns with live
// copies of records deleted meanwhile, it resyncs from a snapshot: the
// records end deleted on it, the tombstones are purged everywhere, and
// nothing is resurrected.
func TestMemberBeyondHorizonResyncs(t *testing.T) {
	slow(t, "waits out a pruning horizon (about 5 s)")
	const horizon = 2 * time.Second
	c := newCluster(t, 3, func(cfg *node.Config) { cfg.Horizon = horizon })
	const away = 2
	del := setUpDeletes(t, c, away)
	stopped := time.Now()
	// Shared changes the away member lacks, pruned from the logs once it is
	// past the horizon.
	ctx := context.Background()
	for k := 0; k < 20; k++ {
		if _, err := c.library(k%2).PutShared(ctx, "album", uuid.New(), data(t, k)); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(10*time.Second, 0, 1)
	// The condition is the wall clock itself: the horizon and two prune
	// rounds must pass.
	eventually(t, 10*time.Second, func() bool { return time.Since(stopped) > horizon+2*c.cfg.PruneInterval },
		func() string { return "time stood still" })
	c.restart(away)
	waitDeletedThenPurged(t, c, del)
	if got := c.waitConverged(10 * time.Second).count(); got != 20 {
		t.Errorf("the nodes hold %d records, want the 20 albums", got)
	}
}

// waitDeletedThenPurged waits until no node holds the records, alive or as
// tombstones, and until the nodes agree.
func waitDeletedThenPurged(t *testing.T, c *cluster, del deletedRecords) {
	t.Helper()
	var last string
	eventually(t, 20*time.Second, func() bool {
		last = c.alive(del, c.all()...)
		if last == "" {
			last = c.purged(del, c.all()...)
		}
		return last == ""
	}, func() string { return last })
	c.waitConverged(10 * time.Second)
	if s := c.alive(del, c.all()...); s != "" {
		t.Fatal(s)
	}
}
