package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncnode/syncnode/node/localapi"
)

// natRecords is how many records each device writes in the NAT tests.
const natRecords = 10000

// listenOn is the listen flag of a daemon at ip: TCP and QUIC on port 4001.
func listenOn(ip string) string {
	return fmt.Sprintf("/ip4/%s/tcp/4001,/ip4/%s/udp/4001/quic-v1", ip, ip)
}

// dhtFlags are the discovery flags of a daemon in the test's private DHT:
// a server (boot == "": the first, which others bootstrap from) or a
// client of the given bootstrap node.
func dhtFlags(mode, boot string) []string {
	return []string{"--mdns=false", "--dht=true", "--dht-mode=" + mode, "--dht-prefix=" + dhtPrefix, "--bootstrap=" + boot}
}

// p2pAddr is n's address on ip over TCP, with its peer ID.
func p2pAddr(t *testing.T, n *node, ip string) string {
	t.Helper()
	st := n.status()
	want := "/ip4/" + ip + "/tcp/"
	for _, a := range st.Network.Listen {
		if strings.HasPrefix(a, want) {
			return a + "/p2p/" + st.Node.Peer
		}
	}
	t.Fatalf("%s listens on no TCP address of %s: %v", n.name, ip, st.Network.Listen)
	return ""
}

// peerOf is n's view of the member named name in lib.
func peerOf(n *node, lib, name string) (localapi.Peer, error) {
	var ps []localapi.Peer
	if err := n.tryJSON("GET", libPath(lib, "peers"), nil, &ps); err != nil {
		return localapi.Peer{}, err
	}
	for _, p := range ps {
		if p.Name == name {
			return p, nil
		}
	}
	return localapi.Peer{}, fmt.Errorf("%s has no peer %s: %+v", n.name, name, ps)
}

// pathsAre reports whether a and b see each other live on a path of kind
// (and, if relay is set, through that relay), and what they see.
func pathsAre(lib, kind, relay string, a, b *node) (bool, string) {
	ok := true
	var seen []string
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		p, err := peerOf(pair[0], lib, pair[1].name)
		if err != nil {
			return false, err.Error()
		}
		seen = append(seen, fmt.Sprintf("%s->%s: %s, %s", pair[0].name, pair[1].name, p.State, p.Path.Text))
		ok = ok && p.State == "live" && p.Path.Kind == kind && (relay == "" || p.Path.Relay == relay)
	}
	return ok, strings.Join(seen, "; ")
}

// fillBoth writes natRecords entries on each node at once.
func fillBoth(h *harness, lib string, a, b *node) {
	var wg sync.WaitGroup
	for _, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fill(h, n, lib, natRecords)
		}()
	}
	wg.Wait()
}

// syncRate measures how fast a and b exchange natRecords entries each way:
// from the first write to convergence, in records per second.
func syncRate(h *harness, lib string, a, b *node) float64 {
	h.t.Helper()
	start := time.Now()
	fillBoth(h, lib, a, b)
	h.waitConverged(lib, []string{"entry"}, 3*time.Minute, a, b)
	return float64(2*natRecords) / time.Since(start).Seconds()
}

// loopbackRate is syncRate between two daemons on loopback, in this run:
// the figure the NAT paths are compared with.
func loopbackRate(h *harness) float64 {
	h.t.Helper()
	a, b := h.newNode("loop-a", nodeOpts{}), h.newNode("loop-b", nodeOpts{})
	a.start()
	b.start()
	lib := a.createLibrary("loopback")
	b.join(a.invite(), lib)
	h.waitLive(lib, 30*time.Second, a, b)
	rate := syncRate(h, lib, a, b)
	a.stop()
	b.stop()
	return rate
}

// natWorld is the topology of the NAT tests: on the test's internet, a DHT
// bootstrap node and (unless noRelay) a member that runs the relay
// service; homes behind NAT routers, with devices in them.
type natWorld struct {
	h        *harness
	w        *internet
	boot     *node
	relay    *node // nil without a relay
	lib      string
	code     string
	bootAddr string
}

// newNATWorld starts the public nodes. With a relay, the relay creates the
// library (a relay with a public address is the member every device can
// reach to join); without, the first device does.
func newNATWorld(h *harness, withRelay bool) *natWorld {
	h.t.Helper()
	nw := &natWorld{h: h, w: h.newInternet()}
	ns, ip := nw.w.publicHost()
	nw.boot = h.newNode("boot", nodeOpts{netns: ns, listen: listenOn(ip), discovery: dhtFlags("server", ""),
		extra: []string{"--reachability=public"}})
	nw.boot.start()
	nw.bootAddr = p2pAddr(h.t, nw.boot, ip)
	// A second public DHT server: two observers with public addresses let
	// a device tell its NAT's kind.
	ns2, ip2 := nw.w.publicHost()
	second := h.newNode("dht2", nodeOpts{netns: ns2, listen: listenOn(ip2), discovery: dhtFlags("server", nw.bootAddr),
		extra: []string{"--reachability=public"}})
	second.start()
	if withRelay {
		ns, ip := nw.w.publicHost()
		nw.relay = h.newNode("relay", nodeOpts{netns: ns, listen: listenOn(ip), discovery: dhtFlags("server", nw.bootAddr),
			extra: []string{"--relay", "--reachability=public"}})
		nw.relay.start()
		nw.lib = nw.relay.createLibrary("homes")
		nw.code = nw.relay.invite()
	}
	return nw
}

// device starts a daemon on a new device in home hm, with more flags.
func (nw *natWorld) device(hm *home, name string, extra ...string) *node {
	nw.h.t.Helper()
	ns, ip := hm.device()
	n := nw.h.newNode(name, nodeOpts{netns: ns, listen: listenOn(ip), discovery: dhtFlags("client", nw.bootAddr),
		extra: append([]string{"--port-mapping=true"}, extra...)})
	n.start()
	return n
}

// TestNATHolePunch: two devices in two homes, each behind an
// endpoint-independent NAT (plain masquerade), with a relay member on the
// internet. They find each other only through the DHT rendezvous (neither
// ever learned the other's address), connect through the relay, punch a
// hole, and end on a direct connection, over which 10,000 records each way
// converge. Then the home routers restart with new public addresses in the
// middle of a sync: every mapping is gone, the devices reconnect and
// converge with nothing lost. Last, the relay is killed once the devices
// are directly connected again: sync goes on.
func TestNATHolePunch(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 8*time.Minute)
	nw := newNATWorld(h, true)
	homeA, homeB := nw.w.newHome(natEIM), nw.w.newHome(natEIM)
	a := nw.device(homeA, "alpha")
	b := nw.device(homeB, "bravo")
	joined := time.Now()
	a.join(nw.code, nw.lib)
	b.join(nw.code, nw.lib)
	relayPeer := nw.relay.status().Node.Peer

	h.waitFor("alpha and bravo live on a direct connection", 2*time.Minute, func() (bool, string) {
		return pathsAre(nw.lib, "direct", "", a, b)
	})
	t.Logf("direct %s after both joined", time.Since(joined).Round(time.Millisecond))
	// They met through the DHT: the rendezvous found the other member.
	for _, n := range []*node{a, b} {
		found := false
		for _, d := range n.status().Discovery {
			found = found || (d.Name == "dht" && d.Found > 0)
		}
		if !found {
			t.Errorf("%s's DHT source found no member: %+v", n.name, n.status().Discovery)
		}
		st := n.status().Network
		t.Logf("%s: reachability %s, nat %s, relays %+v, hole punch addrs %v", n.name, st.Reachability, st.NAT, st.Relays, st.HolePunchAddrs)
		if st.NAT != "endpoint-independent" {
			t.Errorf("%s: NAT kind %q, want endpoint-independent", n.name, st.NAT)
		}
	}

	rate := syncRate(h, nw.lib, a, b)
	if ok, seen := pathsAre(nw.lib, "direct", "", a, b); !ok {
		t.Errorf("after the sync the path is no longer direct: %s", seen)
	}
	t.Logf("hole-punched path: %d records each way converged at %.0f records/s", natRecords, rate)

	// Router restarts mid-sync: new public addresses, every mapping gone.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fillBoth(h, nw.lib, a, b)
	}()
	h.sleep(time.Second)
	homeA.restart()
	homeB.restart()
	restarted := time.Now()
	wg.Wait()
	h.waitConverged(nw.lib, []string{"entry", "device"}, 3*time.Minute, a, b, nw.relay)
	t.Logf("converged %s after the routers restarted", time.Since(restarted).Round(time.Millisecond))
	h.waitFor("alpha and bravo live on a direct connection again", 2*time.Minute, func() (bool, string) {
		return pathsAre(nw.lib, "direct", "", a, b)
	})
	for _, n := range []*node{a, b, nw.relay} {
		recs, err := n.listAll(nw.lib, "entry")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 4*natRecords {
			t.Errorf("%s holds %d entries, want %d: the restart lost some", n.name, len(recs), 4*natRecords)
		}
	}

	// The relay goes away: the direct connection carries on.
	nw.relay.kill()
	tag := putTag(t, a, `{"name":"after the relay died"}`)
	h.waitFor("alpha's tag on bravo without the relay", time.Minute, func() (bool, string) {
		r := b.cli("get", "tag", tag)
		return r.code == 0, r.String()
	})
	if ok, seen := pathsAre(nw.lib, "direct", "", a, b); !ok {
		t.Errorf("without the relay: %s", seen)
	}
	_ = relayPeer
}
