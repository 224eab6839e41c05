package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// run runs the CLI in this process with a home of its own (no daemon), and
// returns the exit code and what it printed.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", home+"/config")
	t.Setenv("XDG_DATA_HOME", home+"/data")
	for _, k := range []string{"SYNCNODE_CONFIG", "SYNCNODE_DATA_DIR", "SYNCNODE_API", "SYNCNODE_TOKEN", "SYNCNODE_LIBRARY", "SYNCNODE_PROFILE"} {
		t.Setenv(k, "")
	}
	var out, errb bytes.Buffer
	code = execute(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Every command takes --json (scripts rely on it), and every command that
// has subcommands refuses an unknown one.
func TestEveryCommandHasJSON(t *testing.T) {
	root := newRoot()
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("json") == nil && c.InheritedFlags().Lookup("json") == nil && c.PersistentFlags().Lookup("json") == nil {
			t.Errorf("%q has no --json", c.CommandPath())
		}
		n++
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if n < 20 {
		t.Fatalf("walked %d commands, expected the whole tree", n)
	}
}

// A typo'd command exits 2 and says what was meant; a group alone prints
// its help and exits 0.
func TestUnknownCommands(t *testing.T) {
	cases := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"library", "creat"}, 2, `did you mean "create"`},
		{[]string{"stauts"}, 2, "status"},
		{[]string{"config", "chek"}, 2, `did you mean "check"`},
		{[]string{"library", "frobnicate"}, 2, "its commands: create"},
		{[]string{"library"}, 0, "Available Commands"},
		{[]string{"status", "--frobnicate"}, 2, "unknown flag"},
	}
	for _, c := range cases {
		code, stdout, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stdout+stderr, c.says) {
			t.Errorf("syncnode %v: exit %d, stdout %q stderr %q; want exit %d saying %q", c.args, code, stdout, stderr, c.code, c.says)
		}
	}
}

// version and --version say the version, the protocol and the module
// versions; --json gives every module.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, _ := run(t, args...)
		if code != 0 || !strings.HasPrefix(stdout, "syncnode ") || !strings.Contains(stdout, "/spacedrive/sync/2.0.0") ||
			!strings.Contains(stdout, "github.com/libp2p/go-libp2p v") {
			t.Errorf("syncnode %v: exit %d: %q", args, code, stdout)
		}
	}
	code, stdout, _ := run(t, "version", "--json")
	var v versionInfo
	if err := json.Unmarshal([]byte(stdout), &v); code != 0 || err != nil || v.Go == "" || len(v.Modules) < 10 ||
		v.Modules["github.com/dgraph-io/badger/v4"] == "" {
		t.Fatalf("version --json: exit %d, %v: %s", code, err, stdout)
	}
}

// Errors of the API are worded for the command line.
func TestCLIMessages(t *testing.T) {
	for _, s := range []string{"the body is not valid JSON: x", "unknown model type \"x\" (GET /v1/models lists them)"} {
		got := cliMessage(errorString(s))
		if strings.Contains(got, "body") || strings.Contains(got, "/v1/") {
			t.Errorf("%q reads %q on the command line", s, got)
		}
	}
	if recordLimit != "1 MiB" {
		t.Errorf("the record limit reads %q", recordLimit)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// config check: exit 0 and the settings for a valid configuration, exit 1
// and each problem for a broken one; --local shows the profile's effect.
func TestConfigCheck(t *testing.T) {
	code, stdout, stderr := run(t, "config", "check", "--local")
	if code != 0 || !strings.Contains(stdout, "profile") || !strings.Contains(stdout, "local") ||
		!strings.Contains(stdout, "127.0.0.1/tcp/7654") || !strings.Contains(stdout, "mDNS off, DHT off") || !strings.Contains(stdout, "is valid") {
		t.Fatalf("config check --local: exit %d\n%s%s", code, stdout, stderr)
	}
	dir := t.TempDir()
	path := dir + "/config.toml"
	if err := writeFile(path, "memory_limit = \"lots\"\n[log]\nformat = \"xml\"\n"); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = run(t, "config", "check", "--config", path)
	if code != 1 || !strings.Contains(stdout, "memory_limit") || !strings.Contains(stdout, "log.format") || !strings.Contains(stdout, "not valid") {
		t.Fatalf("config check of a broken file: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, "--json", "config", "check", "--config", path)
	var rep configReport
	if err := json.Unmarshal([]byte(stdout), &rep); code != 1 || err != nil || rep.Valid || len(rep.Errors) != 2 {
		t.Fatalf("config check --json of a broken file: exit %d, %v: %s", code, err, stdout)
	}
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
