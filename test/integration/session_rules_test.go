package integration

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
	"github.com/syncnode/syncnode/protocol"
)

// rawSession is a session stream that a test drives frame by frame.
type rawSession struct {
	t *testing.T
	s network.Stream
	r *protocol.Reader
}

// openRaw opens a sync stream from h to target and sends the frames.
func openRaw(t *testing.T, h host.Host, target peer.ID, frames ...protocol.Message) *rawSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, target, node.ProtocolID)
	if err != nil {
		t.Fatalf("opening a sync stream: %v", err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	_ = s.SetDeadline(time.Now().Add(20 * time.Second))
	rs := &rawSession{t: t, s: s, r: protocol.NewReader(s, protocol.DefaultMaxFrameSize)}
	for _, m := range frames {
		rs.send(m)
	}
	return rs
}

// send writes one message as a frame.
func (rs *rawSession) send(m protocol.Message) {
	rs.t.Helper()
	b, err := protocol.Encode(m)
	if err != nil {
		rs.t.Fatalf("encoding %s: %v", m.Name(), err)
	}
	rs.sendBody(b)
}

// sendBody writes b as one frame body.
func (rs *rawSession) sendBody(b []byte) {
	rs.t.Helper()
	if err := protocol.WriteFrame(rs.s, b); err != nil {
		rs.t.Fatalf("writing a frame: %v", err)
	}
}

// next returns the next frame the node sends that is not a heartbeat or an
// ack (those come whenever they are due).
func (rs *rawSession) next() (protocol.Message, error) {
	for {
		m, err := rs.r.ReadMessage()
		if err != nil {
			return nil, err
		}
		switch m.(type) {
		case *protocol.Heartbeat, *protocol.AckSharedChanges:
			continue
		}
		return m, nil
	}
}

// expectError reads the next frame and fails unless it is an Error with
// the given code.
func (rs *rawSession) expectError(want protocol.Code, what string) {
	rs.t.Helper()
	m, err := rs.next()
	if err != nil {
		rs.t.Fatalf("%s: the stream ended (%v), want an Error %v", what, err, want)
	}
	e, ok := m.(*protocol.Error)
	if !ok || e.Code != want {
		rs.t.Fatalf("%s: got %s %+v, want an Error %v", what, m.Name(), m, want)
	}
}

// expectHello reads the next frame and fails unless it is a Hello.
func (rs *rawSession) expectHello(what string) {
	rs.t.Helper()
	m, err := rs.next()
	if err != nil {
		rs.t.Fatalf("%s: the stream ended (%v), want the node's Hello", what, err)
	}
	if _, ok := m.(*protocol.Hello); !ok {
		rs.t.Fatalf("%s: the node's first frame is %s %+v, want its Hello", what, m.Name(), m)
	}
}

// expectEnd reads until the stream ends and fails if a frame other than a
// heartbeat or an ack comes first.
func (rs *rawSession) expectEnd(what string) {
	rs.t.Helper()
	_ = rs.s.CloseWrite()
	m, err := rs.next()
	if err == nil {
		rs.t.Fatalf("%s: got %s %+v, want the end of the stream", what, m.Name(), m)
	}
	var se *network.StreamError
	if !errors.Is(err, io.EOF) && !errors.As(err, &se) && !errors.Is(err, network.ErrReset) {
		rs.t.Fatalf("%s: the stream ended with %v, want an end of stream or a reset", what, err)
	}
}

// unknownVariant is the frame body of a message variant this node does not
// know, as a newer peer of the same major might send.
func unknownVariant(t *testing.T, lib uuid.UUID) []byte {
	t.Helper()
	b, err := cbor.Marshal(map[string]any{"FutureMessage": map[string]any{"library_id": lib[:], "hint": "new in 2.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A message variant the node does not know, after Hello, is answered with
// unknown_message and the session goes on (PROTOCOL.md §1, §8): a new variant
// within major 2 must not break sessions with today's nodes. The node used to
// tear the session down after the Error.
func TestUnknownVariantKeepsSession(t *testing.T) {
	c := newCluster(t, 1, nil)
	r := newRogueMember(t, c)
	a := c.nodes[0]
	rs := openRaw(t, r.h, a.Host().ID(), r.hello(c.lib))
	rs.expectHello("after the Hello")
	rs.sendBody(unknownVariant(t, c.lib))
	rs.expectError(protocol.CodeUnknownMessage, "after an unknown variant")

	id := uuid.New()
	rs.send(&protocol.SharedChange{LibraryID: c.lib, HLC: hlc.HLC{Timestamp: uint64(time.Now().UnixMilli()), DeviceID: r.device},
		ModelType: "tag", RecordUUID: id, ChangeType: protocol.Insert, Data: data(t, "after the unknown variant")})
	// A second unknown variant is answered too: the stream is still read.
	rs.sendBody(unknownVariant(t, c.lib))
	rs.expectError(protocol.CodeUnknownMessage, "after a second unknown variant")
	c.waitRecord(5*time.Second, 0, "tag", id, data(t, "after the unknown variant"))
	if got := a.Metrics().Refused["unknown_message"]; got != 2 {
		t.Errorf("the node counted %d unknown_message refusals, want 2", got)
	}
}

// Hello is the first frame of every session stream, also when a session
// restarts while the node is busy writing (PROTOCOL.md §7.1): a member
// whose session is replaced by a new one (after a restart, or a pause longer
// than the peer timeout) used to receive live pushes, queued for it before the
// node had queued its Hello, as the first frames of the new stream, and
// refuse them ("a stream must start with Hello or a request").
func TestHelloIsFirstUnderWriteLoad(t *testing.T) {
	c := newCluster(t, 1, nil)
	r := newRogueMember(t, c)
	a := c.nodes[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		payload := data(t, "load")
		for ctx.Err() == nil {
			if _, err := c.library(0).PutShared(ctx, "tag", uuid.New(), payload); err != nil {
				return
			}
		}
	}()
	defer func() { cancel(); <-writing }()
	for i := range 40 {
		rs := openRaw(t, r.h, a.Host().ID(), r.hello(c.lib))
		m, err := rs.r.ReadMessage()
		if err != nil {
			t.Fatalf("session %d: reading the node's first frame: %v", i, err)
		}
		if _, ok := m.(*protocol.Hello); !ok {
			t.Fatalf("session %d: the node's first frame is %s, want its Hello", i, m.Name())
		}
		// The session stays open; the next one replaces it, as a restarted
		// peer's does.
	}
}

// The store cost of a message is checked before the claims in it
// (PROTOCOL.md §8.1): a batch above the cost per message, in another
// device's name, is refused rate_limited and nothing of it is stored. (The
// other pairs of checks that can collide are conformance vectors, run by
// test/conformance; this one needs a frame of half a megabyte.)
func TestErrorOrderCostBeforeOwnership(t *testing.T) {
	c := newCluster(t, 2, nil)
	r := newRogueMember(t, c)
	other := c.infos[1].Device
	now := uint64(time.Now().UnixMilli())
	batch := &protocol.SharedChangeBatch{LibraryID: c.lib}
	for i := range protocol.MaxRecordsPerMessage {
		batch.Entries = append(batch.Entries, protocol.SharedChangeEntry{
			HLC: hlc.HLC{Timestamp: now, Counter: uint32(i), DeviceID: other}, ModelType: "tag",
			RecordUUID: uuid.New(), ChangeType: protocol.Insert, Data: []byte{0x01}})
	}
	rs := openRaw(t, r.h, c.nodes[0].Host().ID(), r.hello(c.lib))
	rs.expectHello("after the Hello")
	rs.send(batch)
	rs.expectError(protocol.CodeRateLimited, "a costly batch in another device's name")
	rs.expectEnd("after rate_limited")
	if n, err := countModel(context.Background(), c, 0, "tag"); err != nil || n != 0 {
		t.Fatalf("node 0 holds %d tags (%v), want none", n, err)
	}
}
