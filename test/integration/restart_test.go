package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// A node that was stopped while the others wrote (new records, updates and
// deletes of records it already held, owned and shared) converges after a
// restart on the same directory, without being told anything.
func TestRestartedNodeConverges(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	const down = 2

	// Records every node holds before the stop: owned by each node, and
	// shared tags written by each.
	owned := make([][]uuid.UUID, 3)
	var tags []uuid.UUID
	for i := range c.nodes {
		for k := 0; k < 3; k++ {
			id := uuid.New()
			if _, err := c.library(i).PutOwned(ctx, "location", id, data(t, fmt.Sprintf("loc %d of n%d", k, i))); err != nil {
				t.Fatal(err)
			}
			owned[i] = append(owned[i], id)
			id = uuid.New()
			if _, err := c.library(i).PutShared(ctx, "tag", id, data(t, fmt.Sprintf("tag %d of n%d", k, i))); err != nil {
				t.Fatal(err)
			}
			tags = append(tags, id)
		}
	}
	before := c.waitConverged(10 * time.Second)
	if got := before.count(); got != 18 {
		t.Fatalf("before the stop the nodes hold %d records, want 18", got)
	}

	c.stop(down)
	for _, i := range []int{0, 1} {
		lib := c.library(i)
		// Owned: update one, delete one, add one.
		if _, err := lib.PutOwned(ctx, "location", owned[i][0], data(t, fmt.Sprintf("loc 0 of n%d, updated", i))); err != nil {
			t.Fatal(err)
		}
		if _, err := lib.DeleteOwned(ctx, "location", owned[i][1]); err != nil {
			t.Fatal(err)
		}
		if _, err := lib.PutOwned(ctx, "entry", uuid.New(), data(t, fmt.Sprintf("new entry of n%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Shared: n0 and n1 update and delete tags of every writer, the stopped
	// node's included, and add new ones.
	for k, id := range tags {
		lib := c.library(k % 2)
		var err error
		switch k % 3 {
		case 0:
			_, err = lib.PutShared(ctx, "tag", id, data(t, fmt.Sprintf("tag %d, updated", k)))
		case 1:
			_, err = lib.DeleteShared(ctx, "tag", id)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.library(0).PutShared(ctx, "album", uuid.New(), data(t, "new album")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.library(1).PutShared(ctx, "user_metadata", uuid.New(), data(t, "new metadata")); err != nil {
		t.Fatal(err)
	}
	mid := c.waitConverged(10*time.Second, 0, 1)
	if d := before.diff(mid); d == "" {
		t.Fatal("the writes while n2 was down changed nothing")
	}

	c.restart(down)
	after := c.waitConverged(20 * time.Second)
	if d := mid.diff(after); d != "" {
		t.Fatalf("the restarted cluster differs from what n0 and n1 held: %s", d)
	}
}
