package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/protocol"
)

// exchange opens a sync stream from h to target, writes the frames, and
// reads what comes back until the stream ends or fails.
func exchange(t *testing.T, h host.Host, target peer.ID, frames ...protocol.Message) (got []protocol.Message, end error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, target, node.ProtocolID)
	if err != nil {
		t.Fatalf("opening a sync stream: %v", err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	for _, m := range frames {
		b, err := protocol.Encode(m)
		if err != nil {
			t.Fatalf("encoding %s: %v", m.Name(), err)
		}
		if err := protocol.WriteFrame(s, b); err != nil {
			break // the node may have reset the stream already
		}
	}
	_ = s.CloseWrite()
	r := protocol.NewReader(s, protocol.DefaultMaxFrameSize)
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return got, err
		}
		got = append(got, m)
	}
}

// A peer that is not a member of the library opens sync streams and sends a
// Hello (even one claiming a member's device), requests of both kinds and a
// change: each stream gets an Error frame with code not_member and ends,
// never a record, and nothing it sent is stored.
func TestNonMemberIsRefused(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx := context.Background()
	for i := range c.nodes {
		if _, err := c.library(i).PutOwned(ctx, "location", uuid.New(), data(t, fmt.Sprintf("secret location of n%d", i))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.library(i).PutShared(ctx, "tag", uuid.New(), data(t, fmt.Sprintf("secret tag of n%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	before := c.waitConverged(10 * time.Second)
	refusedBefore := c.nodes[0].Metrics().Refused["not_member"]

	stranger := bareHost(t)
	target := c.nodes[0]
	if err := stranger.Connect(ctx, target.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	me := uuid.New()
	now := hlc.HLC{Timestamp: uint64(time.Now().UnixMilli()), DeviceID: me}
	planted := uuid.New()
	change := &protocol.SharedChange{LibraryID: c.lib, HLC: now, ModelType: "tag", RecordUUID: planted,
		ChangeType: protocol.Insert, Data: data(t, "planted by a stranger")}
	owner := c.infos[1].Device
	cases := []struct {
		name   string
		frames []protocol.Message
	}{
		{"Hello then a change", []protocol.Message{
			&protocol.Hello{LibraryID: c.lib, DeviceID: me, Versions: []uint32{protocol.Version}, Clock: now},
			change,
		}},
		{"Hello claiming a member's device", []protocol.Message{
			&protocol.Hello{LibraryID: c.lib, DeviceID: owner, Versions: []uint32{protocol.Version},
				Clock: hlc.HLC{Timestamp: now.Timestamp, DeviceID: owner}},
		}},
		{"StateRequest", []protocol.Message{
			&protocol.StateRequest{LibraryID: c.lib, Limit: 100},
		}},
		{"StateRequest for a member's records", []protocol.Message{
			&protocol.StateRequest{LibraryID: c.lib, ModelTypes: []string{"location"}, DeviceID: &owner, Limit: 100},
		}},
		{"SharedChangeRequest", []protocol.Message{
			&protocol.SharedChangeRequest{LibraryID: c.lib, Limit: 100},
		}},
		{"a change as the first frame", []protocol.Message{change}},
	}
	for _, tc := range cases {
		got, end := exchange(t, stranger, target.Host().ID(), tc.frames...)
		for _, m := range got {
			switch m := m.(type) {
			case *protocol.Error:
				if m.Code != protocol.CodeOf(protocol.ErrNotMember) {
					t.Errorf("%s: Error code %v (%q), want not_member", tc.name, m.Code, m.Message)
				}
			default:
				t.Errorf("%s: the node answered a stranger with %s", tc.name, m.Name())
			}
		}
		if len(got) == 0 {
			t.Errorf("%s: no Error frame before the stream ended (%v)", tc.name, end)
		}
		var se *network.StreamError
		switch {
		case errors.Is(end, io.EOF):
		case errors.As(end, &se):
			if code := protocol.Code(se.ErrorCode); se.Remote && code != protocol.CodeOf(protocol.ErrNotMember) {
				t.Errorf("%s: stream reset with code %v, want not_member", tc.name, code)
			}
		default:
			t.Errorf("%s: the stream ended with %v, want an end of stream or a reset", tc.name, end)
		}
	}

	eventually(t, 5*time.Second, func() bool {
		return target.Metrics().Refused["not_member"]-refusedBefore >= len(cases)
	}, func() string {
		return fmt.Sprintf("Metrics().Refused = %v, want at least %d more not_member", target.Metrics().Refused, len(cases))
	})
	if _, err := target.Library(c.lib).Get(ctx, "tag", planted); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("Get of the stranger's tag: %v, want ErrNotFound", err)
	}
	after := c.waitConverged(10 * time.Second)
	if d := before.diff(after); d != "" {
		t.Errorf("the stranger changed the records: %s", d)
	}
}
