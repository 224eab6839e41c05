package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/node/pairing"
	"github.com/syncnode/syncnode/store"
)

// DeviceModel is the shared model type whose records are a library's
// members: record ID = device ID, payload = DeviceRecord. Every member
// replicates it like any shared record, so every member knows every member,
// and deleting a device's record removes it everywhere.
const DeviceModel = pairing.DeviceModel

// DeviceRecord is the payload of a device record (docs/PAIRING.md §6).
type DeviceRecord = pairing.DeviceRecord

// encodeDevice returns a device record's payload in deterministic CBOR.
func encodeDevice(d DeviceRecord) []byte { return d.Encode() }

// effectiveMembers computes a library's members: every live device record,
// plus every configured member that has no device record at all yet (a
// joiner knows the members from its invite before their records reach it).
// A deleted device record removes its device, whatever the configuration;
// tombs holds the version of every deleted device record.
func (n *Node) effectiveMembers(lib uuid.UUID, configured []store.Member) (_ []store.Member, tombs map[uuid.UUID]hlc.HLC, _ error) {
	records := make(map[uuid.UUID]store.Record)
	after := uuid.Nil
	for {
		page, err := n.st.List(lib, DeviceModel, after, 500)
		if err != nil {
			return nil, nil, fmt.Errorf("node: reading device records: %w", err)
		}
		for _, r := range page {
			records[r.ID] = r
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	byDevice := make(map[uuid.UUID]store.Member)
	tombs = make(map[uuid.UUID]hlc.HLC)
	for _, m := range configured {
		if _, has := records[m.DeviceID]; !has {
			byDevice[m.DeviceID] = m
		}
	}
	for id, r := range records {
		if r.Deleted {
			tombs[id] = r.Version
			continue
		}
		d, err := pairing.DecodeDeviceRecord(r.Data)
		if err != nil {
			n.log.Warn("ignoring a malformed device record", "library", lib, "device", id, "err", err)
			continue
		}
		m := store.Member{Library: lib, DeviceID: id, PeerID: d.PeerID, Name: d.Name, AddedAt: uint64(d.AddedAt)}
		if by, err := uuid.Parse(d.AddedBy); err == nil {
			m.AddedBy = by
		}
		for _, c := range configured {
			if c.DeviceID == id {
				m.LastSeen = c.LastSeen
			}
		}
		byDevice[id] = m
	}
	out := make([]store.Member, 0, len(byDevice))
	for _, m := range byDevice {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b store.Member) int { return compareUUID(a.DeviceID, b.DeviceID) })
	return out, tombs, nil
}

func compareUUID(a, b uuid.UUID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// syncMembership brings the engine's member list of lib in line with its
// device records. It runs on the loop goroutine.
func (n *Node) syncMembership(now time.Time, lib uuid.UUID) error {
	configured, err := n.eng.Members(lib)
	if err != nil {
		return err
	}
	eff, tombs, err := n.effectiveMembers(lib, configured)
	if err != nil {
		return err
	}
	if sameMembers(configured, eff) {
		return nil
	}
	if err := n.eng.SetMembers(now, lib, eff); err != nil {
		return err
	}
	self := false
	for _, m := range eff {
		self = self || m.DeviceID == n.device
	}
	if h, ok := tombs[n.device]; !self && ok && h.DeviceID != n.device {
		// Another member removed this device, and the tombstone reached
		// it (relayed by a member that did not know yet).
		n.markRemoved(lib, h)
	}
	for _, g := range n.recordGone(lib, configured, eff, tombs) {
		if pid, err := peer.Decode(g.Peer); err == nil {
			n.sendRemovalNotice(pid, lib, g)
		}
	}
	n.refreshMembers()
	n.kickDialer()
	return nil
}

func sameMembers(a, b []store.Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].DeviceID != b[i].DeviceID || a[i].PeerID != b[i].PeerID || a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

// deviceEvents returns the libraries whose device records changed.
func deviceEvents(events []engine.Event) []uuid.UUID {
	var libs []uuid.UUID
	for _, ev := range events {
		if ev.ModelType == DeviceModel && !slices.Contains(libs, ev.Library) {
			libs = append(libs, ev.Library)
		}
	}
	return libs
}

// CreateLibrary creates a new library with a random secret, with this
// device as its only member (its device record is the first change of the
// library). Invite other devices with Library.Invite.
func (n *Node) CreateLibrary(ctx context.Context, name string) (*Library, error) {
	if name == "" || len(name) > 256 {
		return nil, errors.New("node: a library needs a name of 1 to 256 bytes")
	}
	id := uuid.New()
	secret := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, secret); err != nil {
		return nil, fmt.Errorf("node: making a library secret: %w", err)
	}
	if err := n.ready(); err != nil {
		return nil, err
	}
	self := store.Member{Library: id, DeviceID: n.device, PeerID: n.host.ID().String(), Name: n.deviceName()}
	err := n.do(ctx, func(now time.Time) error {
		if err := n.nameFree(name, uuid.Nil); err != nil {
			return err
		}
		if err := n.eng.AddLibrary(now, store.Library{ID: id, Name: name, Secret: secret, CreatedAt: uint64(now.UnixMilli())}, []store.Member{self}); err != nil {
			return err
		}
		rec := DeviceRecord{PeerID: self.PeerID, Name: self.Name, AddedAt: now.UnixMilli()}
		if _, err := n.eng.PutShared(now, id, DeviceModel, n.device, encodeDevice(rec)); err != nil {
			return fmt.Errorf("node: writing this device's record: %w", err)
		}
		n.refreshMembers()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Library{n: n, id: id}, nil
}

// ErrNameTaken is returned when a library is created with the name of
// another library this node holds: names are unique on a node.
var ErrNameTaken = errors.New("node: this node holds a library of that name already")

// ErrAlreadyMember is returned by Join for a library this node holds (and
// was not removed from).
var ErrAlreadyMember = errors.New("node: this device is already a member of the library")

// nameFree returns ErrNameTaken if a library other than except has the
// name.
func (n *Node) nameFree(name string, except uuid.UUID) error {
	libs, err := n.st.Libraries()
	if err != nil {
		return fmt.Errorf("node: reading libraries: %w", err)
	}
	for _, l := range libs {
		if l.ID != except && n.localName(l) == name {
			return fmt.Errorf("%w: %q is library %s (names are unique on a node)", ErrNameTaken, name, l.ID)
		}
	}
	return nil
}

// deviceName is the name this device gives itself in device records.
func (n *Node) deviceName() string {
	if n.cfg.DeviceName != "" {
		return n.cfg.DeviceName
	}
	return "device " + n.device.String()[:8]
}

// RemoveDevice removes a device from the library: its device record is
// deleted (a tombstone that every member receives), after which every
// member refuses its streams and stops dialling it.
func (l *Library) RemoveDevice(ctx context.Context, device uuid.UUID) error {
	if device == l.n.device {
		return errors.New("node: a device cannot remove itself; use Leave")
	}
	if err := l.n.removedError(l.id); err != nil {
		return err
	}
	return l.n.do(ctx, func(now time.Time) error {
		if !l.n.eng.IsMember(l.id, device) {
			return fmt.Errorf("node: device %s is not a member of library %s", device, l.id)
		}
		_, err := l.n.eng.DeleteShared(now, l.id, DeviceModel, device)
		if errors.Is(err, engine.ErrNotFound) {
			// A configured member without a record: write one to delete it,
			// so that the removal travels like any other.
			ms, _ := l.n.eng.Members(l.id)
			rec := DeviceRecord{AddedBy: l.n.device.String(), AddedAt: now.UnixMilli()}
			for _, m := range ms {
				if m.DeviceID == device {
					rec.PeerID, rec.Name = m.PeerID, m.Name
				}
			}
			if _, err = l.n.eng.PutShared(now, l.id, DeviceModel, device, encodeDevice(rec)); err == nil {
				_, err = l.n.eng.DeleteShared(now, l.id, DeviceModel, device)
			}
		}
		return err
	})
}

// Members returns the library's member devices.
func (l *Library) Members(ctx context.Context) ([]Member, error) {
	var out []Member
	err := l.n.do(ctx, func(time.Time) error {
		ms, err := l.n.eng.Members(l.id)
		if err != nil {
			return err
		}
		for _, m := range ms {
			pid, _ := peer.Decode(m.PeerID)
			out = append(out, Member{Device: m.DeviceID, Peer: pid, Name: m.Name, Addrs: l.n.host.Peerstore().Addrs(pid)})
		}
		return nil
	})
	return out, err
}

// Leave takes this device out of the library. Its device record is deleted,
// so every member drops it once the tombstone reaches them; Leave waits (at
// most 10 s, or until ctx ends) until every connected member has
// acknowledged the tombstone or closed its session, then forgets the
// library. With deleteData it also deletes the local copy of the library's
// records and history, in the same store batch that forgets the library (the
// deletion itself runs in the background; a crash before it finishes leaves
// the data on disk, unlisted); otherwise they stay on disk, unsynced.
func (l *Library) Leave(ctx context.Context, deleteData bool) error {
	n := l.n
	var h hlc.HLC
	removed := n.isRemoved(l.id)
	err := n.do(ctx, func(now time.Time) error {
		if removed {
			return nil // removed already: nothing to withdraw, nobody to tell
		}
		var err error
		h, err = n.eng.DeleteShared(now, l.id, DeviceModel, n.device)
		if errors.Is(err, engine.ErrNotFound) {
			return nil // a configured member without a record: nothing to withdraw
		}
		return err
	})
	if err != nil {
		return err
	}
	if !h.IsZero() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			done := true
			err := n.do(ctx, func(time.Time) error {
				states, err := n.eng.Peers(l.id)
				if err != nil {
					return err
				}
				for _, s := range states {
					if s.Connected && n.eng.Acked(l.id, s.Device, DeviceModel, n.device).Less(h) {
						done = false
					}
				}
				return nil
			})
			if err != nil || done {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	err = n.do(ctx, func(now time.Time) error {
		if err := n.eng.RemoveLibrary(now, l.id, deleteData); err != nil {
			return err
		}
		if err := n.clearRemoval(l.id, time.Time{}); err != nil {
			return err
		}
		n.refreshMembers()
		return nil
	})
	if err != nil {
		return err
	}
	n.log.Info("left library", "library", l.id, "deleted", deleteData)
	return nil
}
