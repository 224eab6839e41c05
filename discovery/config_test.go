package discovery

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.MDNS || !c.DHT || c.DHTProtocolPrefix != "/ipfs" || c.DHTMode != ModeAuto || len(c.BootstrapPeers) == 0 {
		t.Errorf("want mDNS and the public DHT in auto mode with bootstrap peers, have %+v", c)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero config (everything off) must be valid: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no bootstrap peers", func(c *Config) { c.BootstrapPeers = nil }, ""},
		{"private prefix", func(c *Config) { c.DHTProtocolPrefix = "/syncnode-test" }, ""},
		{"bad mode", func(c *Config) { c.DHTMode = "always" }, `DHTMode must be "auto", "server" or "client", is "always"`},
		{"bad prefix", func(c *Config) { c.DHTProtocolPrefix = "ipfs" }, "DHTProtocolPrefix"},
		{"bootstrap not a multiaddr", func(c *Config) { c.BootstrapPeers = []string{"example.com:4001"} }, "is not a multiaddr"},
		{"bootstrap without peer ID", func(c *Config) { c.BootstrapPeers = []string{"/ip4/127.0.0.1/tcp/4001"} }, "must end in /p2p/<peer ID>"},
		{"ttl too long", func(c *Config) { c.AdvertiseTTL = 24 * time.Hour }, "AdvertiseTTL must be between 1 minute and 3 hours"},
		{"find interval order", func(c *Config) { c.FindIntervalMax = time.Second }, "FindIntervalMax (1s) must not be below FindIntervalMin (10s)"},
		{"find timeout", func(c *Config) { c.FindTimeout = 0 }, "FindTimeout must be positive"},
		{"service name", func(c *Config) { c.MDNSServiceName = "syncnode" }, "MDNSServiceName"},
		{"service name too long", func(c *Config) { c.MDNSServiceName = "_a-very-long-service-name._udp" }, "MDNSServiceName"},
		{"dedup", func(c *Config) { c.DedupWindow = 0 }, "DedupWindow must be positive"},
		{"queue", func(c *Config) { c.QueueSize = 0 }, "QueueSize must be at least 1"},
		{"DHT settings ignored when off", func(c *Config) { c.DHT = false; c.DHTMode = "?"; c.FindTimeout = 0 }, ""},
		{"mDNS settings ignored when off", func(c *Config) { c.MDNS = false; c.MDNSServiceName = "" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("want valid, have %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("want an error saying %q, have none", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("want an error saying %q, have %q", tc.want, err)
			}
		})
	}
}
