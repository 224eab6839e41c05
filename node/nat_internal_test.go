package node

import (
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// addrPort reads the IP and port of every transport's address, QUIC's too
// (the NAT's kind is told from QUIC connections as often as from TCP).
func TestAddrPort(t *testing.T) {
	for in, want := range map[string]string{
		"/ip4/11.1.0.2/udp/4001/quic-v1":         "11.1.0.2:4001",
		"/ip4/192.168.1.11/tcp/4001":             "192.168.1.11:4001",
		"/ip6/::1/udp/7654/quic-v1/webtransport": "[::1]:7654",
		"/ip4/11.1.0.3/udp/4001/quic-v1/p2p/12D3KooWPL7phyTSJ5iBChN3b8u2LZmhGN9NAsGGFwdr5dFpiHdn/p2p-circuit": "11.1.0.3:4001",
	} {
		got, err := addrPort(ma.StringCast(in))
		if err != nil || got.String() != want {
			t.Errorf("addrPort(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"/dns4/example.com/tcp/1", "/p2p-circuit", "/ip4/1.2.3.4"} {
		if got, err := addrPort(ma.StringCast(in)); err == nil {
			t.Errorf("addrPort(%s) = %v, want an error", in, got)
		}
	}
}

// The NAT's kind: one port seen by two observers is endpoint-independent,
// two ports symmetric, one observer unknown.
func TestNATKind(t *testing.T) {
	n := &Node{}
	n.net.observations = map[string]map[netip.Addr]netip.AddrPort{}
	if k := n.natKind(); k != NATUnknown {
		t.Fatalf("no observation: %s", k)
	}
	obs := func(local string, seen ...string) {
		m := map[netip.Addr]netip.AddrPort{}
		for i, s := range seen {
			m[netip.AddrFrom4([4]byte{11, 0, 0, byte(i + 1)})] = netip.MustParseAddrPort(s)
		}
		n.net.observations = map[string]map[netip.Addr]netip.AddrPort{local: m}
	}
	obs("quic-v1/4001", "11.1.102.1:9253")
	if k := n.natKind(); k != NATUnknown {
		t.Errorf("one observer: %s, want unknown", k)
	}
	obs("quic-v1/4001", "11.1.102.1:4001", "11.1.102.1:4001")
	if k := n.natKind(); k != NATEndpointIndependent {
		t.Errorf("one port for two observers: %s, want endpoint-independent", k)
	}
	obs("quic-v1/4001", "11.1.102.1:9253", "11.1.102.1:17083")
	if k := n.natKind(); k != NATSymmetric {
		t.Errorf("two ports for two observers: %s, want symmetric", k)
	}
}

// The doctor names the likely cause of an unreachable member from what is
// known of both ends.
func TestMemberCheckCauses(t *testing.T) {
	n := &Node{}
	private := ma.StringCast("/ip4/192.168.1.11/udp/4001/quic-v1")
	public := ma.StringCast("/ip4/11.1.0.3/tcp/4001")
	relayed := ma.StringCast("/ip4/11.1.0.3/udp/4001/quic-v1/p2p/12D3KooWPL7phyTSJ5iBChN3b8u2LZmhGN9NAsGGFwdr5dFpiHdn/p2p-circuit")
	dialErr := "failed to dial: failed to dial 12D3KooW: all dials failed\n  * [/ip4/192.168.1.11/udp/4001/quic-v1] context deadline exceeded"
	for _, tc := range []struct {
		name   string
		net    NetworkStatus
		reach  Reach
		status string
		says   []string
	}{
		{"connected directly", NetworkStatus{}, Reach{Path: Path{Kind: "direct", Transport: "quic-v1", Addr: "/ip4/1.2.3.4/udp/1/quic-v1"}},
			CheckOK, []string{"direct (quic-v1)"}},
		{"only a stranger's relay", NetworkStatus{}, Reach{Path: Path{Kind: "relayed", Limited: true, Transport: "tcp"}},
			CheckWarn, []string{"carries no sync data", "syncnode run --relay"}},
		{"no address", NetworkStatus{}, Reach{}, CheckFail, []string{"no address of it is known"}},
		{"both behind NATs, no relay, symmetric here",
			NetworkStatus{Reachability: "private", NATKind: NATSymmetric},
			Reach{Addrs: []ma.Multiaddr{private}, LastDialError: dialErr},
			CheckFail, []string{"context deadline exceeded", "behind a NAT too", "symmetric", "syncnode run --relay"}},
		{"its relay did not connect", NetworkStatus{Reachability: "private"},
			Reach{Addrs: []ma.Multiaddr{private, relayed}, LastDialError: dialErr},
			CheckFail, []string{"relayed addresses did not connect"}},
		{"public but silent", NetworkStatus{}, Reach{Addrs: []ma.Multiaddr{public}, LastDialError: dialErr},
			CheckFail, []string{"public addresses, but they did not answer"}},
	} {
		c := n.memberCheck(tc.net, PeerState{State: "offline", Reach: tc.reach})
		if c.Status != tc.status {
			t.Errorf("%s: status %s, want %s (%s)", tc.name, c.Status, tc.status, c.Message)
		}
		for _, w := range tc.says {
			if !strings.Contains(c.Message+" "+c.Fix, w) {
				t.Errorf("%s: does not say %q: %s / fix: %s", tc.name, w, c.Message, c.Fix)
			}
		}
	}
}

// A dial error keeps the first three addresses' reasons.
func TestDialSummary(t *testing.T) {
	err := "failed to dial: failed to dial X: all dials failed\n  * [/a] one\n  * [/b] two\n  * [/c] three\n  * [/d] four"
	if got, want := dialSummary(err), "[/a] one; [/b] two; [/c] three (and 1 more addresses)"; got != want {
		t.Errorf("dialSummary = %q, want %q", got, want)
	}
	if got := dialSummary("plain"); got != "plain" {
		t.Errorf("dialSummary(plain) = %q", got)
	}
}

func TestOnlyBackoff(t *testing.T) {
	for msg, want := range map[string]bool{
		"failed to dial: all dials failed\n  * [/a] dial backoff\n  * [/b] dial backoff":       true,
		"failed to dial: all dials failed\n  * [/a] dial backoff\n  * [/b] connection refused": false,
		"failed to dial X: dial backoff": true,
		"context deadline exceeded":      false,
	} {
		if got := onlyBackoff(msg); got != want {
			t.Errorf("onlyBackoff(%q) = %v, want %v", msg, got, want)
		}
	}
}

// fakeConn is a connection as refreshable reads it.
type fakeConn struct {
	network.Conn
	peer   peer.ID
	remote ma.Multiaddr
}

func (c fakeConn) RemotePeer() peer.ID           { return c.peer }
func (c fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// refreshObservations reconnects to public peers that are no members, but
// never to a relay that carries a relayed connection of this node: closing
// it would cut that path (a member's, a hole punch's coordination). Nor to
// members, relays held by autorelay, or peers reached through a relay or at
// private addresses.
func TestRefreshableSparesTheRelaysInUse(t *testing.T) {
	id := func(i int) peer.ID {
		t.Helper()
		_, pub, err := crypto.GenerateEd25519Key(rand.New(rand.NewSource(int64(i))))
		if err != nil {
			t.Fatal(err)
		}
		p, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	dht, relay, member, held, private := id(1), id(2), id(3), id(4), id(5)
	conns := []network.Conn{
		fakeConn{peer: dht, remote: ma.StringCast("/ip4/11.0.0.1/udp/4001/quic-v1")},
		fakeConn{peer: relay, remote: ma.StringCast("/ip4/11.0.0.2/udp/4001/quic-v1")},
		// The member, reached through that relay.
		fakeConn{peer: member, remote: ma.StringCast("/ip4/11.0.0.2/udp/4001/quic-v1/p2p/" + relay.String() + "/p2p-circuit")},
		fakeConn{peer: held, remote: ma.StringCast("/ip4/11.0.0.4/tcp/4001")},
		fakeConn{peer: private, remote: ma.StringCast("/ip4/192.168.1.5/tcp/4001")},
		fakeConn{peer: dht, remote: ma.StringCast("/ip4/11.0.0.1/tcp/4001")},
	}
	keep := func(p peer.ID) bool { return p == member || p == held }
	got := refreshable(conns, keep, 4)
	if len(got) != 1 || got[0] != dht {
		t.Errorf("refreshable picked %v, want only the DHT peer %s (relay in use %s)", got, dht, relay)
	}
	if got := refreshable(conns[:1], keep, 0); len(got) != 0 {
		t.Errorf("with max 0 it picked %v", got)
	}
}

// When the transports disagree (a NAT that maps UDP one way and TCP
// another, or IPv6 without NAT beside NAT'd IPv4), the verdict is the best
// transport's, and the same at every call: it was whichever key the map
// gave first.
func TestNATKindOfDisagreeingTransports(t *testing.T) {
	n := &Node{}
	obs := func(seen ...string) map[netip.Addr]netip.AddrPort {
		m := map[netip.Addr]netip.AddrPort{}
		for i, s := range seen {
			m[netip.AddrFrom4([4]byte{11, 0, 0, byte(i + 1)})] = netip.MustParseAddrPort(s)
		}
		return m
	}
	// 127.0.0.1 is a local address: an observation of it at the local
	// port is "no NAT".
	for _, c := range []struct {
		name string
		keys map[string]map[netip.Addr]netip.AddrPort
		want string
	}{
		{"no NAT on one, symmetric on the other", map[string]map[netip.Addr]netip.AddrPort{
			"tcp/4001":     obs("127.0.0.1:4001"),
			"quic-v1/4001": obs("11.1.102.1:9253", "11.1.102.1:17083"),
		}, NATNone},
		{"endpoint-independent on one, symmetric on the other", map[string]map[netip.Addr]netip.AddrPort{
			"tcp/4001":     obs("11.1.102.1:30000", "11.1.102.1:30001"),
			"quic-v1/4001": obs("11.1.102.1:9253", "11.1.102.1:9253"),
		}, NATEndpointIndependent},
	} {
		n.net.observations = c.keys
		for i := 0; i < 100; i++ {
			if got := n.natKind(); got != c.want {
				t.Fatalf("%s: call %d says %s, want %s", c.name, i, got, c.want)
			}
		}
	}
}
