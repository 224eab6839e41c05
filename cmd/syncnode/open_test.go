package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openBrowser starts $BROWSER with the URL (in place of "%s", else as the
// last argument; the first of a colon-separated list), and says why when it
// cannot start a browser.
func TestOpenBrowser(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "args")
	script := filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" > "+got+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const url = "http://127.0.0.1:7655/#signin=abc"
	for _, tc := range []struct{ browser, want string }{
		{script, url},
		{script + " --new-window", "--new-window " + url},
		{script + " --app=%s --x:/nonexistent/browser", "--app=" + url + " --x"},
	} {
		os.Remove(got)
		t.Setenv("BROWSER", tc.browser)
		if err := openBrowser(url); err != nil {
			t.Fatalf("BROWSER=%q: %v", tc.browser, err)
		}
		var b []byte
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
			if b, _ = os.ReadFile(got); len(b) > 0 {
				break
			}
		}
		if s := strings.TrimSpace(string(b)); s != tc.want {
			t.Errorf("BROWSER=%q ran the browser with %q, want %q", tc.browser, s, tc.want)
		}
	}
	t.Setenv("BROWSER", filepath.Join(dir, "no-such-browser"))
	if err := openBrowser(url); err == nil || !strings.Contains(err.Error(), "no-such-browser") {
		t.Errorf("a missing browser: %v, want an error naming it", err)
	}
}
