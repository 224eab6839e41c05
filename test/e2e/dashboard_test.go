package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/syncnode/syncnode/node/localapi"
)

// openLink runs `syncnode open` with a $BROWSER that only writes down the
// URL it is given, and returns that URL: what a user's browser would open.
func (n *node) openLink() string {
	t := n.h.t
	t.Helper()
	dir := t.TempDir()
	got := filepath.Join(dir, "url")
	script := filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+got+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(n.h.ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--data-dir", n.dataDir, "open")
	cmd.Env = append(append([]string(nil), n.env...), "BROWSER="+script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: syncnode open: %v\n%s", n.name, err, out)
	}
	if !strings.Contains(string(out), "opened the dashboard") {
		t.Errorf("%s: syncnode open printed %q, want it to say it opened the dashboard", n.name, out)
	}
	var url string
	n.h.waitFor("the browser script to be run", 10*time.Second, func() (bool, string) {
		b, err := os.ReadFile(got)
		url = string(b)
		return err == nil && url != "", fmt.Sprint(err)
	})
	return url
}

// unlabelled is a script that lists the form controls and buttons of the
// page that a screen reader could not name.
const unlabelled = `Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.innerText || '').trim() && e.type !== 'hidden')
  .map(e => e.outerHTML.slice(0, 80))`

// Sign-in: without a session the dashboard shows only the sign-in form and
// the API refuses the page; a wrong token is refused; the token, typed and
// sent with the keyboard, signs in with an HttpOnly, SameSite=Strict
// cookie that the page's script cannot read; sign-out ends the session.
// `syncnode open` opens a one-time link that signs a fresh browser in
// without the token in any URL, leaves no code in the address bar, and
// does not work twice.
func TestDashboardSignIn(t *testing.T) {
	h := newHarness(t, 3*time.Minute)
	b := h.newBrowser()
	a := h.newNode("alpha", nodeOpts{})
	a.start()

	tb := b.newTab("token")
	tb.run("opening the dashboard", chromedp.Navigate(a.base+"/"))
	tb.waitJS("the sign-in form", `document.querySelector('#signin') && !document.querySelector('#signin').hidden`, "document.body.innerText", 10*time.Second)
	if tb.visible("#app") || strings.Contains(tb.text("body"), a.name+" ·") {
		t.Fatalf("without a session the dashboard shows more than the sign-in form:\n%s", tb.text("body"))
	}
	status := mustJS[int](tb, `fetch('/v1/status').then(r => r.status)`)
	if status != 401 {
		t.Fatalf("the page fetched /v1/status without signing in: %d, want 401", status)
	}
	missing := mustJS[[]string](tb, unlabelled)
	if len(missing) > 0 {
		t.Errorf("controls without a label: %v", missing)
	}
	tb.screenshot("signin")

	tb.run("signing in with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"+kb.Enter))
	tb.waitJS("the refusal", `document.querySelector('#signin-error').innerText.includes('wrong token')`, `document.querySelector('#signin-error').innerText`, 10*time.Second)
	if tb.visible("#app") {
		t.Fatal("a wrong token opened the dashboard")
	}

	// The keyboard alone: the field has the focus, Enter submits.
	focused := mustJS[string](tb, `document.activeElement.id`)
	if focused != "token" {
		t.Errorf("after a refusal the focus is on %q, want the token field", focused)
	}
	tb.run("typing the token", chromedp.SendKeys(chromedp.CSS("#token"), a.token+kb.Enter))
	tb.waitJS("the dashboard", `!document.querySelector('#app').hidden && document.querySelector('#whoami').innerText.includes('alpha')`, "document.body.innerText", 10*time.Second)
	cookies := call(tb, network.GetCookies, network.GetCookiesParams{URLs: []string{a.base + "/"}}).Cookies
	if len(cookies) != 1 || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict || !strings.HasPrefix(cookies[0].Name, "syncnode_session_") {
		t.Fatalf("cookies after sign-in: %+v; want one HttpOnly, SameSite=Strict session cookie", cookies)
	}
	jsCookies := mustJS[string](tb, `document.cookie`)
	if jsCookies != "" {
		t.Errorf("the page's script reads the cookies %q (HttpOnly hides them)", jsCookies)
	}
	tb.run("reloading", chromedp.Reload())
	tb.waitJS("the dashboard after a reload", `!document.querySelector('#app').hidden && document.querySelector('#whoami').innerText.includes('alpha')`, "document.body.innerText", 10*time.Second)
	tb.run("signing out", chromedp.Click(chromedp.CSS("#signout")))
	tb.waitJS("the sign-in form after sign-out", `!document.querySelector('#signin').hidden && document.querySelector('#app').hidden`, "document.body.innerText", 10*time.Second)
	status = mustJS[int](tb, `fetch('/v1/status', {headers: {'X-Syncnode-CSRF': 'whatever'}}).then(r => r.status)`)
	if status != 401 {
		t.Errorf("after sign-out the page fetched /v1/status: %d, want 401", status)
	}

	// syncnode open: a fresh browser profile is signed in by the link.
	link := a.openLink()
	if !strings.HasPrefix(link, a.base+"/#signin=") || strings.Contains(link, a.token) {
		t.Fatalf("syncnode open opened %q: want %s/#signin=<one-time code>, never the token", link, a.base)
	}
	lt := b.newTab("link")
	lt.run("opening the link", chromedp.Navigate(link))
	lt.waitJS("the dashboard signed in by the link", `!document.querySelector('#app').hidden && document.querySelector('#whoami').innerText.includes('alpha')`, "document.body.innerText", 10*time.Second)
	here := mustJS[string](lt, `location.href`)
	if here != a.base+"/" {
		t.Errorf("after signing in by the link the address is %q, want %s/ (the code dropped)", here, a.base)
	}
	lt.screenshot("signed-in")

	again := b.newTab("link-again")
	again.run("opening the link a second time", chromedp.Navigate(link))
	again.waitJS("the refusal of a used link", `!document.querySelector('#signin').hidden && document.querySelector('#signin-error').innerText.includes('used already')`,
		"document.body.innerText", 10*time.Second)
	if again.visible("#app") {
		t.Error("a used sign-in link opened the dashboard")
	}

	b.checkNetwork()
	b.checkProblems(`/v1/(status|session).*401|401.*\(http://127\.0\.0\.1:\d+/v1/(status|session)\)`)
}

// Two devices paired through their dashboards: an invite on one (its QR
// code decodes to the code; expiry and single use are shown), pasted on the
// other, with the backfill's progress; members, their state and path; a
// record written with the CLI on one appears on the other's dashboard
// within a second, by the event stream; the records browser shows it and
// its history; a device that stops shows as offline since it was last
// heard; removing the device updates the members list, the removed
// device says so and leaves the library after a confirmation. No request
// leaves 127.0.0.1, no console error, and the page fits a phone's screen.
func TestDashboardTwoDevices(t *testing.T) {
	h := newHarness(t, 4*time.Minute)
	br := h.newBrowser()
	a := h.newNode("alpha", nodeOpts{})
	bn := h.newNode("beta", nodeOpts{})
	a.start()
	bn.start()
	lib := a.createLibrary("photos")
	// Something to backfill.
	batch := map[string]any{"records": []map[string]any{}}
	for i := range 300 {
		batch["records"] = append(batch["records"].([]map[string]any), map[string]any{"model": "tag", "data": map[string]any{"name": fmt.Sprintf("tag %d", i)}})
	}
	a.apiJSON("POST", libPath(lib, "batch"), batch, nil)

	ta := br.newTab("alpha")
	ta.run("opening alpha's dashboard", chromedp.Navigate(a.openLink()))
	ta.waitJS("alpha's library", `document.querySelector('#lib-select').value === '`+lib+`'`, "document.body.innerText", 10*time.Second)
	tb := br.newTab("beta")
	tb.run("opening beta's dashboard", chromedp.Navigate(bn.openLink()))
	tb.waitJS("beta's dashboard without a library", `!document.querySelector('#no-library').hidden`, "document.body.innerText", 10*time.Second)

	// Invite on alpha.
	ta.run("creating an invite", chromedp.SetValue(chromedp.CSS("#invite-ttl"), "10m"), chromedp.Click(chromedp.CSS("#invite-form button[type=submit]")))
	ta.waitJS("the invite code and its QR code", `document.querySelector('#invite-code').value.startsWith('syncnode1-') && document.querySelector('#invite-qr').complete && document.querySelector('#invite-qr').naturalWidth > 0`,
		"document.querySelector('#invite-out').innerText", 10*time.Second)
	code := mustJS[string](ta, `document.querySelector('#invite-code').value`)
	meta := ta.text("#invite-meta")
	if !strings.Contains(meta, "Valid until") || !strings.Contains(meta, "one device only") {
		t.Errorf("the invite says %q: want its expiry and that it is single-use", meta)
	}
	qr := ta.elementImage("#invite-qr")
	bmp, err := gozxing.NewBinaryBitmapFromImage(qr)
	if err != nil {
		t.Fatal(err)
	}
	// As a phone's scanner does, try the usual search, then the picture as
	// a whole code, then harder: the finder-pattern search alone fails on
	// about one code in a hundred (its alignment estimate falls off the edge).
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, nil)
	for _, hint := range []gozxing.DecodeHintType{gozxing.DecodeHintType_PURE_BARCODE, gozxing.DecodeHintType_TRY_HARDER} {
		if err == nil {
			break
		}
		res, err = gozxingqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]interface{}{hint: true})
	}
	if err != nil {
		ta.screenshot("qr")
		t.Fatalf("the QR code on the page (%v) does not decode: %v", qr.Bounds().Size(), err)
	}
	if res.GetText() != code {
		t.Fatalf("the QR code on the page reads %q, the invite code is %q", res.GetText(), code)
	}
	ta.screenshot("invite")

	// Join on beta by pasting the code.
	tb.run("pasting the code", chromedp.SetValue(chromedp.CSS("#join-code"), code), chromedp.Click(chromedp.CSS("#join-form button[type=submit]")))
	tb.waitJS("the backfill's progress bar", `!document.querySelector('#join-out').hidden`, "document.body.innerText", 5*time.Second)
	tb.waitJS("the end of the backfill", `document.querySelector('#join-status').innerText.startsWith('Backfill done') && document.querySelector('#join-progress').value === 1`,
		"document.querySelector('#join-status').innerText", 60*time.Second)
	tb.waitJS("the joined library", `document.querySelector('#lib-select').value === '`+lib+`'`, "document.body.innerText", 10*time.Second)

	// Each sees the other live, directly over TCP.
	aDev, bDev := a.status().Node.Device, bn.status().Node.Device
	for _, c := range []struct {
		tab   *tab
		other string
	}{{ta, bDev}, {tb, aDev}} {
		row := fmt.Sprintf(`document.querySelector('#members tr[data-device="%s"]')`, c.other)
		c.tab.waitJS("the other device live", row+` && `+row+`.dataset.state === 'live'`, `document.querySelector('#members').innerText`, 30*time.Second)
		cells := mustJS[[]string](c.tab, `Array.from(`+row+`.cells).map(c => c.innerText)`)
		if len(cells) < 5 || !strings.Contains(cells[1], "live") || !strings.HasPrefix(cells[3], "direct") || cells[4] != "tcp" {
			t.Errorf("%s: the member row of %s is %q: want live, direct, tcp", c.tab.name, c.other, cells)
		}
	}
	tb.waitJS("the record counts", `(() => { const r = document.querySelector('#counts tr[data-model="tag"]'); return r && Number(r.cells[2].innerText) >= 300; })()`,
		`document.querySelector('#counts').innerText`, 10*time.Second)

	// A record written with the CLI on alpha reaches beta's page by SSE.
	tb.waitJS("beta's event stream", `document.querySelector('#events-status').innerText.startsWith('Connected')`, `document.querySelector('#events-status').innerText`, 10*time.Second)
	var w localapi.Written
	a.cliJSON(&w, "put", "tag", `{"name": "from the CLI", "color": "green"}`)
	took := tb.waitJS("the CLI's record on beta's dashboard", fmt.Sprintf(`document.querySelector('#events li[data-id="%s"]')`, w.ID),
		`document.querySelector('#events').innerText`, 5*time.Second)
	t.Logf("the record reached beta's dashboard %s after the CLI returned", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("the record took %s to appear on beta's dashboard, want under a second", took)
	}
	var kinds []string
	br.mu.Lock()
	for _, r := range br.requests {
		if strings.HasPrefix(r, "beta: ") && strings.Contains(r, "/v1/libraries/"+lib+"/events") {
			kinds = append(kinds, r)
		}
	}
	br.mu.Unlock()
	if len(kinds) == 0 {
		t.Error("beta's page never opened the event stream")
	}
	tb.screenshot("event")
	ta.waitJS("the record in alpha's events too", fmt.Sprintf(`document.querySelector('#events li[data-id="%s"]')`, w.ID), `document.querySelector('#events').innerText`, 5*time.Second)
	// The counts follow the events: 301 tags, and beta's device record.
	ta.waitJS("alpha's counts updated", `(() => { const c = m => Number((document.querySelector('#counts tr[data-model="' + m + '"]') || {cells: [0, 0, {innerText: -1}]}).cells[2].innerText);
	  return c('tag') === 301 && c('device') === 2; })()`, `document.querySelector('#counts').innerText`, 10*time.Second)
	ta.screenshot("overview") // docs/dashboard.png is one of these

	// The records browser: the record, its data and its history.
	tb.run("opening the records", chromedp.Click(chromedp.CSS(`.tabs button[data-view="records"]`)))
	tb.run("choosing alpha's tags", chromedp.SetValue(chromedp.CSS("#rec-owner"), aDev),
		chromedp.Evaluate[chromedp.Void](`void document.querySelector('#records-form').dispatchEvent(new Event('change'))`))
	// 301 tags of alpha's, 50 a page, in ID order: page on until it shows.
	row := fmt.Sprintf(`document.querySelector('#records tr[data-id="%s"]')`, w.ID)
	tb.waitJS("the first page", `document.querySelectorAll('#records tbody tr').length === 50`, `document.querySelectorAll('#records tbody tr').length`, 10*time.Second)
	for page := 1; !mustJS[bool](tb, "!!"+row); page++ {
		if page > 7 {
			t.Fatalf("the record is not in the first %d rows of alpha's tags", mustJS[int](tb, `document.querySelectorAll('#records tbody tr').length`))
		}
		tb.run("the next page", chromedp.Click(chromedp.CSS("#records-more")))
		tb.waitJS("the next page", fmt.Sprintf(`document.querySelectorAll('#records tbody tr').length > %d || %s`, page*50, row), "", 10*time.Second)
	}
	tb.run("opening the record", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#records tr[data-id="%s"] button`, w.ID))))
	tb.waitJS("the record's data and history", `document.querySelector('#record-data').innerText.includes('from the CLI') && document.querySelectorAll('#history li').length === 1`,
		`document.querySelector('#record').innerText`, 10*time.Second)
	if h := tb.text("#history"); !strings.Contains(h, "insert") || !strings.Contains(h, "alpha") {
		t.Errorf("the record's history reads %q: want one insert by alpha", h)
	}
	tb.run("filtering by beta's records", chromedp.SetValue(chromedp.CSS("#rec-owner"), bDev),
		chromedp.Evaluate[chromedp.Void](`void document.querySelector('#records-form').dispatchEvent(new Event('change'))`))
	tb.waitJS("no record of beta's", `!document.querySelector('#records-empty').hidden`, `document.querySelector('#records').innerText`, 10*time.Second)
	tb.screenshot("records")

	// This device: identity, network and the doctor.
	ta.run("opening this device", chromedp.Click(chromedp.CSS(`.tabs button[data-view="node"]`)))
	ta.waitJS("the identity and the doctor", `document.querySelector('#ident').innerText.includes('`+aDev+`') && document.querySelectorAll('#doctor li').length > 0`,
		`document.querySelector('#view-node').innerText`, 10*time.Second)
	if s := ta.text("#net"); !strings.Contains(s, "127.0.0.1") || !strings.Contains(s, "Reachability") {
		t.Errorf("the network section reads %q: want the listen address and the reachability", s)
	}
	if !ta.visible("#warnings li") && !ta.visible("#warnings-none") {
		t.Error("the node view shows neither warnings nor that there are none")
	}
	ta.screenshot("node")
	ta.run("back to the library", chromedp.Click(chromedp.CSS(`.tabs button[data-view="library"]`)))

	// A phone's screen: nothing wider than the viewport.
	tb.run("back to the library", chromedp.Click(chromedp.CSS(`.tabs button[data-view="library"]`)))
	call(tb, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 844, DeviceScaleFactor: 3, Mobile: true})
	overflow := mustJS[int](tb, `document.documentElement.scrollWidth - window.innerWidth`)
	if overflow > 0 {
		t.Errorf("on a 390 px wide screen the page is %d px too wide", overflow)
	}
	cut := mustJS[[]string](tb, `Array.from(document.querySelectorAll('button, select, textarea, input')).filter(e => e.getClientRects().length > 0)
	  .filter(e => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth + 0.5; }).map(e => e.outerHTML.slice(0, 60))`)
	if len(cut) > 0 {
		t.Errorf("on a 390 px wide screen these controls do not fit: %q", cut)
	}
	tb.screenshot("phone")
	call(tb, emulation.ClearDeviceMetricsOverride, cdp.Empty{})

	missing := mustJS[[]string](ta, unlabelled)
	if len(missing) > 0 {
		t.Errorf("controls without a label: %v", missing)
	}

	// A third device that joined with the CLI and stopped shows as offline
	// since it was last heard.
	gamma := h.newNode("gamma", nodeOpts{})
	gamma.start()
	gamma.join(a.invite(), lib)
	gDev := gamma.status().Node.Device
	grow := fmt.Sprintf(`document.querySelector('#members tr[data-device="%s"]')`, gDev)
	ta.waitJS("gamma live on alpha's page", grow+` && `+grow+`.dataset.state === 'live'`, `document.querySelector('#members').innerText`, 30*time.Second)
	gamma.stop()
	ta.waitJS("gamma offline on alpha's page", grow+`.dataset.state === 'offline' && `+grow+`.cells[1].innerText.includes('since')`,
		`document.querySelector('#members').innerText`, 30*time.Second)
	ta.screenshot("offline")

	// Remove beta on alpha's dashboard, after a confirmation.
	ta.run("removing beta", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#members tr[data-device="%s"] button`, bDev))))
	ta.waitJS("the confirmation", `document.querySelector('#confirm').open`, "", 5*time.Second)
	if s := ta.text("#confirm"); !strings.Contains(s, "beta") {
		t.Errorf("the confirmation reads %q: want it to name beta", s)
	}
	ta.run("confirming", chromedp.Click(chromedp.CSS("#confirm-ok")))
	ta.waitJS("beta gone from alpha's members", fmt.Sprintf(`!document.querySelector('#members tr[data-device="%s"]') && document.querySelector('#members tr[data-device="%s"]')`, bDev, aDev),
		`document.querySelector('#members').innerText`, 10*time.Second)
	ta.screenshot("removed")
	tb.waitJS("beta told it was removed", `!document.querySelector('#lib-removed').hidden`, `document.body.innerText`, 30*time.Second)
	tb.screenshot("told")

	// Beta leaves the library, after a confirmation.
	tb.run("leaving", chromedp.Click(chromedp.CSS("#leave")))
	tb.waitJS("the confirmation", `document.querySelector('#confirm').open`, "", 5*time.Second)
	tb.run("confirming", chromedp.Click(chromedp.CSS("#confirm-ok")))
	tb.waitJS("beta without the library", `!document.querySelector('#no-library').hidden`, `document.body.innerText`, 10*time.Second)
	var libs []localapi.Library
	bn.apiJSON("GET", "/v1/libraries", nil, &libs)
	if len(libs) != 0 {
		t.Errorf("beta holds %d libraries after leaving: %+v", len(libs), libs)
	}

	br.checkNetwork()
	br.checkProblems()
}
