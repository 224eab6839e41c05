package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
)

// internetSeq numbers the test internets of a run: each gets its own
// 11.<k>.0.0/16.
var internetSeq atomic.Int32

// internet is a test's own "internet": a bridge in a namespace of its own,
// public hosts on it, and homes whose routers do NAT onto it. Its addresses
// (11.<k>.0.0/16) are public ones as libp2p sees them (it never punches
// holes towards private addresses), and no namespace has a route out of
// the test, so nothing leaves the machine. 11.0.0.0/8 was chosen because
// it is public address space held by an organisation that announces none
// of it, so even a leak would reach no one.
type internet struct {
	h      *harness
	ns     string // the bridge's namespace
	prefix string // "11.<k>"
	public int    // public hosts so far
	homes  int    // homes so far
}

// newInternet makes the bridge. It needs nft (nftables) for the homes.
func (h *harness) newInternet() *internet {
	h.t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		h.t.Skip("this test builds NAT routers with nft, which is missing (install nftables); skipped")
	}
	k := internetSeq.Add(1)
	w := &internet{h: h, ns: h.newNetns(), prefix: fmt.Sprintf("11.%d", k)}
	h.own(w.prefix + ".0.0/16")
	h.own("192.168.0.0/16")
	h.ip("-n", w.ns, "link", "add", "br0", "type", "bridge")
	h.ip("-n", w.ns, "link", "set", "br0", "up")
	return w
}

// plug connects namespace ns to the bridge with interface ifname and
// address ip/16.
func (w *internet) plug(ns, ifname, ip string) {
	w.h.t.Helper()
	port := fmt.Sprintf("p%d", w.public+10*w.homes+100)
	w.h.veth(w.ns, port, ns, ifname)
	w.h.ip("-n", w.ns, "link", "set", port, "master", "br0")
	w.h.ip("-n", w.ns, "link", "set", port, "up")
	w.h.ip("-n", ns, "addr", "add", ip+"/16", "dev", ifname)
	w.h.ip("-n", ns, "link", "set", ifname, "up")
}

// publicHost adds a host with a public address on the internet and
// returns its namespace and address.
func (w *internet) publicHost() (ns, ip string) {
	w.h.t.Helper()
	w.public++
	ns, ip = w.h.newNetns(), fmt.Sprintf("%s.0.%d", w.prefix, w.public)
	w.plug(ns, "eth0", ip)
	return ns, ip
}

// NAT kinds of a home's router.
const (
	// natEIM maps a device's address and port to one public port for
	// every destination (endpoint-independent mapping, plain masquerade):
	// hole punching works.
	natEIM = "eim"
	// natSymmetric gives every new flow a random public port: hole
	// punching fails.
	natSymmetric = "symmetric"
)

// home is a LAN behind a router that does NAT: the router's namespace
// holds a bridge for the LAN's devices and a WAN interface on the
// internet. Unsolicited traffic from the internet is dropped, silently, as
// a home router does, both what would pass through and what is addressed
// to the router itself. (Answering it, with a TCP reset or an ICMP error,
// would leave a conntrack entry for the unsolicited packet that takes the
// port a hole punch's outgoing packet needs: the NAT would then map that
// one to another port, and the punch would fail.)
type home struct {
	w       *internet
	n       int    // the home's number: LAN 192.168.<n>.0/24
	router  string // namespace
	wan     string // the router's public address
	leases  int    // public addresses it had
	devices int
}

// newHome adds a home whose router does the given kind of NAT.
func (w *internet) newHome(kind string) *home {
	w.h.t.Helper()
	w.homes++
	hm := &home{w: w, n: w.homes, router: w.h.newNetns()}
	hm.leases = 1
	hm.wan = fmt.Sprintf("%s.%d.%d", w.prefix, 100+hm.n, hm.leases)
	w.plug(hm.router, "wan0", hm.wan)
	h := w.h
	h.ip("-n", hm.router, "link", "add", "lan0", "type", "bridge")
	h.ip("-n", hm.router, "addr", "add", fmt.Sprintf("192.168.%d.1/24", hm.n), "dev", "lan0")
	h.ip("-n", hm.router, "link", "set", "lan0", "up")
	// (Not sysctl: a minimal machine may lack procps.)
	h.run("ip", "netns", "exec", hm.router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	masq := "masquerade"
	if kind == natSymmetric {
		masq = "masquerade random"
	}
	rules := fmt.Sprintf(`table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" %s
	}
}
table ip filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname { "lan0", "lo" } accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan0" accept
	}
}
`, masq)
	h.runIn(strings.NewReader(rules), "ip", "netns", "exec", hm.router, "nft", "-f", "-")
	return hm
}

// device adds a device namespace on the home's LAN, its default route
// through the router, and returns the namespace and address.
func (hm *home) device() (ns, ip string) {
	h := hm.w.h
	h.t.Helper()
	hm.devices++
	ns, ip = h.newNetns(), fmt.Sprintf("192.168.%d.%d", hm.n, 10+hm.devices)
	port := fmt.Sprintf("d%d", hm.devices)
	h.veth(hm.router, port, ns, "eth0")
	h.ip("-n", hm.router, "link", "set", port, "master", "lan0")
	h.ip("-n", hm.router, "link", "set", port, "up")
	h.ip("-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	h.ip("-n", ns, "link", "set", "eth0", "up")
	h.ip("-n", ns, "route", "add", "default", "via", fmt.Sprintf("192.168.%d.1", hm.n))
	return ns, ip
}

// restart is a router restart that brings a new public address, as an
// ISP's lease often does: the WAN address changes and every NAT mapping is
// gone (the kernel drops the masquerade mappings of a removed address), so
// every connection of the home's devices to the internet breaks.
func (hm *home) restart() {
	h := hm.w.h
	h.t.Helper()
	old := hm.wan
	hm.leases++
	hm.wan = fmt.Sprintf("%s.%d.%d", hm.w.prefix, 100+hm.n, hm.leases)
	h.ip("-n", hm.router, "link", "set", "wan0", "down")
	h.ip("-n", hm.router, "addr", "del", old+"/16", "dev", "wan0")
	h.ip("-n", hm.router, "addr", "add", hm.wan+"/16", "dev", "wan0")
	h.ip("-n", hm.router, "link", "set", "wan0", "up")
}

// run runs a command and fails the test if it fails.
func (h *harness) run(name string, args ...string) {
	h.t.Helper()
	h.runIn(nil, name, args...)
}

// runIn runs a command with stdin and fails the test if it fails.
func (h *harness) runIn(stdin *strings.Reader, name string, args ...string) {
	h.t.Helper()
	cmd := exec.CommandContext(h.ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
