package integration

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/node"
)

// relayMember is the config of a member that runs the relay service (on
// loopback its reservations must name loopback addresses).
func relayMember(cfg *node.Config) {
	cfg.Relay.Enabled = true
	cfg.Relay.AllowPrivateAddrs = true
	cfg.NAT.Reachability = node.ReachabilityPublic
}

// behindNAT is the config of a device that believes it cannot be dialled:
// it reserves slots at relays and punches holes.
func behindNAT(cfg *node.Config) {
	cfg.NAT.Reachability = node.ReachabilityPrivate
	cfg.NAT.AutoRelay = true
	cfg.NAT.HolePunching = true
}

// natGater stands in for two NATs on loopback: it refuses every direct
// connection between the peers it separates (either way) until opened;
// connections through a relay pass.
type natGater struct {
	open      atomic.Bool
	separated sync.Map // peer.ID -> true
}

func (g *natGater) blocks(p peer.ID, a ma.Multiaddr) bool {
	_, sep := g.separated.Load(p)
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return sep && !g.open.Load() && err != nil
}

func (g *natGater) InterceptPeerDial(peer.ID) bool                   { return true }
func (g *natGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool { return !g.blocks(p, a) }
func (g *natGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *natGater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return !g.blocks(p, c.RemoteMultiaddr())
}
func (g *natGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// natCluster starts a relay member R and two members A and B that know R's
// addresses but not each other's, and cannot connect to each other but
// through a relay until the gater opens (as two devices behind two NATs,
// each able to dial out to a relay): A, B and R are members of one library.
func natCluster(t *testing.T) (c *cluster, r, a, b int, gate *natGater) {
	t.Helper()
	c = emptyCluster(t, keepTombstones)
	c.opts = map[int][]node.Option{}
	base := c.cfg
	relayMember(&c.cfg)
	r = c.addNode()
	c.cfg = base
	behindNAT(&c.cfg)
	gate = &natGater{}
	c.opts[1], c.opts[2] = []node.Option{node.WithConnectionGater(gate)}, []node.Option{node.WithConnectionGater(gate)}
	a = c.addNode()
	b = c.addNode()
	gate.separated.Store(c.infos[a].Peer, true)
	gate.separated.Store(c.infos[b].Peer, true)
	strip := func(m node.Member) node.Member { m.Addrs = nil; return m }
	ctx := context.Background()
	for _, on := range []struct {
		i       int
		members []node.Member
	}{
		{r, []node.Member{c.infos[r], strip(c.infos[a]), strip(c.infos[b])}},
		{a, []node.Member{c.infos[r], c.infos[a], strip(c.infos[b])}},
		{b, []node.Member{c.infos[r], strip(c.infos[a]), c.infos[b]}},
	} {
		if _, err := c.nodes[on.i].AddLibrary(ctx, c.lib, "nat", on.members...); err != nil {
			t.Fatal(err)
		}
	}
	return c, r, a, b, gate
}

// waitReservation waits until node i holds a reservation with relay r (a
// member) and returns its address through r. (libp2p announces relayed
// addresses only through public relay addresses; on loopback the test
// makes its own.)
func waitReservation(t *testing.T, c *cluster, i, r int) ma.Multiaddr {
	t.Helper()
	relay := c.infos[r].Peer
	eventually(t, 30*time.Second, func() bool {
		for _, rr := range c.nodes[i].Network().Relays {
			if rr.Relay == relay && rr.Member {
				return true
			}
		}
		return false
	}, func() string {
		return fmt.Sprintf("n%d holds no reservation with the member relay: %+v", i, c.nodes[i].Network().Relays)
	})
	for _, la := range c.nodes[r].Host().Network().ListenAddresses() {
		if _, err := la.ValueForProtocol(ma.P_TCP); err == nil {
			return la.Encapsulate(ma.StringCast("/p2p/" + relay.String() + "/p2p-circuit"))
		}
	}
	t.Fatalf("the relay listens on no TCP address")
	return nil
}

// peerPath is node i's path to node j in the cluster's library.
func peerPath(t *testing.T, c *cluster, i, j int) node.Path {
	t.Helper()
	ps, err := c.library(i).Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Device == c.infos[j].Device {
			return p.Reach.Path
		}
	}
	t.Fatalf("n%d has no peer n%d", i, j)
	return node.Path{}
}

// peerLive reports whether node i has a live session with node j.
func peerLive(t *testing.T, c *cluster, i, j int) bool {
	t.Helper()
	ps, err := c.library(i).Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Device == c.infos[j].Device {
			return p.State == "live"
		}
	}
	return false
}

// Two members that cannot dial each other sync through a third that runs
// the relay service: their circuit is unlimited, so sessions and catch-up
// run over it, and status says "relayed via" the relay. When a direct
// connection becomes possible, the dialer (which keeps trying the direct
// addresses while the path is relayed) makes one, the sessions move to it
// and the relayed connection is closed; the relay can then go away and
// sync goes on.
func TestSyncThroughMemberRelayThenDirect(t *testing.T) {
	c, r, a, b, gate := natCluster(t)
	ctx := context.Background()
	relay := c.infos[r].Peer

	viaRelay := waitReservation(t, c, a, r)
	waitReservation(t, c, b, r)
	// B learns where A is reachable, as the DHT rendezvous would tell it:
	// only through the relay.
	if err := c.nodes[b].AddAddrs(c.infos[a].Peer, viaRelay); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 50; k++ {
		if _, err := c.library(a).PutShared(ctx, "tag", uuid.New(), data(t, fmt.Sprintf("A's tag %d", k))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.library(b).PutOwned(ctx, "location", uuid.New(), data(t, fmt.Sprintf("B's location %d", k))); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(30*time.Second, a, b)
	// R, a member, holds the records too; the session between A and B
	// runs through R's relay.
	eventually(t, 30*time.Second, func() bool {
		return peerLive(t, c, a, b) && peerLive(t, c, b, a)
	}, func() string { return "A and B never went live with each other" })
	for _, pair := range [][2]int{{a, b}, {b, a}} {
		p := peerPath(t, c, pair[0], pair[1])
		if p.Kind != "relayed" || p.Relay != relay || p.Limited {
			t.Fatalf("n%d reaches n%d by %q, want an unlimited path relayed via %s", pair[0], pair[1], p, relay)
		}
		if !strings.HasPrefix(p.String(), "relayed via "+relay.String()) {
			t.Errorf("the path reads %q, want \"relayed via %s ...\"", p, relay)
		}
	}
	rs := c.nodes[r].Network().RelayService
	if rs == nil || rs.Members.Reservations < 2 || rs.Members.Circuits < 1 || rs.Members.Bytes == 0 {
		t.Fatalf("the relay's service status is %+v, want two member reservations and a circuit that carried bytes", rs)
	}

	// The NATs open (a port mapping, say): the dialers, which keep
	// trying the direct addresses identify gave them, connect directly.
	gate.open.Store(true)
	relayedConns := func(i, j int) int {
		k := 0
		for _, conn := range c.nodes[i].Host().Network().ConnsToPeer(c.infos[j].Peer) {
			if _, err := conn.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err == nil {
				k++
			}
		}
		return k
	}
	eventually(t, 20*time.Second, func() bool {
		for _, pair := range [][2]int{{a, b}, {b, a}} {
			if p := peerPath(t, c, pair[0], pair[1]); p.Kind != "direct" || relayedConns(pair[0], pair[1]) > 0 {
				return false
			}
		}
		return peerLive(t, c, a, b) && peerLive(t, c, b, a)
	}, func() string {
		return fmt.Sprintf("paths A->B %s (%d relayed connections), B->A %s (%d): want direct, the relayed ones closed, sessions live",
			peerPath(t, c, a, b), relayedConns(a, b), peerPath(t, c, b, a), relayedConns(b, a))
	})

	// Without the relay, sync goes on over the direct connection.
	c.stop(r)
	for k := 0; k < 20; k++ {
		if _, err := c.library(b).PutShared(ctx, "tag", uuid.New(), data(t, fmt.Sprintf("B's tag %d", k))); err != nil {
			t.Fatal(err)
		}
	}
	got := c.waitConverged(30*time.Second, a, b)
	if n := len(got["tag"]); n != 70 {
		t.Errorf("A and B hold %d tags, want 70", n)
	}
}

// A relay that is a member of one of this node's libraries, but not of the
// library a session is for, limits a circuit it makes for a peer that is a
// stranger to it (2 minutes, 128 KiB), and marks it limited: sync must not
// run over it (it would be cut mid-page), whoever the relay is. A and B
// share a library; R, a relay, shares another with A only; B reserves at R
// as a stranger. A (the device that opens sessions) reaches B only through
// R: no session may go live and none of B's records may reach A over that
// circuit.
func TestNoSyncOverALimitedCircuitOfAMemberRelay(t *testing.T) {
	c := emptyCluster(t, keepTombstones)
	c.opts = map[int][]node.Option{}
	base := c.cfg
	relayMember(&c.cfg)
	r := c.addNode()
	c.cfg = base
	behindNAT(&c.cfg)
	var relayAddr string
	for _, a := range c.nodes[r].Host().Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			relayAddr = a.String() + "/p2p/" + c.infos[r].Peer.String()
		}
	}
	c.cfg.NAT.Relays = []string{relayAddr}
	gate := &natGater{}
	c.opts[1], c.opts[2] = []node.Option{node.WithConnectionGater(gate)}, []node.Option{node.WithConnectionGater(gate)}
	x, y := c.addNode(), c.addNode()
	gate.separated.Store(c.infos[x].Peer, true)
	gate.separated.Store(c.infos[y].Peer, true)
	// A is the smaller device: it opens the sessions.
	a, b := x, y
	if bytes.Compare(c.infos[b].Device[:], c.infos[a].Device[:]) < 0 {
		a, b = b, a
	}
	ctx := context.Background()
	strip := func(m node.Member) node.Member { m.Addrs = nil; return m }
	relays := uuid.New() // R's library, with A only
	for _, i := range []int{r, a} {
		if _, err := c.nodes[i].AddLibrary(ctx, relays, "relay's", c.infos[r], strip(c.infos[a])); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{a, b} {
		if _, err := c.nodes[i].AddLibrary(ctx, c.lib, "a and b", strip(c.infos[a]), strip(c.infos[b])); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, func() bool {
		for _, rr := range c.nodes[b].Network().Relays {
			if rr.Relay == c.infos[r].Peer {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("B holds no reservation with R: %+v", c.nodes[b].Network().Relays) })
	if err := c.nodes[a].AddAddrs(c.infos[b].Peer, ma.StringCast(relayAddr+"/p2p-circuit")); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 20; k++ {
		if _, err := c.library(b).PutShared(ctx, "tag", uuid.New(), data(t, fmt.Sprintf("B's tag %d", k))); err != nil {
			t.Fatal(err)
		}
	}
	// The circuit through R comes up, limited: the test's premise.
	eventually(t, 30*time.Second, func() bool {
		p := peerPath(t, c, a, b)
		return p.Kind == "relayed" && p.Relay == c.infos[r].Peer && p.Limited
	}, func() string {
		return fmt.Sprintf("A reaches B by %q, want a limited path relayed via R", peerPath(t, c, a, b))
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if peerLive(t, c, a, b) || peerLive(t, c, b, a) {
			t.Fatalf("A and B went live with each other over %q, a circuit R limits", peerPath(t, c, a, b))
		}
		tags, err := c.library(a).List(ctx, "tag", node.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(tags) > 0 {
			t.Fatalf("%d of B's tags reached A over %q, a circuit R limits", len(tags), peerPath(t, c, a, b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := peerPath(t, c, a, b); !p.Limited {
		t.Fatalf("the path is %q after the wait, want the limited one still: the test proved nothing", p)
	}
}

// A relay that goes away takes the reservation with it: once it comes back
// without the relay service, status and doctor must not go on listing it as
// a relay this node holds a slot with (libp2p's autorelay leaves its
// connection protected when a relay disconnects).
func TestLostReservationIsNotListed(t *testing.T) {
	c, r, a, _, _ := natCluster(t)
	waitReservation(t, c, a, r)
	c.stop(r)
	eventually(t, 30*time.Second, func() bool {
		return len(c.nodes[a].Network().Relays) == 0
	}, func() string { return fmt.Sprintf("with the relay stopped, A lists %+v", c.nodes[a].Network().Relays) })
	base := c.cfg
	c.cfg.Relay.Enabled = false
	c.restart(r)
	c.cfg = base
	// R, a member, reconnects to A (it dials the members it knows).
	eventually(t, 30*time.Second, func() bool { return peerLive(t, c, a, r) }, func() string { return "R and A never went live again" })
	time.Sleep(2 * time.Second) // autorelay's view settles
	if rs := c.nodes[a].Network().Relays; len(rs) != 0 {
		t.Errorf("A lists relay reservations %+v with a member that no longer serves the relay protocol", rs)
	}
	d, err := c.nodes[a].Doctor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range d.Checks {
		if ch.Name == "relays" && ch.Status == node.CheckOK {
			t.Errorf("doctor says %q: %s, but A holds no reservation", ch.Status, ch.Message)
		}
	}
}

// A device that holds a stranger's reservation at a relay member (its
// nat.relays names it, or autorelay took it from the DHT) joins the library
// the relay created, as NETWORKING.md advises: the relay stores the
// joiner's record before it answers, and moving the joiner's reservation to
// the members' class must not cut the connection the pairing runs on. Then
// devices that hold a stranger's reservation there pair, through the relay,
// with that member behind its NAT: the relay learns of each joiner as soon
// as the inviter stored it, while the pairing's circuit runs through it.
func TestJoinThroughARelayThatHoldsTheJoinersReservation(t *testing.T) {
	c := emptyCluster(t, keepTombstones)
	c.opts = map[int][]node.Option{}
	base := c.cfg
	relayMember(&c.cfg)
	r := c.addNode()
	c.cfg = base
	behindNAT(&c.cfg)
	var relayAddr string
	for _, la := range c.nodes[r].Host().Network().ListenAddresses() {
		if _, err := la.ValueForProtocol(ma.P_TCP); err == nil {
			relayAddr = la.String() + "/p2p/" + c.infos[r].Peer.String()
		}
	}
	c.cfg.NAT.Relays = []string{relayAddr}
	gate := &natGater{}
	holdsSlot := func(i int) {
		t.Helper()
		eventually(t, 30*time.Second, func() bool {
			for _, rr := range c.nodes[i].Network().Relays {
				if rr.Relay == c.infos[r].Peer {
					return true
				}
			}
			return false
		}, func() string { return fmt.Sprintf("n%d holds no reservation with R", i) })
	}
	c.opts[1] = []node.Option{node.WithConnectionGater(gate)}
	a := c.addNode()
	gate.separated.Store(c.infos[a].Peer, true)
	holdsSlot(a)
	ctx := context.Background()
	onR, err := c.nodes[r].CreateLibrary(ctx, "homes")
	if err != nil {
		t.Fatal(err)
	}
	first, err := onR.Invite(ctx, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	onA, err := c.nodes[a].Join(ctx, first)
	if err != nil {
		t.Fatalf("A, holding a stranger's reservation at R, could not join R's library: %v", err)
	}
	// A's reservation is a member's now: the relay's members' class holds it.
	eventually(t, 30*time.Second, func() bool {
		rs := c.nodes[r].Network().RelayService
		return rs != nil && rs.Members.Reservations == 1
	}, func() string {
		return fmt.Sprintf("R's relay service: %+v, want A's reservation a member's", c.nodes[r].Network().RelayService)
	})

	const joiners = 3
	failed := 0
	for k := 0; k < joiners; k++ {
		c.opts[len(c.nodes)] = []node.Option{node.WithConnectionGater(gate)}
		j := c.addNode()
		gate.separated.Store(c.infos[j].Peer, true)
		holdsSlot(j)
		// It reaches the inviter through R only (the gater refuses the
		// direct addresses the invite names).
		c.nodes[j].Host().Peerstore().AddAddrs(c.infos[a].Peer, []ma.Multiaddr{ma.StringCast(relayAddr + "/p2p-circuit")}, time.Hour)
		code, err := onA.Invite(ctx, time.Hour, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.nodes[j].Join(ctx, code); err != nil {
			failed++
			t.Logf("joiner %d: %v", k, err)
		}
		c.stop(j) // its circuit to A ends: the next stranger's is not refused for it
	}
	if failed > 0 {
		t.Errorf("%d of %d joins through the relay failed", failed, joiners)
	}
}
