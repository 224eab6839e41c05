package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// Uncommenting every setting of the example config yields the defaults (the
// machine-dependent data_dir and device_name aside), so the file tells the
// truth about every key.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	setting := regexp.MustCompile(`^# (\[\[?[a-z]+\]\]?|[a-z0-9_]+ = .*)$`)
	var lines []string
	for _, l := range strings.Split(ExampleConfig, "\n") {
		if setting.MatchString(l) {
			l = strings.TrimPrefix(l, "# ")
		}
		lines = append(lines, l)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	got := Config{}
	if err := LoadFile(&got, path, true); err != nil {
		t.Fatal(err)
	}
	want := Default()
	got.DataDir, got.DeviceName = want.DataDir, want.DeviceName
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the example config, uncommented:\n%+v\nthe defaults:\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}

// docs/CONFIG.md shows the example config as it is.
func TestConfigDocShowsExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "```toml\n"+ExampleConfig+"```") {
		t.Fatal("docs/CONFIG.md does not show node/daemon/config.example.toml as it is: copy it into the ```toml block")
	}
}

// Files, environment and flags apply in that order; bad values say which
// key is wrong.
func TestPrecedenceAndErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	os.WriteFile(path, []byte("api = \"127.0.0.1:9000\"\n[discovery]\nmdns = false\n"), 0o600)
	c := Default()
	if err := LoadFile(&c, path, true); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SYNCNODE_API": "127.0.0.1:9001", "SYNCNODE_DHT": "false"}
	if err := ApplyEnv(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.API != "127.0.0.1:9001" || c.Discovery.MDNS || c.Discovery.DHT || len(c.Models) == 0 {
		t.Fatalf("after file and env: api %q mdns %v dht %v models %d", c.API, c.Discovery.MDNS, c.Discovery.DHT, len(c.Models))
	}
	for _, s := range Settings {
		if s.Key == "api" {
			s.Set(&c, "127.0.0.1:9002")
		}
	}
	if c.API != "127.0.0.1:9002" {
		t.Fatalf("flag did not win: %q", c.API)
	}

	bad := map[string]string{
		"unknown key":    "colour = \"red\"\n",
		"wrong type":     "sync_writes = \"maybe\"\n",
		"bad duration":   "horizon = \"a week\"\n",
		"bad strategy":   "[[models]]\nname = \"x\"\nstrategy = \"sometimes\"\n",
		"device owned":   "[[models]]\nname = \"device\"\nstrategy = \"device-owned\"\n",
		"bad dependency": "[[models]]\nname = \"x\"\nstrategy = \"shared\"\ndepends_on = [\"y\"]\n",
		"bad log format": "[log]\nformat = \"xml\"\n",
		"bad memory":     "memory_limit = \"lots\"\n",
	}
	for name, text := range bad {
		os.WriteFile(path, []byte(text), 0o600)
		c := Default()
		err := LoadFile(&c, path, true)
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "config") && !strings.Contains(err.Error(), "invalid configuration") {
			t.Errorf("%s: error %q does not say it is the configuration", name, err)
		}
	}
	if err := ApplyEnv(&c, func(k string) string {
		if k == "SYNCNODE_MDNS" {
			return "perhaps"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "SYNCNODE_MDNS") {
		t.Errorf("a bad environment variable: %v", err)
	}
	if missing := LoadFile(&c, filepath.Join(dir, "nope.toml"), true); missing == nil {
		t.Error("a named config file that is missing was accepted")
	}
	if err := LoadFile(&c, filepath.Join(dir, "nope.toml"), false); err != nil {
		t.Errorf("the default config file may be missing: %v", err)
	}
}
