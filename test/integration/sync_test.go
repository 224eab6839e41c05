package integration

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Owned and shared writes on each of three nodes reach the others live.
func TestLiveWritesReachEveryNode(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	type want struct {
		model string
		id    uuid.UUID
		data  []byte
	}
	var wants []want
	for i := range c.nodes {
		id := uuid.New()
		d := data(t, fmt.Sprintf("location of n%d", i))
		if _, err := c.lib_(i).PutOwned(ctx, "location", id, d); err != nil {
			t.Fatal(err)
		}
		wants = append(wants, want{"location", id, d})
		id = uuid.New()
		d = data(t, fmt.Sprintf("tag of n%d", i))
		if _, err := c.lib_(i).PutShared(ctx, "tag", id, d); err != nil {
			t.Fatal(err)
		}
		wants = append(wants, want{"tag", id, d})
	}
	for i := range c.nodes {
		for _, w := range wants {
			eventually(t, 10*time.Second, func() bool {
				r, err := c.lib_(i).Get(ctx, w.model, w.id)
				return err == nil && bytes.Equal(r.Data, w.data)
			}, func() string { return fmt.Sprintf("n%d lacks %s/%s", i, w.model, w.id) })
		}
	}
}
