package node

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	p2pproto "github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/node/pairing"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

const metaInvite = "node/invite/" // + hex token ID: a stored invite

// storedInvite is what the inviter keeps of an invite (the token is needed
// to check proofs; it lives in the data directory, like the host key).
type storedInvite struct {
	Library   uuid.UUID `cbor:"1,keyasint"`
	Token     []byte    `cbor:"2,keyasint"`
	Expires   int64     `cbor:"3,keyasint"`
	SingleUse bool      `cbor:"4,keyasint"`
	Uses      int       `cbor:"5,keyasint"`
}

// Invite issues an invite code for the library: one copyable string with a
// join token valid for ttl (default 1 hour), usable once if singleUse.
func (l *Library) Invite(ctx context.Context, ttl time.Duration, singleUse bool) (string, error) {
	if err := l.check(ctx); err != nil {
		return "", err
	}
	if err := l.n.removedError(l.id); err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	n := l.n
	inv, err := pairing.NewInvite(l.id, n.host.ID(), n.host.Addrs(), ttl, singleUse, n.wall.Now())
	if err != nil {
		return "", err
	}
	id := inv.TokenID()
	b, err := cbor.Marshal(storedInvite{Library: l.id, Token: inv.Token[:], Expires: inv.Expires, SingleUse: singleUse})
	if err != nil {
		return "", fmt.Errorf("node: encoding invite: %w", err)
	}
	if err := n.st.Apply(&store.Batch{PutMeta: map[string][]byte{metaInvite + hex.EncodeToString(id[:]): b}}); err != nil {
		return "", fmt.Errorf("node: storing invite: %w", err)
	}
	return inv.Code(), nil
}

// Join uses an invite code: it dials the inviter, proves it holds the token
// over the authenticated connection, receives the library's secret and
// member list, and becomes a member; catch-up and backfill follow as with any
// member. If the inviter is not at the invite's addresses and discovery is
// on, Join looks for it (for at most a minute, or until ctx ends): by mDNS,
// and by looking its peer ID up in the DHT. A wrong, expired or used code
// is refused with an error that says which (errors.Is with
// pairing.ErrExpired, pairing.ErrUsed, pairing.ErrBadProof,
// pairing.ErrUnknown); a library this node holds already with
// ErrAlreadyMember (unless this device was removed from it: it joins
// again); an inviter that cannot be reached with ErrInviterUnreachable.
func (n *Node) Join(ctx context.Context, code string) (*Library, error) {
	inv, err := pairing.ParseCode(code)
	if err != nil {
		return nil, err
	}
	if err := n.ready(); err != nil {
		return nil, err
	}
	if libs, err := n.st.Libraries(); err == nil {
		for _, l := range libs {
			if l.ID == inv.Library && !n.isRemoved(l.ID) {
				return nil, fmt.Errorf("%w: library %q (%s) is on this node", ErrAlreadyMember, n.localName(l), l.ID)
			}
		}
	}
	if now := n.wall.Now(); now.After(inv.ExpiresAt()) {
		return nil, fmt.Errorf("%w at %s", pairing.ErrExpired, inv.ExpiresAt().Format(time.RFC3339))
	}
	info, err := inv.InviterInfo()
	if err != nil {
		return nil, err
	}
	if info.ID == n.host.ID() {
		return nil, errors.New("node: this invite was issued by this device")
	}
	// From the moment the inviter writes this device's record, members may
	// open streams to it: they wait for the join instead of being refused.
	defer n.joins.start(inv.Library)()
	n.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.TempAddrTTL)
	if err := n.reachInviter(ctx, info); err != nil {
		return nil, err
	}
	// Pairing is a few small frames: a limited relay may carry it.
	s, err := n.host.NewStream(network.WithAllowLimitedConn(ctx, "pairing"), info.ID, p2pproto.ID(pairing.ProtocolID))
	if err != nil {
		return nil, fmt.Errorf("node: opening the pairing stream: %w", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(n.cfg.StreamTimeout))
	tid := inv.TokenID()
	req := &pairing.JoinRequest{LibraryID: inv.Library, TokenID: tid[:], Device: n.device, Name: n.deviceName(),
		Proof: pairing.Proof(inv.Token, inv.Library, n.host.ID(), info.ID)}
	b, err := pairing.Encode(req)
	if err != nil {
		return nil, err
	}
	if err := protocol.WriteFrame(s, b); err != nil {
		return nil, fmt.Errorf("node: sending the join request: %w", err)
	}
	_ = s.CloseWrite()
	frame, err := protocol.ReadFrame(bufio.NewReader(s), pairing.MaxFrameSize)
	if err != nil {
		return nil, fmt.Errorf("node: reading the inviter's answer: %w", err)
	}
	m, err := pairing.Decode(frame)
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *pairing.JoinRefused:
		return nil, refusalError(m)
	case *pairing.JoinAccept:
		if m.LibraryID != inv.Library {
			return nil, fmt.Errorf("node: the inviter answered for library %s, the invite is for %s", m.LibraryID, inv.Library)
		}
		lib, err := n.acceptJoin(ctx, m)
		if err == nil {
			n.rememberInviter(info.ID)
		}
		return lib, err
	default:
		return nil, fmt.Errorf("node: unexpected pairing answer %T", m)
	}
}

func refusalError(r *pairing.JoinRefused) error {
	var base error
	switch r.Code {
	case pairing.RefusalExpired:
		base = pairing.ErrExpired
	case pairing.RefusalUsed:
		base = pairing.ErrUsed
	case pairing.RefusalBadToken:
		base = pairing.ErrBadProof
	default:
		base = pairing.ErrUnknown
	}
	return fmt.Errorf("%w: the inviter says: %s", base, r.Reason)
}

// acceptJoin stores the library and its members as the inviter sent them.
func (n *Node) acceptJoin(ctx context.Context, a *pairing.JoinAccept) (*Library, error) {
	members := []store.Member{{Library: a.LibraryID, DeviceID: n.device, PeerID: n.host.ID().String(), Name: n.deviceName()}}
	for _, mi := range a.Members {
		if mi.Device == n.device {
			continue
		}
		members = append(members, store.Member{Library: a.LibraryID, DeviceID: mi.Device, PeerID: mi.PeerID, Name: mi.Name})
		pid, _ := peer.Decode(mi.PeerID)
		for _, s := range mi.Addrs {
			if addr, err := ma.NewMultiaddr(s); err == nil {
				n.host.Peerstore().AddAddr(pid, addr, peerstore.PermanentAddrTTL)
				n.rememberAddr(pid, s)
			}
		}
	}
	// Expected before the library exists: its first pages count.
	n.progress.expect(a.LibraryID, int(min(a.Records, 1<<40)), n.wall.Now())
	err := n.do(ctx, func(now time.Time) error {
		// created_at is the library's, as the inviter holds it; an older
		// inviter does not send it, and the join's time stands in.
		created := a.CreatedAt
		if created == 0 {
			created = uint64(now.UnixMilli())
		}
		lib := store.Library{ID: a.LibraryID, Name: a.Name, Secret: a.Secret, CreatedAt: created}
		if err := n.uniqueName(lib); err != nil {
			return err
		}
		if err := n.eng.AddLibrary(now, lib, members); err != nil {
			return err
		}
		if err := n.clearRemoval(a.LibraryID, now); err != nil {
			return err
		}
		n.refreshMembers()
		return nil
	})
	if err != nil {
		return nil, err
	}
	n.kickDialer()
	return &Library{n: n, id: a.LibraryID}, nil
}

// handlePairing serves the inviter's side of a pairing stream.
func (n *Node) handlePairing(s network.Stream) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		_ = s.Reset()
		return
	}
	if err := s.Scope().SetService(serviceName); err != nil {
		_ = s.Reset()
		return
	}
	if err := s.Scope().ReserveMemory(pairing.MaxFrameSize, network.ReservationPriorityLow); err != nil {
		_ = s.Reset()
		return
	}
	defer s.Scope().ReleaseMemory(pairing.MaxFrameSize)
	_ = s.SetDeadline(time.Now().Add(n.cfg.StreamTimeout))
	joiner := s.Conn().RemotePeer()
	refuse := func(code, reason string) {
		n.countRefusal(fmt.Errorf("%w: pairing refused (%s)", protocol.ErrNotMember, code))
		n.log.Warn("pairing refused", "peer", joiner, "code", code, "reason", reason)
		if b, err := pairing.Encode(&pairing.JoinRefused{Code: code, Reason: reason}); err == nil {
			_ = protocol.WriteFrame(s, b)
		}
		_ = s.Close()
	}
	if !n.allowPairing(joiner) {
		refuse(pairing.RefusalRateLimited, "too many pairing attempts from this peer; try again in a minute")
		return
	}
	frame, err := protocol.ReadFrame(bufio.NewReader(s), pairing.MaxFrameSize)
	if err != nil {
		refuse(pairing.RefusalMalformed, "could not read the join request: "+err.Error())
		return
	}
	m, err := pairing.Decode(frame)
	if err != nil {
		refuse(pairing.RefusalMalformed, err.Error())
		return
	}
	req, ok := m.(*pairing.JoinRequest)
	if !ok {
		refuse(pairing.RefusalMalformed, "the first frame must be a JoinRequest")
		return
	}
	if n.isRemoved(req.LibraryID) {
		n.failedPairing(joiner)
		refuse(pairing.RefusalUnknown, "the inviting device was removed from the library: ask a member for a new invite")
		return
	}
	// The joiner becomes a member with its listen addresses known (identify
	// brings them), so that the JoinAccepts of devices joining after it
	// list them: a device that never met it could not reach it otherwise.
	n.awaitIdentify(s.Conn())
	accept, code, reason := n.admit(joiner, req)
	if accept == nil {
		n.failedPairing(joiner)
		refuse(code, reason)
		return
	}
	b, err := pairing.Encode(accept)
	if err != nil {
		refuse(pairing.RefusalInternal, "encoding the answer: "+err.Error())
		return
	}
	if err := protocol.WriteFrame(s, b); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
	n.log.Info("device joined", "library", req.LibraryID, "device", req.Device, "peer", joiner)
}

// identifyWait bounds how long pairing waits for identify of the joiner.
const identifyWait = 3 * time.Second

// awaitIdentify waits, at most identifyWait, until identify of c's peer has
// completed (its listen addresses are in the peerstore), if the host has an
// identify service.
func (n *Node) awaitIdentify(c network.Conn) {
	ids, ok := n.host.(interface{ IDService() identify.IDService })
	if !ok || ids.IDService() == nil {
		return
	}
	t := time.NewTimer(identifyWait)
	defer t.Stop()
	select {
	case <-ids.IDService().IdentifyWait(c):
	case <-t.C:
	case <-n.ctx.Done():
	}
}

// admit checks a join request and, if it is good, adds the joiner's device
// record and returns what to send it. Otherwise it returns a refusal code.
func (n *Node) admit(joiner peer.ID, req *pairing.JoinRequest) (*pairing.JoinAccept, string, string) {
	n.pairMu.Lock()
	defer n.pairMu.Unlock()
	key := metaInvite + hex.EncodeToString(req.TokenID)
	b, err := n.st.Meta(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, pairing.RefusalUnknown, "no invite with this token exists on this device"
	}
	if err != nil {
		return nil, pairing.RefusalInternal, "reading invites failed"
	}
	var inv storedInvite
	if err := cbor.Unmarshal(b, &inv); err != nil || len(inv.Token) != pairing.TokenSize {
		return nil, pairing.RefusalInternal, "the stored invite is unreadable"
	}
	var token [pairing.TokenSize]byte
	copy(token[:], inv.Token)
	switch {
	case inv.Library != req.LibraryID:
		return nil, pairing.RefusalUnknown, "the invite is for another library"
	case !pairing.CheckProof(token, req.LibraryID, joiner, n.host.ID(), req.Proof):
		return nil, pairing.RefusalBadToken, "the proof of the invite token is wrong"
	case n.wall.Now().Unix() > inv.Expires:
		return nil, pairing.RefusalExpired, fmt.Sprintf("the invite expired at %s", time.Unix(inv.Expires, 0).UTC().Format(time.RFC3339))
	case inv.SingleUse && inv.Uses > 0:
		return nil, pairing.RefusalUsed, "the invite was for one use and has been used"
	}
	if !n.holdsSecret(req.LibraryID) {
		// A library configured without pairing (AddLibrary) has no secret
		// to hand over; nothing is written for the joiner.
		return nil, pairing.RefusalUnknown, "this device cannot add members to the library (it does not hold its secret)"
	}
	inv.Uses++
	if nb, err := cbor.Marshal(inv); err == nil {
		if err := n.st.Apply(&store.Batch{PutMeta: map[string][]byte{key: nb}}); err != nil {
			return nil, pairing.RefusalInternal, "storing the invite's use failed"
		}
	}
	var accept *pairing.JoinAccept
	err = n.do(n.ctx, func(now time.Time) error {
		rec := DeviceRecord{PeerID: joiner.String(), Name: req.Name, AddedBy: n.device.String(), AddedAt: now.UnixMilli()}
		if _, err := n.eng.PutShared(now, req.LibraryID, DeviceModel, req.Device, encodeDevice(rec)); err != nil {
			return err
		}
		libs, err := n.st.Libraries()
		if err != nil {
			return err
		}
		accept = &pairing.JoinAccept{LibraryID: req.LibraryID, AddedBy: n.device}
		for _, l := range libs {
			if l.ID == req.LibraryID {
				accept.Name, accept.Secret, accept.CreatedAt = l.Name, l.Secret, l.CreatedAt
			}
		}
		ms, err := n.eng.Members(req.LibraryID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.DeviceID == req.Device {
				continue
			}
			mi := pairing.MemberInfo{Device: m.DeviceID, PeerID: m.PeerID, Name: m.Name}
			var addrs []ma.Multiaddr
			if m.DeviceID == n.device {
				addrs = n.host.Addrs()
			} else if pid, err := peer.Decode(m.PeerID); err == nil {
				addrs = n.host.Peerstore().Addrs(pid)
			}
			for _, a := range addrs {
				if len(mi.Addrs) < pairing.MaxAddrs {
					mi.Addrs = append(mi.Addrs, a.String())
				}
			}
			accept.Members = append(accept.Members, mi)
		}
		return nil
	})
	if err != nil || len(accept.Secret) == 0 {
		return nil, pairing.RefusalInternal, fmt.Sprintf("adding the device failed (%v)", err)
	}
	// The joiner's progress bar needs a total: count outside the loop
	// (a large library takes a moment), and send none if it fails.
	if k, err := countRecords(n.st, n.cfg.Registry, req.LibraryID); err == nil {
		accept.Records = uint64(k)
	}
	return accept, "", ""
}

// holdsSecret reports whether this node holds lib with a secret, which a
// JoinAccept hands over.
func (n *Node) holdsSecret(lib uuid.UUID) bool {
	libs, err := n.st.Libraries()
	if err != nil {
		return false
	}
	for _, l := range libs {
		if l.ID == lib {
			return len(l.Secret) > 0
		}
	}
	return false
}

// Pairing attempts are limited per peer: a peer with 5 failed attempts in a
// minute is refused until the minute is over.
type pairAttempts struct {
	since time.Time
	fails int
}

func (n *Node) allowPairing(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.pairFails[p]
	return a == nil || time.Since(a.since) > time.Minute || a.fails < 5
}

func (n *Node) failedPairing(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.pairFails[p]
	if a == nil || time.Since(a.since) > time.Minute {
		if len(n.pairFails) > 4096 {
			n.pairFails = make(map[peer.ID]*pairAttempts)
		}
		a = &pairAttempts{since: time.Now()}
		n.pairFails[p] = a
	}
	a.fails++
}

// joinWaits holds the libraries this node is joining. The inviter writes the
// joiner's device record before it answers, and from then on it (and any
// member that received the record) may open a session or a request stream to
// the joiner, possibly before the joiner has stored the JoinAccept. Such a
// stream waits for the join to end instead of being refused as not_member
// (PAIRING.md §5).
type joinWaits struct {
	mu sync.Mutex
	m  map[uuid.UUID]*joinWait
}

type joinWait struct {
	done  chan struct{}
	users int
}

// start registers a join of lib; the returned function ends it.
func (j *joinWaits) start(lib uuid.UUID) (end func()) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = make(map[uuid.UUID]*joinWait)
	}
	w := j.m[lib]
	if w == nil {
		w = &joinWait{done: make(chan struct{})}
		j.m[lib] = w
	}
	w.users++
	return func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		if w.users--; w.users == 0 {
			delete(j.m, lib)
			close(w.done)
		}
	}
}

// wait waits until no join of lib is in progress, or ctx ends. It reports
// whether there was one to wait for.
func (j *joinWaits) wait(ctx context.Context, lib uuid.UUID) bool {
	j.mu.Lock()
	w := j.m[lib]
	j.mu.Unlock()
	if w == nil {
		return false
	}
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	return true
}
