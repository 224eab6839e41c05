package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Network namespaces made by this package are named nsPrefix, the test
// process's PID, "n" and a counter: unique per run, and recognisable so
// that a run can remove those a killed run left behind.
const nsPrefix = "sne2e"

var (
	nsSeq     atomic.Int32
	nsNameRE  = regexp.MustCompile(`^` + nsPrefix + `([0-9]+)n[0-9]+$`)
	swept     atomic.Bool
	subnetSeq atomic.Int32
)

// requireNetns skips the test unless it can make network namespaces: it
// needs root and the ip tool (iproute2).
func requireNetns(t *testing.T) {
	t.Helper()
	requireBinary(t)
	if os.Geteuid() != 0 {
		t.Skip("this test creates network namespaces and needs root (CI runs it as root); skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("this test creates network namespaces with the ip tool, which is missing (install iproute2); skipped")
	}
	if swept.CompareAndSwap(false, true) {
		sweepNamespaces(t)
	}
	if err := probeNetns(); err != nil {
		t.Skipf("root cannot create network namespaces here (a restricted container?): %v; skipped", err)
	}
}

// sweepNamespaces deletes the namespaces that runs of this package left
// behind when they were killed before their cleanup (their PID is gone).
func sweepNamespaces(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := nsNameRE.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue // ours, or of a run still going
		}
		if err := exec.Command("ip", "netns", "del", f[0]).Run(); err == nil {
			t.Logf("removed the namespace %s left by an earlier run", f[0])
		}
	}
}

// ip runs the ip tool and fails the test if it fails.
func (h *harness) ip(args ...string) {
	h.t.Helper()
	out, err := exec.CommandContext(h.ctx, "ip", args...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a network namespace with its loopback up; it is deleted
// in t.Cleanup (after the processes started later in it are killed:
// cleanups run last-in first-out).
func (h *harness) newNetns() string {
	h.t.Helper()
	name := fmt.Sprintf("%s%dn%d", nsPrefix, os.Getpid(), nsSeq.Add(1))
	h.ip("netns", "add", name)
	h.t.Cleanup(func() {
		// Not h.ip: the test's context is done by now.
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			h.t.Errorf("deleting the namespace %s: %v: %s", name, err, out)
		}
	})
	h.ip("-n", name, "link", "set", "lo", "up")
	return name
}

// veth links two namespaces with a veth pair, the end ifA in nsA and ifB in
// nsB, both down. Deleting either namespace deletes the pair.
func (h *harness) veth(nsA, ifA, nsB, ifB string) {
	h.t.Helper()
	h.ip("-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
}

// subnet returns a /24 of 10.0.0.0/8 for one test's namespaces, different
// for every call in this run: "10.<b>.<c>".
func subnet() string {
	k := int(subnetSeq.Add(1))
	return fmt.Sprintf("10.%d.%d", 200+k/250, k%250)
}

// TestMDNSDiscovery pairs two daemons in two network namespaces joined by a
// veth pair, then restarts both on new addresses (so that every stored
// address is stale and no static peer is configured): they find each other
// by mDNS alone, go live and sync a new record.
func TestMDNSDiscovery(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 2*time.Minute)
	nsA, nsB := h.newNetns(), h.newNetns()
	h.veth(nsA, "veth-a", nsB, "veth-b")
	net := subnet()
	addrs := func(run int) (string, string) {
		return fmt.Sprintf("%s.%d", net, 10*run+1), fmt.Sprintf("%s.%d", net, 10*run+2)
	}
	setAddrs := func(run int) {
		ipA, ipB := addrs(run)
		h.ip("-n", nsA, "addr", "flush", "dev", "veth-a")
		h.ip("-n", nsB, "addr", "flush", "dev", "veth-b")
		h.ip("-n", nsA, "addr", "add", ipA+"/24", "dev", "veth-a")
		h.ip("-n", nsB, "addr", "add", ipB+"/24", "dev", "veth-b")
		h.ip("-n", nsA, "link", "set", "veth-a", "up")
		h.ip("-n", nsB, "link", "set", "veth-b", "up")
	}
	mdnsOn := []string{"--mdns=true", "--dht=false"}
	setAddrs(0)
	ipA, ipB := addrs(0)
	a := h.newNode("alpha", nodeOpts{netns: nsA, listen: "/ip4/" + ipA + "/tcp/0", discovery: mdnsOn})
	b := h.newNode("bravo", nodeOpts{netns: nsB, listen: "/ip4/" + ipB + "/tcp/0", discovery: mdnsOn})
	a.start()
	b.start()
	lib := a.createLibrary("lan")
	b.join(a.invite(), lib)
	h.waitLive(lib, 30*time.Second, a, b)

	// New addresses: what each stored of the other is now unreachable.
	a.stop()
	b.stop()
	setAddrs(1)
	ipA, ipB = addrs(1)
	a.opts.listen, b.opts.listen = "/ip4/"+ipA+"/tcp/0", "/ip4/"+ipB+"/tcp/0"
	a.start()
	b.start()
	h.waitLive(lib, time.Minute, a, b)
	tag := putTag(t, a, `{"name":"found by mdns"}`)
	h.waitFor("alpha's new tag on bravo", 30*time.Second, func() (bool, string) {
		r := b.cli("get", "tag", tag)
		return r.code == 0, r.String()
	})
	// It was mDNS: each daemon's mDNS source found the other, and each
	// stored the other's new address.
	for _, n := range []*node{a, b} {
		st := n.status()
		other, otherPeer := ipB, b.status().Node.Peer
		if n == b {
			other, otherPeer = ipA, a.status().Node.Peer
		}
		found := false
		for _, d := range st.Discovery {
			found = found || (d.Name == "mdns" && d.Found > 0 && slices.Contains(d.Recent, otherPeer))
		}
		if !found {
			t.Errorf("%s: the mdns source did not find %s (discovery: %+v)", n.name, otherPeer, st.Discovery)
		}
		var stored []string
		for _, m := range mustLibStatus(t, n, lib).Members {
			if !m.Self {
				stored = append(stored, m.Addrs...)
			}
		}
		if !strings.Contains(strings.Join(stored, " "), "/ip4/"+other+"/") {
			t.Errorf("%s did not store the other's new address %s: %v", n.name, other, stored)
		}
	}
}

func mustLibStatus(t *testing.T, n *node, lib string) localStatus {
	t.Helper()
	st, err := n.libStatus(lib)
	if err != nil {
		t.Fatalf("%s: library status: %v", n.name, err)
	}
	return st
}

// putTag writes a new tag with the CLI and returns its ID.
func putTag(t *testing.T, n *node, data string) string {
	t.Helper()
	var w struct{ ID string }
	n.cliJSON(&w, "put", "tag", data)
	if w.ID == "" {
		t.Fatalf("%s: put tag printed no ID", n.name)
	}
	return w.ID
}

// probeNetns creates and deletes a namespace, to tell a machine where root
// may not (a container without CAP_SYS_ADMIN) from a failing test.
func probeNetns() error {
	name := fmt.Sprintf("sne2eprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
