package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node/localapi"
)

// The CLI speaks to people by default and JSON with --json: every command's
// --json output is JSON, names (and the first characters of IDs or names)
// are accepted for libraries, invite prints the bare code, names are
// unique, and destructive commands want --yes when nobody can confirm.
func TestCLIForPeople(t *testing.T) {
	h := newHarness(t, 2*time.Minute)
	a := h.newNode("alpha", nodeOpts{})
	a.start()

	if out := a.mustCLI("library", "create", "photos"); !strings.HasPrefix(out, "created library photos (") {
		t.Errorf("library create printed %q", out)
	}
	if r := a.cli("library", "create", "photos"); r.code != 1 || !strings.Contains(r.stderr, "unique") {
		t.Errorf("a second library named photos: want exit 1 saying names are unique, got %s", r)
	}
	a.mustCLI("library", "create", "notes")
	if out := a.mustCLI("library", "list"); !regexp.MustCompile(`(?m)^NAME\s+ID\s+CREATED\s+STATE$`).MatchString(out) ||
		!strings.Contains(out, "photos") || !strings.Contains(out, "notes") {
		t.Errorf("library list is not a table of both libraries:\n%s", out)
	}
	var libs []localapi.Library
	a.cliJSON(&libs, "library", "list")
	photos := ""
	for _, l := range libs {
		if l.Name == "photos" {
			photos = l.ID
		}
	}

	// Two libraries: a command must be told which, by name, ID, or the
	// start of either.
	if r := a.cli("put", "tag", `{"name":"x"}`); r.code != 2 || !strings.Contains(r.stderr, "--library") {
		t.Errorf("put with two libraries and no --library: want exit 2 naming --library, got %s", r)
	}
	r := a.cli("library", "invite", "--library", "pho")
	if r.code != 0 || !regexp.MustCompile(`^syncnode1-[A-Za-z0-9_-]+\n$`).MatchString(r.stdout) || !strings.Contains(r.stderr, "photos") {
		t.Errorf("library invite printed %q (stderr %q): want the bare code on one line", r.stdout, r.stderr)
	}
	var inv localapi.Invite
	a.cliJSON(&inv, "library", "invite", "--library", photos[:6])
	if !strings.HasPrefix(inv.Code, "syncnode1-") || inv.Expires.Before(time.Now()) {
		t.Errorf("library invite --json: %+v", inv)
	}

	tag := uuid.NewString()
	if out := a.mustCLI("put", "-l", "photos", "tag", "--id", tag, `{"name":"red"}`); !strings.HasPrefix(out, "wrote tag "+tag+" (version ") {
		t.Errorf("put printed %q", out)
	}
	out := a.mustCLI("list", "-l", "photos", "tag")
	if !regexp.MustCompile(`(?m)^ID\s+VERSION\s+BY\s+VALUE$`).MatchString(out) || !strings.Contains(out, tag) ||
		!strings.Contains(out, `{"name":"red"}`) || !strings.Contains(out, "alpha (") {
		t.Errorf("list is not a table with the tag, its value and its writer's name:\n%s", out)
	}
	if out := a.mustCLI("get", "-l", "photos", "tag", tag); !strings.Contains(out, "version  ") || !strings.Contains(out, `"name": "red"`) {
		t.Errorf("get printed:\n%s", out)
	}
	if out := a.mustCLI("models"); !strings.Contains(out, "MODEL") || !strings.Contains(out, "device-owned") {
		t.Errorf("models printed:\n%s", out)
	}

	// --json, on every command that talks to the daemon, prints JSON.
	for _, args := range [][]string{
		{"status"}, {"peers", "-l", "photos"}, {"library", "list"}, {"models"}, {"list", "-l", "photos", "tag"},
		{"get", "-l", "photos", "tag", tag}, {"put", "-l", "notes", "album", `{"title":"x"}`}, {"doctor"},
		{"version"}, {"config", "check"},
	} {
		r := a.cli(append([]string{"--json"}, args...)...)
		if !json.Valid([]byte(r.stdout)) || r.stdout == "" {
			t.Errorf("--json %v printed no JSON: %s", args, r)
		}
	}

	// Destructive commands: without a terminal to ask on, --yes or no.
	if r := a.cli("library", "leave", "-l", "notes"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("leave without --yes and no terminal: want exit 2 asking for --yes, got %s", r)
	}
	a.cliJSON(&libs, "library", "list")
	if len(libs) != 2 {
		t.Fatalf("an unconfirmed leave left: %+v", libs)
	}
	if out := a.mustCLI("library", "leave", "-l", "notes", "--yes"); !strings.HasPrefix(out, "left library notes") {
		t.Errorf("leave --yes printed %q", out)
	}

	// watch prints a line per event, for people.
	w := exec.Command(binary, "--data-dir", a.dataDir, "watch", "--count", "1")
	w.Env = a.env
	done := make(chan []byte, 1)
	go func() { b, _ := w.Output(); done <- b }()
	var line []byte
	h.waitFor("watch printing a line", 20*time.Second, func() (bool, string) {
		a.mustCLI("put", "tag", `{"name":"watched"}`)
		select {
		case line = <-done:
			return true, ""
		case <-time.After(300 * time.Millisecond):
			return false, "no line yet"
		}
	})
	if !regexp.MustCompile(`^\d\d:\d\d:\d\d\s+changed tag [0-9a-f-]{36} by [0-9a-f]{8}\s+\{"name":"watched"\}\n$`).Match(line) {
		t.Errorf("watch printed %q", line)
	}
}

// Membership through the CLI: joining twice says "already a member",
// created_at is the same on both devices, the backfill counts records
// once, a device removed (by name) is told, says so in status and refuses
// writes, and an inviter that is gone gets a message saying what to check
// (502 from the API). init with a data directory leaves the default config
// file alone.
func TestMembershipTellsTheTruth(t *testing.T) {
	h := newHarness(t, 3*time.Minute)
	a := h.newNode("alpha", nodeOpts{})
	b := h.newNode("bravo", nodeOpts{})
	c := h.newNode("charlie", nodeOpts{})

	// init with --data-dir (as the harness runs every CLI) writes no config
	// file: the default one would apply to every daemon.
	r := c.cli("init")
	defaultConfig := filepath.Join(c.root, "xdg-config", "syncnode", "config.toml")
	if _, err := os.Stat(defaultConfig); r.code != 0 || !os.IsNotExist(err) || !strings.Contains(r.stdout, "none written") {
		t.Fatalf("init --data-dir: exit %d, default config file: %v (want none), printed %q", r.code, err, r.stdout)
	}
	own := filepath.Join(c.root, "own.toml")
	c.mustCLI("init", "--config", own)
	if b, err := os.ReadFile(own); err != nil || !strings.Contains(string(b), fmt.Sprintf("data_dir = %q", c.dataDir)) {
		t.Fatalf("init --config: the named file %v, or it lacks the data directory: %s", err, b)
	}

	a.start()
	b.start()
	c.start()
	lib := a.createLibrary("photos")
	for i := 0; i < 40; i++ {
		id := uuid.NewString()
		for v := 0; v < 3; v++ { // three changes of each in the log
			a.mustCLI("put", "tag", "--id", id, fmt.Sprintf(`{"n":%d}`, v))
		}
	}
	progress := b.join(a.invite(), lib)
	re := regexp.MustCompile(`backfill: (\d+)/(\d+) records`)
	for _, m := range re.FindAllStringSubmatch(progress, -1) {
		got, _ := strconv.Atoi(m[1])
		total, _ := strconv.Atoi(m[2])
		if got > total || total != 42 {
			t.Errorf("backfill progress %q: want a count within the inviter's 42 records", m[0])
		}
	}
	if !strings.Contains(progress, "backfill done: 42 records") {
		t.Errorf("the backfill did not end at the 42 records: %s", progress)
	}
	if r := b.cli("library", "join", a.invite()); r.code != 1 || !strings.Contains(r.stderr, "already a member") {
		t.Errorf("joining again: want exit 1 saying already a member, got %s", r)
	}
	var la, lb []localapi.Library
	a.cliJSON(&la, "library", "list")
	b.cliJSON(&lb, "library", "list")
	if len(la) != 1 || len(lb) != 1 || !la[0].CreatedAt.Equal(lb[0].CreatedAt) {
		t.Errorf("created_at: alpha %+v, bravo %+v: want the library's, the same", la, lb)
	}
	h.waitLive(lib, 30*time.Second, a, b)

	// Remove bravo by (the start of) its name.
	if r := a.cli("library", "remove-device", "bravo"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("remove-device without --yes: want exit 2 asking for it, got %s", r)
	}
	if out := a.mustCLI("library", "remove-device", "brav", "--yes"); !strings.HasPrefix(out, "removed device bravo") {
		t.Errorf("remove-device printed %q", out)
	}
	h.waitFor("bravo learning that it was removed", 30*time.Second, func() (bool, string) {
		st, err := b.tryStatus()
		if err != nil || len(st.Libraries) != 1 {
			return false, fmt.Sprint(st.Libraries, err)
		}
		return st.Libraries[0].Removed != nil, fmt.Sprintf("%+v", st.Libraries[0].Library)
	})
	if out := b.mustCLI("status"); !strings.Contains(out, "REMOVED") || !strings.Contains(out, "alpha") {
		t.Errorf("bravo's status does not say it was removed, and by whom:\n%s", out)
	}
	if out := b.mustCLI("library", "list"); !strings.Contains(out, "removed") {
		t.Errorf("bravo's library list does not say removed:\n%s", out)
	}
	if out := b.cli("doctor").stdout; !strings.Contains(out, "was removed from the library") {
		t.Errorf("bravo's doctor does not say it was removed:\n%s", out)
	}
	if r := b.cli("put", "tag", `{"name":"late"}`); r.code != 1 || !strings.Contains(r.stderr, "removed from library") {
		t.Errorf("a write on the removed device: want exit 1 saying it was removed, got %s", r)
	}
	if status, body, _ := b.call("POST", libPath(lib, "records", "tag"), []byte(`{}`), "Bearer "+b.token); status != http.StatusForbidden || !strings.Contains(string(body), `"removed"`) {
		t.Errorf("the API's answer to a write on the removed device: %d %s", status, body)
	}
	b.mustCLI("get", "tag", mustFirstTag(t, b, lib)) // its records stay readable

	// An inviter that is gone.
	code := a.invite()
	a.stop()
	r = c.cli("library", "join", code)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot be reached") || !strings.Contains(r.stderr, "firewall") {
		t.Errorf("joining with the inviter gone: want exit 1 saying what was tried and what to check, got %s", r)
	}
	status, body, err := c.call("POST", "/v1/libraries/join", []byte(fmt.Sprintf(`{"code":%q}`, code)), "Bearer "+c.token)
	var eb localapi.ErrorBody
	_ = json.Unmarshal(body, &eb)
	if err != nil || status != http.StatusBadGateway || eb.Code != "unreachable" {
		t.Errorf("the API's answer to a join with the inviter gone: %d %s (%v), want 502 unreachable", status, body, err)
	}
}

// mustFirstTag returns the ID of one tag of lib on n.
func mustFirstTag(t *testing.T, n *node, lib string) string {
	t.Helper()
	recs, err := n.listAll(lib, "tag")
	if err != nil {
		t.Fatal(err)
	}
	for id := range recs {
		return id
	}
	t.Fatal("no tag")
	return ""
}

// The local profile: two daemons started with --local and nothing else on
// one machine (a namespace that also has an address off loopback) listen
// on loopback only (the first on 7654, the second on ports the system
// picks), run no discovery, port mapping or relays, and sync with each
// other: the README's one-machine recipe.
func TestLocalProfileOneMachine(t *testing.T) {
	requireNetns(t)
	h := newHarness(t, 2*time.Minute)
	ns, other := h.newNetns(), h.newNetns()
	h.veth(ns, "veth-l", other, "veth-o")
	net := subnet()
	h.own(net + ".0/24")
	h.ip("-n", ns, "addr", "add", net+".1/24", "dev", "veth-l")
	h.ip("-n", ns, "link", "set", "veth-l", "up")
	a := h.newNode("alpha", nodeOpts{netns: ns, local: true})
	b := h.newNode("bravo", nodeOpts{netns: ns, local: true})
	a.start()
	b.start()
	for i, n := range []*node{a, b} {
		st := n.status()
		for _, addr := range st.Node.Addrs {
			if !strings.HasPrefix(addr, "/ip4/127.0.0.1/") {
				t.Errorf("%s listens on %s: the local profile is loopback only (all: %v)", n.name, addr, st.Node.Addrs)
			}
		}
		on7654 := strings.Contains(strings.Join(st.Node.Addrs, " "), "/tcp/7654")
		if on7654 != (i == 0) {
			t.Errorf("%s: addresses %v: want port 7654 for the first daemon only (the second falls back)", n.name, st.Node.Addrs)
		}
		for _, d := range st.Discovery {
			if d.Enabled {
				t.Errorf("%s: discovery source %s is on", n.name, d.Name)
			}
		}
		if nw := st.Network; nw.PortMapping.Enabled || nw.AutoRelay || nw.HolePunching || nw.RelayService != nil {
			t.Errorf("%s: network %+v: port mapping, relays and hole punching must be off", n.name, nw)
		}
	}
	lib := a.createLibrary("photos")
	b.join(a.invite(), lib)
	tag := uuid.NewString()
	a.mustCLI("put", "tag", "--id", tag, `{"name":"on one machine"}`)
	h.waitFor("alpha's tag on bravo", 30*time.Second, func() (bool, string) {
		r := b.cli("get", "tag", tag)
		return r.code == 0, r.String()
	})
}

// SIGHUP reads the configuration again: a new log level applies at once,
// and a change that takes a restart is named in the log.
func TestSIGHUPReloadsLogLevel(t *testing.T) {
	h := newHarness(t, time.Minute)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("[log]\nlevel = \"info\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := h.newNode("alpha", nodeOpts{quiet: true, extra: []string{"--config=" + cfg}})
	a.start()
	logOf := func() string { b, _ := os.ReadFile(a.logs[0]); return string(b) }
	if l := logOf(); strings.Contains(l, "level=DEBUG") || !strings.Contains(l, "syncnode running") {
		t.Fatalf("at info, the log holds debug lines (or no start line):\n%s", l)
	}
	if err := os.WriteFile(cfg, []byte("memory_limit = \"300MiB\"\n[log]\nlevel = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the reload in the log", 10*time.Second, func() (bool, string) {
		l := logOf()
		return strings.Contains(l, "configuration reloaded") && strings.Contains(l, "applied=log.level") &&
			strings.Contains(l, `level=DEBUG msg="SIGHUP: debug logging is on"`) &&
			strings.Contains(l, "take a restart") && strings.Contains(l, "not_applied=memory_limit"), l
	})
	if !a.running() {
		t.Fatal("the daemon stopped on SIGHUP")
	}
	a.stop()
}

// Shell completion for bash, run in bash against the real binary: it
// completes commands, library names and device names from the daemon, and
// model types.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	h := newHarness(t, 2*time.Minute)
	a := h.newNode("alpha", nodeOpts{})
	b := h.newNode("bravo", nodeOpts{})
	a.start()
	b.start()
	lib := a.createLibrary("photos")
	b.join(a.invite(), lib)
	a.mustCLI("library", "create", "notes")

	complete := func(line string) []string {
		t.Helper()
		// Cobra's script needs _get_comp_words_by_ref of the
		// bash-completion package (as every user of it has): the real one
		// if installed, else a minimal stand-in for these simple lines.
		script := `if [[ -r /usr/share/bash-completion/bash_completion ]]; then source /usr/share/bash-completion/bash_completion; fi
if ! declare -F _get_comp_words_by_ref >/dev/null; then
_get_comp_words_by_ref() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -n) shift 2 ;;
      cur) cur=${COMP_WORDS[COMP_CWORD]}; shift ;;
      prev) prev=${COMP_WORDS[COMP_CWORD-1]}; shift ;;
      words) words=("${COMP_WORDS[@]}"); shift ;;
      cword) cword=$COMP_CWORD; shift ;;
      *) shift ;;
    esac
  done
}
fi
source <(syncnode completion bash)
read -r -a COMP_WORDS <<< "$LINE"
if [[ "$LINE" == *" " ]]; then COMP_WORDS+=(""); fi
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$LINE"
COMP_POINT=${#LINE}
__start_syncnode 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
`
		cmd := exec.CommandContext(h.ctx, bash, "-c", script)
		cmd.Env = append(append([]string{}, a.env...), "LINE="+line, "SYNCNODE_DATA_DIR="+a.dataDir,
			"PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v", line, err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				got = append(got, l)
			}
		}
		return got
	}
	has := func(got []string, want string) bool {
		for _, g := range got {
			if g == want || strings.HasPrefix(g, want+" ") {
				return true
			}
		}
		return false
	}
	cases := []struct {
		line string
		want []string
		not  []string
	}{
		{"syncnode lib", []string{"library"}, nil},
		{"syncnode library ", []string{"create", "invite", "join", "leave", "list", "remove-device"}, nil},
		{"syncnode library invite --library ", []string{"photos", "notes"}, nil},
		{"syncnode library remove-device --library photos ", []string{"bravo"}, []string{"alpha"}},
		{"syncnode put --library photos ", []string{"tag", "album", "location"}, []string{"device"}},
	}
	for _, c := range cases {
		got := complete(c.line)
		for _, w := range c.want {
			if !has(got, w) {
				t.Errorf("completing %q: %q missing from %q", c.line, w, got)
			}
		}
		for _, n := range c.not {
			if has(got, n) {
				t.Errorf("completing %q: %q offered in %q", c.line, n, got)
			}
		}
	}
}
