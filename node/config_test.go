package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/syncnode/syncnode/node"
)

func TestConfigValidate(t *testing.T) {
	if err := node.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig is invalid: %v", err)
	}
	if err := node.DefaultLocalConfig().Validate(); err != nil {
		t.Fatalf("DefaultLocalConfig is invalid: %v", err)
	}
	for _, tc := range []struct {
		name  string
		tweak func(*node.Config)
		want  string
	}{
		{"zero tick", func(c *node.Config) { c.TickInterval = 0 }, "TickInterval must be positive"},
		{"timeout below heartbeat", func(c *node.Config) { c.PeerTimeout = c.HeartbeatInterval }, "PeerTimeout"},
		{"page too large", func(c *node.Config) { c.PageSize = 1 << 20 }, "PageSize must be between 1 and 10000"},
		{"tiny queue", func(c *node.Config) { c.SendQueue = 1 }, "SendQueue must be at least 16"},
		{"tiny frames", func(c *node.Config) { c.MaxFrameSize = 100 }, "MaxFrameSize must be at least 64 KiB"},
		{"bad address", func(c *node.Config) { c.ListenAddrs = []string{"tcp://0.0.0.0:1"} }, `listen address "tcp://0.0.0.0:1" is not a multiaddr`},
		{"backoff upside down", func(c *node.Config) { c.ReconnectMax = time.Millisecond }, "ReconnectMax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := node.DefaultConfig()
			tc.tweak(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error saying %q", err, tc.want)
			}
			if _, err := node.New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	if _, err := node.New(node.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "DataDir is required") {
		t.Fatalf("New without DataDir or store = %v, want an error naming DataDir", err)
	}
}
