package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// dhtPrefix is the private DHT of these tests: no node of the public DHT
// speaks it, and every bootstrap peer is one of ours on loopback.
const dhtPrefix = "/syncnode-e2e"

// TestDHTRendezvous runs a bootstrap daemon (a DHT server) and five members
// on loopback with mDNS off and a private DHT. The five pair into one
// library, stop, and restart on new addresses (127.0.1.x, new ports), so
// that everything they stored of each other is stale: they find each other
// through the library's rendezvous in the DHT, go live and converge on a
// record written after the restart.
//
// The members are DHT clients. As servers they would sit in each other's
// routing tables, and the DHT's own routing connections would bring them
// together before any rendezvous lookup (seen: live 3 ms after the restart,
// every rendezvous count at 0), which proves nothing about the rendezvous.
// Clients connect to the bootstrap server only, so every member meets the
// others through the provider records of the library's namespace.
func TestDHTRendezvous(t *testing.T) {
	h := newHarness(t, 3*time.Minute)
	boot := h.newNode("boot", nodeOpts{discovery: []string{"--mdns=false", "--dht=true", "--dht-mode=server",
		"--dht-prefix=" + dhtPrefix, "--bootstrap="}})
	boot.start()
	st := boot.status()
	bootAddr := ""
	for _, a := range st.Node.Addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			bootAddr = a + "/p2p/" + st.Node.Peer
		}
	}
	if bootAddr == "" {
		t.Fatalf("the bootstrap daemon listens on no 127.0.0.1 TCP address: %v", st.Node.Addrs)
	}
	dht := []string{"--mdns=false", "--dht=true", "--dht-mode=client", "--dht-prefix=" + dhtPrefix, "--bootstrap=" + bootAddr}
	var nodes []*node
	for i := range 5 {
		n := h.newNode(fmt.Sprintf("node%d", i+1), nodeOpts{discovery: dht})
		n.start()
		nodes = append(nodes, n)
	}
	lib := nodes[0].createLibrary("far")
	code := nodes[0].invite()
	for _, n := range nodes[1:] {
		n.join(code, lib)
	}
	h.waitLive(lib, time.Minute, nodes...)

	// Stop all five, then start them on new addresses: no daemon runs at
	// an address any other stored.
	for _, n := range nodes {
		n.stop()
	}
	for i, n := range nodes {
		n.opts.listen = fmt.Sprintf("/ip4/127.0.1.%d/tcp/0", i+1)
		n.start()
	}
	restarted := time.Now()
	h.waitLive(lib, 2*time.Minute, nodes...)
	t.Logf("all five live %s after the restart", time.Since(restarted).Round(time.Millisecond))
	id := putTag(t, nodes[2], `{"name":"after the restart"}`)
	h.waitFor("node3's tag on every node", time.Minute, func() (bool, string) {
		for _, n := range nodes {
			if r := n.cli("get", "tag", id); r.code != 0 {
				return false, r.String()
			}
		}
		return true, ""
	})
	h.waitConverged(lib, []string{"tag", "device"}, 30*time.Second, nodes...)
	// The rendezvous is how they met again: every member found another
	// there, or was found there by another.
	met := map[string]bool{}
	for _, n := range nodes {
		st := n.status()
		for _, d := range st.Discovery {
			if d.Name != "dht" {
				continue
			}
			t.Logf("%s: dht found %d %v, routing table %d, last error %q", n.name, d.Found, d.Recent, d.RoutingTable, d.LastError)
			if d.Found > 0 {
				met[st.Node.Peer] = true
			}
			for _, p := range d.Recent {
				met[p] = true
			}
		}
	}
	for _, n := range nodes {
		if p := n.status().Node.Peer; !met[p] {
			t.Errorf("%s (%s) neither found a member in the DHT nor was found there", n.name, p)
		}
	}
}
