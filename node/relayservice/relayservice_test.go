package relayservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

const echoProto = protocol.ID("/relayservice-test/echo")

// newHost is a libp2p host on 127.0.0.1 TCP that echoes echoProto.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		_, _ = io.Copy(s, s)
	})
	return h
}

// fixture is a relay R with members A and B and strangers S and T.
type fixture struct {
	r, a, b, s, t host.Host
	svc           *Service
	members       sync.Map
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{r: newHost(t), a: newHost(t), b: newHost(t), s: newHost(t), t: newHost(t)}
	f.members.Store(f.a.ID(), true)
	f.members.Store(f.b.ID(), true)
	isMember := func(p peer.ID) bool { _, ok := f.members.Load(p); return ok }
	cfg.AllowPrivateAddrs = true
	svc, err := New(f.r, isMember, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	f.svc = svc
	return f
}

func (f *fixture) relayInfo() peer.AddrInfo { return peer.AddrInfo{ID: f.r.ID(), Addrs: f.r.Addrs()} }

// reserve has h connect to the relay and reserve a slot.
func (f *fixture) reserve(t *testing.T, h host.Host) (*client.Reservation, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, f.relayInfo()); err != nil {
		t.Fatal(err)
	}
	return client.Reserve(ctx, h, f.relayInfo())
}

// dialVia has from connect to to through the relay and returns the
// connection's stats.
func (f *fixture) dialVia(t *testing.T, from, to host.Host) (network.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	circuit := ma.StringCast(fmt.Sprintf("%s/p2p/%s/p2p-circuit", f.r.Addrs()[0], f.r.ID()))
	if err := from.Connect(network.WithAllowLimitedConn(ctx, "test"), peer.AddrInfo{ID: to.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		return nil, err
	}
	conns := from.Network().ConnsToPeer(to.ID())
	if len(conns) != 1 {
		t.Fatalf("%d connections to the destination, want the one relayed", len(conns))
	}
	return conns[0], nil
}

// echo sends n bytes over a new stream on the relayed connection and
// reads them back.
func echo(ctx context.Context, from host.Host, to peer.ID, n int) error {
	// No dial: the stream must use the relayed connection there is.
	s, err := from.NewStream(network.WithNoDial(network.WithAllowLimitedConn(ctx, "test"), "test"), to, echoProto)
	if err != nil {
		return err
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, n)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(buf)
		errc <- err
	}()
	if _, err := io.ReadFull(s, make([]byte, n)); err != nil {
		return fmt.Errorf("reading %d echoed bytes: %w", n, err)
	}
	return <-errc
}

// Members get unlimited circuits (not marked limited, so sync streams
// may use them, and more than a stranger's data limit goes through).
func TestMembersGetUnlimitedCircuits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StrangerLimit = relay.RelayLimit{Duration: time.Minute, Data: 4 << 10}
	f := newFixture(t, cfg)
	rsvp, err := f.reserve(t, f.a)
	if err != nil {
		t.Fatalf("a member's reservation was refused: %v", err)
	}
	if rsvp.LimitData != 0 || rsvp.LimitDuration != 0 {
		t.Errorf("a member's reservation carries limits (%d bytes, %v), want none", rsvp.LimitData, rsvp.LimitDuration)
	}
	c, err := f.dialVia(t, f.b, f.a)
	if err != nil {
		t.Fatalf("member B could not reach member A through the relay: %v", err)
	}
	if c.Stat().Limited {
		t.Errorf("the circuit between two members is limited, want unlimited")
	}
	if err := echo(t.Context(), f.b, f.a.ID(), 256<<10); err != nil {
		t.Errorf("256 KiB through the members' circuit: %v", err)
	}
	st := f.svc.Status()
	if st.Members.Reservations != 1 || st.Members.Circuits != 1 || st.Members.Bytes < 512<<10 {
		t.Errorf("status %+v, want 1 member reservation, 1 circuit and at least 512 KiB relayed", st.Members)
	}
}

// A stranger's reservation is limited (with "limited") or refused (with
// "off"); a circuit to it is marked limited and cut at the data limit.
func TestStrangersAreLimitedOrRefused(t *testing.T) {
	t.Run("limited", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.StrangerLimit = relay.RelayLimit{Duration: time.Minute, Data: 32 << 10}
		f := newFixture(t, cfg)
		rsvp, err := f.reserve(t, f.s)
		if err != nil {
			t.Fatalf("a stranger's reservation was refused with strangers = limited: %v", err)
		}
		if rsvp.LimitData != 32<<10 {
			t.Errorf("the stranger's reservation allows %d bytes, want %d", rsvp.LimitData, 32<<10)
		}
		c, err := f.dialVia(t, f.b, f.s)
		if err != nil {
			t.Fatalf("reaching the stranger through the relay: %v", err)
		}
		if !c.Stat().Limited {
			t.Errorf("the circuit to a stranger is not marked limited")
		}
		if err := echo(t.Context(), f.b, f.s.ID(), 1<<10); err != nil {
			t.Errorf("1 KiB through the limited circuit: %v", err)
		}
		if err := echo(t.Context(), f.b, f.s.ID(), 64<<10); err == nil {
			t.Errorf("64 KiB went through a circuit limited to 32 KiB")
		}
	})
	t.Run("off", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Strangers = StrangersOff
		f := newFixture(t, cfg)
		_, err := f.reserve(t, f.s)
		var re client.ReservationError
		if !errors.As(err, &re) {
			t.Fatalf("a stranger's reservation with strangers = off: got %v, want a refusal", err)
		}
		if _, err := f.reserve(t, f.a); err != nil {
			t.Errorf("a member's reservation was refused with strangers = off: %v", err)
		}
	})
}

// A stranger may reach a member (to pair), but only through a few circuits
// per member, so that strangers cannot use up the member's circuits.
func TestStrangerCircuitsToAMemberAreBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxStrangerCircuitsPerMember = 1
	f := newFixture(t, cfg)
	if _, err := f.reserve(t, f.a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dialVia(t, f.s, f.a); err != nil {
		t.Fatalf("a stranger could not reach a member: %v", err)
	}
	if _, err := f.dialVia(t, f.t, f.a); err == nil {
		t.Fatalf("a second stranger reached the member beyond MaxStrangerCircuitsPerMember = 1")
	}
	if _, err := f.dialVia(t, f.b, f.a); err != nil {
		t.Errorf("a member could not reach a member while strangers held their share: %v", err)
	}
	if got := f.svc.Status().StrangerCircuitsToMembers; got != 1 {
		t.Errorf("status counts %d stranger circuits to members, want 1", got)
	}
	// The stranger's circuit ends: its slot is given back.
	for _, c := range f.s.Network().ConnsToPeer(f.a.ID()) {
		_ = c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.svc.Status().StrangerCircuitsToMembers != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stranger's circuit closed, but its slot was not given back within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// (A new stranger: T's failed dial put the relay address in backoff.)
	if _, err := f.dialVia(t, newHost(t), f.a); err != nil {
		t.Errorf("after the first stranger left, another could not reach the member: %v", err)
	}
}

// A hop stream that starts with garbage is answered and closed, not
// served.
func TestMalformedHopIsRefused(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.s.Connect(ctx, f.relayInfo()); err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0x80, 0x40}, {0x03, 0xff, 0xff, 0xff}} {
		s, err := f.s.NewStream(ctx, f.r.ID(), HopProtocol)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Write(junk); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseWrite()
		b, err := io.ReadAll(io.LimitReader(s, 1<<20))
		if err != nil && !errors.Is(err, network.ErrReset) {
			t.Errorf("junk %x: reading the answer: %v", junk, err)
		}
		if len(b) > 64 {
			t.Errorf("junk %x: answered with %d bytes, want at most a short status", junk, len(b))
		}
		_ = s.Close()
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("the default config is invalid: %v", err)
	}
	c := DefaultConfig()
	c.Strangers = "sometimes"
	c.MaxCircuits = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("a bad config validated")
	}
	for _, want := range []string{`"sometimes"`, "MaxCircuits"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A stranger that reserved before it became a member is moved by Recheck
// without being disconnected (it may be pairing over that connection): it
// holds a member's reservation at once, so that members reach it through
// the relay unlimited, and its renewal is a member's.
func TestRecheckMovesANewMember(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	rsvp, err := f.reserve(t, f.s)
	if err != nil {
		t.Fatal(err)
	}
	if rsvp.LimitData == 0 {
		t.Fatalf("the stranger's reservation is unlimited")
	}
	if moved := f.svc.Recheck(); len(moved) != 0 {
		t.Fatalf("Recheck moved %v with no membership change", moved)
	}
	before := f.s.Network().ConnsToPeer(f.r.ID())
	f.members.Store(f.s.ID(), true)
	if moved := f.svc.Recheck(); len(moved) != 1 || moved[0] != f.s.ID() {
		t.Fatalf("Recheck moved %v, want the new member %s", moved, f.s.ID())
	}
	c, err := f.dialVia(t, f.a, f.s)
	if err != nil {
		t.Fatalf("a member could not reach the new member through the relay: %v", err)
	}
	if c.Stat().Limited {
		t.Errorf("a member's circuit to the new member is limited, want unlimited")
	}
	for _, old := range before {
		if old.IsClosed() {
			t.Errorf("Recheck closed the new member's connection to the relay")
		}
	}
	if got := f.svc.Status().Members.Reservations; got != 1 {
		t.Errorf("the members' relay counts %d reservations, want the new member's", got)
	}
	rsvp, err = f.reserve(t, f.s)
	if err != nil {
		t.Fatal(err)
	}
	if rsvp.LimitData != 0 || rsvp.LimitDuration != 0 {
		t.Errorf("after the move the member's reservation is limited (%d bytes, %v)", rsvp.LimitData, rsvp.LimitDuration)
	}
}

// A member that was removed is disconnected by Recheck: it holds no
// member's reservation any more.
func TestRecheckDisconnectsARemovedMember(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	if _, err := f.reserve(t, f.a); err != nil {
		t.Fatal(err)
	}
	f.members.Delete(f.a.ID())
	if moved := f.svc.Recheck(); len(moved) != 1 || moved[0] != f.a.ID() {
		t.Fatalf("Recheck moved %v, want the removed member %s", moved, f.a.ID())
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.a.Network().Connectedness(f.r.ID()) == network.Connected {
		if time.Now().After(deadline) {
			t.Fatal("the removed member's connection to the relay was not closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := f.dialVia(t, f.b, f.a); err == nil {
		t.Errorf("a member reached the removed member through the relay")
	}
}

// A stranger's circuit to a member is a stranger's circuit: it carries the
// strangers' limits (marked limited on both ends, so neither runs sync over
// it, and cut at the data limit), whatever the stranger policy, so that a
// stranger cannot move unbounded data through the relay by way of a
// member (libp2p's ping alone echoes whatever it is sent).
func TestStrangerCircuitToAMemberIsLimited(t *testing.T) {
	for _, policy := range []string{StrangersLimited, StrangersOff} {
		t.Run(policy, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Strangers = policy
			cfg.StrangerLimit = relay.RelayLimit{Duration: time.Minute, Data: 32 << 10}
			f := newFixture(t, cfg)
			if _, err := f.reserve(t, f.a); err != nil {
				t.Fatalf("a member's reservation was refused: %v", err)
			}
			c, err := f.dialVia(t, f.s, f.a)
			if err != nil {
				t.Fatalf("a stranger could not reach a member (to pair): %v", err)
			}
			if !c.Stat().Limited {
				t.Errorf("the stranger's circuit to a member is not marked limited on the stranger's side")
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				conns := f.a.Network().ConnsToPeer(f.s.ID())
				if len(conns) == 1 {
					if !conns[0].Stat().Limited {
						t.Errorf("the stranger's circuit to a member is not marked limited on the member's side")
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the member sees %d connections from the stranger, want the relayed one", len(conns))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := echo(t.Context(), f.s, f.a.ID(), 1<<10); err != nil {
				t.Errorf("1 KiB (pairing's size) through the stranger's circuit: %v", err)
			}
			if got := f.svc.Status().StrangerCircuitsToMembers; got != 1 {
				t.Errorf("status counts %d stranger circuits to members, want 1", got)
			}
			if err := echo(t.Context(), f.s, f.a.ID(), 256<<10); err == nil {
				t.Errorf("256 KiB went through a stranger's circuit to a member, with strangers limited to 32 KiB")
			}
			// The relay cut the circuit at its limit: the stranger's share of
			// the member's circuits is given back.
			deadline = time.Now().Add(10 * time.Second)
			for f.svc.Status().StrangerCircuitsToMembers != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the stranger's circuit was cut at its limit, but its slot was not given back within 10s")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// What the service remembers of reservations (for Recheck) stays within
// the reservations the relays can hold: refused requests leave nothing
// behind, so strangers with fresh identities cannot grow it for ever.
func TestRefusedReservationsAreNotRemembered(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxReservations, cfg.MaxStrangerReservations = 1, 1
	f := newFixture(t, cfg)
	const strangers = 8
	granted := 0
	for i := 0; i < strangers; i++ {
		if _, err := f.reserve(t, newHost(t)); err == nil {
			granted++
		}
	}
	if granted != 1 {
		t.Errorf("%d of %d strangers got a reservation, with room for 1", granted, strangers)
	}
	f.svc.mu.Lock()
	remembered := len(f.svc.reserved)
	f.svc.mu.Unlock()
	if bound := cfg.MaxReservations + cfg.MaxStrangerReservations; remembered > bound {
		t.Errorf("the service remembers %d reservations after %d requests, more than the %d the relays can hold", remembered, strangers, bound)
	}
}

// A member's circuit is unlimited because both of its ends are members:
// once one of them is removed, Recheck ends it (the removed device, a
// stranger now, keeps no unlimited circuit, whether or not it ever reserved
// a slot).
func TestRecheckEndsARemovedMembersCircuits(t *testing.T) {
	f := newFixture(t, DefaultConfig())
	if _, err := f.reserve(t, f.a); err != nil {
		t.Fatal(err)
	}
	c, err := f.dialVia(t, f.b, f.a)
	if err != nil {
		t.Fatalf("member B could not reach member A through the relay: %v", err)
	}
	if c.Stat().Limited {
		t.Fatalf("the members' circuit is limited")
	}
	f.members.Delete(f.b.ID())
	f.svc.Recheck()
	deadline := time.Now().Add(10 * time.Second)
	for !c.IsClosed() {
		if time.Now().After(deadline) {
			t.Fatalf("B was removed, but its unlimited circuit to A is still open after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
