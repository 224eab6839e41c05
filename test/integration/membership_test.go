package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
)

// A device removed from the library (AddLibrary with the member list
// without it) loses its sessions; its later writes and its attempts to
// reconnect are refused as not_member, and nothing it writes afterwards is
// stored by the members.
func TestRemovedMemberIsCutOff(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := context.Background()
	// The removed device is the smallest: it is the one that opens sessions
	// (lessDevice), so it keeps trying, and the members refuse it.
	gone := 0
	for i, info := range c.infos {
		if bytes.Compare(info.Device[:], c.infos[gone].Device[:]) < 0 {
			gone = i
		}
	}
	var members []int
	for i := range c.nodes {
		if i != gone {
			members = append(members, i)
		}
	}
	before := uuid.New()
	if _, err := c.library(gone).PutShared(ctx, "tag", before, data(t, "written while a member")); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(10 * time.Second)

	var kept []node.Member
	for _, i := range members {
		kept = append(kept, c.infos[i])
	}
	for _, i := range members {
		if _, err := c.nodes[i].AddLibrary(ctx, c.lib, "test", kept...); err != nil {
			t.Fatal(err)
		}
	}
	refused := func() int {
		n := 0
		for _, i := range members {
			n += c.nodes[i].Metrics().Refused["not_member"]
		}
		return n
	}
	start := refused()
	after := uuid.New()
	if _, err := c.library(gone).PutShared(ctx, "tag", after, data(t, "written after removal")); err != nil {
		t.Fatal(err)
	}
	// The removed device keeps trying (it still thinks it is a member); the
	// members refuse it.
	eventually(t, 10*time.Second, func() bool { return refused() >= start+2 },
		func() string { return fmt.Sprintf("the members refused the removed device %d times", refused()-start) })
	for _, i := range members {
		if _, err := c.library(i).Get(ctx, "tag", after); !errors.Is(err, node.ErrNotFound) {
			t.Errorf("n%d: Get of the removed device's later write: %v, want ErrNotFound", i, err)
		}
		if _, err := c.library(i).Get(ctx, "tag", before); err != nil {
			t.Errorf("n%d lost the tag written before the removal: %v", i, err)
		}
		peers, err := c.library(i).Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if p.Device == c.infos[gone].Device {
				t.Errorf("n%d still lists the removed device among its peers: %+v", i, p)
			}
		}
	}
	// The members still sync with each other.
	id := uuid.New()
	if _, err := c.library(members[0]).PutShared(ctx, "tag", id, data(t, "after the removal")); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(10*time.Second, members[1], "tag", id, data(t, "after the removal"))
	for _, i := range members {
		if c.nodes[i].Host().ConnManager().IsProtected(c.infos[gone].Peer, "") {
			t.Errorf("n%d still protects the removed device's connection", i)
		}
	}
}
