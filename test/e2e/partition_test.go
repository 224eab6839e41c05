package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/localapi"
)

// TestPartition runs three daemons in three network namespaces on a bridge
// (in a fourth namespace), cuts one off by taking its bridge port down while
// all three write (new records, one record written on both sides, a record
// deleted on one side and updated on the other), and heals the link: all
// three converge on the same records, versions and tombstones.
func TestPartition(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 3*time.Minute)
	br := h.newNetns()
	h.ip("-n", br, "link", "add", "br0", "type", "bridge")
	h.ip("-n", br, "link", "set", "br0", "up")
	net := subnet()
	var nodes []*node
	for i, name := range []string{"alpha", "bravo", "charlie"} {
		ns := h.newNetns()
		port := fmt.Sprintf("port%d", i)
		h.veth(br, port, ns, "eth0")
		h.ip("-n", br, "link", "set", port, "master", "br0")
		h.ip("-n", br, "link", "set", port, "up")
		ip := fmt.Sprintf("%s.%d", net, i+1)
		h.ip("-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		h.ip("-n", ns, "link", "set", "eth0", "up")
		nodes = append(nodes, h.newNode(name, nodeOpts{netns: ns, listen: "/ip4/" + ip + "/tcp/0"}))
	}
	for _, n := range nodes {
		n.start()
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	lib := a.createLibrary("split")
	code := a.invite()
	b.join(code, lib)
	c.join(code, lib)
	h.waitLive(lib, 30*time.Second, a, b, c)

	// Records that the partition will fight over.
	both, doomed := uuid.NewString(), uuid.NewString()
	a.mustCLI("put", "tag", "--id", both, `{"name":"before"}`)
	a.mustCLI("put", "tag", "--id", doomed, `{"name":"before"}`)
	models := []string{"tag", "album", "location", "device"}
	h.waitConverged(lib, models, 30*time.Second, a, b, c)

	// Cut charlie off: its bridge port goes down (its own link loses
	// carrier too). All three write at once, and again once each side has
	// noticed (the peers' timeout, 5 s here), so that the heal needs
	// a reconnect and a catch-up, not only TCP retransmissions.
	h.ip("-n", br, "link", "set", "port2", "down")
	cut := time.Now()
	var mine [3][]string
	write := func(round int) {
		for i, n := range nodes {
			mine[i] = append(mine[i], putTag(t, n, fmt.Sprintf(`{"name":"%s-%d"}`, n.name, round)))
			var w localapi.Written
			n.cliJSON(&w, "put", "location", fmt.Sprintf(`{"path":"/%s/%d"}`, n.name, round))
			mine[i] = append(mine[i], w.ID)
		}
	}
	write(0)
	var wa, wc localapi.Written
	a.cliJSON(&wa, "put", "tag", "--id", both, `{"name":"alpha's side"}`)
	c.cliJSON(&wc, "put", "tag", "--id", both, `{"name":"charlie's side"}`)
	b.mustCLI("delete", "tag", doomed)
	c.mustCLI("put", "tag", "--id", doomed, `{"name":"charlie updates it"}`)
	h.waitFor("both sides to see the other side gone", 90*time.Second, func() (bool, string) {
		var seen []string
		gone := 0
		for _, n := range nodes {
			st, err := n.libStatus(lib)
			if err != nil {
				return false, err.Error()
			}
			for _, p := range st.Peers {
				seen = append(seen, n.name+":"+p.Name+"="+p.State)
				if (n == c || p.Name == c.name) && p.State != "live" {
					gone++
				}
			}
		}
		return gone == 4, strings.Join(seen, " ")
	})
	t.Logf("both sides saw the cut %s after it", time.Since(cut).Round(time.Millisecond))
	write(1)

	// The cut is real: alpha and bravo converge without charlie, and
	// neither side holds what the other wrote.
	h.waitConverged(lib, models, 30*time.Second, a, b)
	has := func(n *node) map[string]bool {
		out := map[string]bool{}
		for _, model := range []string{"tag", "location"} {
			all, err := n.listAll(lib, model)
			if err != nil {
				t.Fatalf("%s: %v", n.name, err)
			}
			for id, r := range all {
				out[id] = !r.Deleted
			}
		}
		return out
	}
	onA, onC := has(a), has(c)
	for _, id := range mine[2] {
		if onA[id] {
			t.Fatalf("alpha holds charlie's record %s during the partition: the cut leaks", id)
		}
	}
	for _, id := range append(mine[0], mine[1]...) {
		if onC[id] {
			t.Fatalf("charlie holds record %s of the other side during the partition: the cut leaks", id)
		}
	}

	// Heal: all three converge, both sides' writes everywhere.
	h.ip("-n", br, "link", "set", "port2", "up")
	healed := time.Now()
	h.waitConverged(lib, models, 90*time.Second, a, b, c)
	t.Logf("converged %s after the heal", time.Since(healed).Round(time.Millisecond))
	for _, n := range nodes {
		held := has(n)
		for i, ids := range mine {
			for _, id := range ids {
				if !held[id] {
					t.Errorf("%s lacks %s's partition-time record %s", n.name, nodes[i].name, id)
				}
			}
		}
	}
	// The record written on both sides holds one of the two writes, the
	// same everywhere (convergence checked it is the same).
	recs, err := a.listAll(lib, "tag")
	if err != nil {
		t.Fatal(err)
	}
	if v := recs[both].Version; v != wa.Version && v != wc.Version {
		t.Errorf("the tag written on both sides has version %s, neither alpha's %s nor charlie's %s", v, wa.Version, wc.Version)
	}
	t.Logf("written on both sides: %s won; deleted on one side, updated on the other: deleted=%v", compact(recs[both].Data), recs[doomed].Deleted)
}
