// Package integration runs syncnode nodes on real libp2p hosts over TCP (and
// QUIC) on 127.0.0.1, each with a real Badger store in a temporary directory.
package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/engine"
)

// cluster is a set of nodes that share one library. Node i keeps its data
// directory (and so its device and peer ID) across stop and restart.
type cluster struct {
	t     *testing.T
	lib   uuid.UUID
	cfg   node.Config
	nodes []*node.Node  // nil while stopped
	dirs  []string      // data directory of node i
	infos []node.Member // identity of node i, with its last known addresses
	// opts are options of node i beyond its logger, used at every start.
	opts map[int][]node.Option
}

// slow skips a test that takes seconds of waiting with -short, the quick
// set (go test -short ./... runs in about two minutes on two cores); why
// says what it waits for. Without -short it runs.
func slow(t *testing.T, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("slow (%s); skipped with -short", why)
	}
}

func logger() *slog.Logger {
	if os.Getenv("SYNCNODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newCluster starts n nodes and makes them members of one library.
func newCluster(t *testing.T, n int, tweak func(*node.Config)) *cluster {
	t.Helper()
	c := emptyCluster(t, tweak)
	for i := 0; i < n; i++ {
		c.addNode()
	}
	c.addLibrary(c.all()...)
	return c
}

// keepTombstones is a Config tweak for tests that check deleted flags: it
// keeps tombstones for the test to see. With the local config's prune
// interval of one second, a tombstone is purged everywhere about a second
// after every member holds it, and a Get of it then says ErrNotFound.
// TestPurgedTombstonesStayDeleted checks purging.
func keepTombstones(cfg *node.Config) { cfg.PruneInterval = time.Hour }

// emptyCluster returns a cluster with no node yet, for the library it names.
func emptyCluster(t *testing.T, tweak func(*node.Config)) *cluster {
	c := &cluster{t: t, lib: uuid.New(), cfg: node.DefaultLocalConfig()}
	if tweak != nil {
		tweak(&c.cfg)
	}
	return c
}

// addNode starts a new node in a new directory, not yet a member of the
// library, and returns its index.
func (c *cluster) addNode() int {
	c.t.Helper()
	c.dirs = append(c.dirs, c.t.TempDir())
	c.nodes = append(c.nodes, nil)
	c.infos = append(c.infos, node.Member{})
	i := len(c.nodes) - 1
	c.start(i)
	return i
}

// start starts node i on its directory.
func (c *cluster) start(i int) *node.Node {
	c.t.Helper()
	if c.nodes[i] != nil {
		c.t.Fatalf("n%d is already running", i)
	}
	cfg := c.cfg
	cfg.DataDir = c.dirs[i]
	nd, err := node.New(cfg, append([]node.Option{node.WithLogger(logger().With("node", i))}, c.opts[i]...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = nd.Close() })
	if old := c.infos[i]; old.Device != uuid.Nil && (old.Device != nd.Device() || old.Peer != nd.Host().ID()) {
		c.t.Fatalf("n%d restarted as device %s peer %s, was device %s peer %s", i, nd.Device(), nd.Host().ID(), old.Device, old.Peer)
	}
	c.nodes[i] = nd
	c.infos[i] = node.Member{Device: nd.Device(), Peer: nd.Host().ID(), Name: fmt.Sprintf("n%d", i), Addrs: nd.Host().Addrs()}
	return nd
}

// stop closes node i; its directory stays.
func (c *cluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Fatalf("closing n%d: %v", i, err)
	}
	c.nodes[i] = nil
}

// discardLast stops the node added last and forgets it: it is no member of
// anything the cluster sets up afterwards.
func (c *cluster) discardLast() {
	c.t.Helper()
	i := len(c.nodes) - 1
	if c.nodes[i] != nil {
		c.stop(i)
	}
	c.nodes, c.dirs, c.infos = c.nodes[:i], c.dirs[:i], c.infos[:i]
}

// restart starts the stopped node i again on its directory. It tells nobody
// its new address: the node dials the members it knows from its store.
func (c *cluster) restart(i int) *node.Node {
	c.t.Helper()
	return c.start(i)
}

// all returns the indices of every node ever started.
func (c *cluster) all() []int {
	out := make([]int, len(c.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

// running returns the indices of the running nodes.
func (c *cluster) running() []int {
	var out []int
	for i, nd := range c.nodes {
		if nd != nil {
			out = append(out, i)
		}
	}
	return out
}

// addLibrary makes every node of the cluster (running or not) a member of
// the library, on the given running nodes. AddLibrary replaces the member
// list, so it always names all of them.
func (c *cluster) addLibrary(on ...int) {
	c.t.Helper()
	for _, i := range on {
		if _, err := c.nodes[i].AddLibrary(context.Background(), c.lib, "test", c.infos...); err != nil {
			c.t.Fatalf("AddLibrary on n%d: %v", i, err)
		}
	}
}

// library returns node i's handle on the cluster's library.
func (c *cluster) library(i int) *node.Library { return c.nodes[i].Library(c.lib) }

// eventually waits for cond, failing with what() after the deadline.
func eventually(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func data(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// modelTypes are the model types of the default registry.
var modelTypes = engine.DefaultRegistry().Ordered(0)

// snapshot is every record of a library on one node, tombstones included, by
// model type, in ID order.
type snapshot map[string][]node.Record

// dump lists every record of every model type of lib, tombstones included.
func dump(ctx context.Context, lib *node.Library) (snapshot, error) {
	out := make(snapshot)
	for _, mt := range modelTypes {
		var after uuid.UUID
		for {
			recs, err := lib.List(ctx, mt, node.ListOptions{After: after, IncludeDeleted: true})
			if err != nil {
				return nil, fmt.Errorf("listing %s: %w", mt, err)
			}
			if len(recs) == 0 {
				break
			}
			out[mt] = append(out[mt], recs...)
			after = recs[len(recs)-1].ID
		}
	}
	return out, nil
}

// count returns the number of records (tombstones included).
func (s snapshot) count() int {
	n := 0
	for _, recs := range s {
		n += len(recs)
	}
	return n
}

// diff describes how o differs from s, in at most a few lines; "" if equal.
func (s snapshot) diff(o snapshot) string {
	var lines []string
	for _, mt := range modelTypes {
		ra, rb := index(s[mt]), index(o[mt])
		for id, x := range ra {
			y, ok := rb[id]
			switch {
			case !ok:
				lines = append(lines, fmt.Sprintf("%s %s: %s, missing", mt, id, show(x)))
			case !reflect.DeepEqual(x, y):
				lines = append(lines, fmt.Sprintf("%s %s: %s vs %s", mt, id, show(x), show(y)))
			}
		}
		for id, y := range rb {
			if _, ok := ra[id]; !ok {
				lines = append(lines, fmt.Sprintf("%s %s: missing vs %s", mt, id, show(y)))
			}
		}
	}
	if len(lines) > 5 {
		lines = append(lines[:5], fmt.Sprintf("... %d differences in all", len(lines)))
	}
	return strings.Join(lines, "; ")
}

func index(recs []node.Record) map[uuid.UUID]node.Record {
	m := make(map[uuid.UUID]node.Record, len(recs))
	for _, r := range recs {
		if len(r.Data) == 0 {
			r.Data = nil
		}
		m[r.ID] = r
	}
	return m
}

func show(r node.Record) string {
	if r.Deleted {
		return fmt.Sprintf("deleted@%v", r.Version)
	}
	d := r.Data
	if len(d) > 16 {
		return fmt.Sprintf("%x...(%d bytes)@%v", d[:16], len(d), r.Version)
	}
	return fmt.Sprintf("%x@%v", d, r.Version)
}

// converged reports "" when the given nodes (default: the running ones)
// hold identical records, tombstones and versions; otherwise what differs.
func (c *cluster) converged(idx ...int) string {
	if len(idx) == 0 {
		idx = c.running()
	}
	ctx := context.Background()
	var first snapshot
	for k, i := range idx {
		s, err := dump(ctx, c.library(i))
		if err != nil {
			return fmt.Sprintf("n%d: %v", i, err)
		}
		if k == 0 {
			first = s
			continue
		}
		if d := first.diff(s); d != "" {
			return fmt.Sprintf("n%d vs n%d: %s", idx[0], i, d)
		}
	}
	return ""
}

// waitConverged waits until the given nodes (default: the running ones)
// hold identical records and returns the common snapshot.
func (c *cluster) waitConverged(d time.Duration, idx ...int) snapshot {
	c.t.Helper()
	if len(idx) == 0 {
		idx = c.running()
	}
	var last string
	eventually(c.t, d, func() bool { last = c.converged(idx...); return last == "" },
		func() string { return "not converged: " + last })
	s, err := dump(context.Background(), c.library(idx[0]))
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// waitRecord waits until node i holds the record with the given data (nil:
// deleted).
func (c *cluster) waitRecord(d time.Duration, i int, model string, id uuid.UUID, want []byte) {
	c.t.Helper()
	var got string
	eventually(c.t, d, func() bool {
		r, err := c.library(i).Get(context.Background(), model, id)
		switch {
		case errors.Is(err, node.ErrNotFound):
			got = "not found"
			return false
		case err != nil:
			got = err.Error()
			return false
		}
		got = show(r)
		if want == nil {
			return r.Deleted
		}
		return !r.Deleted && string(r.Data) == string(want)
	}, func() string {
		w := "deleted"
		if want != nil {
			w = fmt.Sprintf("%x", want)
		}
		return fmt.Sprintf("n%d %s %s: want %s, have %s", i, model, id, w, got)
	})
}

// adopt adds a node built and started by the test (say on an app's host)
// to the cluster; it cannot be restarted by the harness. It is not yet a
// member of the library.
func (c *cluster) adopt(nd *node.Node, name string) int {
	c.t.Helper()
	c.t.Cleanup(func() { _ = nd.Close() })
	c.dirs = append(c.dirs, "")
	c.nodes = append(c.nodes, nd)
	c.infos = append(c.infos, node.Member{Device: nd.Device(), Peer: nd.Host().ID(), Name: name, Addrs: nd.Host().Addrs()})
	return len(c.nodes) - 1
}

// noRefusals fails if a running node refused a stream or message for a
// reason other than the given codes (by name): among members in good health
// there is nothing to refuse.
func (c *cluster) noRefusals(allowed ...string) {
	c.t.Helper()
	for _, i := range c.running() {
		r := c.nodes[i].Metrics().Refused
		for _, code := range allowed {
			delete(r, code)
		}
		if len(r) > 0 {
			c.t.Errorf("n%d refused %v", i, r)
		}
	}
}
