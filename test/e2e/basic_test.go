package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/localapi"
)

// watcher is a `syncnode watch` process whose lines are read as they come.
type watcher struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	state error
}

// watch starts `syncnode watch` with more arguments; it is killed in
// t.Cleanup.
func (n *node) watch(args ...string) *watcher {
	t := n.h.t
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--data-dir", n.dataDir, "--json", "watch"}, args...)...)
	cmd.Env = n.env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: starting watch: %v", n.name, err)
	}
	w := &watcher{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			select {
			case w.lines <- sc.Text():
			default: // a test that reads too slowly loses lines, not the reader
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		wg.Wait()
		w.state = cmd.Wait()
		close(w.lines)
		close(w.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
		if t.Failed() && errb.Len() > 0 {
			t.Logf("%s: watch stderr: %s", n.name, errb.String())
		}
	})
	return w
}

// next waits (bounded) for the watcher's next event that match accepts.
func (w *watcher) next(h *harness, what string, timeout time.Duration, match func(localapi.Event) bool) localapi.Event {
	h.t.Helper()
	deadline := time.After(timeout)
	var seen []string
	for i := 0; i < 100000; i++ {
		select {
		case line, ok := <-w.lines:
			if !ok {
				h.t.Fatalf("watch ended (%v) before %s; it printed %v", w.state, what, seen)
			}
			var ev localapi.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				h.t.Fatalf("watch printed a line that is not an event (%v): %q", err, line)
			}
			if match(ev) {
				return ev
			}
			seen = append(seen, line)
		case <-deadline:
			h.t.Fatalf("watch did not print %s within %s; it printed %v", what, timeout, seen)
		case <-h.ctx.Done():
			h.t.Fatalf("the test timed out waiting for %s", what)
		}
	}
	h.t.Fatalf("watch printed too many other events before %s", what)
	return localapi.Event{}
}

// subscribed makes sure the watcher's event stream is open: it writes a
// probe record (an album) on writer every half second until one reaches
// the watcher.
func (w *watcher) subscribed(h *harness, writer *node, lib string) {
	h.t.Helper()
	probes := map[string]bool{}
	for i := 0; i < 40; i++ {
		var out localapi.Written
		writer.apiJSON("POST", libPath(lib, "records", "album"), map[string]any{"probe": i}, &out)
		probes[out.ID] = true
		timeout := time.After(500 * time.Millisecond)
	read:
		for {
			select {
			case line, ok := <-w.lines:
				if !ok {
					h.t.Fatalf("watch ended (%v) before its first event", w.state)
				}
				var ev localapi.Event
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					h.t.Fatalf("watch printed a line that is not an event (%v): %q", err, line)
				}
				if probes[ev.ID] {
					return
				}
			case <-timeout:
				break read
			case <-h.ctx.Done():
				h.t.Fatal("the test timed out waiting for the watcher")
			}
		}
	}
	h.t.Fatal("watch printed none of 40 probe records in 20 s")
}

// TestTwoThenThreeNodes is what a user does: init, run, create a library,
// invite, join (the CLI waits for the backfill), put on one device, get and
// watch on the others, update and delete, and see every peer live — first
// with two processes, then with a third that joins through an invite of the
// second.
func TestTwoThenThreeNodes(t *testing.T) {
	h := newHarness(t, 2*time.Minute)
	a := h.newNode("alpha", nodeOpts{})
	b := h.newNode("bravo", nodeOpts{})
	c := h.newNode("charlie", nodeOpts{unixAPI: true}) // the API on a Unix socket

	// init before run: the identity it prints is the daemon's.
	var initA map[string]string
	a.cliJSON(&initA, "init")
	if _, err := uuid.Parse(initA["device"]); err != nil || initA["peer"] == "" {
		t.Fatalf("init printed %v: want a device UUID and a peer ID", initA)
	}
	if r := a.cli("init"); r.code != 0 {
		t.Fatalf("a second init (no daemon running) must succeed: %s", r)
	}
	for _, n := range []*node{a, b, c} {
		n.start()
	}
	for _, n := range []*node{a, c} {
		fi, err := os.Stat(filepath.Join(n.dataDir, "api-token"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: the API token file has mode %v, want owner-only (0600)", n.name, fi.Mode())
		}
	}
	if st := a.status(); st.Node.Device != initA["device"] || st.Node.Peer != initA["peer"] {
		t.Fatalf("the daemon runs as device %s peer %s, init made %s %s", st.Node.Device, st.Node.Peer, initA["device"], initA["peer"])
	}
	if r := a.cli("init"); r.code != 1 || !strings.Contains(r.stderr, "running") {
		t.Fatalf("init while the daemon runs: want exit 1 and a message that a daemon runs, got %s", r)
	}

	// The default models, with their strategies.
	var models []localapi.Model
	a.cliJSON(&models, "models")
	strategy := map[string]string{}
	for _, m := range models {
		strategy[m.Name] = m.Strategy
	}
	for name, want := range map[string]string{"location": "device-owned", "volume": "device-owned", "entry": "device-owned",
		"device": "shared", "tag": "shared", "album": "shared", "user_metadata": "shared"} {
		if strategy[name] != want {
			t.Errorf("models: %s is %q, want %q (all: %v)", name, strategy[name], want, strategy)
		}
	}

	lib := a.createLibrary("photos")
	var libs []localapi.Library
	a.cliJSON(&libs, "library", "list")
	if len(libs) != 1 || libs[0].ID != lib || libs[0].Name != "photos" {
		t.Fatalf("library list: %+v, want the one library photos %s", libs, lib)
	}
	// Something to backfill before bravo joins.
	tagBefore := uuid.NewString()
	a.mustCLI("put", "tag", "--id", tagBefore, `{"name":"before-join"}`)

	progress := b.join(a.invite(), lib)
	if strings.ContainsAny(progress, "\r\x1b") {
		t.Errorf("join's progress on a non-terminal must be plain lines, got %q", progress)
	}
	if !strings.Contains(progress, "backfill") {
		t.Errorf("join printed no progress line: %q", progress)
	}
	var got localapi.Record
	b.cliJSON(&got, "get", "tag", tagBefore)
	if compact(got.Data) != `{"name":"before-join"}` {
		t.Fatalf("after join, bravo's tag %s is %s, want the one alpha wrote before", tagBefore, got.Data)
	}
	h.waitLive(lib, 30*time.Second, a, b)

	// Two nodes: put on alpha, get and watch on bravo.
	wb := b.watch()
	wb.subscribed(h, a, lib)
	tag := uuid.NewString()
	var w localapi.Written
	a.cliJSON(&w, "put", "tag", "--id", tag, `{"name":"red","n":1}`)
	if w.ID != tag || w.Library != lib || w.Version == "" {
		t.Fatalf("put printed %+v", w)
	}
	ev := wb.next(h, "alpha's tag", 20*time.Second, func(e localapi.Event) bool { return e.ID == tag })
	if ev.Type != "changed" || ev.Version != w.Version || ev.Model != "tag" || compact(ev.Data) != `{"n":1,"name":"red"}` {
		t.Fatalf("bravo's watch printed %+v, want a change of tag %s at %s", ev, tag, w.Version)
	}
	b.cliJSON(&got, "get", "tag", tag)
	if got.Version != w.Version || got.By != a.status().Node.Device || compact(got.Data) != `{"n":1,"name":"red"}` {
		t.Fatalf("bravo's get: %+v, want alpha's write %+v", got, w)
	}
	// A device-owned record from stdin.
	var loc localapi.Written
	if r := a.cliIn(strings.NewReader(`{"path":"/photos"}`), "--json", "put", "location", "-"); r.code != 0 {
		t.Fatalf("put location - : %s", r)
	} else if err := json.Unmarshal([]byte(r.stdout), &loc); err != nil || loc.ID == "" {
		t.Fatalf("put location printed %q (%v)", r.stdout, err)
	}

	// A third node joins with bravo's invite.
	progress = c.join(b.invite(), lib)
	h.waitLive(lib, 30*time.Second, a, b, c)
	h.waitConverged(lib, []string{"tag", "location", "device"}, 20*time.Second, a, b, c)
	var members []localapi.Member
	c.apiJSON("GET", libPath(lib, "members"), nil, &members)
	if len(members) != 3 {
		t.Fatalf("charlie sees %d members, want 3: %+v", len(members), members)
	}
	wc := c.watch()
	wc.subscribed(h, a, lib)

	// Update on bravo: the newest write wins everywhere.
	var w2 localapi.Written
	b.cliJSON(&w2, "put", "tag", "--id", tag, `{"name":"blue"}`)
	for _, n := range []*node{a, c} {
		h.waitFor(n.name+" holding bravo's update", 20*time.Second, func() (bool, string) {
			r := n.cli("get", "tag", tag)
			return r.code == 0 && strings.Contains(r.stdout, w2.Version), r.String()
		})
	}
	wc.next(h, "bravo's update", 20*time.Second, func(e localapi.Event) bool { return e.ID == tag && e.Version == w2.Version })

	// Delete on charlie converges: the record is gone everywhere, with the
	// same tombstone.
	var del localapi.Written
	c.cliJSON(&del, "delete", "tag", tag)
	ev = wb.next(h, "the delete", 20*time.Second, func(e localapi.Event) bool { return e.ID == tag && e.Type == "deleted" })
	if ev.Version != del.Version {
		t.Fatalf("bravo's watch: delete at %s, charlie deleted at %s", ev.Version, del.Version)
	}
	for _, n := range []*node{a, b} {
		h.waitFor(n.name+" seeing the delete", 20*time.Second, func() (bool, string) {
			r := n.cli("get", "tag", tag)
			return r.code == 1 && strings.Contains(r.stderr, "deleted"), r.String()
		})
	}
	h.waitConverged(lib, []string{"tag", "location", "album"}, 20*time.Second, a, b, c)
	var list localapi.RecordList
	a.cliJSON(&list, "list", "tag", "--deleted")
	found := false
	for _, r := range list.Records {
		if r.ID == tag {
			found = r.Deleted && r.Version == del.Version
		}
	}
	if !found {
		t.Fatalf("alpha's list --deleted does not show tag %s deleted at %s: %+v", tag, del.Version, list.Records)
	}

	// Only the owner deletes a device-owned record.
	if r := b.cli("delete", "location", loc.ID); r.code != 1 || !strings.Contains(r.stderr, "owner") {
		t.Fatalf("bravo deleting alpha's location: want exit 1 and a message about the owner, got %s", r)
	}

	// status and peers show every peer live, as JSON and as text.
	for _, n := range []*node{a, b, c} {
		var st localapi.Status
		n.cliJSON(&st, "status", "--json")
		if len(st.Libraries) != 1 || len(st.Libraries[0].Members) != 3 || len(st.Libraries[0].Peers) != 2 {
			t.Fatalf("%s: status --json: %+v", n.name, st)
		}
		for _, p := range st.Libraries[0].Peers {
			if p.State != "live" {
				t.Errorf("%s: status says peer %s is %q, want live", n.name, p.Name, p.State)
			}
		}
		var peers []localapi.Peer
		n.cliJSON(&peers, "peers", "--json")
		if len(peers) != 2 {
			t.Errorf("%s: peers --json: %+v, want 2", n.name, peers)
		}
		if text := n.mustCLI("status"); strings.Count(text, "live") < 2 || !strings.Contains(text, "photos") {
			t.Errorf("%s: status (text) does not show the library and two live peers:\n%s", n.name, text)
		}
	}

	// watch --count exits 0 after that many events.
	counted := c.watch("--count", "1")
	h.waitFor("watch --count 1 to exit", 20*time.Second, func() (bool, string) {
		select {
		case <-counted.done:
			return true, ""
		default:
		}
		a.apiJSON("POST", libPath(lib, "records", "album"), map[string]any{"count": 1}, nil)
		return false, "still running"
	})
	if counted.state != nil {
		t.Fatalf("watch --count 1 exited with %v, want 0", counted.state)
	}

	// Membership through the CLI: alpha removes charlie, then bravo leaves.
	memberCount := func(n *node) (int, string) {
		var ms []localapi.Member
		if err := n.tryJSON("GET", libPath(lib, "members"), nil, &ms); err != nil {
			return -1, err.Error()
		}
		return len(ms), fmt.Sprintf("%s: %d members", n.name, len(ms))
	}
	a.mustCLI("library", "remove-device", "--yes", c.status().Node.Device)
	for _, n := range []*node{a, b} {
		h.waitFor(n.name+" seeing charlie removed", 20*time.Second, func() (bool, string) {
			k, seen := memberCount(n)
			return k == 2, seen
		})
	}
	var left map[string]any
	b.cliJSON(&left, "library", "leave", "--yes")
	if left["left"] != lib {
		t.Fatalf("library leave printed %v", left)
	}
	b.cliJSON(&libs, "library", "list")
	if len(libs) != 0 {
		t.Fatalf("after leave, bravo still holds %+v", libs)
	}
	h.waitFor("alpha seeing bravo leave", 20*time.Second, func() (bool, string) {
		k, seen := memberCount(a)
		return k == 1, seen
	})

	// A clean shutdown on SIGTERM removes the API address: the CLI then
	// says that no daemon runs.
	c.stop()
	if r := c.cli("status"); r.code != 1 || !strings.Contains(r.stderr, "no syncnode daemon") {
		t.Fatalf("status with the daemon stopped: want exit 1 and \"no syncnode daemon\", got %s", r)
	}
}
