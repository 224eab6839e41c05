package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/syncnode/syncnode/node/localapi"
)

func newOpen(g *globals) *cobra.Command {
	var printOnly bool
	cmd := &cobra.Command{
		Use:   "open",
		Short: "Open the dashboard in a browser, signed in",
		Long: `Open the daemon's dashboard, a web page served at its API address
(http://127.0.0.1:7655/ by default), in a browser, already signed in.

open asks the daemon for a one-time sign-in link (valid for 2 minutes, good
for one sign-in) and opens it with $BROWSER, else xdg-open (open on macOS, the
default browser on Windows). The page trades the link's code for a session and
drops it from the address bar at once; the API token never appears in a URL.
Without a browser to start, or with --print, open prints the link: open it in
a browser on this machine within 2 minutes. The dashboard's sign-in page also
takes the token itself (the file api-token in the data directory).`,
		Example: `  syncnode open
  syncnode open --print`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd)
			if err != nil {
				return err
			}
			var link localapi.SignInLink
			if err := c.Do(ctxOf(cmd), "POST", "/v1/session/links", nil, &link); err != nil {
				return err
			}
			out, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if g.json {
				return printJSON(out, link)
			}
			if printOnly {
				fmt.Fprintln(out, link.URL)
				return nil
			}
			if err := openBrowser(link.URL); err != nil {
				fmt.Fprintf(stderr, "could not start a browser (%v): open this link in a browser on this machine within 2 minutes:\n", err)
				fmt.Fprintln(out, link.URL)
				return nil
			}
			fmt.Fprintf(stderr, "opened the dashboard (%s) in the browser, signed in by a one-time link\n", strings.TrimSuffix(link.URL, "#signin="+link.Code))
			return nil
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the one-time link instead of opening a browser")
	return cmd
}

// openBrowser starts a browser on url and does not wait for it: $BROWSER
// (the first of a colon-separated list; "%s" in it stands for the URL),
// else the system's opener.
func openBrowser(url string) error {
	var argv []string
	if b := os.Getenv("BROWSER"); b != "" {
		first, _, _ := strings.Cut(b, ":")
		argv = strings.Fields(first)
		if len(argv) == 0 {
			return errors.New("$BROWSER is blank")
		}
		replaced := false
		for i, a := range argv {
			if strings.Contains(a, "%s") {
				argv[i], replaced = strings.ReplaceAll(a, "%s", url), true
			}
		}
		if !replaced {
			argv = append(argv, url)
		}
	} else {
		switch runtime.GOOS {
		case "darwin":
			argv = []string{"open", url}
		case "windows":
			argv = []string{"rundll32", "url.dll,FileProtocolHandler", url}
		default:
			argv = []string{"xdg-open", url}
		}
	}
	c := exec.Command(argv[0], argv[1:]...)
	if err := c.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", argv[0], err)
	}
	return c.Process.Release()
}
