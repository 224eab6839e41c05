// Package relayservice runs a Circuit Relay v2 service that treats the
// members of the node's libraries differently from strangers.
//
// libp2p's relay applies one limit to every circuit. This service runs three
// of them on one host and chooses, for each hop stream, which one serves it:
//
//   - the members' relay has no limit: a circuit between two members carries
//     sync traffic for as long and as much as they need, and the connection
//     it makes is not "limited", so sync streams may use it;
//   - the strangers' relay has libp2p's default limits (2 minutes, 128 KiB
//     each way): it serves reservations of peers that are no member (a
//     public relay's courtesy: enough to coordinate a hole punch), or, with
//     Strangers set to "off", none at all;
//   - the visitors' relay serves the circuits of strangers to members, with
//     the strangers' limits: it holds a copy of every member's reservation.
//
// A reservation goes to the members' relay if the reserving peer is a
// member (and a copy to the visitors' relay), else to the strangers' relay.
// A connect request goes to the relay that holds the destination's
// reservation: the strangers' relay when the destination is a stranger, the
// members' relay when both ends are members, the visitors' relay when a
// stranger asks for a member. A stranger may reach a member that way (to
// pair with it: an invite names the member's relayed addresses), whatever
// Strangers says, but its circuit is limited and marked so on both ends (no
// sync runs over it), and it holds at most MaxStrangerCircuitsPerMember such
// circuits per member and MaxStrangerCircuits in all, so strangers cannot use
// up a member's circuits nor the relay's bandwidth.
//
// The relays count reservations, circuits and bytes (Status), and all of
// them answer within libp2p's resource manager (the "libp2p.relay" service's
// limits), so no one can exhaust the host.
package relayservice

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/util"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	protobuf "google.golang.org/protobuf/proto"
)

// Values of Config.Strangers.
const (
	// StrangersLimited serves strangers' reservations with libp2p's
	// default limits.
	StrangersLimited = "limited"
	// StrangersOff serves no stranger a reservation.
	StrangersOff = "off"
)

// HopProtocol is the protocol a relay serves and that identifies one.
const HopProtocol = protocol.ID(proto.ProtoIDv2Hop)

// maxHopMessage bounds the first message of a hop stream, as libp2p's own
// relay does.
const maxHopMessage = 4096

// hopTimeout bounds the read of a hop stream's first message.
const hopTimeout = time.Minute

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("relayservice: closed")

// Config tunes the service. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	// Strangers is StrangersLimited (default) or StrangersOff.
	Strangers string
	// MaxReservations bounds the reservations held by members, and
	// MaxStrangerReservations those held by strangers. Defaults 128 and 64.
	MaxReservations         int
	MaxStrangerReservations int
	// MaxCircuits bounds the circuits one peer may have open through the
	// relay (either end). Default 16.
	MaxCircuits int
	// MaxStrangerCircuitsPerMember bounds the circuits strangers may have
	// open to one member, and MaxStrangerCircuits to all members together.
	// Defaults 4 and 64.
	MaxStrangerCircuitsPerMember int
	MaxStrangerCircuits          int
	// ReservationTTL is how long a reservation lasts unless renewed.
	// Default 1 h.
	ReservationTTL time.Duration
	// StrangerLimit is what one circuit of a stranger may carry; default
	// libp2p's (2 minutes, 128 KiB each way).
	StrangerLimit relay.RelayLimit
	// AllowPrivateAddrs puts the relay's private and loopback addresses
	// into the reservations it grants (tests on one machine); by default
	// only public ones, which are the only ones that help a peer behind a
	// NAT.
	AllowPrivateAddrs bool
}

// DefaultConfig returns the production configuration.
func DefaultConfig() Config {
	return Config{
		Strangers:                    StrangersLimited,
		MaxReservations:              128,
		MaxStrangerReservations:      64,
		MaxCircuits:                  16,
		MaxStrangerCircuitsPerMember: 4,
		MaxStrangerCircuits:          64,
		ReservationTTL:               time.Hour,
		StrangerLimit:                *relay.DefaultLimit(),
	}
}

// Validate reports what cannot work, in plain words.
func (c Config) Validate() error {
	var errs []error
	if c.Strangers != StrangersLimited && c.Strangers != StrangersOff {
		errs = append(errs, fmt.Errorf("relay strangers must be %q or %q, is %q", StrangersLimited, StrangersOff, c.Strangers))
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"MaxReservations", c.MaxReservations}, {"MaxStrangerReservations", c.MaxStrangerReservations},
		{"MaxCircuits", c.MaxCircuits}, {"MaxStrangerCircuitsPerMember", c.MaxStrangerCircuitsPerMember},
		{"MaxStrangerCircuits", c.MaxStrangerCircuits}} {
		if v.n < 1 {
			errs = append(errs, fmt.Errorf("relay %s must be at least 1, is %d", v.name, v.n))
		}
	}
	if c.ReservationTTL < time.Minute {
		errs = append(errs, fmt.Errorf("relay ReservationTTL must be at least a minute, is %v", c.ReservationTTL))
	}
	if c.StrangerLimit.Duration <= 0 || c.StrangerLimit.Data <= 0 {
		errs = append(errs, fmt.Errorf("relay StrangerLimit must have a positive duration and data, is %v and %d bytes", c.StrangerLimit.Duration, c.StrangerLimit.Data))
	}
	return errors.Join(errs...)
}

// Status counts what the service did since Start.
type Status struct {
	// Running is true between Start and Close.
	Running bool `json:"running"`
	// StrangerPolicy is Config.Strangers.
	StrangerPolicy string `json:"stranger_policy"`
	// Members is the members' relay (the circuits, bytes and refused
	// connects of strangers to members included), Strangers the strangers'
	// relay.
	Members   ClassStatus `json:"members"`
	Strangers ClassStatus `json:"strangers"`
	// StrangerCircuitsToMembers counts the open circuits from strangers
	// to members.
	StrangerCircuitsToMembers int `json:"stranger_circuits_to_members"`
}

// ClassStatus counts one relay's work.
type ClassStatus struct {
	// Reservations are held now; Circuits are open now.
	Reservations int `json:"reservations"`
	Circuits     int `json:"circuits"`
	// Refused counts reservation and connect requests answered with
	// anything but OK.
	Refused int `json:"refused"`
	// Bytes counts the bytes relayed.
	Bytes int64 `json:"bytes"`
}

// Service is the relay service. Its methods are safe for concurrent use.
type Service struct {
	h        host.Host
	isMember func(peer.ID) bool
	cfg      Config

	mu       sync.Mutex
	started  bool
	closed   bool
	members  *relay.Relay
	strange  *relay.Relay
	visit    *relay.Relay // strangers' circuits to members
	mHandler network.StreamHandler
	sHandler network.StreamHandler
	vHandler network.StreamHandler
	mCount   *counter
	sCount   *counter
	vCount   *counter // counts circuits only: its reservations are copies
	// links counts the open circuits from strangers to each member.
	links      map[peer.ID]int
	linksTotal int
	// circuits are the open circuits of the members' relay, with their
	// ends: Recheck ends those of which an end is no member any more.
	circuits map[*replayStream][2]peer.ID
	// reserved is the class (member or not) in which each peer holds a
	// reservation granted by the members' or the strangers' relay, and
	// since when: Recheck moves those whose membership changed. It follows
	// the relays (see captureHost): a reservation leaves it when it expires
	// or its peer disconnects, so it holds no more than the relays do.
	reserved map[peer.ID]reservation
	notifiee network.Notifiee
}

// reservation is the class a peer reserved as.
type reservation struct {
	member bool
	at     time.Time
}

// New prepares the service on host h; isMember says whether a peer is a
// member of any of the node's libraries (it must be fast and safe for
// concurrent use). New starts nothing.
func New(h host.Host, isMember func(peer.ID) bool, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relayservice: %w", err)
	}
	return &Service{h: h, isMember: isMember, cfg: cfg, links: make(map[peer.ID]int),
		circuits: make(map[*replayStream][2]peer.ID), reserved: make(map[peer.ID]reservation)}, nil
}

// Start runs the relays and serves the hop protocol on the host.
func (s *Service) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return errors.New("relayservice: already started")
	}
	filter := manet.IsPublicAddr
	if s.cfg.AllowPrivateAddrs {
		filter = func(ma.Multiaddr) bool { return true }
	}
	s.mCount, s.sCount = &counter{}, &counter{}

	mRes := relay.DefaultResources()
	mRes.Limit = nil
	mRes.MaxReservations = s.cfg.MaxReservations
	mRes.MaxCircuits = s.cfg.MaxCircuits
	mRes.ReservationTTL = s.cfg.ReservationTTL
	// Members behind one NAT share its address: the per-IP and per-ASN
	// bounds guard against strangers, not against a user's own devices.
	mRes.MaxReservationsPerIP = s.cfg.MaxReservations
	mRes.MaxReservationsPerASN = s.cfg.MaxReservations
	mHost := &captureHost{Host: s.h, granted: s.reservationGranted(true), ended: s.reservationEnded(true)}
	m, err := relay.New(mHost,
		relay.WithResources(mRes),
		relay.WithACL(memberACL{s}),
		relay.WithReservationAddressFilter(filter),
		relay.WithMetricsTracer(s.mCount))
	if err != nil {
		return fmt.Errorf("relayservice: starting the members' relay: %w", err)
	}

	sRes := relay.DefaultResources()
	limit := s.cfg.StrangerLimit
	sRes.Limit = &limit
	sRes.MaxReservations = s.cfg.MaxStrangerReservations
	sRes.MaxCircuits = s.cfg.MaxCircuits
	sRes.ReservationTTL = s.cfg.ReservationTTL
	sHost := &captureHost{Host: s.h, granted: s.reservationGranted(false), ended: s.reservationEnded(false)}
	st, err := relay.New(sHost,
		relay.WithResources(sRes),
		relay.WithACL(strangerACL{s}),
		relay.WithReservationAddressFilter(filter),
		relay.WithMetricsTracer(s.sCount))
	if err != nil {
		_ = m.Close()
		return fmt.Errorf("relayservice: starting the strangers' relay: %w", err)
	}

	// The visitors' relay: members' reservations (copies of those the
	// members' relay holds, see shadowReserve) and strangers' circuits to
	// them, with the strangers' limits.
	vRes := mRes
	vLimit := s.cfg.StrangerLimit
	vRes.Limit = &vLimit
	vHost := &captureHost{Host: s.h}
	s.vCount = &counter{circuitsOnly: true}
	v, err := relay.New(vHost,
		relay.WithResources(vRes),
		relay.WithACL(memberACL{s}),
		relay.WithReservationAddressFilter(filter),
		relay.WithMetricsTracer(s.vCount))
	if err != nil {
		_ = m.Close()
		_ = st.Close()
		return fmt.Errorf("relayservice: starting the visitors' relay: %w", err)
	}
	s.members, s.strange, s.visit = m, st, v
	s.mHandler, s.sHandler, s.vHandler = mHost.handler, sHost.handler, vHost.handler
	if s.mHandler == nil || s.sHandler == nil || s.vHandler == nil {
		_ = m.Close()
		_ = st.Close()
		_ = v.Close()
		return errors.New("relayservice: libp2p's relay registered no hop handler")
	}
	s.started = true
	s.notifiee = &network.NotifyBundle{DisconnectedF: func(nw network.Network, c network.Conn) {
		if p := c.RemotePeer(); nw.Connectedness(p) != network.Connected {
			s.mu.Lock()
			delete(s.reserved, p) // the relays drop its reservation too
			s.mu.Unlock()
		}
	}}
	s.h.Network().Notify(s.notifiee)
	s.h.SetStreamHandler(HopProtocol, s.handleHop)
	return nil
}

// Close stops serving the hop protocol and closes both relays (their
// circuits end). It is safe to call more than once.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	m, st, v := s.members, s.strange, s.visit
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.h.RemoveStreamHandler(HopProtocol)
	s.h.Network().StopNotify(s.notifiee)
	return errors.Join(m.Close(), st.Close(), v.Close())
}

// Status returns the service's counters.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Running: s.started && !s.closed, StrangerPolicy: s.cfg.Strangers, StrangerCircuitsToMembers: s.linksTotal}
	if s.mCount != nil {
		st.Members = s.mCount.status()
		v := s.vCount.status()
		st.Members.Circuits += v.Circuits
		st.Members.Refused += v.Refused
		st.Members.Bytes += v.Bytes
		st.Strangers = s.sCount.status()
	}
	return st
}

// handleHop reads the first message of a hop stream and hands the stream,
// that message replayed in front of the rest, to the relay that serves it.
func (s *Service) handleHop(str network.Stream) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		_ = str.Reset()
		return
	}
	_ = str.SetReadDeadline(time.Now().Add(hopTimeout))
	raw, msg, err := readHop(str)
	if err != nil {
		writeStatus(str, pbv2.Status_MALFORMED_MESSAGE)
		return
	}
	_ = str.SetReadDeadline(time.Time{})
	replay := &replayStream{Stream: str, r: io.MultiReader(bytes.NewReader(raw), str)}
	src := str.Conn().RemotePeer()
	switch msg.GetType() {
	case pbv2.HopMessage_RESERVE:
		if s.isMember(src) {
			s.shadowReserve(str, raw)
			s.mHandler(replay)
		} else {
			s.sHandler(replay)
		}
	case pbv2.HopMessage_CONNECT:
		dest, err := util.PeerToPeerInfoV2(msg.GetPeer())
		if err != nil {
			writeStatus(str, pbv2.Status_MALFORMED_MESSAGE)
			return
		}
		if !s.isMember(dest.ID) {
			s.sHandler(replay)
			return
		}
		if s.isMember(src) {
			s.trackCircuit(replay, src, dest.ID)
			s.mHandler(replay)
			return
		}
		if !s.takeLink(dest.ID, replay) {
			writeStatus(str, pbv2.Status_RESOURCE_LIMIT_EXCEEDED)
			return
		}
		s.vHandler(replay)
		// The relay returns at once when it refuses, and when it splices
		// (the circuit then lives on in its goroutines, which end the
		// stream with Close or Reset). A refusal has closed the stream too.
	default:
		writeStatus(str, pbv2.Status_MALFORMED_MESSAGE)
	}
}

// reservationGranted returns what a relay of the class member calls when
// it grants p a reservation (a renewal too): it is noted for Recheck.
func (s *Service) reservationGranted(member bool) func(peer.ID) {
	return func(p peer.ID) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.reserved[p] = reservation{member: member, at: time.Now()}
	}
}

// reservationEnded returns what a relay of the class member calls when p's
// reservation with it expires.
func (s *Service) reservationEnded(member bool) func(peer.ID) {
	return func(p peer.ID) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r, ok := s.reserved[p]; ok && r.member == member {
			delete(s.reserved, p)
		}
	}
}

// shadowReserve gives member p, which asks the members' relay for a
// reservation with the message raw, the same reservation in the visitors'
// relay, so that strangers can reach it there (limited). The visitors'
// relay answers on a stream of its own that reads raw and discards what is
// written: p gets one answer, the members' relay's.
func (s *Service) shadowReserve(str network.Stream, raw []byte) {
	s.vHandler(&shadowStream{Stream: str, conn: str.Conn(), r: bytes.NewReader(raw)})
}

// Recheck moves the reservations of peers whose membership changed. A
// stranger that became a member (it reserved before it joined) is given a
// member's reservation on the connection it has (its old one lapses): it is
// not disconnected, for it may be pairing with this node, or through it,
// right now. A member that was removed is disconnected; if it still wants a
// relay it reserves again, as a stranger. The members' circuits of which an
// end is no member any more end. It returns the peers whose reservation it
// moved. Call it when the members change; it does not block.
func (s *Service) Recheck() []peer.ID {
	s.mu.Lock()
	snapshot := make(map[peer.ID]reservation, len(s.reserved))
	for p, r := range s.reserved {
		snapshot[p] = r
	}
	circuits := make(map[*replayStream][2]peer.ID, len(s.circuits))
	for str, ends := range s.circuits {
		circuits[str] = ends
	}
	s.mu.Unlock()
	for str, ends := range circuits {
		if !s.isMember(ends[0]) || !s.isMember(ends[1]) {
			_ = str.Reset()
		}
	}
	var moved, joined, removed []peer.ID
	for p, r := range snapshot { // isMember may take the node's lock: not under ours
		switch member := s.isMember(p); {
		case member == r.member:
			continue
		case member:
			joined = append(joined, p)
		default:
			removed = append(removed, p)
		}
		moved = append(moved, p)
	}
	s.mu.Lock()
	for _, p := range removed {
		if s.reserved[p] == snapshot[p] {
			delete(s.reserved, p)
		}
	}
	s.mu.Unlock()
	for _, p := range removed {
		go func() { _ = s.h.Network().ClosePeer(p) }()
	}
	for _, p := range joined {
		s.reserveFor(p)
	}
	return moved
}

// reserveFor gives member p a reservation in the members' and the
// visitors' relays, as if it had asked for one on a direct connection it
// has to this host (what a relay grants, it grants on such a connection
// only), the answers discarded; p's next renewal finds it there.
func (s *Service) reserveFor(p peer.ID) {
	var conn network.Conn
	for _, c := range s.h.Network().ConnsToPeer(p) {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err != nil && !c.IsClosed() {
			conn = c
			break
		}
	}
	if conn == nil {
		return // disconnected: the relays dropped its reservation
	}
	var raw bytes.Buffer
	if err := util.NewDelimitedWriter(&raw).WriteMsg(&pbv2.HopMessage{Type: pbv2.HopMessage_RESERVE.Enum()}); err != nil {
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	s.mHandler(&shadowStream{conn: conn, r: bytes.NewReader(raw.Bytes())})
	s.vHandler(&shadowStream{conn: conn, r: bytes.NewReader(raw.Bytes())})
}

// trackCircuit lists the members' circuit on stream str, between src and
// dest, until the stream ends.
func (s *Service) trackCircuit(str *replayStream, src, dest peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	str.onEnd = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.circuits, str)
	}
	s.circuits[str] = [2]peer.ID{src, dest}
}

// takeLink counts a stranger's circuit (on stream str) to member, if the
// bounds allow it, and makes str give it back (once) when it ends.
func (s *Service) takeLink(member peer.ID, str *replayStream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.links[member] >= s.cfg.MaxStrangerCircuitsPerMember || s.linksTotal >= s.cfg.MaxStrangerCircuits {
		return false
	}
	s.links[member]++
	s.linksTotal++
	var once sync.Once
	str.onEnd = func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.links[member]--; s.links[member] <= 0 {
				delete(s.links, member)
			}
			s.linksTotal--
		})
	}
	return true
}

// readHop reads one length-delimited HopMessage without reading past it,
// returning its bytes (length prefix included) and the message.
func readHop(r io.Reader) ([]byte, *pbv2.HopMessage, error) {
	var prefix []byte
	var one [1]byte
	var size uint64
	for shift := 0; ; shift += 7 {
		if shift > 63 || len(prefix) >= binary.MaxVarintLen64 {
			return nil, nil, errors.New("hop message length is not a varint")
		}
		if _, err := io.ReadFull(r, one[:]); err != nil {
			return nil, nil, fmt.Errorf("reading hop message length: %w", err)
		}
		prefix = append(prefix, one[0])
		size |= uint64(one[0]&0x7f) << shift
		if one[0] < 0x80 {
			break
		}
	}
	if size > maxHopMessage {
		return nil, nil, fmt.Errorf("hop message of %d bytes, more than %d", size, maxHopMessage)
	}
	raw := make([]byte, len(prefix)+int(size))
	copy(raw, prefix)
	if _, err := io.ReadFull(r, raw[len(prefix):]); err != nil {
		return nil, nil, fmt.Errorf("reading hop message: %w", err)
	}
	var msg pbv2.HopMessage
	if err := protobuf.Unmarshal(raw[len(prefix):], &msg); err != nil {
		return nil, nil, fmt.Errorf("decoding hop message: %w", err)
	}
	return raw, &msg, nil
}

// writeStatus answers a hop stream with a status and closes it.
func writeStatus(s network.Stream, status pbv2.Status) {
	_ = s.SetWriteDeadline(time.Now().Add(hopTimeout))
	msg := pbv2.HopMessage{Type: pbv2.HopMessage_STATUS.Enum(), Status: status.Enum()}
	if err := util.NewDelimitedWriter(s).WriteMsg(&msg); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// replayStream is a stream whose first bytes were already read: Read
// returns them again before the rest. onEnd, if set, runs once when the
// stream is closed or reset.
type replayStream struct {
	network.Stream
	r     io.Reader
	onEnd func()
}

func (s *replayStream) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *replayStream) Close() error {
	err := s.Stream.Close()
	s.end()
	return err
}

func (s *replayStream) Reset() error {
	err := s.Stream.Reset()
	s.end()
	return err
}

func (s *replayStream) ResetWithError(code network.StreamErrorCode) error {
	err := s.Stream.ResetWithError(code)
	s.end()
	return err
}

func (s *replayStream) end() {
	if s.onEnd != nil {
		s.onEnd()
	}
}

// shadowStream is a reservation request as a relay sees it when the
// service makes one for a member (shadowReserve, reserveFor): the
// connection is the member's, the request is read from r, the answer is
// discarded, and the resource scope is a null one (there is no stream to
// account, or it is the members' relay's). Stream, the stream the request
// came on if any, is only there to complete the interface: the relay uses
// none of its other methods.
type shadowStream struct {
	network.Stream
	conn network.Conn
	r    io.Reader
}

func (s *shadowStream) Conn() network.Conn                           { return s.conn }
func (s *shadowStream) Read(p []byte) (int, error)                   { return s.r.Read(p) }
func (s *shadowStream) Write(p []byte) (int, error)                  { return len(p), nil }
func (s *shadowStream) Close() error                                 { return nil }
func (s *shadowStream) CloseRead() error                             { return nil }
func (s *shadowStream) CloseWrite() error                            { return nil }
func (s *shadowStream) Reset() error                                 { return nil }
func (s *shadowStream) ResetWithError(network.StreamErrorCode) error { return nil }
func (s *shadowStream) SetDeadline(time.Time) error                  { return nil }
func (s *shadowStream) SetReadDeadline(time.Time) error              { return nil }
func (s *shadowStream) SetWriteDeadline(time.Time) error             { return nil }
func (s *shadowStream) Scope() network.StreamScope                   { return &network.NullScope{} }

// captureHost is the host as one relay sees it: the hop handler it
// registers is kept (the service registers its own) and never removed from
// the real host by it; and, if granted is set, the reservations it grants
// and those that expire are told (granted, ended), by the tag libp2p's relay
// puts on a peer with a reservation in the connection manager.
type captureHost struct {
	host.Host
	handler        network.StreamHandler
	granted, ended func(peer.ID)
}

// reservationTag is the connection manager tag libp2p's relay (v0.51)
// gives a peer when it grants it a reservation, and removes when the
// reservation expires.
const reservationTag = "relay-reservation"

func (h *captureHost) ConnManager() connmgr.ConnManager {
	if h.granted == nil {
		return h.Host.ConnManager()
	}
	return reservationWatch{ConnManager: h.Host.ConnManager(), h: h}
}

// reservationWatch is the connection manager as a relay sees it: it tells
// the captureHost of the reservation tags.
type reservationWatch struct {
	connmgr.ConnManager
	h *captureHost
}

func (w reservationWatch) TagPeer(p peer.ID, tag string, v int) {
	w.ConnManager.TagPeer(p, tag, v)
	if tag == reservationTag {
		w.h.granted(p)
	}
}

func (w reservationWatch) UntagPeer(p peer.ID, tag string) {
	w.ConnManager.UntagPeer(p, tag)
	if tag == reservationTag {
		w.h.ended(p)
	}
}

func (h *captureHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	if pid == HopProtocol {
		h.handler = handler
		return
	}
	h.Host.SetStreamHandler(pid, handler)
}

func (h *captureHost) RemoveStreamHandler(pid protocol.ID) {
	if pid == HopProtocol {
		return
	}
	h.Host.RemoveStreamHandler(pid)
}

// memberACL admits only members' reservations; connects reach the
// members' and visitors' relays only for member destinations (handleHop
// decides which), and are all allowed.
type memberACL struct{ s *Service }

func (a memberACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return a.s.isMember(p) }
func (a memberACL) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool {
	return true
}

// strangerACL admits strangers' reservations when the policy allows them,
// and connects to whoever holds a reservation there.
type strangerACL struct{ s *Service }

func (a strangerACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	return a.s.cfg.Strangers == StrangersLimited && !a.s.isMember(p)
}
func (a strangerACL) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return true }

// counter is a relay.MetricsTracer that keeps the counts Status reports.
// With circuitsOnly it ignores reservations (the visitors' relay holds
// copies of the members').
type counter struct {
	circuitsOnly bool
	reservations atomic.Int64
	circuits     atomic.Int64
	refused      atomic.Int64
	bytes        atomic.Int64
}

var _ relay.MetricsTracer = (*counter)(nil)

func (c *counter) status() ClassStatus {
	return ClassStatus{Reservations: int(max(c.reservations.Load(), 0)), Circuits: int(max(c.circuits.Load(), 0)),
		Refused: int(c.refused.Load()), Bytes: c.bytes.Load()}
}

func (c *counter) RelayStatus(bool)               {}
func (c *counter) ConnectionOpened()              { c.circuits.Add(1) }
func (c *counter) ConnectionClosed(time.Duration) { c.circuits.Add(-1) }
func (c *counter) ConnectionRequestHandled(st pbv2.Status) {
	if st != pbv2.Status_OK {
		c.refused.Add(1)
	}
}
func (c *counter) ReservationAllowed(renewal bool) {
	if !renewal && !c.circuitsOnly {
		c.reservations.Add(1)
	}
}
func (c *counter) ReservationClosed(n int) {
	if !c.circuitsOnly {
		c.reservations.Add(-int64(n))
	}
}
func (c *counter) ReservationRequestHandled(st pbv2.Status) {
	if st != pbv2.Status_OK && !c.circuitsOnly {
		c.refused.Add(1)
	}
}
func (c *counter) BytesTransferred(n int) { c.bytes.Add(int64(n)) }
