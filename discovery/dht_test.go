package discovery

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// newHost starts a libp2p host on TCP on 127.0.0.1 only.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// p2pAddrs returns h's addresses with its peer ID, as bootstrap strings.
func p2pAddrs(t *testing.T, h host.Host) []string {
	t.Helper()
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// testDHTConfig is a private DHT on loopback with fast timers, mDNS off.
func testDHTConfig(boot []string) Config {
	c := DefaultConfig()
	c.MDNS = false
	c.DHTProtocolPrefix = "/syncnode-test"
	c.DHTMode = ModeServer
	c.BootstrapPeers = boot
	c.FindIntervalMin = 100 * time.Millisecond
	c.FindIntervalMax = 500 * time.Millisecond
	c.FindTimeout = 5 * time.Second
	return c
}

// collector records the peers a service reports.
type collector struct {
	mu    sync.Mutex
	peers map[peer.ID][]Peer
}

func newCollector() *collector { return &collector{peers: make(map[peer.ID][]Peer)} }

func (c *collector) found(p Peer) {
	c.mu.Lock()
	c.peers[p.ID] = append(c.peers[p.ID], p)
	c.mu.Unlock()
}

func (c *collector) get(id peer.ID) []Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.peers[id])
}

func (c *collector) ids() []peer.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []peer.ID
	for id := range c.peers {
		out = append(out, id)
	}
	return out
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Five hosts in a private DHT on loopback, all servers, bootstrapped from
// the first: the four that advertise one namespace find each other under
// it, the fifth (advertising another namespace) is reported to none of them
// and finds nobody, and FindPeer finds a host's addresses.
func TestDHTRendezvous(t *testing.T) {
	const n = 5
	const shared, other = "/syncnode/rv/test-shared", "/syncnode/rv/test-other"
	hosts := make([]host.Host, n)
	svcs := make([]*Service, n)
	cols := make([]*collector, n)
	var boot []string
	for i := range hosts {
		hosts[i] = newHost(t)
		cols[i] = newCollector()
		svc, err := New(hosts[i], testDHTConfig(boot), cols[i].found, quiet())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Close() })
		ns := shared
		if i == n-1 {
			ns = other
		}
		svc.SetNamespaces([]string{ns})
		if err := svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		svcs[i] = svc
		if i == 0 {
			boot = p2pAddrs(t, hosts[0])
		}
	}

	missing := func() string {
		var out []string
		for i := 0; i < n-1; i++ {
			for j := 0; j < n-1; j++ {
				if i != j && len(cols[i].get(hosts[j].ID())) == 0 {
					out = append(out, fmt.Sprintf("h%d has not found h%d", i, j))
				}
			}
		}
		return fmt.Sprint(out)
	}
	waitFor(t, 60*time.Second, func() bool { return missing() == "[]" }, missing)

	for i := 0; i < n-1; i++ {
		if got := cols[i].get(hosts[n-1].ID()); len(got) != 0 {
			t.Errorf("h%d reported h%d, which does not advertise its namespace: %v", i, n-1, got)
		}
		for j := 0; j < n-1; j++ {
			for _, p := range cols[i].get(hosts[j].ID()) {
				if p.Source != SourceDHT || p.Namespace != shared || len(p.Addrs) == 0 {
					t.Errorf("h%d reported h%d as %+v, want source dht, namespace %q, addresses", i, j, p, shared)
				}
			}
		}
		if got := cols[i].get(hosts[i].ID()); len(got) != 0 {
			t.Errorf("h%d reported itself", i)
		}
	}
	if ids := cols[n-1].ids(); len(ids) != 0 {
		t.Errorf("h%d, alone in its namespace, reported %v", n-1, ids)
	}

	st := svcs[1].Status()
	if len(st) != 2 || st[0].Name != SourceMDNS || st[0].Enabled || st[1].Name != SourceDHT || !st[1].Enabled || !st[1].Running {
		t.Fatalf("status: want mdns off and dht running, have %+v", st)
	}
	if st[1].Found < n-2 || st[1].RoutingTable == 0 || st[1].Namespaces != 1 || len(st[1].Recent) < n-2 {
		t.Errorf("dht status: want at least %d found and recent, a routing table, 1 namespace; have %+v", n-2, st[1])
	}

	// FindPeer: two DHT clients (in no routing table, like devices behind
	// NATs) bootstrap from h0; one finds the other's addresses, which it
	// did not know.
	cfg := testDHTConfig(boot)
	cfg.DHTMode = ModeClient
	clients := make([]host.Host, 2)
	csvcs := make([]*Service, 2)
	for i := range clients {
		clients[i] = newHost(t)
		svc, err := New(clients[i], cfg, func(Peer) {}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Close() })
		if err := svc.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, func() bool { return svc.Status()[1].RoutingTable > 0 },
			func() string { return fmt.Sprintf("client %d: the routing table stays empty", i) })
		csvcs[i] = svc
	}
	target := clients[0]
	if addrs := clients[1].Peerstore().Addrs(target.ID()); len(addrs) != 0 {
		t.Fatalf("the client knows the other's addresses before FindPeer: %v", addrs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ai, err := csvcs[1].FindPeer(ctx, target.ID())
	if err != nil {
		t.Fatalf("FindPeer: %v", err)
	}
	if ai.ID != target.ID() || !slices.ContainsFunc(ai.Addrs, func(a ma.Multiaddr) bool { return a.Equal(target.Addrs()[0]) }) {
		t.Errorf("FindPeer = %v, want the address %v", ai, target.Addrs())
	}
}

// A service with the DHT off says so from FindPeer.
func TestFindPeerWithoutDHT(t *testing.T) {
	h := newHost(t)
	svc, err := New(h, Config{}, func(Peer) {}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, err := svc.FindPeer(t.Context(), h.ID()); err != ErrDHTOff {
		t.Errorf("FindPeer without the DHT: want ErrDHTOff, have %v", err)
	}
}
