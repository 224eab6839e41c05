package discovery

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// The mDNS test must not send multicast on the machine's real interfaces,
// and loopback has no multicast. So, as root with `ip`, it makes two network
// namespaces joined by a veth pair (names unique to the run, removed on
// every path) and runs this test binary in each (TestMDNSChild): each must
// find the other by mDNS, at the other's address on the veth. Without root
// or `ip` it is skipped; the end-to-end network-namespace tests under test/
// cover mDNS between whole nodes.
func TestMDNSInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mDNS needs a multicast interface; this test makes its own in network namespaces, which needs root (see test/ for the end-to-end netns tests)")
	}
	ipTool, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("mDNS needs a multicast interface; this test makes its own in network namespaces, which needs the ip tool (see test/ for the end-to-end netns tests)")
	}
	probe := fmt.Sprintf("sndiscprobe%d", os.Getpid())
	if out, err := exec.Command(ipTool, "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("root cannot create network namespaces here (a restricted container?): %v: %s", err, out)
	}
	_ = exec.Command(ipTool, "netns", "delete", probe).Run()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	run := func(args ...string) {
		t.Helper()
		c, stop := context.WithTimeout(ctx, 10*time.Second)
		defer stop()
		if out, err := exec.CommandContext(c, ipTool, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	tag := fmt.Sprintf("%d%04x", os.Getpid()%100000, rand.IntN(1<<16))
	ns := [2]string{"snmdns-" + tag + "-a", "snmdns-" + tag + "-b"}
	veth := [2]string{"snm" + tag + "a", "snm" + tag + "b"} // at most 15 characters
	subnet := fmt.Sprintf("10.254.%d", 1+rand.IntN(250))
	ips := [2]string{subnet + ".1", subnet + ".2"}
	for _, n := range ns {
		run("netns", "add", n)
		t.Cleanup(func() {
			c, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			_ = exec.CommandContext(c, ipTool, "netns", "del", n).Run() // removes its veth end too
		})
	}
	run("link", "add", veth[0], "netns", ns[0], "type", "veth", "peer", "name", veth[1], "netns", ns[1])
	for i := range ns {
		run("-n", ns[i], "addr", "add", ips[i]+"/24", "dev", veth[i])
		run("-n", ns[i], "link", "set", veth[i], "up")
		run("-n", ns[i], "link", "set", "lo", "up")
	}

	type child struct {
		cmd   *exec.Cmd
		stdin interface{ Close() error }
		lines chan string
	}
	var kids [2]child
	for i := range kids {
		cmd := exec.CommandContext(ctx, ipTool, "netns", "exec", ns[i], self, "-test.run", "^TestMDNSChild$", "-test.v")
		cmd.Env = append(os.Environ(), "SYNCNODE_MDNS_CHILD=1", "SYNCNODE_MDNS_LISTEN="+ips[i], "SYNCNODE_MDNS_PEER_IP="+ips[1-i])
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 64)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				default: // the test reads only a few lines
				}
			}
		}()
		kids[i] = child{cmd: cmd, stdin: stdin, lines: lines}
		t.Cleanup(func() {
			_ = stdin.Close()
			_ = cmd.Wait()
		})
	}

	var ids, found [2]string
	var said [2][]string // the child's other output, for failures
	for i := range kids {
		for ids[i] == "" || found[i] == "" {
			select {
			case l, ok := <-kids[i].lines:
				if !ok {
					t.Fatalf("child in %s ended before reporting (self %q, found %q); it said:\n%s", ns[i], ids[i], found[i], strings.Join(said[i], "\n"))
				}
				if len(said[i]) < 50 {
					said[i] = append(said[i], l)
				}
				if v, ok := strings.CutPrefix(l, "SELF "); ok {
					ids[i] = v
				}
				if v, ok := strings.CutPrefix(l, "FOUND "); ok {
					found[i] = v
				}
			case <-ctx.Done():
				t.Fatalf("child in %s: %v before reporting (self %q, found %q)", ns[i], ctx.Err(), ids[i], found[i])
			}
		}
	}
	for i := range kids {
		if found[i] != ids[1-i] {
			t.Errorf("child in %s found %s by mDNS, want the other child, %s", ns[i], found[i], ids[1-i])
		}
	}
}

// TestMDNSChild is the side of TestMDNSInNetns that runs in a network
// namespace; on its own it is skipped. It announces a host on its veth
// address, prints "SELF <peer ID>", waits (at most 30 s) until mDNS reports a
// peer at the other namespace's address (and fails on any loopback address
// reported), prints "FOUND <peer ID>", and keeps announcing until its
// standard input closes (at most 30 s more).
func TestMDNSChild(t *testing.T) {
	if os.Getenv("SYNCNODE_MDNS_CHILD") == "" {
		t.Skip("run by TestMDNSInNetns inside a network namespace")
	}
	listen, peerIP := os.Getenv("SYNCNODE_MDNS_LISTEN"), os.Getenv("SYNCNODE_MDNS_PEER_IP")
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/"+listen+"/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := make(chan Peer, 16)
	cfg := DefaultConfig()
	cfg.DHT = false
	svc, err := New(h, cfg, func(p Peer) {
		select {
		case got <- p:
		default:
		}
	}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := svc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := svc.Status()[0]; !st.Running {
		t.Fatalf("mDNS did not start: %+v", st)
	}
	fmt.Printf("SELF %s\n", h.ID())
	deadline := time.After(30 * time.Second)
	for found := false; !found; {
		select {
		case p := <-got:
			if p.Source != SourceMDNS || p.ID == h.ID() {
				t.Fatalf("reported %+v: want another peer, from mDNS", p)
			}
			for _, a := range p.Addrs {
				if v, err := a.ValueForProtocol(ma.P_IP4); err == nil && strings.HasPrefix(v, "127.") {
					t.Fatalf("reported %s with the loopback address %s", p.ID, a)
				}
				if v, err := a.ValueForProtocol(ma.P_IP4); err == nil && v == peerIP {
					found = true
				}
			}
			if found {
				fmt.Printf("FOUND %s\n", p.ID)
			}
		case <-deadline:
			t.Fatalf("no peer at %s found by mDNS in 30 s", peerIP)
		}
	}
	done := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // returns when stdin closes
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
}
