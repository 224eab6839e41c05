package integration

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/protocol"
)

const echoProtocol = "/app/echo/1.0.0"

// bareHost is a plain libp2p host listening on loopback TCP, closed at the
// end of the test.
func bareHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// serveEcho makes h answer each line on the echo protocol with the same line.
func serveEcho(h host.Host) {
	h.SetStreamHandler(echoProtocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(s).ReadString('\n')
		if err != nil {
			_ = s.Reset()
			return
		}
		_, _ = io.WriteString(s, line)
	})
}

// echo sends msg from client to the echo protocol of target and checks the
// answer.
func echo(t *testing.T, client host.Host, target host.Host, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()}); err != nil {
		t.Fatalf("echo %q: connecting: %v", msg, err)
	}
	s, err := client.NewStream(ctx, target.ID(), echoProtocol)
	if err != nil {
		t.Fatalf("echo %q: opening stream: %v", msg, err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(s, msg+"\n"); err != nil {
		t.Fatalf("echo %q: writing: %v", msg, err)
	}
	got, err := bufio.NewReader(s).ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo %q: got %q, %v", msg, got, err)
	}
}

// A node attached to an app's host syncs with a normal node, the app's own
// protocol keeps working before, during and after, and closing the node
// leaves the app's host running.
func TestNodeOnAppHost(t *testing.T) {
	ctx := context.Background()
	app := bareHost(t)
	serveEcho(app)
	client := bareHost(t)
	echo(t, client, app, "before the node")

	c := newCluster(t, 1, nil)
	cfg := c.cfg
	cfg.DataDir = t.TempDir()
	nd, err := node.New(cfg, node.WithHost(app), node.WithLogger(logger().With("node", "app")))
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if nd.Host().ID() != app.ID() {
		t.Fatalf("the node's peer is %s, want the app host's %s", nd.Host().ID(), app.ID())
	}
	a := c.adopt(nd, "app")
	c.addLibrary(c.all()...)

	fromApp, fromNode := uuid.New(), uuid.New()
	if _, err := c.library(a).PutShared(ctx, "tag", fromApp, data(t, "written on the app host")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.library(0).PutOwned(ctx, "location", fromNode, data(t, "written on the normal node")); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(10*time.Second, 0, "tag", fromApp, data(t, "written on the app host"))
	c.waitRecord(10*time.Second, a, "location", fromNode, data(t, "written on the normal node"))
	echo(t, client, app, "while the node syncs")
	echo(t, c.nodes[0].Host(), app, "from the sync peer")

	if !app.ConnManager().IsProtected(c.infos[0].Peer, "") {
		t.Errorf("the node did not protect its member's connection in the app's connection manager")
	}

	c.stop(a)
	if app.ConnManager().IsProtected(c.infos[0].Peer, "") {
		t.Errorf("after Close the node's member is still protected in the app's connection manager")
	}
	echo(t, client, app, "after the node closed")
	echo(t, bareHost(t), app, "from a new client after the node closed")
	// The sync protocol is gone from the app host: a stream for it is
	// refused (at once, or at the first read when the client negotiates
	// lazily from what identify told it earlier).
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s, err := client.NewStream(cctx, app.ID(), node.ProtocolID); err == nil {
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		hello := &protocol.Hello{LibraryID: c.lib, DeviceID: uuid.New(), Versions: []uint32{protocol.Version}}
		_ = protocol.NewWriter(s, protocol.DefaultMaxFrameSize).WriteMessage(hello)
		if m, err := protocol.NewReader(s, protocol.DefaultMaxFrameSize).ReadMessage(); err == nil {
			t.Fatalf("the closed node still serves the sync protocol on the app host: it answered %s", m.Name())
		}
		_ = s.Reset()
	}
	if _, err := c.library(0).Get(ctx, "tag", fromApp); err != nil {
		t.Fatalf("the normal node lost the app's tag: %v", err)
	}
	if _, err := nd.Library(c.lib).Get(ctx, "tag", fromApp); !errors.Is(err, node.ErrClosed) {
		t.Fatalf("Get on the closed node: %v, want ErrClosed", err)
	}
}

// On an app's host, where NAT traversal is the app's, the network status
// and the doctor work and say so: no NAT check, no crash, and a member
// reached on the app's host is reported with its path.
func TestDoctorOnAnAppsHost(t *testing.T) {
	h := bareHost(t)
	cfg := node.DefaultLocalConfig()
	cfg.DataDir = t.TempDir()
	cfg.NAT = node.DefaultNATConfig() // unused with WithHost: must not matter
	cfg.Relay.Enabled = true
	nd, err := node.New(cfg, node.WithHost(h), node.WithLogger(logger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nd.Close() })
	peerCfg := node.DefaultLocalConfig()
	peerCfg.DataDir = t.TempDir()
	other, err := node.New(peerCfg, node.WithLogger(logger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	lib := uuid.New()
	members := []node.Member{
		{Device: nd.Device(), Peer: h.ID(), Name: "app", Addrs: h.Addrs()},
		{Device: other.Device(), Peer: other.Host().ID(), Name: "other", Addrs: other.Host().Addrs()},
	}
	for _, n := range []*node.Node{nd, other} {
		if _, err := n.AddLibrary(context.Background(), lib, "app", members...); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool {
		return h.Network().Connectedness(other.Host().ID()) == network.Connected
	}, func() string { return "the app's node never connected to the other" })
	st := nd.Network()
	if st.OwnHost || st.RelayService != nil || st.HolePunching || st.AutoRelay {
		t.Errorf("network status on an app's host: %+v, want no NAT traversal of the node's own", st)
	}
	d, err := nd.Doctor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]node.Check{}
	for _, c := range d.Checks {
		names[c.Name] = c
	}
	for _, unwanted := range []string{"reachability", "nat", "relays", "relay service", "hole punching"} {
		if c, ok := names[unwanted]; ok {
			t.Errorf("doctor on an app's host checks %q: %+v", unwanted, c)
		}
	}
	if c, ok := names["other"]; !ok || c.Status != node.CheckOK || !strings.Contains(c.Message, "direct") {
		t.Errorf("doctor's check of the member: %+v, want ok and direct", c)
	}
	if d.Failed != 0 {
		t.Errorf("doctor counts %d failures, want none", d.Failed)
	}
}
