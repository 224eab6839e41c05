package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncnode/syncnode/node/localapi"
)

// harness runs the processes of one test. Everything it waits for is
// bounded by the test's own timeout (ctx) as well as by its own deadline.
type harness struct {
	t   *testing.T
	ctx context.Context
	// owned are the address ranges the test gave its network namespaces
	// (besides 10.0.0.0/8, which every namespace test may use): a daemon
	// in a namespace may listen, dial and hold sockets there.
	owned []netip.Prefix
}

// own records a range the test assigns inside its namespaces.
func (h *harness) own(prefix string) {
	h.owned = append(h.owned, netip.MustParsePrefix(prefix))
}

// newHarness starts a test that must finish within timeout.
func newHarness(t *testing.T, timeout time.Duration) *harness {
	t.Helper()
	requireBinary(t)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return &harness{t: t, ctx: ctx}
}

// nodeOpts says how a node's daemon runs.
type nodeOpts struct {
	// netns runs the daemon (only the daemon: its API is a Unix socket that
	// the CLI reaches from outside) inside this network namespace.
	netns string
	// listen is the libp2p listen multiaddr; default /ip4/127.0.0.1/tcp/0.
	listen string
	// unixAPI serves the API on a Unix socket instead of 127.0.0.1:0
	// (always so with netns).
	unixAPI bool
	// discovery are the discovery flags; default --mdns=false --dht=false.
	discovery []string
	// extra are more daemon flags (NAT, relay). Unless they set
	// --port-mapping, the daemon runs with --port-mapping=false: port
	// mapping asks the LAN's router (UPnP, NAT-PMP), which only a
	// namespace's own router may be.
	extra []string
	// local runs the daemon with --local and no listen, discovery or NAT
	// flags: the profile decides. Only in a namespace (netns), where
	// nothing can leave the machine whatever the profile does.
	local bool
	// quiet leaves out --log-level=debug (the config file decides).
	quiet bool
}

// node is one syncnode daemon with its own data directory, home and XDG
// directories. It keeps them (and so its identity) across restarts.
type node struct {
	h       *harness
	name    string
	root    string
	dataDir string
	sockDir string
	env     []string
	opts    nodeOpts

	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd was reaped
	state *os.ProcessState
	logs  []string // one file per run: the daemon's stdout and stderr
	api   *http.Client
	base  string
	token string
}

// newNode prepares a node; start runs it. The node's process is killed and
// reaped in t.Cleanup, and its logs are printed if the test failed.
func (h *harness) newNode(name string, opts nodeOpts) *node {
	t := h.t
	t.Helper()
	root := t.TempDir()
	n := &node{h: h, name: name, root: root, dataDir: filepath.Join(root, "data"), opts: opts}
	for _, d := range []string{"home", "xdg-config", "xdg-data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	n.env = isolatedEnv(root)
	if opts.netns != "" || opts.unixAPI {
		// A socket path must fit in 108 bytes: t.TempDir() may be longer.
		d, err := os.MkdirTemp("", "sn")
		if err != nil {
			t.Fatal(err)
		}
		n.sockDir = d
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	t.Cleanup(func() {
		n.checkSockets()
		n.kill()
		if t.Failed() {
			n.printLogs()
		}
	})
	return n
}

// isolatedEnv is the environment of every process: this one's, without
// anything that points syncnode at a user's files or daemon.
func isolatedEnv(root string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SYNCNODE_") || strings.HasPrefix(k, "XDG_") || k == "HOME" || k == "GOMEMLIMIT" {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+filepath.Join(root, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(root, "xdg-config"),
		"XDG_DATA_HOME="+filepath.Join(root, "xdg-data"),
	)
}

// runArgs is the command line of the daemon.
func (n *node) runArgs() []string {
	listen := n.opts.listen
	if listen == "" {
		listen = "/ip4/127.0.0.1/tcp/0"
	}
	api := "127.0.0.1:0"
	if n.sockDir != "" {
		api = "unix:" + filepath.Join(n.sockDir, "api.sock")
	}
	args := []string{"--data-dir=" + n.dataDir, "run", "--api=" + api,
		"--sync-writes=false", "--device-name=" + n.name,
		"--heartbeat-interval=1s", "--peer-timeout=5s"} // a cut is noticed in seconds
	if !n.opts.quiet {
		args = append(args, "--log-level=debug")
	}
	if n.opts.local {
		return append(append(args, "--local"), n.opts.extra...)
	}
	args = append(args, "--listen="+listen)
	disc := n.opts.discovery
	if disc == nil {
		disc = []string{"--mdns=false", "--dht=false"}
	}
	args = append(args, disc...)
	if !slices.ContainsFunc(n.opts.extra, func(f string) bool { return strings.HasPrefix(f, "--port-mapping") }) {
		args = append(args, "--port-mapping=false")
	}
	return append(args, n.opts.extra...)
}

// checkHygiene refuses a daemon command line that could send traffic off
// this machine: mDNS or port mapping outside a test-made namespace, the DHT
// without our own bootstrap peers and prefix, relays or listen addresses
// off loopback (or, in a namespace, off 10.0.0.0/8 and the ranges the test
// owns), an API off loopback.
func checkHygiene(args []string, netns string, owned []netip.Prefix) error {
	if slices.Contains(args, "--local") {
		// The local profile is what such a test checks: it runs where
		// nothing can leave, whatever the profile does.
		if netns == "" {
			return errors.New("a daemon with --local under test runs in a test-made network namespace")
		}
		return nil
	}
	flags := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") {
			flags[k] = v
		}
	}
	inside := func(addr string) bool { // a multiaddr or host:port
		if strings.HasPrefix(addr, "/ip4/127.") || strings.HasPrefix(addr, "127.") {
			return true
		}
		if netns == "" {
			return false
		}
		host := addr
		if f := strings.Split(addr, "/"); len(f) > 2 && (f[1] == "ip4" || f[1] == "ip6") {
			host = f[2]
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return false
		}
		if ip.Is4() && ip.As4()[0] == 10 {
			return true
		}
		return slices.ContainsFunc(owned, func(p netip.Prefix) bool { return p.Contains(ip) })
	}
	if flags["mdns"] != "false" && netns == "" {
		return errors.New("mDNS must be off outside a test-made network namespace (--mdns=false)")
	}
	if flags["port-mapping"] != "false" && netns == "" {
		return errors.New("port mapping must be off outside a test-made network namespace (--port-mapping=false)")
	}
	if flags["dht"] != "false" {
		if _, ok := flags["bootstrap"]; !ok {
			return errors.New("the DHT needs --bootstrap with the test's own peers (the default is the public DHT)")
		}
		for _, b := range strings.Split(flags["bootstrap"], ",") {
			if b != "" && !inside(b) {
				return fmt.Errorf("bootstrap peer %q is off this machine", b)
			}
		}
		if p := flags["dht-prefix"]; p == "" || p == "/ipfs" {
			return errors.New("the DHT needs a private --dht-prefix")
		}
	}
	for _, r := range strings.Split(flags["relays"], ",") {
		if r != "" && !inside(r) {
			return fmt.Errorf("relay %q is off this machine", r)
		}
	}
	for _, l := range strings.Split(flags["listen"], ",") {
		if !inside(l) {
			return fmt.Errorf("listen address %q is not on loopback (or a test namespace's own addresses)", l)
		}
	}
	if api := flags["api"]; !strings.HasPrefix(api, "127.") && !strings.HasPrefix(api, "unix:") {
		return fmt.Errorf("API address %q is not on loopback or a Unix socket", api)
	}
	return nil
}

// start runs the daemon and waits until its API answers.
func (n *node) start() {
	t := n.h.t
	t.Helper()
	if n.running() {
		t.Fatalf("%s: start while running", n.name)
	}
	args := n.runArgs()
	if err := checkHygiene(args, n.opts.netns, n.h.owned); err != nil {
		t.Fatalf("%s: refusing to run %v: %v", n.name, args, err)
	}
	// A daemon killed with -9 leaves its address file: remove it, so that
	// the file appearing means the new daemon listens.
	_ = os.Remove(filepath.Join(n.dataDir, "api-addr"))
	logPath := filepath.Join(n.root, fmt.Sprintf("daemon-%d.log", len(n.logs)+1))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.logs = append(n.logs, logPath)
	var cmd *exec.Cmd
	if n.opts.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.opts.netns, binary}, args...)...)
	} else {
		cmd = exec.Command(binary, args...)
	}
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("%s: starting %v: %v", n.name, cmd.Args, err)
	}
	logf.Close() // the child holds its own descriptor
	n.cmd, n.done, n.state = cmd, make(chan struct{}), nil
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		n.state = cmd.ProcessState
		close(done)
	}(cmd, n.done)

	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		if !n.running() {
			t.Fatalf("%s: the daemon exited during start (%v); its log:\n%s", n.name, n.state, n.logTail(len(n.logs)-1))
		}
		if b, err := os.ReadFile(filepath.Join(n.dataDir, "api-addr")); err == nil {
			n.connect(strings.TrimSpace(string(b)))
			if _, err := n.tryStatus(); err == nil {
				return
			}
		}
		if time.Now().After(deadline) || i > 1000 || n.h.ctx.Err() != nil {
			t.Fatalf("%s: the daemon's API did not answer within 30s; its log:\n%s", n.name, n.logTail(len(n.logs)-1))
		}
		n.h.sleep(50 * time.Millisecond)
	}
}

// connect points the node's HTTP client at the API address addr and reads
// the token.
func (n *node) connect(addr string) {
	tok, err := os.ReadFile(filepath.Join(n.dataDir, "api-token"))
	if err != nil {
		n.h.t.Fatalf("%s: reading the API token: %v", n.name, err)
	}
	n.token = strings.TrimSpace(string(tok))
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	n.base = "http://" + addr
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		n.base = "http://syncnode"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	}
	n.api = &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func (n *node) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// checkSockets fails the test if the running daemon has a socket to an
// address off this machine (or off its test-made namespace).
func (n *node) checkSockets() {
	if !n.running() {
		return
	}
	bad, err := offMachine(n.cmd.Process.Pid, n.opts.netns != "", n.h.owned)
	if err != nil {
		n.h.t.Logf("%s: cannot check the daemon's sockets: %v", n.name, err)
		return
	}
	if len(bad) > 0 {
		n.h.t.Errorf("%s: NETWORK HYGIENE: the daemon has sockets off this machine: %v", n.name, bad)
	}
}

// kill sends SIGKILL to the daemon's process group and reaps it.
func (n *node) kill() {
	if !n.running() {
		return
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.h.t.Errorf("%s: pid %d not reaped 30s after SIGKILL", n.name, n.cmd.Process.Pid)
	}
}

// stop sends SIGTERM and waits for a clean exit (status 0); after 20 s it
// kills the daemon and fails the test.
func (n *node) stop() {
	t := n.h.t
	t.Helper()
	if !n.running() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		if !n.state.Success() {
			t.Fatalf("%s: the daemon did not exit cleanly on SIGTERM (%v); its log:\n%s", n.name, n.state, n.logTail(len(n.logs)-1))
		}
	case <-time.After(20 * time.Second):
		n.kill()
		t.Fatalf("%s: the daemon did not exit within 20s of SIGTERM; its log:\n%s", n.name, n.logTail(len(n.logs)-1))
	}
}

// logTail is the end of the log of run i (at most 64 KiB).
func (n *node) logTail(i int) string {
	if i < 0 || i >= len(n.logs) {
		return "(no log)"
	}
	b, err := os.ReadFile(n.logs[i])
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", n.logs[i], err)
	}
	const max = 64 << 10
	if len(b) > max {
		cut := bytes.IndexByte(b[len(b)-max:], '\n') + 1
		return fmt.Sprintf("[... %d bytes before ...]\n%s", len(b)-max+cut, b[len(b)-max+cut:])
	}
	return string(b)
}

func (n *node) printLogs() {
	for i := range n.logs {
		n.h.t.Logf("----- %s: daemon log, run %d of %d -----\n%s", n.name, i+1, len(n.logs), n.logTail(i))
	}
}

// sleep pauses between polls of a condition (never to synchronise).
func (h *harness) sleep(d time.Duration) {
	select {
	case <-h.ctx.Done():
	case <-time.After(d):
	}
}

// waitFor polls cond until it holds, at most timeout (and within the
// test's own timeout). cond returns what it saw, for the failure message.
func (h *harness) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	h.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	pause := 20 * time.Millisecond
	last := ""
	for i := 0; i < 100000; i++ {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) || h.ctx.Err() != nil {
			break
		}
		h.sleep(pause)
		pause = min(2*pause, 250*time.Millisecond)
	}
	reason := fmt.Sprintf("within %s", timeout)
	if h.ctx.Err() != nil {
		reason = "before the test's timeout"
	}
	h.t.Fatalf("%s did not happen %s (waited %s); last seen: %s", what, reason, time.Since(start).Round(time.Millisecond), last)
}

// ---- the CLI ----

// result is what a CLI process did.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("syncnode %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCLI runs the CLI with the node's data directory and environment, with
// stdin, bounded to one minute. It may run on any goroutine; err is set
// only when the process could not run or was killed.
func (n *node) runCLI(stdin io.Reader, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(n.h.ctx, time.Minute)
	defer cancel()
	full := append([]string{"--data-dir", n.dataDir}, args...)
	cmd := exec.CommandContext(ctx, binary, full...)
	cmd.Env = n.env
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return r, nil
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
		return r, nil
	}
	r.code = -1
	return r, fmt.Errorf("%s: running syncnode %v: %v (stderr: %s)", n.name, args, err, r.stderr)
}

// cliRaw is runCLI for goroutines: a failure to run is exit code -1.
func (n *node) cliRaw(args ...string) result {
	r, err := n.runCLI(nil, args...)
	if err != nil {
		r.stderr += "\n" + err.Error()
	}
	return r
}

// cliIn is runCLI that fails the test when the CLI could not run.
func (n *node) cliIn(stdin io.Reader, args ...string) result {
	n.h.t.Helper()
	r, err := n.runCLI(stdin, args...)
	if err != nil {
		n.h.t.Fatal(err)
	}
	return r
}

func (n *node) cli(args ...string) result {
	n.h.t.Helper()
	return n.cliIn(nil, args...)
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func (n *node) mustCLI(args ...string) string {
	t := n.h.t
	t.Helper()
	r := n.cli(args...)
	if r.code != 0 {
		t.Fatalf("%s: want exit 0, got %s", n.name, r)
	}
	return r.stdout
}

// cliJSON runs the CLI with --json, wants exit 0 and decodes its stdout
// into out.
func (n *node) cliJSON(out any, args ...string) {
	t := n.h.t
	t.Helper()
	s := n.mustCLI(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("%s: syncnode %v printed no JSON of the expected shape (%v):\n%s", n.name, args, err, s)
	}
}

// ---- the API over HTTP ----

// call sends one request to the API with the given Authorization header
// (none when auth is empty) and returns the status and body.
func (n *node) call(method, path string, body []byte, auth string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(n.h.ctx, method, n.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.api.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

// tryJSON calls the API with the node's token and decodes a 2xx answer
// into out (if not nil).
func (n *node) tryJSON(method, path string, in, out any) error {
	var body []byte
	switch v := in.(type) {
	case nil:
	case []byte:
		body = v
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	status, b, err := n.call(method, path, body, "Bearer "+n.token)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status/100 != 2 {
		return &httpError{status: status, body: string(b)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding %q: %w", method, path, b, err)
	}
	return nil
}

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// apiJSON is tryJSON that fails the test on an error.
func (n *node) apiJSON(method, path string, in, out any) {
	n.h.t.Helper()
	if err := n.tryJSON(method, path, in, out); err != nil {
		n.h.t.Fatalf("%s: %s %s: %v", n.name, method, path, err)
	}
}

func (n *node) tryStatus() (localapi.Status, error) {
	var st localapi.Status
	err := n.tryJSON("GET", "/v1/status", nil, &st)
	return st, err
}

func (n *node) status() localapi.Status {
	n.h.t.Helper()
	st, err := n.tryStatus()
	if err != nil {
		n.h.t.Fatalf("%s: status: %v", n.name, err)
	}
	return st
}

type localStatus = localapi.LibraryStatus

// libStatus is the status of library lib.
func (n *node) libStatus(lib string) (localapi.LibraryStatus, error) {
	var st localapi.LibraryStatus
	err := n.tryJSON("GET", "/v1/libraries/"+lib, nil, &st)
	return st, err
}

// metrics reads GET /metrics and returns every sample, by its name with
// labels as the endpoint prints it.
func (n *node) metrics() (map[string]float64, error) {
	status, b, err := n.call("GET", "/metrics", nil, "Bearer "+n.token)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &httpError{status: status, body: string(b)}
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, nil
}

// metric is the sum of the samples of one metric (every label set).
func (n *node) metric(name string) float64 {
	n.h.t.Helper()
	ms, err := n.metrics()
	if err != nil {
		n.h.t.Fatalf("%s: metrics: %v", n.name, err)
	}
	sum := 0.0
	for k, v := range ms {
		if k == name || strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return sum
}

// ---- libraries and records ----

func libPath(lib string, rest ...string) string {
	p := "/v1/libraries/" + url.PathEscape(lib)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// createLibrary creates a library with the CLI and returns its ID.
func (n *node) createLibrary(name string) string {
	n.h.t.Helper()
	var lib localapi.Library
	n.cliJSON(&lib, "library", "create", name)
	if lib.ID == "" || lib.Name != name {
		n.h.t.Fatalf("%s: library create %s printed %+v", n.name, name, lib)
	}
	return lib.ID
}

// invite issues an invite code with the CLI.
func (n *node) invite() string {
	n.h.t.Helper()
	var inv localapi.Invite
	n.cliJSON(&inv, "library", "invite")
	if !strings.HasPrefix(inv.Code, "syncnode") {
		n.h.t.Fatalf("%s: library invite printed the code %q", n.name, inv.Code)
	}
	return inv.Code
}

// join joins with the CLI, waiting for the backfill, and checks what it
// printed; it returns the CLI's stderr (the progress lines).
func (n *node) join(code, lib string) string {
	t := n.h.t
	t.Helper()
	r := n.cli("--json", "library", "join", code)
	if r.code != 0 {
		t.Fatalf("%s: want exit 0, got %s", n.name, r)
	}
	var got localapi.Library
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.ID != lib {
		t.Fatalf("%s: library join printed %q, want the library %s (%v)", n.name, r.stdout, lib, err)
	}
	if !strings.Contains(r.stderr, "backfill done") {
		t.Fatalf("%s: library join did not report the end of the backfill: %s", n.name, r)
	}
	return r.stderr
}

// listAll reads every record of a model (deleted ones too), page by page.
func (n *node) listAll(lib, model string) (map[string]localapi.Record, error) {
	out := map[string]localapi.Record{}
	after := ""
	for page := 0; page < 10000; page++ {
		q := url.Values{"deleted": {"true"}, "limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		var rl localapi.RecordList
		if err := n.tryJSON("GET", libPath(lib, "records", model)+"?"+q.Encode(), nil, &rl); err != nil {
			return nil, err
		}
		for _, r := range rl.Records {
			out[r.ID] = r
		}
		if rl.Next == "" {
			return out, nil
		}
		after = rl.Next
	}
	return nil, errors.New("more than 10000 pages")
}

// peerStates is "device=state" of every peer of lib, for messages, and
// whether all of them are live and there are want of them.
func (n *node) peersLive(lib string, want int) (bool, string) {
	st, err := n.libStatus(lib)
	if err != nil {
		return false, err.Error()
	}
	var states []string
	live := 0
	for _, p := range st.Peers {
		states = append(states, p.Name+"="+p.State)
		if p.State == "live" {
			live++
		}
	}
	return live == want && len(st.Peers) == want, fmt.Sprintf("%s: peers %v", n.name, states)
}

// waitLive waits until every node sees every other as a live peer of lib.
func (h *harness) waitLive(lib string, timeout time.Duration, nodes ...*node) {
	h.t.Helper()
	h.waitFor("every peer live on every node", timeout, func() (bool, string) {
		var seen []string
		ok := true
		for _, n := range nodes {
			live, s := n.peersLive(lib, len(nodes)-1)
			ok = ok && live
			seen = append(seen, s)
		}
		return ok, strings.Join(seen, "; ")
	})
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// compact is a JSON value without insignificant space.
func compact(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// recordKey is what must be equal on every member: version, deletion and
// payload.
func recordKey(r localapi.Record) string {
	return fmt.Sprintf("v=%s deleted=%v data=%s", r.Version, r.Deleted, compact(r.Data))
}

// converged reports whether every node holds the same records of each
// model as the first one, with a description of the first difference.
func converged(lib string, models []string, nodes ...*node) (bool, string) {
	for _, model := range models {
		var ref map[string]localapi.Record
		for i, n := range nodes {
			recs, err := n.listAll(lib, model)
			if err != nil {
				return false, fmt.Sprintf("%s: listing %s: %v", n.name, model, err)
			}
			if i == 0 {
				ref = recs
				continue
			}
			if len(recs) != len(ref) {
				return false, fmt.Sprintf("%s holds %d %s records, %s %d", nodes[0].name, len(ref), model, n.name, len(recs))
			}
			for id, r := range ref {
				o, ok := recs[id]
				if !ok {
					return false, fmt.Sprintf("%s lacks %s %s", n.name, model, id)
				}
				if recordKey(o) != recordKey(r) {
					return false, fmt.Sprintf("%s %s: %s has %s, %s has %s", model, id, nodes[0].name, recordKey(r), n.name, recordKey(o))
				}
			}
		}
	}
	return true, ""
}

// waitConverged waits until every node holds the same records.
func (h *harness) waitConverged(lib string, models []string, timeout time.Duration, nodes ...*node) {
	h.t.Helper()
	h.waitFor("convergence of "+strings.Join(models, ", "), timeout, func() (bool, string) {
		return converged(lib, models, nodes...)
	})
}
