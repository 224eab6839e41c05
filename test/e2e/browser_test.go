package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/png" // screenshots
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The dashboard's tests drive a real headless Chromium (Debian's chromium
// package; .ci/run installs it) with the DevTools protocol, through
// chromedp. The browser obeys the tests' network hygiene: it starts with
// every background service off (the flags of the machine notes), resolves
// no host name but localhost, and sends whatever is not loopback to a proxy
// on a closed loopback port; every request its pages make is recorded and
// must go to 127.0.0.1, and at the end no process of the browser may hold a
// socket off this machine.

// chromiumPath finds Chromium: $SYNCNODE_CHROMIUM, else the usual names.
func chromiumPath() string {
	if p := os.Getenv("SYNCNODE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// screenshotDir is where the tests keep their screenshots: $SYNCNODE_SCREENSHOTS,
// else a new directory under the system's temp directory, which stays after
// the test (its path is logged).
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("SYNCNODE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("making the screenshot directory: %v", err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "syncnode-dashboard-screenshots-")
	if err != nil {
		t.Fatalf("making a screenshot directory: %v", err)
	}
	return d
}

// browser is one headless Chromium for a test, with its tabs.
type browser struct {
	h     *harness
	ctx   context.Context // the browser's: tabs derive from it
	pid   int             // the browser's main process
	shots string
	nshot int

	mu       sync.Mutex
	requests []string // "tab: URL" of every request a page made
	problems []string // "tab: what": console errors, exceptions, error log entries
}

// newBrowser starts Chromium, or skips the test when there is none. It is
// closed in t.Cleanup, after a check of its processes' sockets.
func (h *harness) newBrowser() *browser {
	t := h.t
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("headless Chromium is not installed (apt-get install chromium, as .ci/run does; or set SYNCNODE_CHROMIUM to a Chromium binary): the dashboard's browser tests skip")
	}
	profile, err := os.MkdirTemp("", "syncnode-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 900),
		// Nothing in the background: no update, sync, safe browsing,
		// metrics, translation or component downloads.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		// And should anything try: no name resolves but localhost, and
		// every non-loopback request goes to a closed loopback port.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"),
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.CombinedOutput(&out),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(h.ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	b := &browser{h: h, ctx: bctx, shots: screenshotDir(t)}
	start := time.Now()
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		os.RemoveAll(profile)
		t.Fatalf("starting Chromium (%s): %v\n%s", path, err, out.String())
	}
	t.Logf("Chromium started in %s; screenshots in %s", time.Since(start).Round(time.Millisecond), b.shots)
	if p := chromedp.FromContext(bctx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		os.RemoveAll(profile)
		if t.Failed() {
			t.Logf("Chromium's output:\n%.8000s", out.String())
		}
	})
	return b
}

// processTree is pid and every process descended from it.
func processTree(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	out := []int{pid}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if pp != 0 && slicesContains(out, pp) && !slicesContains(out, p) {
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// tab is one page of the browser, in a browser context of its own (its own
// cookies and storage), as a separate browser profile would be.
type tab struct {
	b    *browser
	name string
	ctx  context.Context
}

// newTab opens a tab and records what its page requests and complains of.
func (b *browser) newTab(name string) *tab {
	t := b.h.t
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{b: b, name: name, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, name+": "+e.Request.URL)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.problems = append(b.problems, name+": console."+string(e.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("%s: exception at %s:%d: %s", name, d.URL, d.LineNumber, msg))
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				b.problems = append(b.problems, fmt.Sprintf("%s: %s error: %s (%s)", name, e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("%s: listening to the tab: %v", name, err)
	}
	tb.run("enabling the DevTools domains", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, runtime.Enable, cdp.Empty{})
		return err
	}))
	return tb
}

// run runs chromedp actions on the tab in order, bounded to 30 s, failing
// the test with what it was doing.
func (tb *tab) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	t := tb.b.h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.screenshot("failed")
		t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// call sends one DevTools command to the tab.
func call[P, R any](tb *tab, cmd cdp.Command[P, R], params P) R {
	t := tb.b.h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	r, err := chromedp.Call(ctx, cmd, params)
	if err != nil {
		t.Fatalf("%s: %s: %v", tb.name, cmd.Method, err)
	}
	return r
}

// evalJS evaluates a JavaScript expression in the page (awaiting a
// promise).
func evalJS[T any](tb *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// mustJS is evalJS that fails the test on an error.
func mustJS[T any](tb *tab, expr string) T {
	tb.b.h.t.Helper()
	v, err := evalJS[T](tb, expr)
	if err != nil {
		tb.b.h.t.Fatalf("%s: evaluating %s: %v", tb.name, expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true, polling every 25 ms,
// and returns how long that took; seen is an expression shown on failure.
func (tb *tab) waitJS(what, expr, seen string, timeout time.Duration) time.Duration {
	t := tb.b.h.t
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, err := evalJS[bool](tb, "!!("+expr+")")
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) || tb.b.h.ctx.Err() != nil {
			var last any
			if seen != "" {
				last, _ = evalJS[any](tb, seen)
			}
			tb.screenshot("failed")
			t.Fatalf("%s: %s did not happen within %s (eval error %v); seen: %v", tb.name, what, timeout, err, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// text is the visible text of the first element matching a CSS selector.
func (tb *tab) text(sel string) string {
	tb.b.h.t.Helper()
	return mustJS[string](tb, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

// visible reports whether the first element matching sel is shown.
func (tb *tab) visible(sel string) bool {
	ok, _ := evalJS[bool](tb, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0; })()`, sel))
	return ok
}

// screenshot saves the whole page as a PNG in the screenshot directory
// and returns its path.
func (tb *tab) screenshot(name string) string {
	b := tb.b
	b.mu.Lock()
	b.nshot++
	n := b.nshot
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.h.t.Logf("%s: screenshot %s: %v", tb.name, name, err)
		return ""
	}
	p := filepath.Join(b.shots, fmt.Sprintf("%s-%02d-%s-%s.png", sanitize(b.h.t.Name()), n, tb.name, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.h.t.Logf("writing %s: %v", p, err)
	}
	return p
}

// elementImage is a screenshot of one element, decoded.
func (tb *tab) elementImage(sel string) image.Image {
	t := tb.b.h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: a screenshot of %s: %v", tb.name, sel, err)
	}
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		t.Fatalf("%s: decoding the screenshot of %s: %v", tb.name, sel, err)
	}
	return img
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func sanitize(s string) string { return unsafeName.ReplaceAllString(s, "_") }

// checkNetwork fails the test if a page asked for anything but 127.0.0.1
// (data: and blob: URLs of 127.0.0.1's pages stay in the browser) or if a
// process of the browser holds a socket off this machine, and returns how
// many requests there were.
func (b *browser) checkNetwork() int {
	t := b.h.t
	t.Helper()
	checked := 0
	for _, pid := range processTree(b.pid) {
		bad, err := offMachine(pid, false, nil)
		if err != nil {
			continue // gone meanwhile
		}
		checked++
		if len(bad) > 0 {
			t.Errorf("NETWORK HYGIENE: Chromium's process %d has sockets off this machine: %v", pid, bad)
		}
	}
	if checked == 0 {
		t.Errorf("found no process of Chromium (pid %d) to check its sockets", b.pid)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.requests {
		_, raw, _ := strings.Cut(r, ": ")
		if err := loopbackURL(raw); err != nil {
			t.Errorf("NETWORK HYGIENE: %s: %v", r, err)
		}
	}
	t.Logf("%d requests, all to 127.0.0.1; no socket off this machine in Chromium's %d processes", len(b.requests), checked)
	return len(b.requests)
}

// loopbackURL says why a URL a page requested is not on 127.0.0.1.
func loopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("unparsable URL: %w", err)
	}
	switch u.Scheme {
	case "data":
		return nil
	case "blob":
		return loopbackURL(u.Opaque)
	case "http", "ws":
		if u.Hostname() == "127.0.0.1" {
			return nil
		}
	}
	return errors.New("the request does not go to 127.0.0.1")
}

// checkProblems fails the test for every console error, exception or error
// log entry, but those that match one of the expected patterns (a refusal
// the test provoked).
func (b *browser) checkProblems(expected ...string) {
	t := b.h.t
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
next:
	for _, p := range b.problems {
		for _, e := range expected {
			if regexp.MustCompile(e).MatchString(p) {
				t.Logf("the browser reported, as the test expects: %s", p)
				continue next
			}
		}
		t.Errorf("the browser reported: %s", p)
	}
}

// The request check passes 127.0.0.1 and what stays in the browser, and
// nothing else.
func TestLoopbackURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"http://127.0.0.1:7655/v1/status":                    true,
		"ws://127.0.0.1:7655/x":                              true,
		"data:image/png;base64,AAAA":                         true,
		"blob:http://127.0.0.1:7655/7d0c1b1e-8a4e-4f4e-9c1a": true,
		"http://localhost:7655/":                             false,
		"http://127.0.0.1.attacker.example/":                 false,
		"https://fonts.example.com/font.woff2":               false,
		"blob:https://attacker.example/7d0c1b1e":             false,
		"http://10.0.0.1/":                                   false,
		"chrome-extension://abc/x.js":                        false,
	} {
		if err := loopbackURL(raw); (err == nil) != ok {
			t.Errorf("loopbackURL(%q) = %v, want ok %v", raw, err, ok)
		}
	}
	if tree := processTree(os.Getpid()); len(tree) == 0 || tree[0] != os.Getpid() {
		t.Errorf("processTree of this process: %v", tree)
	}
}
