package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/syncnode/syncnode/discovery"
)

// Statuses of a Check.
const (
	CheckOK   = "ok"
	CheckInfo = "info"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// relayFix is the advice when only a relay can connect two devices.
const relayFix = "run a relay: `syncnode run --relay --reachability=public` on a machine with a public address " +
	"(a home server with a forwarded port, a small VPS), and make it a member of the library " +
	"(or list it in nat.relays); members then sync through it"

// Check is one finding of Doctor: what was checked, what was found, and
// what to do about it.
type Check struct {
	// Area is "node", or "library <name>" for a member's check.
	Area string
	// Name names the check: "listen", "reachability", "port mapping",
	// "nat", "relays", "relay service", "hole punching", "mdns", "dht", or
	// the member's name.
	Name string
	// Status is CheckOK, CheckInfo, CheckWarn or CheckFail.
	Status string
	// Message says what was found, in a sentence or two.
	Message string
	// Fix says what to do; "" when nothing needs doing.
	Fix string
}

// Diagnosis is what Doctor found.
type Diagnosis struct {
	Checks []Check
	// Failed counts the checks with CheckFail: a member that cannot be
	// reached, and why is known, or a node that cannot be reached at all.
	Failed int
}

// Doctor checks how this node reaches, and is reached by, the members of
// its libraries, and explains each finding in plain sentences with the fix
// (docs/NETWORKING.md lists the checks).
func (n *Node) Doctor(ctx context.Context) (Diagnosis, error) {
	if err := n.ready(); err != nil {
		return Diagnosis{}, err
	}
	var d Diagnosis
	add := func(c Check) {
		if c.Status == CheckFail {
			d.Failed++
		}
		d.Checks = append(d.Checks, c)
	}
	net := n.Network()
	for _, c := range n.nodeChecks(net) {
		add(c)
	}
	libs, err := n.Libraries()
	if err != nil {
		return d, err
	}
	for _, li := range libs {
		if r := li.Removed; r != nil {
			add(Check{Area: "library " + li.Name, Name: "membership", Status: CheckWarn,
				Message: fmt.Sprintf("this device was removed from the library by device %s at %s: it no longer syncs it, and refuses writes to it",
					r.By, r.At.UTC().Format(time.RFC3339)),
				Fix: "ask a member for a new invite and join again, or leave the library (syncnode library leave)"})
			continue
		}
		peers, err := n.Library(li.ID).Peers(ctx)
		if err != nil {
			continue // left while we looked
		}
		ms, err := n.Library(li.ID).Members(ctx)
		if err != nil {
			continue
		}
		names := map[peer.ID]string{}
		for _, m := range ms {
			names[m.Peer] = m.Name
		}
		for _, p := range peers {
			c := n.memberCheck(net, p)
			c.Area, c.Name = "library "+li.Name, names[p.Peer]
			if c.Name == "" {
				c.Name = p.Device.String()
			}
			add(c)
		}
	}
	return d, nil
}

// nodeChecks are the checks of the node itself.
func (n *Node) nodeChecks(net NetworkStatus) []Check {
	var out []Check
	node := func(name, status, msg, fix string) {
		out = append(out, Check{Area: "node", Name: name, Status: status, Message: msg, Fix: fix})
	}
	// Listen addresses.
	var loopback, other []string
	for _, a := range net.Listen {
		if isRelayAddr(a) {
			continue
		}
		if manet.IsIPLoopback(a) {
			loopback = append(loopback, a.String())
		} else {
			other = append(other, a.String())
		}
	}
	switch {
	case len(loopback)+len(other) == 0:
		node("listen", CheckFail, "the node listens on no address: no device can connect to it",
			"set listen to addresses such as /ip4/0.0.0.0/tcp/7654 and /ip4/0.0.0.0/udp/7654/quic-v1")
	case len(other) == 0:
		node("listen", CheckWarn, "the node listens on loopback only ("+strings.Join(loopback, ", ")+"): only this machine can reach it",
			"listen on every interface (/ip4/0.0.0.0/tcp/7654, /ip4/0.0.0.0/udp/7654/quic-v1) for other devices")
	default:
		node("listen", CheckOK, "listening on "+strings.Join(other, ", "), "")
	}
	if !net.OwnHost {
		node("host", CheckInfo, "the node runs on an app's libp2p host: NAT traversal (relays, hole punching, port mapping) is the app's", "")
		return out
	}

	// Reachability.
	how := "AutoNAT found"
	if net.ReachabilityForced {
		how = "as configured (nat.reachability)"
	}
	switch net.Reachability {
	case "public":
		msg := "devices on other networks can dial this node (" + how + ")"
		if len(net.Reachable) > 0 {
			msg += " at " + joinAddrs(net.Reachable)
		}
		node("reachability", CheckOK, msg, "")
	case "private":
		node("reachability", CheckInfo, "this node is behind a NAT or firewall ("+how+"): devices on other networks reach it through a relay, or directly once a hole is punched", "")
	default:
		node("reachability", CheckInfo, "not known yet: AutoNAT needs peers that answer it (the DHT's, or members with a public address)", "")
	}

	// Port mapping.
	pm := net.PortMapping
	switch {
	case !pm.Enabled:
		node("port mapping", CheckInfo, "port mapping (UPnP, NAT-PMP) is off", "")
	case len(pm.Mappings) > 0:
		var ms []string
		for _, m := range pm.Mappings {
			ms = append(ms, m.Internal.String()+" -> "+m.External.String())
		}
		node("port mapping", CheckOK, "the router maps "+strings.Join(ms, ", "), "")
	case pm.RouterFound:
		node("port mapping", CheckWarn, "the router answered but maps no port yet", "check that the router allows UPnP or NAT-PMP mappings")
	case net.Reachability == "private":
		node("port mapping", CheckInfo, "no router answered UPnP or NAT-PMP",
			"enabling UPnP on the router, or forwarding the listen port to this machine, makes it reachable directly")
	default:
		node("port mapping", CheckInfo, "no router answered UPnP or NAT-PMP (none may be needed)", "")
	}

	// The NAT's kind.
	switch net.NATKind {
	case NATSymmetric:
		node("nat", CheckWarn, "the NAT gives every destination another port (a symmetric NAT): hole punching cannot work from here, so devices behind other NATs reach this one only through a relay",
			relayFix)
	case NATEndpointIndependent:
		node("nat", CheckOK, "the NAT keeps one port for every destination (endpoint-independent): hole punching can work", "")
	case NATNone:
		node("nat", CheckOK, "peers see this node's own address: no NAT in the way", "")
	default:
		node("nat", CheckInfo, "the NAT's kind is not known yet (two peers with public addresses must have seen this node)", "")
	}

	// Relays.
	var member, other2 []string
	for _, r := range net.Relays {
		if r.Member {
			member = append(member, r.Relay.String())
		} else {
			other2 = append(other2, r.Relay.String())
		}
	}
	switch {
	case !net.AutoRelay:
		node("relays", CheckInfo, "relays are off (nat.auto_relay = false)", "")
	case len(member) > 0:
		msg := "reserved at a member's relay (" + strings.Join(member, ", ") + "): members behind other NATs reach this node through it, and sync over it"
		if len(other2) > 0 {
			msg += "; also at " + strings.Join(other2, ", ")
		}
		node("relays", CheckOK, msg, "")
	case len(other2) > 0:
		node("relays", CheckWarn, "reserved only at public relays ("+strings.Join(other2, ", ")+"): they coordinate hole punches but carry no sync data; where punching fails, members stay apart",
			relayFix)
	case net.Reachability == "public":
		node("relays", CheckOK, "no relay needed: this node is reachable", "")
	default:
		node("relays", CheckWarn, "no relay reservation: devices behind other NATs cannot reach this node", relayFix)
	}
	if rs := net.RelayService; rs != nil {
		msg := fmt.Sprintf("serving relay reservations: %d of members, %d of strangers (%s); %d member circuits open, %d bytes relayed",
			rs.Members.Reservations, rs.Strangers.Reservations, rs.StrangerPolicy, rs.Members.Circuits, rs.Members.Bytes+rs.Strangers.Bytes)
		status, fix := CheckOK, ""
		if net.Reachability == "private" {
			status, fix = CheckWarn, "a relay must be reachable from the internet: give it a public address or forward its port, and set nat.reachability = \"public\""
		}
		node("relay service", status, msg, fix)
	}

	// Hole punching.
	switch {
	case !net.HolePunching:
		node("hole punching", CheckInfo, "hole punching is off (nat.hole_punching = false)", "")
	case len(net.HolePunchAddrs) > 0 && net.NATKind == NATSymmetric:
		node("hole punching", CheckWarn, "on, but behind a symmetric NAT a punch fails: the addresses it would give peers ("+joinAddrs(net.HolePunchAddrs)+") are only good for the peer that saw them", relayFix)
	case len(net.HolePunchAddrs) > 0:
		node("hole punching", CheckOK, "on; a punch gives peers "+joinAddrs(net.HolePunchAddrs), "")
	default:
		node("hole punching", CheckInfo, "on, but no public address of this node is known yet (peers with public addresses tell it, through identify)", "")
	}

	// Discovery.
	for _, s := range n.Discovery() {
		switch {
		case !s.Enabled:
			node(s.Name, CheckInfo, s.Name+" is off", "")
		case s.Name == discovery.SourceDHT && s.RoutingTable == 0:
			msg := "the DHT has no peers in its routing table: nothing can be found through it"
			if s.LastError != "" {
				msg += " (last error: " + s.LastError + ")"
			}
			node(s.Name, CheckWarn, msg, "check that the bootstrap peers (discovery.bootstrap) are reachable")
		case s.Name == discovery.SourceDHT:
			msg := fmt.Sprintf("%d peers in the routing table, %d library names advertised and looked up, %d members found", s.RoutingTable, s.Namespaces, s.Found)
			if s.LastError != "" {
				msg += " (last error: " + s.LastError + ")"
			}
			node(s.Name, CheckOK, msg, "")
		default:
			msg := fmt.Sprintf("on, %d peers found", s.Found)
			if s.LastError != "" {
				msg += " (last error: " + s.LastError + ")"
			}
			node(s.Name, CheckOK, msg, "")
		}
	}
	if len(n.Discovery()) == 0 {
		node("discovery", CheckInfo, "mDNS and the DHT are off: members are reached at the addresses stored for them only", "")
	}
	return out
}

// memberCheck explains how this node reaches member p, and if it cannot,
// why.
func (n *Node) memberCheck(net NetworkStatus, p PeerState) Check {
	r := p.Reach
	heard := "never heard from"
	if !p.LastHeard.IsZero() {
		heard = "last heard " + p.LastHeard.UTC().Format(time.RFC3339)
	}
	if r.Path.Kind != "" {
		msg := p.State + ", " + r.Path.String() + " at " + r.Path.Addr
		status, fix := CheckOK, ""
		if r.Path.Limited {
			status = CheckWarn
			msg += ": the relay limits the circuit (it is a stranger's, or you are not both members of its libraries), so it carries no sync data; a hole punch, or a relay you both share a library with, is needed"
			fix = relayFix
			if hp := r.HolePunch; hp != nil && hp.LastError != "" {
				msg += fmt.Sprintf(" (%d hole punches failed, the last: %s)", hp.Failures, hp.LastError)
			}
		}
		return Check{Status: status, Message: msg, Fix: fix}
	}
	direct := slices.DeleteFunc(slices.Clone(r.Addrs), isRelayAddr)
	relayed := len(direct) < len(r.Addrs)
	if len(r.Addrs) == 0 {
		return Check{Status: CheckFail,
			Message: "unreachable (" + heard + "): no address of it is known: it was never found by mDNS or the DHT, nor did it connect here",
			Fix:     "start it; on the same LAN mDNS finds it, on another network the DHT does (both devices need discovery.dht on)"}
	}
	msg := "unreachable (" + heard + ")"
	if r.LastDialError != "" {
		msg += "; the last dial, " + r.LastDial.UTC().Format(time.RFC3339) + ", failed: " + dialSummary(r.LastDialError)
	}
	public := slices.ContainsFunc(direct, manet.IsPublicAddr)
	var cause, fix string
	switch {
	case !public && !relayed && net.Reachability != "public" && len(net.Relays) == 0:
		cause = "it has only private addresses (it is behind a NAT), this node is behind a NAT too, and no relay connects you"
		if net.NATKind == NATSymmetric {
			cause += "; this node's NAT is symmetric, so a hole punch could not connect you either"
		}
		fix = relayFix
	case !public && !relayed:
		cause = "it has only private addresses (it is behind a NAT) and holds no relay reservation this node knows of"
		fix = "make sure it runs with a relay it can reserve at (nat.auto_relay, and a member relay or nat.relays); " + relayFix
	case relayed:
		cause = "its relayed addresses did not connect: the relay may be down, or it lost its reservation"
		fix = "check the relay (`syncnode doctor` on the relay and on the member)"
	default:
		cause = "it has public addresses, but they did not answer: it may be off, or a firewall drops the connection"
		fix = "check that it runs, and that its listen port is open"
	}
	return Check{Status: CheckFail, Message: msg + ". Likely cause: " + cause + ".", Fix: fix}
}

func joinAddrs(as []ma.Multiaddr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// dialSummary shortens libp2p's dial error ("failed to dial: ... all dials
// failed" and a line per address tried) to the errors of the first three
// addresses.
func dialSummary(s string) string {
	head, rest, ok := strings.Cut(s, "\n")
	if !ok {
		return s
	}
	var tried []string
	for _, l := range strings.Split(rest, "\n") {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "*")); l != "" {
			tried = append(tried, l)
		}
	}
	if len(tried) == 0 {
		return head
	}
	more := ""
	if len(tried) > 3 {
		more = fmt.Sprintf(" (and %d more addresses)", len(tried)-3)
		tried = tried[:3]
	}
	return strings.Join(tried, "; ") + more
}
