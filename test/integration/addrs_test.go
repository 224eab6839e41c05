package integration

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/syncnode/syncnode/node"
)

// A member that only ever connected inbound is still reachable after a
// restart: its listen addresses, announced by identify, are stored, while
// the inbound connection's own remote address has a port its system chose
// (here: its host dials without port reuse, as behind most NATs). n0 is told
// nothing of the member's addresses; the member dials n0; then n0 restarts
// on a new port, which the member is not told, so only n0 can reconnect.
func TestInboundMemberAddressesAreStored(t *testing.T) {
	ctx := context.Background()
	c := emptyCluster(t, nil)
	a := c.addNode()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	cfg := c.cfg
	cfg.DataDir = t.TempDir()
	nd, err := node.New(cfg, node.WithHost(h), node.WithLogger(logger().With("node", "member")))
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b := c.adopt(nd, "member")

	blind := append(c.infos[:0:0], c.infos...)
	blind[b].Addrs = nil
	if _, err := c.nodes[a].AddLibrary(ctx, c.lib, "test", blind...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[b].AddLibrary(ctx, c.lib, "test", c.infos...); err != nil {
		t.Fatal(err)
	}
	first := uuid.New()
	if _, err := c.library(b).PutShared(ctx, "tag", first, data(t, "before")); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(10*time.Second, a, "tag", first, data(t, "before"))

	c.stop(a)
	c.restart(a)
	id := uuid.New()
	if _, err := c.library(b).PutShared(ctx, "tag", id, data(t, "after")); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(15*time.Second, a, "tag", id, data(t, "after"))
}
