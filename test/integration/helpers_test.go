// Package integration runs syncnode nodes on real libp2p hosts over TCP (and
// QUIC) on 127.0.0.1, each with a real Badger store in a temporary directory.
package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
)

// cluster is a set of started nodes that share one library.
type cluster struct {
	t     *testing.T
	lib   uuid.UUID
	nodes []*node.Node
	dirs  []string
	cfg   node.Config
}

func logger() *slog.Logger {
	if os.Getenv("SYNCNODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// newCluster starts n nodes and makes them members of one library.
func newCluster(t *testing.T, n int, tweak func(*node.Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, lib: uuid.New(), cfg: node.DefaultLocalConfig()}
	if tweak != nil {
		tweak(&c.cfg)
	}
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		c.nodes = append(c.nodes, c.start(i))
	}
	c.addLibrary(c.nodes...)
	return c
}

func (c *cluster) start(i int) *node.Node {
	c.t.Helper()
	cfg := c.cfg
	cfg.DataDir = c.dirs[i]
	nd, err := node.New(cfg, node.WithLogger(logger().With("node", i)))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = nd.Close() })
	return nd
}

func (c *cluster) members(nodes ...*node.Node) []node.Member {
	var ms []node.Member
	for i, nd := range nodes {
		ms = append(ms, node.Member{Device: nd.Device(), Peer: nd.Host().ID(), Name: fmt.Sprintf("n%d", i), Addrs: nd.Host().Addrs()})
	}
	return ms
}

func (c *cluster) addLibrary(nodes ...*node.Node) {
	c.t.Helper()
	ms := c.members(c.nodes...)
	for _, nd := range nodes {
		if _, err := nd.AddLibrary(context.Background(), c.lib, "test", ms...); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *cluster) lib_(i int) *node.Library { return c.nodes[i].Library(c.lib) }

// eventually waits for cond, failing with what() after the deadline.
func eventually(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after %v: %s", d, what())
}

func data(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
