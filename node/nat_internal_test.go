package node

import (
	"net/netip"
	"testing"

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
