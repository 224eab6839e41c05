package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/node/pairing"
	"github.com/syncnode/syncnode/protocol"
)

// startPaired starts a node with its own data directory and no library.
func startPaired(t *testing.T, name string) *node.Node {
	t.Helper()
	return startNamed(t, t.TempDir(), name, nil)
}

// startNamed starts a node on dir with the local configuration, changed by
// tweak if not nil, and closes it when the test ends.
func startNamed(t *testing.T, dir, name string, tweak func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultLocalConfig()
	cfg.DataDir = dir
	cfg.DeviceName = name
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := node.New(cfg, node.WithLogger(logger().With("node", name)))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// photosWithInvite creates the library "photos" on n and an invite of it,
// valid for an hour (single-use if singleUse).
func photosWithInvite(t *testing.T, n *node.Node, singleUse bool) (*node.Library, string) {
	t.Helper()
	lib, err := n.CreateLibrary(context.Background(), "photos")
	if err != nil {
		t.Fatal(err)
	}
	code, err := lib.Invite(context.Background(), time.Hour, singleUse)
	if err != nil {
		t.Fatal(err)
	}
	return lib, code
}

// pairedTrio starts three devices; the first creates a library and the
// other two join it with one multi-use invite.
func pairedTrio(t *testing.T) (a, b, c *node.Node, onA, onB, onC *node.Library) {
	t.Helper()
	ctx := context.Background()
	a, b, c = startPaired(t, "laptop"), startPaired(t, "phone"), startPaired(t, "tablet")
	onA, code := photosWithInvite(t, a, false)
	var err error
	if onB, err = b.Join(ctx, code); err != nil {
		t.Fatal(err)
	}
	if onC, err = c.Join(ctx, code); err != nil {
		t.Fatal(err)
	}
	return a, b, c, onA, onB, onC
}

// waitNotMember waits until lib no longer lists device among its members.
func waitNotMember(t *testing.T, lib *node.Library, device uuid.UUID, what string) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		ms, err := lib.Members(context.Background())
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Device == device {
				return false
			}
		}
		return true
	}, func() string { return what })
}

func waitRecord(t *testing.T, lib *node.Library, model string, id uuid.UUID, want []byte) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		r, err := lib.Get(context.Background(), model, id)
		return err == nil && bytes.Equal(r.Data, want)
	}, func() string { return fmt.Sprintf("%s/%s never arrived", model, id) })
}

// Two strangers become members of one library with one invite code and
// sync; a third device joins with a code from the second, and all three sync.
func TestPairingTwoStrangersSync(t *testing.T) {
	ctx := context.Background()
	a, b, c := startPaired(t, "laptop"), startPaired(t, "phone"), startPaired(t, "tablet")
	onA, code := photosWithInvite(t, a, true)
	onB, err := b.Join(ctx, code)
	if err != nil {
		t.Fatalf("joining with a fresh code: %v", err)
	}
	if onB.ID() != onA.ID() {
		t.Fatalf("joined library %s, invited to %s", onB.ID(), onA.ID())
	}
	tag := uuid.New()
	if _, err := onA.PutShared(ctx, "tag", tag, data(t, "from the laptop")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onB, "tag", tag, data(t, "from the laptop"))
	loc := uuid.New()
	if _, err := onB.PutOwned(ctx, "location", loc, data(t, "phone's disk")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onA, "location", loc, data(t, "phone's disk"))

	// Any member can invite.
	code2, err := onB.Invite(ctx, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	onC, err := c.Join(ctx, code2)
	if err != nil {
		t.Fatalf("joining through the second member: %v", err)
	}
	waitRecord(t, onC, "tag", tag, data(t, "from the laptop"))
	fromC := uuid.New()
	if _, err := onC.PutShared(ctx, "album", fromC, data(t, "from the tablet")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onA, "album", fromC, data(t, "from the tablet")) // A learned C from B's device record
	waitRecord(t, onB, "album", fromC, data(t, "from the tablet"))
	eventually(t, 10*time.Second, func() bool {
		ms, err := onA.Members(ctx)
		return err == nil && len(ms) == 3
	}, func() string { ms, _ := onA.Members(ctx); return fmt.Sprintf("A knows %d members, want 3", len(ms)) })
}

// A wrong, expired or used code is refused with a clear error on both sides.
func TestPairingRefusals(t *testing.T) {
	ctx := context.Background()
	a, b, c := startPaired(t, "laptop"), startPaired(t, "phone"), startPaired(t, "tablet")
	onA, err := a.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}

	expired, err := onA.Invite(ctx, time.Millisecond, false)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // expiry has a resolution of one second
	if _, err := b.Join(ctx, expired); !errors.Is(err, pairing.ErrExpired) {
		t.Fatalf("joining with an expired code: %v, want ErrExpired", err)
	}

	once, err := onA.Invite(ctx, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(ctx, once); err != nil {
		t.Fatalf("first use of a single-use code: %v", err)
	}
	if _, err := c.Join(ctx, once); !errors.Is(err, pairing.ErrUsed) {
		t.Fatalf("second use of a single-use code: %v, want ErrUsed", err)
	}

	// A code whose token was changed names no invite the inviter knows.
	inv, err := pairing.ParseCode(once)
	if err != nil {
		t.Fatal(err)
	}
	inv.Token[0] ^= 0xff
	if _, err := c.Join(ctx, inv.Code()); !errors.Is(err, pairing.ErrUnknown) {
		t.Fatalf("joining with a forged token: %v, want ErrUnknown", err)
	}
	if _, err := c.Join(ctx, "syncnode1-not-a-code"); !errors.Is(err, pairing.ErrMalformed) {
		t.Fatalf("joining with garbage: %v, want ErrMalformed", err)
	}
	if a.Metrics().Refused["not_member"] < 2 {
		t.Fatalf("the inviter counted %v refusals, want the expired and used attempts", a.Metrics().Refused)
	}
	// The refused devices are no members: nothing of the library reaches them.
	if _, err := c.Library(onA.ID()).Get(ctx, "device", a.Device()); !errors.Is(err, node.ErrUnknownLibrary) {
		t.Fatalf("a refused device holds the library: %v", err)
	}
}

// A removed member is refused on its next stream and on reconnect, and its
// writes no longer reach the others.
func TestRemovedMemberIsRefused(t *testing.T) {
	ctx := context.Background()
	a, b, _, onA, onB, onC := pairedTrio(t)
	probe := uuid.New()
	if _, err := onB.PutShared(ctx, "tag", probe, data(t, "before")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onC, "tag", probe, data(t, "before"))

	if err := onA.RemoveDevice(ctx, b.Device()); err != nil {
		t.Fatal(err)
	}
	// Every member learns the removal through the device records.
	waitNotMember(t, onC, b.Device(), "C still counts the removed device as a member")
	// The removed device refuses the write once it has been told
	// (TestRemovedDeviceIsTold); before that, the write stays with it.
	after := uuid.New()
	if _, err := onB.PutShared(ctx, "tag", after, data(t, "after removal")); err != nil && !errors.Is(err, node.ErrRemoved) {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // give a forbidden write every chance to travel
	for name, lib := range map[string]*node.Library{"A": onA, "C": onC} {
		if _, err := lib.Get(ctx, "tag", after); !errors.Is(err, node.ErrNotFound) {
			t.Fatalf("%s received a write of the removed device: %v", name, err)
		}
	}
	// Its next stream is refused (whichever side would have opened the
	// session, the removed device now opens one itself).
	before := a.Metrics().Refused["not_member"]
	hello := &protocol.Hello{LibraryID: onA.ID(), DeviceID: b.Device(), Versions: []uint32{protocol.Version}}
	got, _ := exchange(t, b.Host(), a.Host().ID(), hello)
	if code, ok := errorCode(got); !ok || code != "not_member" {
		t.Fatalf("the removed device's stream got %d frames (error %q), want a not_member Error", len(got), code)
	}
	// The refusal says that the device was removed, and by whom
	// (PROTOCOL.md §7.7).
	for _, m := range got {
		if e, ok := m.(*protocol.Error); ok {
			if e.RemovedDevice == nil || *e.RemovedDevice != b.Device() || e.Removal == nil || e.Removal.DeviceID != a.Device() {
				t.Fatalf("the refusal does not name the removal: %+v", e)
			}
		}
	}
	if a.Metrics().Refused["not_member"] <= before {
		t.Fatalf("the refusal was not counted: %v", a.Metrics().Refused)
	}
}

// A device leaves a library and deletes its local copy: the others drop it
// from their members, it holds nothing of the library any more, and their
// later writes do not reach it.
func TestLeaveLibrary(t *testing.T) {
	ctx := context.Background()
	_, _, c, onA, onB, onC := pairedTrio(t)
	tag := uuid.New()
	if _, err := onA.PutShared(ctx, "tag", tag, data(t, "shared")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onC, "tag", tag, data(t, "shared"))

	if err := onC.Leave(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := onC.Get(ctx, "tag", tag); !errors.Is(err, node.ErrUnknownLibrary) {
		t.Fatalf("after leaving, Get = %v, want ErrUnknownLibrary", err)
	}
	waitNotMember(t, onA, c.Device(), "A still counts the device that left")
	waitNotMember(t, onB, c.Device(), "B still counts the device that left")
	// The local copy is gone: even a reopened handle finds nothing.
	eventually(t, 5*time.Second, func() bool {
		_, err := c.Library(onA.ID()).List(ctx, "tag", node.ListOptions{})
		return errors.Is(err, node.ErrUnknownLibrary)
	}, func() string { return "the left library is still listed" })
	later := uuid.New()
	if _, err := onB.PutShared(ctx, "tag", later, data(t, "after")); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, onA, "tag", later, data(t, "after"))
	if _, err := c.Join(ctx, "syncnode1-x"); err == nil {
		t.Fatal("garbage code accepted")
	}
}

// Joining never makes two members refuse each other: the inviter (or a
// member that learned of the joiner) may open a session to the joiner
// before the joiner has stored the library from the JoinAccept, and the
// joiner used to refuse it as not_member.
func TestJoinCausesNoRefusal(t *testing.T) {
	ctx := context.Background()
	for round := range 4 {
		a, b, c, onA, _, onC := pairedTrio(t)
		id := uuid.New()
		if _, err := onC.PutShared(ctx, "tag", id, data(t, "from the third")); err != nil {
			t.Fatal(err)
		}
		waitRecord(t, onA, "tag", id, data(t, "from the third"))
		waitRecord(t, b.Library(onA.ID()), "tag", id, data(t, "from the third"))
		for i, n := range []*node.Node{a, b, c} {
			if r := n.Metrics().Refused; len(r) > 0 {
				t.Errorf("round %d: node %d refused %v while devices joined", round, i, r)
			}
		}
		if t.Failed() {
			return
		}
	}
}
