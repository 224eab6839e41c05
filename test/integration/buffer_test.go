package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The node does not keep the caller's payload buffer: an app that reuses
// its buffer for the next record once a write returned (as Go callers may)
// does not change what was written, on this node or on its peers.
func TestWriteBufferIsNotKept(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx := context.Background()
	waitLive(t, c, 0, 1)
	waitLive(t, c, 1, 0)
	const writes = 300
	buf := make([]byte, 0, 64)
	want := make(map[uuid.UUID]string, writes)
	for k := 0; k < writes; k++ {
		// A CBOR text of fixed length, rewritten in place each time.
		text := fmt.Sprintf("record %06d", k)
		buf = append(buf[:0], byte(0x60+len(text)))
		buf = append(buf, text...)
		id := uuid.New()
		var err error
		if k%2 == 0 {
			_, err = c.library(0).PutShared(ctx, "tag", id, buf)
		} else {
			_, err = c.library(0).PutOwned(ctx, "location", id, buf)
		}
		if err != nil {
			t.Fatal(err)
		}
		want[id] = string(buf)
	}
	for k := range buf {
		buf[k] = 'x' // scribble over the last one too
	}
	s := c.waitConverged(10 * time.Second)
	if got := s.count(); got != writes {
		t.Fatalf("the nodes hold %d records, want %d", got, writes)
	}
	bad := 0
	for _, recs := range s {
		for _, r := range recs {
			if string(r.Data) != want[r.ID] {
				if bad++; bad <= 3 {
					t.Errorf("%s %s holds %q, written as %q", r.ModelType, r.ID, r.Data, want[r.ID])
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d records hold bytes the caller wrote later", bad, writes)
	}
}
