package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/node"
)

// waitRemoved waits until the device holding lib has marked it removed,
// and returns the removal.
func waitRemoved(t *testing.T, n *node.Node, lib uuid.UUID, what string) node.Removal {
	t.Helper()
	var got *node.Removal
	eventually(t, 90*time.Second, func() bool {
		libs, err := n.Libraries()
		if err != nil {
			return false
		}
		for _, l := range libs {
			if l.ID == lib && l.Removed != nil {
				got = l.Removed
				return true
			}
		}
		return false
	}, func() string { return what })
	return *got
}

// A device removed while connected learns it from the member that removed
// it: it marks the library removed (status says by whom), refuses writes
// and invites with ErrRemoved, and keeps its records readable. Joining
// again with a new invite makes it a member again.
func TestRemovedDeviceIsTold(t *testing.T) {
	ctx := context.Background()
	a, _, c, onA, _, onC := pairedTrio(t)
	tag := uuid.New()
	if _, err := onA.PutShared(ctx, "tag", tag, data(t, "kept")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onC, "tag", tag, data(t, "kept"))

	if err := onA.RemoveDevice(ctx, c.Device()); err != nil {
		t.Fatal(err)
	}
	r := waitRemoved(t, c, onA.ID(), "the removed device never learned that it was removed")
	if r.By != a.Device() {
		t.Errorf("the removal names device %s as the remover, want %s", r.By, a.Device())
	}
	st, err := onC.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed == nil || st.Removed.By != a.Device() {
		t.Errorf("status of the removed library: removed %+v", st.Removed)
	}
	_, err = onC.PutShared(ctx, "tag", uuid.New(), data(t, "after"))
	var re *node.RemovedError
	if !errors.Is(err, node.ErrRemoved) || !errors.As(err, &re) || re.Removal.By != a.Device() ||
		!strings.Contains(err.Error(), "removed from library") {
		t.Fatalf("a write to the removed library: %v, want ErrRemoved naming the remover", err)
	}
	if _, err := onC.Invite(ctx, time.Hour, false); !errors.Is(err, node.ErrRemoved) {
		t.Fatalf("an invite of the removed library: %v, want ErrRemoved", err)
	}
	if rec, err := onC.Get(ctx, "tag", tag); err != nil || rec.Deleted {
		t.Fatalf("the removed device's records must stay readable: %+v, %v", rec, err)
	}

	// Invited again, it is a member again and writes reach the others.
	code, err := onA.Invite(ctx, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, code); err != nil {
		t.Fatalf("joining again after a removal: %v", err)
	}
	libs, _ := c.Libraries()
	for _, l := range libs {
		if l.ID == onA.ID() && l.Removed != nil {
			t.Fatalf("still marked removed after joining again: %+v", l.Removed)
		}
	}
	again := uuid.New()
	if _, err := onC.PutShared(ctx, "tag", again, data(t, "back")); err != nil {
		t.Fatalf("a write after joining again: %v", err)
	}
	waitRecord(t, onA, "tag", again, data(t, "back"))
}

// A device removed while it was offline learns it on its next contact with
// any member, here one that did not remove it (the remover is offline by
// then), and the mark survives a restart.
func TestRemovedWhileOfflineLearnsOnReturn(t *testing.T) {
	ctx := context.Background()
	a, b := startPaired(t, "laptop"), startPaired(t, "phone")
	dirC := t.TempDir()
	c := startNamed(t, dirC, "tablet", nil)
	onA, code := photosWithInvite(t, a, false)
	onB, err := b.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, code); err != nil {
		t.Fatal(err)
	}
	cDevice := c.Device()
	// B knows C as a member before C goes away.
	eventually(t, 10*time.Second, func() bool {
		ms, _ := onB.Members(ctx)
		return len(ms) == 3
	}, func() string { return "B never saw three members" })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	if err := onA.RemoveDevice(ctx, cDevice); err != nil {
		t.Fatal(err)
	}
	waitNotMember(t, onB, cDevice, "B never learned of the removal")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	c = startNamed(t, dirC, "tablet", nil)
	waitRemoved(t, c, onA.ID(), "the device removed while offline never learned it from the member it met")
	if _, err := c.Library(onA.ID()).PutShared(ctx, "tag", uuid.New(), data(t, "x")); !errors.Is(err, node.ErrRemoved) {
		t.Fatalf("a write after learning of the removal: %v, want ErrRemoved", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = startNamed(t, dirC, "tablet", nil)
	libs, err := c.Libraries()
	if err != nil || len(libs) != 1 || libs[0].Removed == nil {
		t.Fatalf("after a restart the removal is forgotten: %+v, %v", libs, err)
	}
}

// Joining a library the node holds is refused as "already a member", and
// changes nothing (created_at stays).
func TestJoinTwiceSaysAlreadyMember(t *testing.T) {
	ctx := context.Background()
	a, b := startPaired(t, "laptop"), startPaired(t, "phone")
	_, code := photosWithInvite(t, a, false)
	if _, err := b.Join(ctx, code); err != nil {
		t.Fatal(err)
	}
	before, _ := b.Libraries()
	time.Sleep(5 * time.Millisecond)
	_, err := b.Join(ctx, code)
	if !errors.Is(err, node.ErrAlreadyMember) || !strings.Contains(err.Error(), "photos") {
		t.Fatalf("joining twice: %v, want ErrAlreadyMember naming the library", err)
	}
	after, _ := b.Libraries()
	if len(after) != 1 || after[0].CreatedAt != before[0].CreatedAt {
		t.Fatalf("joining twice changed the library: before %+v, after %+v", before, after)
	}
}

// created_at is the library's: the same on the creator, on a joiner and
// on a device that joined through the joiner.
func TestCreatedAtIsTheLibrarys(t *testing.T) {
	ctx := context.Background()
	a, b, c := startPaired(t, "laptop"), startPaired(t, "phone"), startPaired(t, "tablet")
	onA, err := a.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	libsA, _ := a.Libraries()
	time.Sleep(20 * time.Millisecond) // a join's own clock would differ
	code, _ := onA.Invite(ctx, time.Hour, false)
	onB, err := b.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	code2, _ := onB.Invite(ctx, time.Hour, false)
	if _, err := c.Join(ctx, code2); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*node.Node{"joiner": b, "the joiner's joiner": c} {
		libs, _ := n.Libraries()
		if len(libs) != 1 || !libs[0].CreatedAt.Equal(libsA[0].CreatedAt) {
			t.Errorf("%s: created_at %v, the creator's %v", name, libs[0].CreatedAt, libsA[0].CreatedAt)
		}
	}
}

// Library names are unique on a node: creating a second "photos" is
// refused; joining another device's "photos" gives it a name of its own
// here ("photos (2)"), while invites from here still carry its own name.
func TestLibraryNamesAreUniqueOnANode(t *testing.T) {
	ctx := context.Background()
	a, b, c := startPaired(t, "laptop"), startPaired(t, "phone"), startPaired(t, "tablet")
	onA, err := a.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateLibrary(ctx, "photos"); !errors.Is(err, node.ErrNameTaken) {
		t.Fatalf("a second library named photos: %v, want ErrNameTaken", err)
	}
	if _, err := b.CreateLibrary(ctx, "photos"); err != nil {
		t.Fatal(err)
	}
	code, _ := onA.Invite(ctx, time.Hour, false)
	onB, err := b.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	libs, _ := b.Libraries()
	for _, l := range libs {
		names[l.Name] = true
	}
	if len(libs) != 2 || !names["photos"] || !names["photos (2)"] {
		t.Fatalf("B's libraries: %+v, want photos and photos (2)", libs)
	}
	code2, _ := onB.Invite(ctx, time.Hour, false)
	if _, err := c.Join(ctx, code2); err != nil {
		t.Fatal(err)
	}
	libs, _ = c.Libraries()
	if len(libs) != 1 || libs[0].Name != "photos" {
		t.Fatalf("C, joining through B, holds %+v: want the library's own name", libs)
	}
}

// An inviter that cannot be reached gives an error that says so, what was
// tried and what to check (not a bare dial error).
func TestUnreachableInviter(t *testing.T) {
	ctx := context.Background()
	a, b := startPaired(t, "laptop"), startPaired(t, "phone")
	onA, err := a.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := onA.Invite(ctx, time.Hour, false)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = b.Join(ctx, code)
	var ue *node.UnreachableError
	if !errors.Is(err, node.ErrInviterUnreachable) || !errors.As(err, &ue) {
		t.Fatalf("joining with an inviter that is gone: %v, want ErrInviterUnreachable", err)
	}
	for _, want := range []string{"cannot be reached", "127.0.0.1", "discovery is off", "firewall"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if libs, _ := b.Libraries(); len(libs) != 0 {
		t.Fatalf("a failed join left libraries: %+v", libs)
	}
}

// The backfill counts records, each once, however many changes of each
// the shared log holds: it ends at what the inviter announced, never at a
// multiple of it.
func TestBackfillCountsRecordsOnce(t *testing.T) {
	ctx := context.Background()
	a, b := startPaired(t, "laptop"), startPaired(t, "phone")
	onA, err := a.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	const tags, writes = 200, 5
	ids := make([]uuid.UUID, tags)
	for i := range ids {
		ids[i] = uuid.New()
	}
	for w := 0; w < writes; w++ {
		for i, id := range ids {
			if _, err := onA.PutShared(ctx, "tag", id, data(t, i*writes+w)); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, _ := onA.Invite(ctx, time.Hour, true)
	onB, err := b.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	var st node.LibraryStatus
	eventually(t, 20*time.Second, func() bool {
		st, err = onB.Status(ctx)
		return err == nil && st.Backfill != nil && st.Backfill.Done
	}, func() string { return "the backfill never ended" })
	// The inviter's records: the tags and both device records.
	if st.Backfill.Expected != tags+2 || st.Backfill.Received != tags+2 {
		t.Fatalf("backfill %d of %d records, want %d of %d (the log held %d changes of the tags)",
			st.Backfill.Received, st.Backfill.Expected, tags+2, tags+2, tags*writes)
	}
	if st.Received < tags*writes {
		t.Errorf("received counts %d changes, want at least the %d of the log", st.Received, tags*writes)
	}
}

// A member whose only connection to this device began before it was a
// member (identify ran while it was a stranger) is still dialled after a
// restart: its listen addresses are stored once it becomes a member. Here
// the phone connects to the tablet before either joins; once both have,
// the laptop (the only other member) goes away and the tablet restarts:
// it must reach the phone again by itself.
func TestMemberMetAsStrangerIsRedialledAfterRestart(t *testing.T) {
	ctx := context.Background()
	a, b := startPaired(t, "laptop"), startPaired(t, "phone")
	dirC := t.TempDir()
	c := startNamed(t, dirC, "tablet", nil)
	if err := b.Host().Connect(ctx, peer.AddrInfo{ID: c.Host().ID(), Addrs: c.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	onA, code := photosWithInvite(t, a, false)
	// The tablet joins first, so the laptop's JoinAccept cannot give it
	// the phone's addresses: only the connection the phone opened can.
	onC, err := c.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	onB, err := b.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	first := uuid.New()
	if _, err := onB.PutShared(ctx, "tag", first, data(t, "before")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onC, "tag", first, data(t, "before"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	tag := uuid.New()
	if _, err := onB.PutShared(ctx, "tag", tag, data(t, "while the tablet was off")); err != nil {
		t.Fatal(err)
	}

	c = startNamed(t, dirC, "tablet", nil)
	waitRecord(t, c.Library(onA.ID()), "tag", tag, data(t, "while the tablet was off"))
}
