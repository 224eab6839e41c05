package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// A's records reach a new member D through B and C while A stays offline:
// any member relays any other member's changes (DESIGN.md §4).
func TestRelayToNewMemberWhileOriginIsOffline(t *testing.T) {
	c := newCluster(t, 3, keepTombstones)
	ctx := context.Background()
	const a = 0
	libA := c.library(a)
	var ids []uuid.UUID
	for k := 0; k < 5; k++ {
		id := uuid.New()
		if _, err := libA.PutOwned(ctx, "location", id, data(t, fmt.Sprintf("A's location %d", k))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if _, err := libA.PutOwned(ctx, "entry", uuid.New(), data(t, fmt.Sprintf("A's entry %d", k))); err != nil {
			t.Fatal(err)
		}
		if _, err := libA.PutShared(ctx, "tag", uuid.New(), data(t, fmt.Sprintf("A's tag %d", k))); err != nil {
			t.Fatal(err)
		}
	}
	// An update and a delete, so D must get the newest state and the
	// tombstone, not just the first writes.
	if _, err := libA.PutOwned(ctx, "location", ids[0], data(t, "A's location 0, updated")); err != nil {
		t.Fatal(err)
	}
	if _, err := libA.DeleteOwned(ctx, "location", ids[1]); err != nil {
		t.Fatal(err)
	}
	want := c.waitConverged(10 * time.Second)
	if got := want.count(); got != 15 {
		t.Fatalf("A wrote 15 records, the nodes hold %d", got)
	}
	c.stop(a)

	d := c.addNode()
	c.addLibrary(1, 2, d)
	got := c.waitConverged(20*time.Second, 1, 2, d)
	if diff := want.diff(got); diff != "" {
		t.Fatalf("D's records differ from what A wrote: %s", diff)
	}
	for _, recs := range got {
		for _, r := range recs {
			if r.Version.DeviceID != c.infos[a].Device {
				t.Errorf("%s %s has version %v, not written by A (%s)", r.ModelType, r.ID, r.Version, c.infos[a].Device)
			}
		}
	}
}
