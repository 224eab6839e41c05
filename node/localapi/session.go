package localapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// A browser signs in once (with the token, or with a one-time link that
// `syncnode open` asks for) and then carries a session: a cookie and a key.
//
//   - The cookie (HttpOnly, SameSite=Strict) names the session. Cookies do
//     not tell ports apart, so its name holds the API's port (two daemons on
//     one machine keep their own), and a cookie alone authorizes nothing: a
//     web server of another port on 127.0.0.1 that the browser visits gets
//     the cookie too.
//   - The key, given once at sign-in, is kept by the dashboard in its
//     origin's storage (which ports do separate) and sent with every request
//     as the X-Syncnode-CSRF header (EventSource, which cannot send headers,
//     passes it as ?csrf=). Another site can neither read it nor send a
//     custom header without a CORS preflight, which the API never grants: a
//     forged request from another page (CSRF) is refused.
//
// Every request, whatever its credentials, must name the API by an IP
// address or "localhost" in its Host header (a DNS-rebinding page names its
// own domain) and, when it carries an Origin, come from the API's own
// origin.

const (
	// SessionLifetime is how long a browser session lasts. Sessions live in
	// the daemon's memory: a restart signs every browser out.
	SessionLifetime = 7 * 24 * time.Hour
	// SignInLinkLifetime is how long a one-time sign-in link is valid.
	SignInLinkLifetime = 2 * time.Minute
	// CSRFHeader carries the session's key on every request of a browser
	// session.
	CSRFHeader = "X-Syncnode-CSRF"

	maxSessions = 64 // the oldest is dropped beyond this
	maxLinks    = 16 // unused sign-in links kept; the oldest is dropped
)

// sessions are the browser sessions and the unused sign-in links, by the
// SHA-256 of their secret (a lookup's timing says nothing about a secret).
type sessions struct {
	mu    sync.Mutex
	byID  map[[32]byte]*session
	links map[[32]byte]time.Time // expiry
}

type session struct {
	csrf    string
	expires time.Time
}

func newSessions() *sessions {
	return &sessions{byID: map[[32]byte]*session{}, links: map[[32]byte]time.Time{}}
}

// randomSecret is 32 random bytes, base64url.
func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// create starts a session and returns its ID (the cookie) and key.
func (ss *sessions) create(now time.Time) (id, csrf string, expires time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.expire(now)
	if len(ss.byID) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, s := range ss.byID {
			if at.IsZero() || s.expires.Before(at) {
				oldest, at = k, s.expires
			}
		}
		delete(ss.byID, oldest)
	}
	id, csrf, expires = randomSecret(), randomSecret(), now.Add(SessionLifetime)
	ss.byID[hashOf(id)] = &session{csrf: csrf, expires: expires}
	return id, csrf, expires
}

// check reports whether id names a live session whose key is csrf, and
// when it expires.
func (ss *sessions) check(id, csrf string, now time.Time) (time.Time, bool) {
	if id == "" || csrf == "" {
		return time.Time{}, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[hashOf(id)]
	if !ok || !now.Before(s.expires) {
		return time.Time{}, false
	}
	return s.expires, subtle.ConstantTimeCompare([]byte(s.csrf), []byte(csrf)) == 1
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, hashOf(id))
}

// link makes a one-time sign-in code.
func (ss *sessions) link(now time.Time) (code string, expires time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.expire(now)
	if len(ss.links) >= maxLinks {
		var oldest [32]byte
		var at time.Time
		for k, e := range ss.links {
			if at.IsZero() || e.Before(at) {
				oldest, at = k, e
			}
		}
		delete(ss.links, oldest)
	}
	code, expires = randomSecret(), now.Add(SignInLinkLifetime)
	ss.links[hashOf(code)] = expires
	return code, expires
}

// useLink consumes a sign-in code: true once, while it is valid.
func (ss *sessions) useLink(code string, now time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	k := hashOf(code)
	exp, ok := ss.links[k]
	delete(ss.links, k)
	return ok && now.Before(exp)
}

// expire drops expired sessions and links. The caller holds mu.
func (ss *sessions) expire(now time.Time) {
	for k, s := range ss.byID {
		if !now.Before(s.expires) {
			delete(ss.byID, k)
		}
	}
	for k, e := range ss.links {
		if !now.Before(e) {
			delete(ss.links, k)
		}
	}
}

// cookieName is the session cookie's name for a request: it holds the
// port the request was sent to, because cookies are shared between the
// ports of a host.
func cookieName(r *http.Request) string {
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil || port == "" {
		port = "80"
	}
	return "syncnode_session_" + port
}

// sessionCookie is the cookie of a session (maxAge < 0 deletes it).
func sessionCookie(r *http.Request, id string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: cookieName(r), Value: id, Path: "/", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// allowedHost reports whether a Host header names the API as a browser
// may: an IP address (of loopback or not, which DNS rebinding cannot
// produce) or localhost, with or without a port.
func allowedHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}

// guard refuses what no request may do, whatever its credentials, and
// sets the headers every answer gets.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !s.unix && !allowedHost(r.Host) {
			// DNS rebinding: a page of another domain that now resolves to
			// 127.0.0.1 sends its own domain as the Host.
			writeError(w, http.StatusForbidden, "refused", fmt.Sprintf("Host %q is not an address of this API: use http://127.0.0.1:<port> or http://localhost:<port>", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			writeError(w, http.StatusForbidden, "refused", fmt.Sprintf("requests from origin %q are refused: the API serves its own pages only", o))
			return
		}
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" && !isDashboardPage(r) {
			writeError(w, http.StatusForbidden, "refused", "requests from another site are refused")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authed lets a request through that carries the bearer token, or the
// cookie and key of a browser session (the key in the X-Syncnode-CSRF
// header, or, where query is set, in the csrf query parameter).
func (s *Server) authed(query bool, next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "" {
			if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				writeError(w, http.StatusUnauthorized, "unauthorized", "wrong token: use the token in the data directory's api-token file")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		c, err := r.Cookie(cookieName(r))
		if err != nil {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing token: send the header \"Authorization: Bearer <token>\" (the token is in the data directory's api-token file)")
			return
		}
		key := r.Header.Get(CSRFHeader)
		if key == "" && query {
			key = r.URL.Query().Get("csrf")
		}
		if key == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized", "a browser session's request needs its key in the "+CSRFHeader+" header")
			return
		}
		if _, ok := s.sessions.check(c.Value, key, time.Now()); !ok {
			writeError(w, http.StatusUnauthorized, "unauthorized", "the session has ended or its key is wrong: sign in again")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SignInRequest starts a browser session: with the API token, or with the
// code of a one-time link (exactly one of them).
type SignInRequest struct {
	Token string `json:"token,omitempty"`
	Link  string `json:"link,omitempty"`
}

// Session answers a sign-in, and GET /v1/session.
type Session struct {
	// SignedIn is true when the request carried valid credentials.
	SignedIn bool `json:"signed_in"`
	// CSRF is the session's key, given once, at sign-in: send it as the
	// X-Syncnode-CSRF header with every request.
	CSRF string `json:"csrf,omitempty"`
	// Expires is when the session ends.
	Expires *time.Time `json:"expires,omitempty"`
}

// SignInLink is a one-time link that signs a browser in.
type SignInLink struct {
	// URL opens the dashboard and signs in; Code is its one-time code.
	URL     string    `json:"url"`
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var req SignInRequest
	if err := decodeBody(r, &req, false); err != nil {
		s.fail(w, r, err)
		return
	}
	now := time.Now()
	switch {
	case (req.Token == "") == (req.Link == ""):
		writeError(w, http.StatusBadRequest, "bad_request", "send either {\"token\": \"...\"} (the API token) or {\"link\": \"...\"} (a sign-in link's code)")
		return
	case req.Token != "" && subtle.ConstantTimeCompare([]byte(req.Token), []byte(s.cfg.Token)) != 1:
		writeError(w, http.StatusUnauthorized, "unauthorized", "wrong token: use the token in the data directory's api-token file")
		return
	case req.Link != "" && !s.sessions.useLink(req.Link, now):
		writeError(w, http.StatusUnauthorized, "unauthorized", "this sign-in link was used already or has expired: run `syncnode open` again")
		return
	}
	id, csrf, expires := s.sessions.create(now)
	http.SetCookie(w, sessionCookie(r, id, int(SessionLifetime/time.Second)))
	exp := expires.UTC().Truncate(time.Second)
	writeJSON(w, http.StatusOK, Session{SignedIn: true, CSRF: csrf, Expires: &exp})
}

// sessionState says whether the request is signed in; it never fails, so
// that a dashboard without a session asks without an error.
func (s *Server) sessionState(w http.ResponseWriter, r *http.Request) {
	out := Session{}
	if got := r.Header.Get("Authorization"); got != "" {
		out.SignedIn = subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+s.cfg.Token)) == 1
	} else if c, err := r.Cookie(cookieName(r)); err == nil {
		if exp, ok := s.sessions.check(c.Value, r.Header.Get(CSRFHeader), time.Now()); ok {
			exp = exp.UTC().Truncate(time.Second)
			out.SignedIn, out.Expires = true, &exp
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(cookieName(r)); err == nil {
		s.sessions.end(c.Value)
	}
	http.SetCookie(w, sessionCookie(r, "", -1))
	writeJSON(w, http.StatusOK, map[string]bool{"signed_out": true})
}

func (s *Server) newSignInLink(r *http.Request) (int, any, error) {
	if s.unix {
		return 0, nil, badRequest("the API listens on a Unix socket, which a browser cannot open: serve it on a TCP address (api = \"127.0.0.1:7655\") for the dashboard")
	}
	code, expires := s.sessions.link(time.Now())
	return http.StatusCreated, SignInLink{URL: "http://" + r.Host + "/#signin=" + code, Code: code, Expires: expires.UTC().Truncate(time.Second)}, nil
}
