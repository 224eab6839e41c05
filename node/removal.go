package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// How a removed device learns that it was removed (PROTOCOL.md §7.7).
//
// A member that sees a device removed (the tombstone of its device record)
// keeps, per library, the removed device's peer ID and the tombstone's HLC
// (gone). It answers that peer's streams of the library with a not_member
// Error that names the removal, and sends the same Error as the only frame
// of a stream of its own (a removal notice) when the peer is connected. The
// removed device, told by a member of the library, marks the library
// removed: it stops syncing it, refuses writes and invites, and says so in
// its status; its records stay readable until it leaves the library.

// Meta keys of the store.
const (
	// metaRemoved + library ID: this device was removed from the library;
	// the value is the tombstone's HLC (hlc key encoding).
	metaRemoved = "node/removed/"
	// metaGone + library ID: the removed members of the library this node
	// tells (CBOR list of goneMember).
	metaGone = "node/gone/"
	// metaJoined + library ID: when this device last joined the library (ms
	// since the epoch, 8 bytes big endian); an older removal is stale.
	metaJoined = "node/joined/"
)

// ErrRemoved is returned for a write, an invite or a removal in a library
// this device was removed from. errors.As with *RemovedError gives who
// removed it and when.
var ErrRemoved = errors.New("node: this device was removed from the library")

// RemovedError is the error of an operation refused because this device
// was removed from the library.
type RemovedError struct {
	Library uuid.UUID
	Removal Removal
}

// Error says who removed this device, when, and what follows.
func (e *RemovedError) Error() string {
	return fmt.Sprintf("node: this device was removed from library %s by device %s at %s: it no longer syncs, and its records here are read-only (leave the library to forget it)",
		e.Library, e.Removal.By, e.Removal.At.Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrRemoved) hold.
func (e *RemovedError) Unwrap() error { return ErrRemoved }

// Removal says that this device was removed from a library.
type Removal struct {
	// By is the device that removed it.
	By uuid.UUID
	// At is when (the tombstone's wall time, by the remover's clock).
	At time.Time
	// Version is the HLC of the tombstone of this device's record.
	Version hlc.HLC
}

func removalOf(h hlc.HLC) Removal { return Removal{By: h.DeviceID, At: h.Time(), Version: h} }

// goneMember is a device removed from a library, as a member that saw it
// go keeps it: to tell the device when it comes back.
type goneMember struct {
	Device  uuid.UUID `cbor:"1,keyasint"`
	Peer    string    `cbor:"2,keyasint"`
	Removal []byte    `cbor:"3,keyasint"` // hlc key encoding
}

// maxGone bounds the removed members kept per library (the oldest go).
const maxGone = 256

// removedError returns the error for a library this device was removed
// from, or nil.
func (n *Node) removedError(lib uuid.UUID) error {
	n.mu.Lock()
	r, ok := n.removed[lib]
	n.mu.Unlock()
	if !ok {
		return nil
	}
	return &RemovedError{Library: lib, Removal: r}
}

// isRemoved reports whether this device was removed from lib.
func (n *Node) isRemoved(lib uuid.UUID) bool { return n.removedError(lib) != nil }

// loadRemovals reads the removal marks and the removed members of every
// library from the store; Start calls it before the engine loop runs.
func (n *Node) loadRemovals() error {
	libs, err := n.st.Libraries()
	if err != nil {
		return fmt.Errorf("node: reading libraries: %w", err)
	}
	removed := make(map[uuid.UUID]Removal)
	gone := make(map[uuid.UUID][]goneMember)
	for _, l := range libs {
		b, err := n.st.Meta(metaRemoved + l.ID.String())
		switch {
		case err == nil:
			h, err := hlc.FromKey(b)
			if err != nil {
				return fmt.Errorf("node: stored removal of library %s: %w", l.ID, err)
			}
			removed[l.ID] = removalOf(h)
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("node: reading the removal of library %s: %w", l.ID, err)
		}
		b, err = n.st.Meta(metaGone + l.ID.String())
		switch {
		case err == nil:
			var g []goneMember
			if err := cbor.Unmarshal(b, &g); err != nil {
				n.log.Warn("ignoring unreadable removed members", "library", l.ID, "err", err)
				continue
			}
			gone[l.ID] = g
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("node: reading the removed members of library %s: %w", l.ID, err)
		}
	}
	n.mu.Lock()
	n.removed, n.gone = removed, gone
	n.mu.Unlock()
	return nil
}

// markRemoved records that this device was removed from lib by the
// tombstone h, stops syncing lib and closes its sessions. A removal older
// than this device's last join of lib is stale (it was added again) and is
// ignored. It reports whether the library is now marked.
func (n *Node) markRemoved(lib uuid.UUID, h hlc.HLC) bool {
	if b, err := n.st.Meta(metaJoined + lib.String()); err == nil && len(b) == 8 {
		if h.Timestamp < binary.BigEndian.Uint64(b) {
			n.log.Debug("ignoring a removal older than this device's join", "library", lib, "removal", h)
			return false
		}
	}
	n.mu.Lock()
	_, already := n.removed[lib]
	n.mu.Unlock()
	if already {
		return true
	}
	if err := n.st.Apply(&store.Batch{PutMeta: map[string][]byte{metaRemoved + lib.String(): h.Key()}}); err != nil {
		n.log.Error("storing this device's removal", "library", lib, "err", err)
		return false
	}
	n.mu.Lock()
	n.removed[lib] = removalOf(h)
	var sessions []*session
	for k, s := range n.sessions {
		if k.lib == lib {
			sessions = append(sessions, s)
		}
	}
	n.mu.Unlock()
	for _, s := range sessions {
		s.close(fmt.Errorf("%w: this device was removed from library %s", protocol.ErrNotMember, lib))
	}
	n.log.Warn("this device was removed from the library: it no longer syncs it; its records stay readable until it leaves",
		"library", lib, "by", h.DeviceID, "at", h.Time().Format(time.RFC3339))
	return true
}

// clearRemoval forgets lib's removal mark (the device joined it again, or
// left it) and records when it joined, if it did.
func (n *Node) clearRemoval(lib uuid.UUID, joinedAt time.Time) error {
	b := &store.Batch{DropMeta: []string{metaRemoved + lib.String()}}
	if !joinedAt.IsZero() {
		b.PutMeta = map[string][]byte{metaJoined + lib.String(): binary.BigEndian.AppendUint64(nil, uint64(joinedAt.UnixMilli()))}
	} else {
		b.DropMeta = append(b.DropMeta, metaJoined+lib.String(), metaGone+lib.String(), metaName+lib.String())
	}
	if err := n.st.Apply(b); err != nil {
		return fmt.Errorf("node: storing the library's membership: %w", err)
	}
	n.mu.Lock()
	delete(n.removed, lib)
	if joinedAt.IsZero() {
		delete(n.gone, lib)
	}
	n.mu.Unlock()
	return nil
}

// onRemovalError handles an Error that says a device was removed, from the
// member device from of the Error's library (the caller checked both: the
// Error names the library of its stream, and the stream's peer is that
// member). If the removed device is this one, the library is marked
// removed.
func (n *Node) onRemovalError(from uuid.UUID, e *protocol.Error) {
	if e.RemovedDevice == nil || e.Removal == nil || *e.RemovedDevice != n.device {
		return
	}
	if n.isRemoved(e.LibraryID) {
		return
	}
	n.log.Info("a member says this device was removed from the library", "library", e.LibraryID, "member", from, "removal", *e.Removal)
	if n.markRemoved(e.LibraryID, *e.Removal) {
		// The member index drops the library: no more dials, sessions or
		// accepted streams of it.
		_ = n.do(n.ctx, func(time.Time) error { n.refreshMembers(); return nil })
	}
}

// recordGone updates the removed members of lib after its members changed
// from before to after: a member gone by a tombstone (tombs) is added, one
// that is a member again is dropped. It runs on the loop goroutine and
// returns the newly removed, for a removal notice.
func (n *Node) recordGone(lib uuid.UUID, before, after []store.Member, tombs map[uuid.UUID]hlc.HLC) []goneMember {
	n.mu.Lock()
	list := slices.Clone(n.gone[lib])
	n.mu.Unlock()
	isMember := make(map[uuid.UUID]bool, len(after))
	for _, m := range after {
		isMember[m.DeviceID] = true
	}
	changed := false
	list = slices.DeleteFunc(list, func(g goneMember) bool {
		if isMember[g.Device] {
			changed = true
			return true
		}
		return false
	})
	var added []goneMember
	for _, m := range before {
		h, deleted := tombs[m.DeviceID]
		if isMember[m.DeviceID] || !deleted || m.DeviceID == n.device || m.PeerID == "" {
			continue
		}
		g := goneMember{Device: m.DeviceID, Peer: m.PeerID, Removal: h.Key()}
		list = slices.DeleteFunc(list, func(o goneMember) bool { return o.Device == g.Device })
		list = append(list, g)
		added = append(added, g)
		changed = true
	}
	if !changed {
		return nil
	}
	if len(list) > maxGone {
		list = list[len(list)-maxGone:]
	}
	b, err := cbor.Marshal(list)
	if err == nil {
		err = n.st.Apply(&store.Batch{PutMeta: map[string][]byte{metaGone + lib.String(): b}})
	}
	if err != nil {
		n.log.Warn("storing removed members", "library", lib, "err", err)
		return nil
	}
	n.mu.Lock()
	n.gone[lib] = list
	n.mu.Unlock()
	return added
}

// goneError returns the not_member error for peer p in lib: one that names
// the removal when p is a device removed from lib.
func (n *Node) goneError(lib uuid.UUID, p peer.ID, err error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, g := range n.gone[lib] {
		if g.Peer != p.String() {
			continue
		}
		h, herr := hlc.FromKey(g.Removal)
		if herr != nil {
			break
		}
		return &goneErr{error: err, device: g.Device, removal: h}
	}
	return err
}

// goneErr is a not_member refusal of a removed device: its Error frame
// names the removal.
type goneErr struct {
	error
	device  uuid.UUID
	removal hlc.HLC
}

func (e *goneErr) Unwrap() error { return e.error }

// errorFrame is the Error frame for err: with the removal when err is a
// goneErr.
func errorFrame(lib uuid.UUID, err error) *protocol.Error {
	m := protocol.NewError(lib, err)
	var g *goneErr
	if errors.As(err, &g) && m.Code == protocol.CodeNotMember && lib != uuid.Nil {
		dev, h := g.device, g.removal
		m.RemovedDevice, m.Removal = &dev, &h
	}
	return m
}

// noticeInterval is the least time between two removal notices to one
// peer for one library.
const noticeInterval = time.Minute

// tellGone sends a removal notice to every removed device of any library
// that p is (if p is connected).
func (n *Node) tellGone(p peer.ID) {
	n.mu.Lock()
	var notices []struct {
		lib uuid.UUID
		g   goneMember
	}
	for lib, list := range n.gone {
		for _, g := range list {
			if g.Peer == p.String() {
				notices = append(notices, struct {
					lib uuid.UUID
					g   goneMember
				}{lib, g})
			}
		}
	}
	n.mu.Unlock()
	for _, x := range notices {
		n.sendRemovalNotice(p, x.lib, x.g)
	}
}

// sendRemovalNotice tells the removed device g of lib, at peer p, that it
// was removed: a stream of the sync protocol whose only frame is a
// not_member Error naming the removal. At most one per noticeInterval is
// delivered; one that fails (the peer went away as it was sent) does not
// count, so that its next connection gets one.
func (n *Node) sendRemovalNotice(p peer.ID, lib uuid.UUID, g goneMember) {
	h, err := hlc.FromKey(g.Removal)
	if err != nil || n.host == nil || n.host.Network().Connectedness(p) != network.Connected {
		return
	}
	key := noticeKey{lib: lib, peer: p}
	n.mu.Lock()
	if n.closed || time.Since(n.noticed[key]) < noticeInterval {
		n.mu.Unlock()
		return
	}
	if len(n.noticed) > 4096 {
		n.noticed = make(map[noticeKey]time.Time)
	}
	n.noticed[key] = time.Now()
	n.wg.Add(1) // under mu, before Close (which sets closed under mu) waits
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		delivered := false
		defer func() {
			if !delivered { // the next connection tries again
				n.mu.Lock()
				delete(n.noticed, key)
				n.mu.Unlock()
			}
		}()
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamTimeout)
		defer cancel()
		s, err := n.host.NewStream(network.WithAllowLimitedConn(ctx, "a removal notice is one small frame"), p, ProtocolID)
		if err != nil {
			n.log.Debug("removal notice not sent", "peer", p, "library", lib, "err", err)
			return
		}
		_ = s.Scope().SetService(serviceName)
		_ = s.SetDeadline(time.Now().Add(n.cfg.StreamTimeout))
		err = n.newWriter(s).WriteMessage(errorFrame(lib, &goneErr{
			error:  fmt.Errorf("%w: device %s was removed from library %s", protocol.ErrNotMember, g.Device, lib),
			device: g.Device, removal: h,
		}))
		if err != nil {
			_ = s.Reset()
			return
		}
		delivered = true
		_ = s.CloseWrite()
		// Wait (bounded) for the device to read it and end its side; an
		// older peer answers unexpected and resets: either is fine.
		_, _ = bufio.NewReader(s).Discard(1 << 16)
		_ = s.Close()
		n.log.Info("told a removed device that it was removed", "library", lib, "device", g.Device, "peer", p)
	}()
}

// noticeKey names the removal notices to one peer for one library.
type noticeKey struct {
	lib  uuid.UUID
	peer peer.ID
}
