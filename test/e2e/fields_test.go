package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/localapi"
)

// fieldsConfig declares the model types of the shared-fields tests: note is
// shared-fields, tag stays shared (record-level).
const fieldsConfig = `[[models]]
name = "tag"
strategy = "shared"

[[models]]
name = "note"
strategy = "shared-fields"
`

// TestPartitionFields runs two daemons in two network namespaces on a
// bridge, cuts one off, and has each edit a different field of one note
// (a shared-fields record), and of one tag (record-level) for contrast: after
// the heal both edits of the note survive on both devices, each field with
// the version of its own writer, while the tag keeps one of its two writes.
func TestPartitionFields(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 3*time.Minute)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(fieldsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	br := h.newNetns()
	h.ip("-n", br, "link", "add", "br0", "type", "bridge")
	h.ip("-n", br, "link", "set", "br0", "up")
	net := subnet()
	var nodes []*node
	for i, name := range []string{"alpha", "bravo"} {
		ns := h.newNetns()
		port := fmt.Sprintf("port%d", i)
		h.veth(br, port, ns, "eth0")
		h.ip("-n", br, "link", "set", port, "master", "br0")
		h.ip("-n", br, "link", "set", port, "up")
		ip := fmt.Sprintf("%s.%d", net, i+1)
		h.ip("-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		h.ip("-n", ns, "link", "set", "eth0", "up")
		nodes = append(nodes, h.newNode(name, nodeOpts{netns: ns, listen: "/ip4/" + ip + "/tcp/0", extra: []string{"--config=" + cfg}}))
	}
	for _, n := range nodes {
		n.start()
	}
	a, b := nodes[0], nodes[1]
	lib := a.createLibrary("fields")
	b.join(a.invite(), lib)
	h.waitLive(lib, 30*time.Second, a, b)

	note, tag := uuid.NewString(), uuid.NewString()
	a.mustCLI("put", "note", "--id", note, `{"title":"Holidays","colour":"red","size":3}`)
	a.mustCLI("put", "tag", "--id", tag, `{"name":"trip","colour":"red"}`)
	models := []string{"note", "tag", "device"}
	h.waitConverged(lib, models, 30*time.Second, a, b)

	// Cut bravo off; each side edits a different field of the note.
	h.ip("-n", br, "link", "set", "port1", "down")
	h.waitFor("both sides to see the other gone", 90*time.Second, func() (bool, string) {
		var seen []string
		gone := 0
		for _, n := range nodes {
			st, err := n.libStatus(lib)
			if err != nil {
				return false, err.Error()
			}
			for _, p := range st.Peers {
				seen = append(seen, n.name+":"+p.Name+"="+p.State)
				if p.State != "live" {
					gone++
				}
			}
		}
		return gone == 2, strings.Join(seen, " ")
	})
	var wa, wb localapi.Written
	a.cliJSON(&wa, "put", "note", "--id", note, "--merge", `{"title":"Summer holidays"}`)
	b.cliJSON(&wb, "put", "note", "--id", note, "--merge", `{"colour":"blue","size":null}`)
	a.mustCLI("put", "tag", "--id", tag, `{"name":"summer trip","colour":"red"}`)
	b.mustCLI("put", "tag", "--id", tag, `{"name":"trip","colour":"blue"}`)
	// The cut is real: alpha does not see bravo's edit yet.
	var ra localapi.Record
	a.cliJSON(&ra, "get", "note", note)
	if strings.Contains(string(ra.Data), "blue") {
		t.Fatalf("alpha holds bravo's partition-time edit during the cut: %s", ra.Data)
	}

	// Heal: both edits of the note survive everywhere.
	h.ip("-n", br, "link", "set", "port1", "up")
	healed := time.Now()
	h.waitConverged(lib, models, 90*time.Second, a, b)
	t.Logf("converged %s after the heal", time.Since(healed).Round(time.Millisecond))
	want := map[string]any{"title": "Summer holidays", "colour": "blue"}
	for _, n := range nodes {
		var r localapi.Record
		n.cliJSON(&r, "get", "note", note)
		var got map[string]any
		if err := json.Unmarshal(r.Data, &got); err != nil {
			t.Fatalf("%s: note data %s: %v", n.name, r.Data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s shows the note as %v, want %v (both partition-time edits)", n.name, got, want)
		}
		if r.Fields["title"] != wa.Version || r.Fields["colour"] != wb.Version {
			t.Errorf("%s: field versions %v, want title at alpha's %s and colour at bravo's %s", n.name, r.Fields, wa.Version, wb.Version)
		}
		verbose := n.mustCLI("get", "note", note, "--verbose")
		if !strings.Contains(verbose, "title") || !strings.Contains(verbose, wa.Version) || !strings.Contains(verbose, wb.Version) {
			t.Errorf("%s: get --verbose does not show each field's version:\n%s", n.name, verbose)
		}
		// The record-level tag keeps one write whole (the same on both:
		// waitConverged checked), never a mix of the two.
		var rt localapi.Record
		n.cliJSON(&rt, "get", "tag", tag)
		if s := string(rt.Data); strings.Contains(s, "summer trip") == strings.Contains(s, "blue") {
			t.Errorf("%s: the shared tag mixes or lost both writes: %s", n.name, s)
		}
	}
}
