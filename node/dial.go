package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/store"
)

// dialState is the backoff of one member peer, and how its last dial
// went.
type dialState struct {
	next    time.Time
	backoff time.Duration
	busy    bool
	// lastAt is when the last dial ended, lastErr its error ("" when it
	// connected).
	lastAt  time.Time
	lastErr string
}

// maxDialError bounds the text of a dial error kept for status (libp2p
// lists every address it tried).
const maxDialError = 1000

// kickDialer makes the dialer look again now.
func (n *Node) kickDialer() {
	n.mu.Lock()
	k := n.kick
	n.mu.Unlock()
	if k == nil {
		return
	}
	select {
	case k <- struct{}{}:
	default:
	}
}

// dialer keeps every member connected and every session open. Only the
// device with the smaller ID opens a session stream (and dials first), so
// two peers that find each other at once never race into two sessions; the
// other dials only after a grace period, in case only it knows an address.
func (n *Node) dialer() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReconnectMin)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kickChan():
		}
		n.maintain()
	}
}

func (n *Node) kickChan() chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.kick == nil {
		n.kick = make(chan struct{}, 1)
	}
	return n.kick
}

// maintain dials members that are not connected (with backoff) and opens
// the sessions this device is responsible for.
func (n *Node) maintain() {
	now := time.Now()
	type want struct {
		p    peer.ID
		libs map[uuid.UUID]uuid.UUID
	}
	n.mu.Lock()
	var peers []want
	for p, libs := range n.members {
		peers = append(peers, want{p: p, libs: libs})
	}
	n.mu.Unlock()
	for _, w := range peers {
		conn := n.host.Network().Connectedness(w.p)
		// A member reached only through a relay (limited or not) is
		// dialled for a direct connection too, with backoff: an address
		// that works may have come (mDNS on a LAN, a port mapping).
		relayedOnly := conn != network.NotConnected && n.pathTo(w.p).Kind == "relayed"
		if conn == network.Connected && !relayedOnly {
			n.mu.Lock()
			if d := n.dialing[w.p]; d != nil {
				d.backoff = 0
			}
			n.mu.Unlock()
		}
		if conn != network.NotConnected {
			// Sessions move to a direct connection, hole punches are
			// retried; a limited relay carries no session (ensureSession).
			n.maintainPaths(w.p, now)
			for lib, device := range w.libs {
				n.ensureSession(w.p, lib, device)
			}
		}
		if conn == network.NotConnected || relayedOnly {
			n.dial(w.p, w.libs, now, relayedOnly)
		}
	}
}

// dial connects to member p, with backoff; direct dials only direct
// addresses (the peer is reached through a relay already).
func (n *Node) dial(p peer.ID, libs map[uuid.UUID]uuid.UUID, now time.Time, direct bool) {
	addrs := n.host.Peerstore().Addrs(p)
	if direct {
		addrs = slices.DeleteFunc(addrs, isRelayAddr)
	}
	if len(addrs) == 0 {
		return // no address known yet: discovery or a Hello will bring one
	}
	smaller := true
	for _, device := range libs {
		smaller = smaller && lessDevice(n.device, device)
	}
	n.mu.Lock()
	d := n.dialing[p]
	if d == nil {
		d = &dialState{}
		if !smaller {
			// Let the smaller device dial first.
			d.next = now.Add(2*n.cfg.ReconnectMin + time.Duration(rand.Int64N(int64(n.cfg.ReconnectMin))))
		}
		n.dialing[p] = d
	}
	if d.busy || now.Before(d.next) {
		n.mu.Unlock()
		return
	}
	d.busy = true
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamTimeout)
		// A relayed connection, even a limited one, is worth having: a
		// hole punch starts from it. Once there is one, only a direct
		// connection is worth dialling for.
		dctx := network.WithAllowLimitedConn(ctx, "a relayed connection coordinates a hole punch")
		if direct {
			dctx = network.WithForceDirectDial(ctx, "only a relay connects us")
		}
		err := n.host.Connect(dctx, peer.AddrInfo{ID: p})
		cancel()
		n.mu.Lock()
		d.busy = false
		prev := d.lastErr
		d.lastAt, d.lastErr = time.Now(), ""
		if err != nil {
			d.lastErr = err.Error()
			if onlyBackoff(d.lastErr) && prev != "" {
				// libp2p did not dial again so soon: the reason is the
				// last dial's.
				d.lastErr = prev
			}
			if len(d.lastErr) > maxDialError {
				d.lastErr = d.lastErr[:maxDialError] + "…"
			}
			// Exponential backoff with jitter, capped.
			if d.backoff == 0 {
				d.backoff = n.cfg.ReconnectMin
			} else if d.backoff *= 2; d.backoff > n.cfg.ReconnectMax {
				d.backoff = n.cfg.ReconnectMax
			}
			jitter := time.Duration(rand.Int64N(int64(d.backoff)/2 + 1))
			d.next = time.Now().Add(d.backoff/2 + jitter)
		} else {
			d.backoff = 0
		}
		n.mu.Unlock()
		if err != nil {
			n.log.Debug("dial failed", "peer", p, "err", err)
		} else {
			n.kickDialer()
		}
	}()
}

// onlyBackoff reports whether a dial error says, for every address, only
// that libp2p holds the address back after a recent failure.
func onlyBackoff(msg string) bool {
	_, rest, ok := strings.Cut(msg, "\n")
	if !ok {
		return strings.HasSuffix(msg, "dial backoff")
	}
	for _, l := range strings.Split(rest, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasSuffix(l, "dial backoff") {
			return false
		}
	}
	return true
}

// ensureSession opens the session with device for lib if this device is the
// one that opens it and none is open.
func (n *Node) ensureSession(p peer.ID, lib, device uuid.UUID) {
	if !lessDevice(n.device, device) {
		return
	}
	key := sessionKey{lib: lib, device: device}
	n.mu.Lock()
	if n.sessions[key] != nil || n.opening[key] || n.closed {
		n.mu.Unlock()
		return
	}
	n.opening[key] = true
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			delete(n.opening, key)
			n.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamTimeout)
		// A sync stream never opens on a limited connection: libp2p refuses
		// it without network.WithAllowLimitedConn, and waits while ctx lasts
		// for an unlimited one. A relay limits a circuit when one of its
		// ends is a stranger to it (a public relay, or a member's relay that
		// does not share this library), and cuts it at the limit, mid-page.
		s, err := n.host.NewStream(ctx, p, ProtocolID)
		cancel()
		if err != nil {
			n.log.Debug("opening session failed", "peer", p, "library", lib, "err", err)
			return
		}
		if err := s.Scope().SetService(serviceName); err != nil {
			_ = s.Reset()
			return
		}
		n.runSession(key, s, bufio.NewReader(s), nil)
	}()
}

// ---- addresses ----

// rememberAddr stores an address a member was reached at, for reconnects.
func (n *Node) rememberAddr(p peer.ID, addr string) {
	key := metaAddrs + p.String()
	old, err := n.st.Meta(key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return
	}
	addrs := strings.Fields(string(old))
	for _, a := range addrs {
		if a == addr {
			return
		}
	}
	addrs = append([]string{addr}, addrs...)
	if len(addrs) > 8 {
		addrs = addrs[:8]
	}
	_ = n.st.Apply(&store.Batch{PutMeta: map[string][]byte{key: []byte(strings.Join(addrs, "\n"))}})
}

// AddAddrs tells the node where a member can be reached; they are stored
// and used for every later reconnect.
func (n *Node) AddAddrs(p peer.ID, addrs ...ma.Multiaddr) error {
	if err := n.ready(); err != nil {
		return err
	}
	n.host.Peerstore().AddAddrs(p, addrs, peerstore.PermanentAddrTTL)
	for _, a := range addrs {
		n.rememberAddr(p, a.String())
	}
	n.kickDialer()
	return nil
}

// loadAddrs puts the stored addresses of members into the peerstore.
func (n *Node) loadAddrs() error {
	n.mu.Lock()
	var peers []peer.ID
	for p := range n.members {
		peers = append(peers, p)
	}
	n.mu.Unlock()
	for _, p := range peers {
		b, err := n.st.Meta(metaAddrs + p.String())
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("node: reading addresses of %s: %w", p, err)
		}
		for _, s := range strings.Fields(string(b)) {
			if a, err := ma.NewMultiaddr(s); err == nil {
				n.host.Peerstore().AddAddr(p, a, peerstore.PermanentAddrTTL)
			}
		}
	}
	return nil
}
