package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/discovery"
	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/pairing"
)

// dhtPrefix is the private DHT of these tests: its nodes reach only each
// other, all on 127.0.0.1.
const dhtPrefix = "/syncnode-test"

// startDHTNode starts a node on dir with mDNS off and the private DHT on,
// bootstrapped from boot (none: it is the bootstrap node, a DHT server).
// Members are DHT clients, as devices behind NATs are: they are in no
// routing table, so nothing but the library rendezvous (or a lookup of
// their peer ID) brings one member to another.
func startDHTNode(t *testing.T, dir, name string, boot []string) *node.Node {
	t.Helper()
	return startNamed(t, dir, name, func(cfg *node.Config) {
		cfg.Discovery.DHT = true
		cfg.Discovery.DHTProtocolPrefix = dhtPrefix
		cfg.Discovery.BootstrapPeers = boot
		cfg.Discovery.DHTMode = discovery.ModeClient
		if len(boot) == 0 {
			cfg.Discovery.DHTMode = discovery.ModeServer
		}
		cfg.Discovery.FindIntervalMin = 200 * time.Millisecond
		cfg.Discovery.FindIntervalMax = time.Second
		cfg.Discovery.FindTimeout = 5 * time.Second
	})
}

// bootstrapNode starts the private DHT's bootstrap node (no library) and
// returns its addresses for the others.
func bootstrapNode(t *testing.T) []string {
	t.Helper()
	b := startDHTNode(t, t.TempDir(), "bootstrap", nil)
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: b.Host().ID(), Addrs: b.Host().Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// withoutAddrs returns the invite code with the inviter's addresses taken
// out, as if they had all gone stale.
func withoutAddrs(t *testing.T, code string) string {
	t.Helper()
	inv, err := pairing.ParseCode(code)
	if err != nil {
		t.Fatal(err)
	}
	inv.Addrs = nil
	return inv.Code()
}

// dhtStatus returns node n's DHT source status.
func dhtStatus(t *testing.T, n *node.Node) discovery.SourceStatus {
	t.Helper()
	for _, s := range n.Discovery() {
		if s.Name == discovery.SourceDHT {
			return s
		}
	}
	t.Fatalf("no DHT in the discovery status %+v", n.Discovery())
	return discovery.SourceStatus{}
}

// An invite code whose addresses are stale still works with the DHT on: the
// joiner looks the inviter's peer ID up in the DHT. Then a record syncs.
func TestJoinFindsInviterInDHT(t *testing.T) {
	slow(t, "builds a DHT of several nodes and waits for lookups")
	ctx := context.Background()
	boot := bootstrapNode(t)
	a := startDHTNode(t, t.TempDir(), "laptop", boot)
	b := startDHTNode(t, t.TempDir(), "phone", boot)
	onA, err := a.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	code, err := onA.Invite(ctx, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	onB, err := b.Join(jctx, withoutAddrs(t, code))
	if err != nil {
		t.Fatalf("Join with an invite without addresses: %v", err)
	}
	id := uuid.New()
	want := data(t, "found through the DHT")
	if _, err := onA.PutShared(ctx, "tag", id, want); err != nil {
		t.Fatal(err)
	}
	waitLibRecord(t, 20*time.Second, onB, "tag", id, want)
}

// Members that know none of each other's current addresses find each other
// through the library's rendezvous in the DHT and sync: three devices pair,
// then all restart on new ports, so every address they stored is stale and
// nobody is told the new ones.
func TestDHTRendezvousReconnects(t *testing.T) {
	ctx := context.Background()
	boot := bootstrapNode(t)
	names := []string{"laptop", "phone", "tablet"}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	nodes := make([]*node.Node, 3)
	for i := range nodes {
		nodes[i] = startDHTNode(t, dirs[i], names[i], boot)
	}
	lib, err := nodes[0].CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	code, err := lib.Invite(ctx, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if _, err := n.Join(ctx, code); err != nil {
			t.Fatal(err)
		}
	}
	first := uuid.New()
	if _, err := lib.PutShared(ctx, "tag", first, data(t, "before")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		waitLibRecord(t, 20*time.Second, n.Library(lib.ID()), "tag", first, data(t, "before"))
	}

	old := make([]string, 3)
	for i, n := range nodes {
		old[i] = fmt.Sprint(n.Host().Addrs())
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		nodes[i] = startDHTNode(t, dirs[i], names[i], boot)
		if now := fmt.Sprint(nodes[i].Host().Addrs()); now == old[i] {
			t.Fatalf("%s restarted on its old addresses %s; the test needs new ones", names[i], now)
		}
	}
	id := uuid.New()
	want := data(t, "after the move")
	if _, err := nodes[0].Library(lib.ID()).PutShared(ctx, "tag", id, want); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		waitLibRecord(t, 30*time.Second, n.Library(lib.ID()), "tag", id, want)
	}
	found := 0
	for i, n := range nodes {
		st := dhtStatus(t, n)
		if !st.Running || st.Namespaces != 1 || st.RoutingTable == 0 {
			t.Errorf("%s: want the DHT running with 1 namespace and a routing table, have %+v", names[i], st)
		}
		found += st.Found
	}
	if found == 0 {
		t.Error("want members found by the DHT, but no node reports any")
	}
}

// waitLibRecord waits until lib holds the record with the given data.
func waitLibRecord(t *testing.T, d time.Duration, lib *node.Library, model string, id uuid.UUID, want []byte) {
	t.Helper()
	var got string
	eventually(t, d, func() bool {
		r, err := lib.Get(context.Background(), model, id)
		if err != nil {
			got = err.Error()
			return false
		}
		got = show(r)
		return !r.Deleted && string(r.Data) == string(want)
	}, func() string { return fmt.Sprintf("%s %s: want %x, have %s", model, id, want, got) })
}
