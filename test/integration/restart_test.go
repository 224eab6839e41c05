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
	c := newCluster(t, 3, keepTombstones)
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

	// The node writes and closes at once: its writes wait in its store
	// (the offline queue) and go out after the restart.
	var lastWords []uuid.UUID
	for k := 0; k < 3; k++ {
		id := uuid.New()
		if _, err := c.library(down).PutShared(ctx, "album", id, data(t, fmt.Sprintf("album %d of n2, written just before Close", k))); err != nil {
			t.Fatal(err)
		}
		lastWords = append(lastWords, id)
	}
	if _, err := c.library(down).PutOwned(ctx, "location", owned[down][2], data(t, "loc 2 of n2, updated just before Close")); err != nil {
		t.Fatal(err)
	}
	c.stop(down)
	expect := make(map[uuid.UUID][]byte) // the state each record must end in; nil: deleted
	for _, i := range []int{0, 1} {
		lib := c.library(i)
		// Owned: update one, delete one, add one.
		expect[owned[i][0]] = data(t, fmt.Sprintf("loc 0 of n%d, updated", i))
		if _, err := lib.PutOwned(ctx, "location", owned[i][0], expect[owned[i][0]]); err != nil {
			t.Fatal(err)
		}
		expect[owned[i][1]] = nil
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
			expect[id] = data(t, fmt.Sprintf("tag %d, updated", k))
			_, err = lib.PutShared(ctx, "tag", id, expect[id])
		case 1:
			expect[id] = nil
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
	c.waitConverged(10*time.Second, 0, 1)

	c.restart(down)
	after := c.waitConverged(20 * time.Second)
	for _, id := range lastWords {
		if !has(after, "album", id) {
			t.Errorf("album %s, written by n2 just before it closed, is lost", id)
		}
	}
	for _, recs := range after {
		for _, r := range recs {
			want, ok := expect[r.ID]
			if ok && (r.Deleted != (want == nil) || string(r.Data) != string(want)) {
				t.Errorf("%s %s ends as %s, want %x (nil: deleted)", r.ModelType, r.ID, show(r), want)
			}
		}
	}
	want := 18 + 3 + 2 + 2 // before, n2's last words, new entries, album and user_metadata
	if got := after.count(); got != want {
		t.Errorf("the cluster holds %d records, want %d", got, want)
	}
}

// has reports whether s holds a record (maybe deleted) of the model type.
func has(s snapshot, model string, id uuid.UUID) bool {
	for _, r := range s[model] {
		if r.ID == id {
			return true
		}
	}
	return false
}
