package localapi_test

import (
	"context"
	"encoding/json"
	"image"
	"image/color"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/syncnode/syncnode/node/localapi"
)

// req sends one request with the given headers (a "Host" entry sets the
// Host header) and returns the response with its body read.
func (e testEnv) req(t *testing.T, method, path, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+e.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// signIn starts a browser session with the token and returns its cookie
// ("name=value") and key.
func (e testEnv) signIn(t *testing.T) (cookie, csrf string) {
	t.Helper()
	resp, b := e.req(t, "POST", "/v1/session", `{"token": "`+e.token+`"}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in with the token: %d %s", resp.StatusCode, b)
	}
	var s localapi.Session
	if err := json.Unmarshal(b, &s); err != nil || !s.SignedIn || s.CSRF == "" {
		t.Fatalf("sign-in answered %s (%v)", b, err)
	}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("sign-in set %d cookies, want 1: %v", len(cs), resp.Header.Values("Set-Cookie"))
	}
	return cs[0].Name + "=" + cs[0].Value, s.CSRF
}

// A browser signs in with the token or a one-time link, and gets a cookie
// that is HttpOnly and SameSite=Strict, named for the API's port; the
// cookie alone opens nothing, the cookie with the session's key does;
// the link works once; signing out ends the session.
func TestBrowserSession(t *testing.T) {
	e := startServer(t)
	_, port, _ := strings.Cut(e.addr, ":")

	resp, b := e.req(t, "POST", "/v1/session", `{"token": "wrong-wrong-wrong-wrong"}`, nil)
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 || !strings.Contains(string(b), "wrong token") {
		t.Fatalf("sign-in with a wrong token: %d, cookies %v, %s; want 401 and no cookie", resp.StatusCode, resp.Cookies(), b)
	}
	resp, b = e.req(t, "POST", "/v1/session", `{}`, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("sign-in with nothing: %d %s, want 400", resp.StatusCode, b)
	}

	resp, b = e.req(t, "POST", "/v1/session", `{"token": "`+e.token+`"}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, b)
	}
	raw := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"syncnode_session_" + port + "=", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="} {
		if !strings.Contains(raw, want) {
			t.Errorf("the session cookie %q lacks %q", raw, want)
		}
	}
	if strings.Contains(raw, e.token) || strings.Contains(string(b), e.token) {
		t.Errorf("the sign-in answer carries the API token: %s / %s", raw, b)
	}
	cookie, csrf := e.signIn(t)

	status := func(h map[string]string) int {
		resp, _ := e.req(t, "GET", "/v1/status", "", h)
		return resp.StatusCode
	}
	if got := status(map[string]string{"Cookie": cookie}); got != 401 {
		t.Errorf("the cookie without the session's key: %d, want 401", got)
	}
	if got := status(map[string]string{"Cookie": cookie, localapi.CSRFHeader: "not-the-key"}); got != 401 {
		t.Errorf("the cookie with a wrong key: %d, want 401", got)
	}
	if got := status(map[string]string{localapi.CSRFHeader: csrf}); got != 401 {
		t.Errorf("the key without the cookie: %d, want 401", got)
	}
	if got := status(map[string]string{"Cookie": cookie, localapi.CSRFHeader: csrf}); got != 200 {
		t.Errorf("the cookie with its key: %d, want 200", got)
	}
	// Another port's cookie (another daemon's, or a forged one) is not ours.
	other := strings.Replace(cookie, "syncnode_session_"+port, "syncnode_session_1", 1)
	if got := status(map[string]string{"Cookie": other, localapi.CSRFHeader: csrf}); got != 401 {
		t.Errorf("the session under another port's cookie name: %d, want 401", got)
	}
	var st localapi.Session
	_, b = e.req(t, "GET", "/v1/session", "", map[string]string{"Cookie": cookie, localapi.CSRFHeader: csrf})
	if json.Unmarshal(b, &st) != nil || !st.SignedIn || st.Expires == nil || st.CSRF != "" {
		t.Errorf("GET /v1/session signed in: %s; want signed_in, expires and no key", b)
	}
	resp, b = e.req(t, "GET", "/v1/session", "", nil)
	if resp.StatusCode != 200 || json.Unmarshal(b, &st) != nil || st.SignedIn {
		t.Errorf("GET /v1/session without credentials: %d %s; want 200 signed_in false", resp.StatusCode, b)
	}

	// The event stream takes the key as ?csrf= (EventSource sends no headers).
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var lib localapi.Library
	if err := localapi.NewClient(e.addr, e.token).Do(ctx, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: "l"}, &lib); err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequestWithContext(ctx, "GET", "http://"+e.addr+"/v1/libraries/"+lib.ID+"/events?csrf="+csrf, nil)
	r.Header.Set("Cookie", cookie)
	sresp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	if sresp.StatusCode != 200 || sresp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("events with the key in the query: %d %s", sresp.StatusCode, sresp.Header.Get("Content-Type"))
	}
	sresp.Body.Close()
	if resp, _ := e.req(t, "GET", "/v1/status?csrf="+csrf, "", map[string]string{"Cookie": cookie}); resp.StatusCode != 401 {
		t.Errorf("the key in the query of another endpoint: %d, want 401 (only the event stream takes it there)", resp.StatusCode)
	}

	// One-time links: made with the token, good once.
	resp, b = e.req(t, "POST", "/v1/session/links", "", map[string]string{"Authorization": "Bearer " + e.token})
	var link localapi.SignInLink
	if resp.StatusCode != 201 || json.Unmarshal(b, &link) != nil {
		t.Fatalf("a sign-in link: %d %s", resp.StatusCode, b)
	}
	if link.URL != "http://"+e.addr+"/#signin="+link.Code || strings.Contains(link.URL, e.token) {
		t.Errorf("the link %q: want http://%s/#signin=<code>, without the token", link.URL, e.addr)
	}
	if time.Until(link.Expires) > localapi.SignInLinkLifetime || time.Until(link.Expires) < time.Minute {
		t.Errorf("the link expires at %s, want about %s from now", link.Expires, localapi.SignInLinkLifetime)
	}
	if resp, b := e.req(t, "POST", "/v1/session/links", "", nil); resp.StatusCode != 401 {
		t.Errorf("a sign-in link without credentials: %d %s, want 401", resp.StatusCode, b)
	}
	resp, b = e.req(t, "POST", "/v1/session", `{"link": "`+link.Code+`"}`, nil)
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in with the link: %d %s", resp.StatusCode, b)
	}
	resp, b = e.req(t, "POST", "/v1/session", `{"link": "`+link.Code+`"}`, nil)
	if resp.StatusCode != 401 || !strings.Contains(string(b), "used already") {
		t.Errorf("the link a second time: %d %s, want 401 saying it was used", resp.StatusCode, b)
	}

	// Signing out ends the session and clears the cookie.
	resp, _ = e.req(t, "DELETE", "/v1/session", "", map[string]string{"Cookie": cookie, localapi.CSRFHeader: csrf})
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("sign-out: %d, Set-Cookie %q; want 200 and the cookie cleared", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	if got := status(map[string]string{"Cookie": cookie, localapi.CSRFHeader: csrf}); got != 401 {
		t.Errorf("the session after sign-out: %d, want 401", got)
	}
}

// Whatever its credentials, a request that names the API by a domain (DNS
// rebinding), comes from another origin, or from another site is refused;
// the API's own origin, by IP address or as localhost, is served.
func TestRequestGuard(t *testing.T) {
	e := startServer(t)
	_, port, _ := strings.Cut(e.addr, ":")
	bearer := "Bearer " + e.token
	cases := []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"plain", map[string]string{}, 200},
		{"localhost", map[string]string{"Host": "localhost:" + port}, 200},
		{"IPv6 loopback", map[string]string{"Host": "[::1]:" + port}, 200},
		{"own origin", map[string]string{"Origin": "http://" + e.addr}, 200},
		{"same-origin fetch", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{"rebinding", map[string]string{"Host": "attacker.example:" + port}, 403},
		{"rebinding without port", map[string]string{"Host": "attacker.example"}, 403},
		{"localhost lookalike", map[string]string{"Host": "localhost.attacker.example:" + port}, 403},
		{"other origin", map[string]string{"Origin": "http://attacker.example"}, 403},
		{"other port's origin", map[string]string{"Origin": "http://127.0.0.1:1"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
	}
	for _, tc := range cases {
		h := map[string]string{"Authorization": bearer}
		for k, v := range tc.headers {
			h[k] = v
		}
		resp, b := e.req(t, "GET", "/v1/status", "", h)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: GET /v1/status with %v: %d %s, want %d", tc.name, tc.headers, resp.StatusCode, b, tc.status)
		}
	}
	// A sign-in from another origin is refused before the token is read.
	resp, b := e.req(t, "POST", "/v1/session", `{"token": "`+e.token+`"}`, map[string]string{"Origin": "http://attacker.example"})
	if resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
		t.Errorf("a sign-in from another origin: %d %s, want 403 and no cookie", resp.StatusCode, b)
	}
	// A link from another site to the dashboard opens it (it holds no data).
	if resp, _ := e.req(t, "GET", "/", "", map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 200 {
		t.Errorf("the dashboard from a link on another site: %d, want 200", resp.StatusCode)
	}
	// No answer can be framed, sniffed or leak a referrer.
	resp, _ = e.req(t, "GET", "/v1/status", "", map[string]string{"Authorization": bearer})
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("header %s: %q, want %q", k, got, v)
		}
	}
}

// The dashboard's files are served from the binary to anyone, with a
// Content-Security-Policy that allows this origin only, and they load
// nothing from anywhere else.
func TestDashboardAssets(t *testing.T) {
	e := startServer(t)
	resp, page := e.req(t, "GET", "/", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("the CSP allows inline or eval'd script: %q", csp)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) < 3 {
		t.Fatalf("the page references %d files, expected its script, style and icon", len(refs))
	}
	files := map[string]string{"/": string(page)}
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "#") {
			continue
		}
		if !strings.HasPrefix(ref, "/ui/") {
			t.Errorf("the page references %q, not one of its own files", ref)
			continue
		}
		resp, b := e.req(t, "GET", ref, "", nil)
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Errorf("GET %s: %d, %d bytes", ref, resp.StatusCode, len(b))
		}
		etag := resp.Header.Get("ETag")
		if resp, _ := e.req(t, "GET", ref, "", map[string]string{"If-None-Match": etag}); etag == "" || resp.StatusCode != 304 {
			t.Errorf("GET %s again with its ETag %q: %d, want 304", ref, etag, resp.StatusCode)
		}
		files[ref] = string(b)
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for name, body := range files {
		for _, m := range external.FindAllString(body, -1) {
			if m != "http://www.w3.org" { // an SVG's namespace, not a request
				t.Errorf("%s refers to another site: %q", name, m)
			}
		}
	}
	if resp, _ := e.req(t, "GET", "/ui/nothing.js", "", nil); resp.StatusCode != 404 {
		t.Errorf("GET /ui/nothing.js: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.req(t, "GET", "/v1/nothing", "", nil); resp.StatusCode != 401 {
		t.Errorf("an unknown endpoint without credentials: %d, want 401", resp.StatusCode)
	}
}

// An invite asked with "qr" carries an SVG QR code that decodes to the
// code, and says whether it is single-use.
func TestInviteQR(t *testing.T) {
	e := startServer(t)
	c := localapi.NewClient(e.addr, e.token)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var lib localapi.Library
	if err := c.Do(ctx, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: "qr"}, &lib); err != nil {
		t.Fatal(err)
	}
	var inv localapi.Invite
	if err := c.Do(ctx, "POST", "/v1/libraries/"+lib.ID+"/invites", localapi.InviteRequest{TTL: "10m", SingleUse: true, QR: true}, &inv); err != nil {
		t.Fatal(err)
	}
	if !inv.SingleUse || !strings.HasPrefix(inv.QRSVG, "<svg") {
		t.Fatalf("invite: single_use %v, qr_svg %.40q", inv.SingleUse, inv.QRSVG)
	}
	if got := decodeSVGQR(t, inv.QRSVG); got != inv.Code {
		t.Fatalf("the QR code reads %q, the invite code is %q", got, inv.Code)
	}
	var plain localapi.Invite
	if err := c.Do(ctx, "POST", "/v1/libraries/"+lib.ID+"/invites", localapi.InviteRequest{}, &plain); err != nil {
		t.Fatal(err)
	}
	if plain.SingleUse || plain.QRSVG != "" {
		t.Fatalf("an invite without options: single_use %v, qr_svg %.40q; want neither", plain.SingleUse, plain.QRSVG)
	}
}

// decodeSVGQR draws the SVG's modules (the "M x y h w v1 h-w z" runs
// qrSVG writes) four pixels each and reads the QR code in the picture.
func decodeSVGQR(t *testing.T, svg string) string {
	t.Helper()
	vb := regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`).FindStringSubmatch(svg)
	if vb == nil {
		t.Fatalf("no viewBox in %.80q", svg)
	}
	n, _ := strconv.Atoi(vb[1])
	const scale = 4
	img := image.NewGray(image.Rect(0, 0, n*scale, n*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for _, m := range regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-\d+z`).FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.Atoi(m[1])
		y, _ := strconv.Atoi(m[2])
		w, _ := strconv.Atoi(m[3])
		for py := y * scale; py < (y+1)*scale; py++ {
			for px := x * scale; px < (x+w)*scale; px++ {
				img.SetGray(px, py, color.Gray{})
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// The picture is a perfect code, as drawn: PURE_BARCODE reads it as
	// one, where the finder-pattern search (meant for photographs) fails on
	// some codes' alignment estimate near the edge.
	hints := map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_PURE_BARCODE: true}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		t.Fatalf("the QR code does not decode: %v", err)
	}
	return res.GetText()
}

// A shared record's history lists its changes, oldest first, deletes
// included; a device-owned record has none, and says why; the library's
// models come with their record counts.
func TestHistoryAndCounts(t *testing.T) {
	e := startServer(t)
	c := localapi.NewClient(e.addr, e.token)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var lib localapi.Library
	if err := c.Do(ctx, "POST", "/v1/libraries", localapi.CreateLibraryRequest{Name: "h"}, &lib); err != nil {
		t.Fatal(err)
	}
	base := "/v1/libraries/" + lib.ID
	var w1, w2, w3, other, loc localapi.Written
	for _, step := range []struct {
		method, path string
		body         any
		out          *localapi.Written
	}{
		{"POST", base + "/records/tag", map[string]string{"name": "red"}, &w1},
		{"POST", base + "/records/tag", map[string]string{"name": "another"}, &other},
		{"POST", base + "/records/location", map[string]string{"path": "/photos"}, &loc},
	} {
		if err := c.Do(ctx, step.method, step.path, step.body, step.out); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Do(ctx, "PUT", base+"/records/tag/"+w1.ID, map[string]string{"name": "blue"}, &w2); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "DELETE", base+"/records/tag/"+w1.ID, nil, &w3); err != nil {
		t.Fatal(err)
	}
	var h localapi.RecordHistory
	if err := c.Do(ctx, "GET", base+"/records/tag/"+w1.ID+"/history", nil, &h); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range h.Changes {
		got = append(got, ch.Type+" "+ch.Version+" "+compactJSON(ch.Data))
	}
	want := []string{"insert " + w1.Version + ` {"name":"red"}`, "update " + w2.Version + ` {"name":"blue"}`, "delete " + w3.Version + " "}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || h.Strategy != "shared" || h.Note != "" {
		t.Fatalf("history of the tag:\n%s\nwant:\n%s\n(strategy %q, note %q)", strings.Join(got, "\n"), strings.Join(want, "\n"), h.Strategy, h.Note)
	}
	for _, ch := range h.Changes {
		if ch.By != e.n.Device().String() {
			t.Errorf("change %s by %s, want this device %s", ch.Version, ch.By, e.n.Device())
		}
	}
	var lh localapi.RecordHistory
	if err := c.Do(ctx, "GET", base+"/records/location/"+loc.ID+"/history", nil, &lh); err != nil {
		t.Fatal(err)
	}
	if len(lh.Changes) != 0 || lh.Strategy != "device-owned" || !strings.Contains(lh.Note, "current state only") {
		t.Fatalf("history of a device-owned record: %+v", lh)
	}
	var counts []localapi.ModelCount
	if err := c.Do(ctx, "GET", base+"/models", nil, &counts); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, m := range counts {
		seen[m.Name] = strconv.Itoa(m.Records) + "/" + strconv.Itoa(m.Deleted)
	}
	// The device model holds this device's own record.
	for model, want := range map[string]string{"tag": "1/1", "location": "1/0", "album": "0/0", "device": "1/0"} {
		if seen[model] != want {
			t.Errorf("model %s: %q records/deleted, want %q (all: %v)", model, seen[model], want, seen)
		}
	}
	if resp, b := e.req(t, "GET", base+"/records/tag/not-a-uuid/history", "", map[string]string{"Authorization": "Bearer " + e.token}); resp.StatusCode != 400 {
		t.Errorf("history of a bad ID: %d %s, want 400", resp.StatusCode, b)
	}
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
