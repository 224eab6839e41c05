package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Owned and shared writes on each of five nodes (puts, updates and deletes)
// reach all the others live.
func TestLiveWritesReachEveryNode(t *testing.T) {
	const n = 5
	c := newCluster(t, n, keepTombstones)
	ctx := context.Background()
	type rec struct {
		model string
		id    uuid.UUID
		data  []byte // nil: deleted
	}
	// Round 1: every node puts two owned and two shared records.
	recs := make([][]rec, n)
	for i := range c.nodes {
		for k := 0; k < 2; k++ {
			id := uuid.New()
			d := data(t, fmt.Sprintf("location %d of n%d", k, i))
			if _, err := c.library(i).PutOwned(ctx, "location", id, d); err != nil {
				t.Fatal(err)
			}
			recs[i] = append(recs[i], rec{"location", id, d})
			id = uuid.New()
			d = data(t, fmt.Sprintf("tag %d of n%d", k, i))
			if _, err := c.library(i).PutShared(ctx, "tag", id, d); err != nil {
				t.Fatal(err)
			}
			recs[i] = append(recs[i], rec{"tag", id, d})
		}
	}
	waitAll := func() {
		t.Helper()
		for i := range c.nodes {
			for _, rs := range recs {
				for _, r := range rs {
					c.waitRecord(10*time.Second, i, r.model, r.id, r.data)
				}
			}
		}
	}
	waitAll()

	// Round 2: every node updates its first location and deletes its
	// second; updates the first tag of the next node and deletes the second
	// tag of the node after it.
	for i := range c.nodes {
		lib := c.library(i)
		r := &recs[i][0]
		r.data = data(t, fmt.Sprintf("location 0 of n%d, updated", i))
		if _, err := lib.PutOwned(ctx, r.model, r.id, r.data); err != nil {
			t.Fatal(err)
		}
		r = &recs[i][2]
		if _, err := lib.DeleteOwned(ctx, r.model, r.id); err != nil {
			t.Fatal(err)
		}
		r.data = nil
		r = &recs[(i+1)%n][1]
		r.data = data(t, fmt.Sprintf("tag 0 of n%d, updated by n%d", (i+1)%n, i))
		if _, err := lib.PutShared(ctx, r.model, r.id, r.data); err != nil {
			t.Fatal(err)
		}
		r = &recs[(i+2)%n][3]
		if _, err := lib.DeleteShared(ctx, r.model, r.id); err != nil {
			t.Fatal(err)
		}
		r.data = nil
	}
	waitAll()
	s := c.waitConverged(10 * time.Second)
	if got := s.count(); got != 4*n {
		t.Fatalf("the nodes hold %d records, want %d", got, 4*n)
	}
}
