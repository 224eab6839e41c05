package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/syncnode/syncnode/node/engine"
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

// The local profile keeps everything on this machine: loopback listen
// addresses, and mDNS, the DHT, port mapping, AutoNAT, AutoRelay, hole
// punching and the relay service off, even where the file or a flag turned
// one on; a listen address off loopback is refused with a reason.
func TestLocalProfile(t *testing.T) {
	c := Default()
	if e := c.Effective(); !reflect.DeepEqual(e, c) {
		t.Fatalf("the default profile changed the configuration: %+v", e)
	}
	c.Profile = ProfileLocal
	c.Discovery.MDNS, c.NAT.AutoRelay, c.Relay.Enabled = true, true, true
	e := c.Effective()
	if !reflect.DeepEqual(e.Listen, []string{"/ip4/127.0.0.1/tcp/7654", "/ip4/127.0.0.1/udp/7654/quic-v1"}) {
		t.Errorf("local listen addresses: %v", e.Listen)
	}
	on := map[string]bool{"mdns": e.Discovery.MDNS, "dht": e.Discovery.DHT, "port_mapping": e.NAT.PortMapping,
		"autonat": e.NAT.AutoNAT, "auto_relay": e.NAT.AutoRelay, "hole_punching": e.NAT.HolePunching, "relay": e.Relay.Enabled}
	for k, v := range on {
		if v {
			t.Errorf("the local profile leaves %s on", k)
		}
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("the local profile does not validate: %v", err)
	}
	if again := e.Effective(); !reflect.DeepEqual(again, e) {
		t.Errorf("applying the profile twice changed it: %+v", again)
	}
	nc, err := e.NodeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if nc.Discovery.MDNS || nc.Discovery.DHT || nc.NAT.PortMapping || nc.NAT.AutoNAT || nc.NAT.AutoRelay || nc.NAT.HolePunching || nc.Relay.Enabled {
		t.Errorf("the node configuration of the local profile reaches off the machine: %+v %+v", nc.Discovery, nc.NAT)
	}

	// Explicit ports on loopback are kept; another interface is refused.
	c.Listen = []string{"/ip4/127.0.0.1/tcp/7664"}
	if e := c.Effective(); !reflect.DeepEqual(e.Listen, c.Listen) || e.Validate() != nil {
		t.Errorf("explicit loopback listen address: %v, %v", e.Listen, e.Validate())
	}
	for _, bad := range []Config{
		func() Config { b := c; b.Listen = []string{"/ip4/0.0.0.0/tcp/7654"}; return b }(),
		func() Config { b := c; b.API = "0.0.0.0:7655"; return b }(),
		func() Config { b := c; b.Profile = "lan"; return b }(),
	} {
		err := bad.Effective().Validate()
		if err == nil || !(strings.Contains(err.Error(), "local profile") || strings.Contains(err.Error(), "profile must be")) {
			t.Errorf("listen %v api %s profile %s: want an error about the profile, got %v", bad.Listen, bad.API, bad.Profile, err)
		}
	}

	// profile = "local" in the file, and SYNCNODE_PROFILE, set it.
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte("profile = \"local\"\n"), 0o600)
	f := Default()
	if err := LoadFile(&f, path, true); err != nil || f.Profile != ProfileLocal {
		t.Fatalf("profile from the file: %q, %v", f.Profile, err)
	}
	g := Default()
	if err := ApplyEnv(&g, func(k string) string { return map[string]string{"SYNCNODE_PROFILE": "local"}[k] }); err != nil || g.Profile != ProfileLocal {
		t.Fatalf("profile from the environment: %q, %v", g.Profile, err)
	}
}

// A model declared "shared-fields" is a SharedFields type of the registry;
// the device model may not be one.
func TestSharedFieldsModel(t *testing.T) {
	c := Default()
	c.Models = []Model{{Name: "note", Strategy: "shared-fields"}, {Name: "tag", Strategy: "shared"}}
	reg, err := c.Registry()
	if err != nil {
		t.Fatal(err)
	}
	if mt, err := reg.Lookup("note"); err != nil || mt.Strategy != engine.SharedFields || !reg.FieldMerge("note") || reg.FieldMerge("tag") {
		t.Fatalf("note: %+v %v", mt, err)
	}
	c.Models = []Model{{Name: "device", Strategy: "shared-fields"}}
	if _, err := c.Registry(); err == nil {
		t.Fatal("a shared-fields device model was accepted")
	}
}
