package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/node"
)

// A joiner learns from the inviter how many records to expect, counts what
// arrives, and reports the backfill done once it holds them and its peer is
// live; the status shows members, the live peer and the log.
func TestJoinBackfillProgress(t *testing.T) {
	ctx := context.Background()
	a, b := startPaired(t, "laptop"), startPaired(t, "phone")
	onA, err := a.CreateLibrary(ctx, "photos")
	if err != nil {
		t.Fatal(err)
	}
	const tags, locations = 300, 200
	for i := 0; i < tags; i++ {
		if _, err := onA.PutShared(ctx, "tag", uuid.New(), data(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < locations; i++ {
		if _, err := onA.PutOwned(ctx, "location", uuid.New(), data(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	code, err := onA.Invite(ctx, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	onB, err := b.Join(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	// The inviter holds its records plus two device records.
	const want = tags + locations + 2
	eventually(t, 20*time.Second, func() bool {
		st, err := onB.Status(ctx)
		return err == nil && st.Backfill != nil && st.Backfill.Done && st.Backfill.Received >= tags+locations
	}, func() string {
		st, err := onB.Status(ctx)
		return fmt.Sprintf("backfill %+v caught up %v (err %v)", st.Backfill, st.CaughtUp, err)
	})
	st, err := onB.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backfill.Expected != want {
		t.Errorf("expected %d records, the inviter holds %d", st.Backfill.Expected, want)
	}
	if len(st.Members) != 2 || len(st.Peers) != 1 || st.Peers[0].State != "live" || st.Peers[0].Device != a.Device() {
		t.Errorf("status: members %+v peers %+v", st.Members, st.Peers)
	}
	if st.Name != "photos" || st.Quarantined != 0 {
		t.Errorf("status: name %q quarantined %d", st.Name, st.Quarantined)
	}
	// The wire counts: B read A's catch-up pages, A wrote them, and both
	// counted the session's Hello each way, with the bytes of each frame.
	in, out := b.Metrics().Messages, a.Metrics().Messages
	for _, k := range []node.MessageKey{{Type: "StateResponse", Direction: "in"}, {Type: "SharedChangeResponse", Direction: "in"}, {Type: "Hello", Direction: "in"}, {Type: "Hello", Direction: "out"}} {
		if c := in[k]; c.Count == 0 || c.Bytes < c.Count*10 {
			t.Errorf("B counted %+v for %+v", c, k)
		}
		ka := node.MessageKey{Type: k.Type, Direction: map[string]string{"in": "out", "out": "in"}[k.Direction]}
		if c := out[ka]; c.Count == 0 || c.Bytes < c.Count*10 {
			t.Errorf("A counted %+v for %+v", c, ka)
		}
	}
	// B cannot have read more than A wrote (A may have written more: a
	// request stream that B reset, or one still being answered).
	if got, sent := in[node.MessageKey{Type: "StateResponse", Direction: "in"}], out[node.MessageKey{Type: "StateResponse", Direction: "out"}]; got.Count > sent.Count || got.Bytes > sent.Bytes {
		t.Errorf("B read %+v of StateResponse, A wrote only %+v", got, sent)
	}
	stA, err := onA.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stA.Backfill != nil || len(stA.Peers) != 1 || stA.Horizon <= 0 {
		t.Errorf("inviter status: backfill %+v peers %+v horizon %v", stA.Backfill, stA.Peers, stA.Horizon)
	}
}
