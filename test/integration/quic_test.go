package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
)

// Two nodes that listen on QUIC only sync both ways.
func TestQUICOnlyPair(t *testing.T) {
	c := newCluster(t, 2, func(cfg *node.Config) {
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
		keepTombstones(cfg)
	})
	for i, info := range c.infos {
		if len(info.Addrs) == 0 {
			t.Fatalf("n%d listens nowhere", i)
		}
		for _, a := range info.Addrs {
			if !strings.Contains(a.String(), "/quic-v1") {
				t.Fatalf("n%d listens on %s, want QUIC only", i, a)
			}
		}
	}
	ctx := context.Background()
	owned, shared := uuid.New(), uuid.New()
	if _, err := c.library(0).PutOwned(ctx, "volume", owned, data(t, "n0's volume")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.library(1).PutShared(ctx, "album", shared, data(t, "n1's album")); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(10*time.Second, 1, "volume", owned, data(t, "n0's volume"))
	c.waitRecord(10*time.Second, 0, "album", shared, data(t, "n1's album"))
	if _, err := c.library(1).DeleteShared(ctx, "album", shared); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(10*time.Second, 0, "album", shared, nil)
	c.waitConverged(10 * time.Second)
	for i, nd := range c.nodes {
		for _, conn := range nd.Host().Network().Conns() {
			if !strings.Contains(conn.RemoteMultiaddr().String(), "/quic-v1") {
				t.Errorf("n%d has a connection over %s, want QUIC", i, conn.RemoteMultiaddr())
			}
		}
	}
}
