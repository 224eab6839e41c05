package node_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/discovery"
	"github.com/syncnode/syncnode/node"
)

func TestDiscoveryConfig(t *testing.T) {
	if c := node.DefaultConfig().Discovery; !c.MDNS || !c.DHT || c.DHTProtocolPrefix != "/ipfs" {
		t.Errorf("DefaultConfig: want mDNS and the public DHT on, have %+v", c)
	}
	if c := node.DefaultLocalConfig().Discovery; c.MDNS || c.DHT {
		t.Errorf("DefaultLocalConfig: want mDNS and the DHT off (no traffic off loopback), have %+v", c)
	}
	c := node.DefaultConfig()
	c.Discovery.DHTMode = "sometimes"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "DHTMode") {
		t.Errorf("a bad DHT mode: want an error naming DHTMode, have %v", err)
	}
}

// startLocal starts a node on the local config, changed by tweak.
func startLocal(t *testing.T, tweak func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultLocalConfig()
	cfg.DataDir = t.TempDir()
	tweak(&cfg)
	n, err := node.New(cfg, node.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// Without discovery the status is empty. With the DHT on, the status shows
// it running, and its namespaces follow the libraries that have a secret:
// one per library created or joined, none for a library configured with
// AddLibrary, and one fewer when a library is left. The node is alone in a
// private DHT on loopback: nothing leaves the machine.
func TestDiscoveryNamespacesFollowLibraries(t *testing.T) {
	if st := startLocal(t, func(*node.Config) {}).Discovery(); st != nil {
		t.Errorf("discovery off: want no status, have %+v", st)
	}
	n := startLocal(t, func(c *node.Config) {
		c.Discovery.DHT = true
		c.Discovery.DHTProtocolPrefix = "/syncnode-test"
		c.Discovery.DHTMode = discovery.ModeServer
		c.Discovery.BootstrapPeers = nil
	})
	status := func() discovery.SourceStatus {
		st := n.Discovery()
		if len(st) != 2 || st[0].Name != discovery.SourceMDNS || st[0].Enabled || st[1].Name != discovery.SourceDHT {
			t.Fatalf("want mDNS off and the DHT, have %+v", st)
		}
		return st[1]
	}
	waitNamespaces := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for status().Namespaces != want {
			if time.Now().After(deadline) {
				t.Fatalf("want %d DHT namespaces, have %+v", want, status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if st := status(); !st.Enabled || !st.Running || st.Namespaces != 0 {
		t.Fatalf("want the DHT running with no namespace, have %+v", st)
	}
	ctx := context.Background()
	photos, err := n.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	waitNamespaces(1)
	if _, err := n.CreateLibrary(ctx, "music"); err != nil {
		t.Fatal(err)
	}
	waitNamespaces(2)
	if _, err := n.AddLibrary(ctx, uuid.New(), "configured"); err != nil {
		t.Fatal(err)
	}
	if err := photos.Leave(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitNamespaces(1)
}
