package discovery

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	ma "github.com/multiformats/go-multiaddr"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// manualClock is a clock the test moves.
type manualClock struct{ t time.Time }

func (c *manualClock) now() time.Time { return c.t }

// newOfferService is a service with no source running, whose offer the
// test calls as a source would, on a manual clock. found receives on a
// channel.
func newOfferService(t *testing.T, queue int) (*Service, *manualClock, chan Peer) {
	t.Helper()
	cfg := Config{DedupWindow: time.Minute, QueueSize: queue}
	got := make(chan Peer)
	s, err := New(newHost(t), cfg, func(p Peer) { got <- p }, quiet())
	if err != nil {
		t.Fatal(err)
	}
	clock := &manualClock{t: time.Unix(1_000_000, 0)}
	s.now = clock.now
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clock, got
}

func addrs(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}

func randomPeer(t *testing.T) peer.ID {
	t.Helper()
	id, err := test.RandPeerID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// expect receives the next reported peer, or fails.
func expect(t *testing.T, got chan Peer, want peer.ID, what string) {
	t.Helper()
	select {
	case p := <-got:
		if p.ID != want {
			t.Fatalf("%s: want %s reported, have %s", what, want, p.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: want %s reported, nothing came", what, want)
	}
}

// expectNone checks that nothing is waiting to be reported. offer queues
// synchronously, so a report would be in the queue or with the consumer.
func expectNone(t *testing.T, s *Service, got chan Peer, what string) {
	t.Helper()
	select {
	case p := <-got:
		t.Fatalf("%s: want nothing reported, have %s %v", what, p.ID, p.Addrs)
	default:
	}
	if n := len(s.queue); n != 0 {
		t.Fatalf("%s: want nothing reported, have %d queued", what, n)
	}
}

// A peer announced again with the same addresses (in any order) within the
// window is reported once; new addresses, or the window's end, report it
// again. The host itself and peers without addresses are never reported.
func TestDeduplication(t *testing.T) {
	s, clock, got := newOfferService(t, 16)
	src := s.sources[0]
	a := randomPeer(t)
	one := addrs(t, "/ip4/127.0.0.1/tcp/1000", "/ip4/127.0.0.1/udp/1000/quic-v1")
	swapped := []ma.Multiaddr{one[1], one[0]}

	s.offer(src, Peer{ID: a, Addrs: one})
	expect(t, got, a, "first announcement")
	s.offer(src, Peer{ID: a, Addrs: one})
	s.offer(src, Peer{ID: a, Addrs: swapped})
	expectNone(t, s, got, "same addresses again")

	clock.t = clock.t.Add(30 * time.Second)
	s.offer(src, Peer{ID: a, Addrs: addrs(t, "/ip4/127.0.0.1/tcp/2000")})
	expect(t, got, a, "new addresses")

	clock.t = clock.t.Add(59 * time.Second)
	s.offer(src, Peer{ID: a, Addrs: addrs(t, "/ip4/127.0.0.1/tcp/2000")})
	expectNone(t, s, got, "same new addresses within the window")
	clock.t = clock.t.Add(time.Second)
	s.offer(src, Peer{ID: a, Addrs: addrs(t, "/ip4/127.0.0.1/tcp/2000")})
	expect(t, got, a, "same addresses after the window")

	s.offer(src, Peer{ID: s.h.ID(), Addrs: one})
	s.offer(src, Peer{ID: randomPeer(t)})
	expectNone(t, s, got, "self and a peer without addresses")

	if p, ok := s.Recent(a); !ok || len(p.Addrs) != 1 {
		t.Errorf("Recent(a): want the last report, have %v %v", p, ok)
	}
	clock.t = clock.t.Add(time.Minute)
	if _, ok := s.Recent(a); ok {
		t.Error("Recent(a) after the window: want nothing")
	}
	st := s.Status()[0]
	if st.Found != 3 || len(st.Recent) != 1 || st.Recent[0] != a {
		t.Errorf("status: want 3 found, recent [%s], have %+v", a, st)
	}
}

// When the consumer is slow, offer does not wait: peers beyond the queue
// are dropped and counted, and not remembered as seen.
func TestQueueFullDrops(t *testing.T) {
	s, _, got := newOfferService(t, 2)
	src := s.sources[0]
	ids := make([]peer.ID, 6)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range ids {
			ids[i] = randomPeer(t)
			s.offer(src, Peer{ID: ids[i], Addrs: addrs(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 1000+i))})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("offer blocked on a slow consumer")
	}
	// The consumer holds at most one (blocked in found) and the queue two.
	st := s.Status()[0]
	if st.Found+st.Dropped != len(ids) || st.Dropped < len(ids)-3 {
		t.Fatalf("want %d offered, at least %d dropped; have found %d, dropped %d", len(ids), len(ids)-3, st.Found, st.Dropped)
	}
	found := make(map[peer.ID]bool)
	for range st.Found {
		found[(<-got).ID] = true
	}
	// A dropped peer is reported when it comes again. Which ones were
	// dropped depends on when the consumer took the first from the queue.
	for i, id := range ids {
		if found[id] {
			continue
		}
		s.offer(src, Peer{ID: id, Addrs: addrs(t, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 1000+i))})
		expect(t, got, id, "a dropped peer offered again")
		return
	}
	t.Fatal("no peer was dropped")
}

// After Close nothing is reported, Close can be repeated, Start refuses.
func TestCloseStopsReports(t *testing.T) {
	s, _, got := newOfferService(t, 4)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s.offer(s.sources[0], Peer{ID: randomPeer(t), Addrs: addrs(t, "/ip4/127.0.0.1/tcp/1")})
	expectNone(t, s, got, "after Close")
	if err := s.Start(t.Context()); err != ErrClosed {
		t.Errorf("Start after Close: want ErrClosed, have %v", err)
	}
}
