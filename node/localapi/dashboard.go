package localapi

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// The dashboard: plain HTML, CSS and JavaScript, embedded in the binary and
// served at the API's root. It uses the API like any other client (with a
// browser session instead of the bearer token) and loads nothing from
// anywhere else: its Content-Security-Policy allows this origin only.

//go:embed dashboard
var dashboardFiles embed.FS

// dashboardCSP allows the dashboard's own files and API, blob: images (the
// invite's QR code) and nothing else: no inline script, no other origin.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// asset is one embedded file, with its ETag.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// loadAssets reads the embedded files once.
func loadAssets() map[string]asset {
	types := map[string]string{
		".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
	}
	out := map[string]asset{}
	_ = fs.WalkDir(dashboardFiles, "dashboard", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := dashboardFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := types[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "dashboard/")] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return out
}

// isDashboardPage reports whether r asks for one of the dashboard's files,
// which anyone may load (they hold no data).
func isDashboardPage(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/"))
}

// dashboard serves the page ("/") and its files ("/ui/app.js").
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	name := "index.html"
	if r.URL.Path != "/" {
		name = strings.TrimPrefix(r.URL.Path, "/ui/")
	}
	a, ok := s.assets[name]
	if !ok || name == "index.html" && r.URL.Path != "/" {
		writeError(w, http.StatusNotFound, "not_found", "no such file of the dashboard: "+r.URL.Path)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("ETag", a.etag)
	// Revalidated each time (a 304 while unchanged): a new binary serves new
	// files at once.
	h.Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}
