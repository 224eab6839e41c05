package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Two fresh nodes that learn of each other at the same instant connect and
// sync, every time: by AddLibrary with each other's addresses on both at
// once, or by AddAddrs on both at once after a library without addresses.
func TestSimultaneousDiscovery(t *testing.T) {
	slow(t, "repeats simultaneous dials many times")
	const rounds = 10
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		byAddAddrs := r%2 == 1
		c := emptyCluster(t, nil)
		a, b := c.addNode(), c.addNode()
		pair := [2]int{a, b}

		if byAddAddrs {
			// Members without addresses: nobody can dial yet.
			for _, i := range pair {
				ms := append(c.infos[:0:0], c.infos...)
				for k := range ms {
					ms[k].Addrs = nil
				}
				if _, err := c.nodes[i].AddLibrary(ctx, c.lib, "test", ms...); err != nil {
					t.Fatal(err)
				}
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		start := make(chan struct{})
		for k, i := range pair {
			other := c.infos[pair[1-k]]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var err error
				if byAddAddrs {
					err = c.nodes[i].AddAddrs(other.Peer, other.Addrs...)
				} else {
					_, err = c.nodes[i].AddLibrary(ctx, c.lib, "test", c.infos...)
				}
				if err != nil {
					errs <- fmt.Errorf("n%d: %w", i, err)
				}
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		ids := [2]uuid.UUID{uuid.New(), uuid.New()}
		for k, i := range pair {
			if _, err := c.library(i).PutShared(ctx, "tag", ids[k], data(t, fmt.Sprintf("round %d, n%d", r, i))); err != nil {
				t.Fatal(err)
			}
		}
		for k, i := range pair {
			c.waitRecord(10*time.Second, pair[1-k], "tag", ids[k], data(t, fmt.Sprintf("round %d, n%d", r, i)))
		}
		t.Logf("round %d (AddAddrs %v): synced in %v", r, byAddAddrs, time.Since(t0))
		c.stop(a)
		c.stop(b)
	}
}
