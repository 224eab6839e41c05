package e2e

import (
	"fmt"
	"slices"
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

// p2pAddr is n's QUIC address on ip, with its peer ID. (QUIC, the
// transport devices use with the other public nodes: two observers of one
// transport tell a device its NAT's kind.)
func p2pAddr(t *testing.T, n *node, ip string) string {
	t.Helper()
	st := n.status()
	want := "/ip4/" + ip + "/udp/"
	for _, a := range st.Network.Listen {
		if strings.HasPrefix(a, want) && strings.HasSuffix(a, "/quic-v1") {
			return a + "/p2p/" + st.Node.Peer
		}
	}
	t.Fatalf("%s listens on no QUIC address of %s: %v", n.name, ip, st.Network.Listen)
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

// loopbackRate is syncRate between two daemons on loopback with a third
// member (as the relay is in the NAT tests), in this run: the figure the
// NAT paths are compared with.
func loopbackRate(h *harness) float64 {
	h.t.Helper()
	a, b, c := h.newNode("loop-a", nodeOpts{}), h.newNode("loop-b", nodeOpts{}), h.newNode("loop-c", nodeOpts{})
	for _, n := range []*node{a, b, c} {
		n.start()
	}
	lib := c.createLibrary("loopback")
	code := c.invite()
	a.join(code, lib)
	b.join(code, lib)
	h.waitLive(lib, 30*time.Second, a, b, c)
	rate := syncRate(h, lib, a, b)
	for _, n := range []*node{a, b, c} {
		n.stop()
	}
	return rate
}

// firstRecord writes a tag on a and returns how long it took to reach b.
func firstRecord(h *harness, a, b *node) time.Duration {
	h.t.Helper()
	start := time.Now()
	tag := putTag(h.t, a, `{"name":"first"}`)
	h.waitFor("alpha's first tag on bravo", 2*time.Minute, func() (bool, string) {
		r := b.cli("get", "tag", tag)
		return r.code == 0, r.String()
	})
	return time.Since(start)
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
	a.join(nw.code, nw.lib)
	b.join(nw.code, nw.lib)
	joined := time.Now()
	first := firstRecord(h, a, b)
	h.waitFor("alpha and bravo live on a direct connection", 2*time.Minute, func() (bool, string) {
		return pathsAre(nw.lib, "direct", "", a, b)
	})
	t.Logf("FIGURE hole-punched: first record %s after both joined (through the relay member's copy or the path), direct %s after",
		first.Round(time.Millisecond), time.Since(joined).Round(time.Millisecond))
	_, seen := pathsAre(nw.lib, "direct", "", a, b)
	t.Logf("paths: %s", seen)
	// They met through the DHT: the rendezvous found the other device (not
	// only the relay, which is a member too and advertises the library).
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		n, other := pair[0], pair[1].status().Node.Peer
		found := false
		for _, d := range n.status().Discovery {
			found = found || (d.Name == "dht" && slices.Contains(d.Recent, other))
		}
		if !found {
			t.Errorf("%s's DHT source did not find %s (%s): %+v", n.name, pair[1].name, other, n.status().Discovery)
		}
		h.waitFor(n.name+" to tell its NAT's kind", 30*time.Second, func() (bool, string) {
			st := n.status().Network
			return st.NAT == "endpoint-independent", fmt.Sprintf("reachability %s, nat %s, relays %+v, hole punch addrs %v", st.Reachability, st.NAT, st.Relays, st.HolePunchAddrs)
		})
	}

	rate := syncRate(h, nw.lib, a, b)
	if ok, seen := pathsAre(nw.lib, "direct", "", a, b); !ok {
		t.Errorf("after the sync the path is no longer direct: %s", seen)
	}
	base := loopbackRate(h)
	t.Logf("FIGURE hole-punched: %d records each way at %.0f records/s; loopback %.0f records/s; ratio %.2f",
		natRecords, rate, base, rate/base)

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
}

// TestNATSymmetricRelayed: one home behind an endpoint-independent NAT,
// the other behind a symmetric one (a random port per flow). Hole punching
// cannot work; the same records converge through the library's own relay,
// and `syncnode peers` says "relayed via" it. Then a device in a third home
// joins with an invite from the first (behind its NAT): it pairs through
// the relay, as a stranger to it, and backfills.
func TestNATSymmetricRelayed(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 6*time.Minute)
	nw := newNATWorld(h, true)
	a := nw.device(nw.w.newHome(natEIM), "alpha")
	b := nw.device(nw.w.newHome(natSymmetric), "bravo")
	a.join(nw.code, nw.lib)
	b.join(nw.code, nw.lib)
	joined := time.Now()
	relay := nw.relay.status().Node.Peer
	first := firstRecord(h, a, b)
	h.waitFor("alpha and bravo live through the relay", 2*time.Minute, func() (bool, string) {
		return pathsAre(nw.lib, "relayed", relay, a, b)
	})
	t.Logf("FIGURE relayed: first record %s after both joined, live through the relay %s after",
		first.Round(time.Millisecond), time.Since(joined).Round(time.Millisecond))
	h.waitFor("bravo to see its NAT is symmetric", 30*time.Second, func() (bool, string) {
		st := b.status().Network
		return st.NAT == "symmetric", fmt.Sprintf("nat %s from %v", st.NAT, st.ObservedBy)
	})

	rate := syncRate(h, nw.lib, a, b)
	base := loopbackRate(h)
	t.Logf("FIGURE relayed: %d records each way at %.0f records/s; loopback %.0f records/s; ratio %.2f",
		natRecords, rate, base, rate/base)
	if ok, seen := pathsAre(nw.lib, "relayed", relay, a, b); !ok {
		t.Errorf("after the sync: %s", seen)
	}
	// The relay carried it: its service counted the bytes.
	rs := nw.relay.status().Network.RelayService
	if rs == nil || rs.Members.Bytes < int64(natRecords)*1000 {
		t.Errorf("the relay service relayed %+v, want at least %d bytes of members' traffic", rs, natRecords*1000)
	}
	// What Prometheus reads: the peer's path, the relay service's bytes.
	ms, err := a.metrics()
	if err != nil {
		t.Fatal(err)
	}
	relayedGauge := false
	for k, v := range ms {
		relayedGauge = relayedGauge || (strings.HasPrefix(k, "syncnode_peer_path{") && strings.Contains(k, `path="relayed"`) && v == 1)
	}
	if !relayedGauge {
		t.Errorf("alpha's metrics have no syncnode_peer_path{path=\"relayed\"} 1")
	}
	if v := nw.relay.metric("syncnode_relay_service_bytes_total"); v < float64(natRecords)*1000 {
		t.Errorf("the relay's syncnode_relay_service_bytes_total is %.0f, want at least %d", v, natRecords*1000)
	}
	// What a person reads.
	out := a.mustCLI("peers")
	if !strings.Contains(out, "relayed via "+relay) {
		t.Errorf("syncnode peers does not say the path is relayed via %s:\n%s", relay, out)
	}
	// A third device, in a third home, joins with an invite alpha issued:
	// alpha is behind a NAT, so the invite names its addresses through the
	// relay, and charlie, a stranger to the relay, pairs through it.
	code := a.invite()
	if !strings.Contains(code, "syncnode") {
		t.Fatalf("alpha's invite: %q", code)
	}
	c := nw.device(nw.w.newHome(natEIM), "charlie")
	c.join(code, nw.lib)
	h.waitConverged(nw.lib, []string{"entry", "tag", "device"}, 3*time.Minute, a, c)

	// A punch was tried (and failed): the peer's state says so.
	h.waitFor("a failed hole punch counted", time.Minute, func() (bool, string) {
		for _, pair := range [][2]*node{{a, b}, {b, a}} {
			p, err := peerOf(pair[0], nw.lib, pair[1].name)
			if err != nil {
				return false, err.Error()
			}
			if p.HolePunch != nil && p.HolePunch.Failures > 0 {
				return true, ""
			}
		}
		return false, "no failed hole punch in either peer's state"
	})
}

// TestNATSameHome: two devices behind the same NAT find each other by mDNS
// and connect directly over the LAN, not through the relay.
func TestNATSameHome(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 3*time.Minute)
	nw := newNATWorld(h, true)
	hm := nw.w.newHome(natEIM)
	mdns := []string{"--mdns=true"} // after dhtFlags' --mdns=false: the last wins
	a := nw.device(hm, "alpha", mdns...)
	b := nw.device(hm, "bravo", mdns...)
	a.join(nw.code, nw.lib)
	b.join(nw.code, nw.lib)
	joined := time.Now()
	first := firstRecord(h, a, b)
	h.waitFor("alpha and bravo live on a direct connection", time.Minute, func() (bool, string) {
		return pathsAre(nw.lib, "direct", "", a, b)
	})
	t.Logf("FIGURE same LAN: first record %s after both joined, direct %s after",
		first.Round(time.Millisecond), time.Since(joined).Round(time.Millisecond))
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		p, err := peerOf(pair[0], nw.lib, pair[1].name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Path.Addr, fmt.Sprintf("/ip4/192.168.%d.", hm.n)) {
			t.Errorf("%s reaches %s at %s, want its LAN address", pair[0].name, pair[1].name, p.Path.Addr)
		}
	}
	found := false
	for _, d := range a.status().Discovery {
		found = found || (d.Name == "mdns" && d.Found > 0)
	}
	if !found {
		t.Errorf("alpha's mDNS found no one: %+v", a.status().Discovery)
	}
	tag := putTag(t, a, `{"name":"over the LAN"}`)
	h.waitFor("alpha's tag on bravo", 30*time.Second, func() (bool, string) {
		r := b.cli("get", "tag", tag)
		return r.code == 0, r.String()
	})
}

// TestNATNoRelayDoctor: both homes behind symmetric NATs and no relay: the
// two devices (paired while on one LAN, then one moved to the other home)
// cannot connect. `syncnode doctor` says the member is unreachable, names
// the cause (NATs, no relay) and the fix (run a relay), and exits 1.
func TestNATNoRelayDoctor(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 4*time.Minute)
	nw := newNATWorld(h, false)
	homeA, homeB := nw.w.newHome(natSymmetric), nw.w.newHome(natSymmetric)
	a := nw.device(homeA, "alpha")
	b := nw.device(homeA, "bravo") // at alpha's home, to pair
	lib := a.createLibrary("apart")
	b.join(a.invite(), lib)
	h.waitLive(lib, 30*time.Second, a, b)

	// Bravo goes home.
	b.stop()
	ns, ip := homeB.device()
	b.opts.netns, b.opts.listen = ns, listenOn(ip)
	b.start()

	var last result
	h.waitFor("doctor on alpha to explain why bravo cannot be reached", 2*time.Minute, func() (bool, string) {
		last = a.cli("doctor")
		out := last.stdout
		return last.code == 1 && strings.Contains(out, "FAIL bravo") && strings.Contains(out, "failed:") &&
			strings.Contains(out, "symmetric") && strings.Contains(out, "syncnode run --relay"), last.String()
	})
	t.Logf("syncnode doctor on alpha:\n%s", last.stdout)
	for _, want := range []string{"unreachable", "NAT", "no relay"} {
		if !strings.Contains(last.stdout, want) {
			t.Errorf("doctor does not say %q:\n%s", want, last.stdout)
		}
	}
	var d localapi.Doctor
	if err := jsonUnmarshal(a.cli("doctor", "--json").stdout, &d); err != nil || d.Failed == 0 {
		t.Errorf("doctor --json: %+v, %v; want failed > 0", d, err)
	}
}
