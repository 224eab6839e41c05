package e2e

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// offMachine lists the sockets of process pid whose remote end is neither
// unset, nor on loopback, nor (for a process in a test-made namespace,
// where inNetns is set) in 10.0.0.0/8, in a range the test owns, or
// multicast (which a namespace without a route out keeps inside): the
// network hygiene of these tests, checked on the process itself. It reads
// /proc (the socket tables of the process's own network namespace).
func offMachine(pid int, inNetns bool, owned []netip.Prefix) ([]string, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var bad []string
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6 in this kernel, say
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			ip, err := procAddr(f[2])
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", table, line, err)
			}
			addr, _ := netip.AddrFromSlice(ip)
			addr = addr.Unmap()
			ok := ip.IsUnspecified() || ip.IsLoopback() ||
				(inNetns && (ip.IsMulticast() || (ip.To4() != nil && ip.To4()[0] == 10) ||
					slices.ContainsFunc(owned, func(p netip.Prefix) bool { return p.Contains(addr) })))
			if !ok {
				bad = append(bad, fmt.Sprintf("%s to %s", table, ip))
			}
		}
	}
	return bad, nil
}

// procAddr reads the IP of a /proc/net address ("0100007F:1F90"): 32-bit
// words in host (little-endian) order.
func procAddr(s string) (net.IP, error) {
	h, _, _ := strings.Cut(s, ":")
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, fmt.Errorf("not an address: %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b), nil
}

// TestSocketCheck checks the hygiene check on this process: a UDP socket
// connected (no packet leaves: UDP connect only sets the default peer) to
// a public address is reported, a loopback TCP connection is not.
func TestSocketCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad, err := offMachine(os.Getpid(), false, nil)
	if err != nil || len(bad) != 0 {
		t.Fatalf("with loopback sockets only: %v, %v", bad, err)
	}
	u, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}) // TEST-NET-1
	if err != nil {
		t.Skipf("cannot make a connected UDP socket here: %v", err)
	}
	defer u.Close()
	bad, err = offMachine(os.Getpid(), false, nil)
	if err != nil || len(bad) != 1 || !strings.Contains(bad[0], "192.0.2.1") {
		t.Fatalf("with a UDP socket connected to 192.0.2.1: got %v, %v; want it reported", bad, err)
	}
	if ip, err := procAddr("0100007F:1F90"); err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("procAddr(0100007F:1F90) = %v, %v", ip, err)
	}
}
