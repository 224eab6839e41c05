package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/multiformats/go-multiaddr"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node"
)

// nextEvent reads events from ch until one matches, failing after d or if
// ch closes.
func nextEvent(t *testing.T, ch <-chan node.Event, d time.Duration, what string, match func(node.Event) bool) node.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var seen []string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the event channel closed while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
			seen = append(seen, fmt.Sprintf("%s %s deleted=%v by %s", ev.ModelType, ev.ID, ev.Deleted, ev.By))
		case <-timer.C:
			t.Fatalf("after %v no event %s; saw %v", d, what, seen)
		}
	}
}

// Subscribe delivers an event for every local and remote write, put and
// delete, naming the device that wrote it.
func TestSubscribeLocalAndRemoteWrites(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subs [2]<-chan node.Event
	for i := range subs {
		ch, err := c.library(i).Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = ch
	}
	type step struct {
		by    int
		model string
		id    uuid.UUID
		data  []byte // nil: delete
	}
	loc, tag, other := uuid.New(), uuid.New(), uuid.New()
	steps := []step{
		{0, "location", loc, data(t, "location v1")},
		{0, "location", loc, data(t, "location v2")},
		{0, "tag", tag, data(t, "tag by n0")},
		{1, "tag", tag, data(t, "tag by n1")},
		{1, "tag", other, data(t, "other tag by n1")},
		{0, "tag", tag, nil},
		{0, "location", loc, nil},
		{1, "tag", other, nil},
	}
	for k, s := range steps {
		lib := c.library(s.by)
		var (
			v   hlc.HLC
			err error
		)
		switch {
		case s.model == "location" && s.data != nil:
			v, err = lib.PutOwned(ctx, s.model, s.id, s.data)
		case s.model == "location":
			v, err = lib.DeleteOwned(ctx, s.model, s.id)
		case s.data != nil:
			v, err = lib.PutShared(ctx, s.model, s.id, s.data)
		default:
			v, err = lib.DeleteShared(ctx, s.model, s.id)
		}
		if err != nil {
			t.Fatalf("step %d: %v", k, err)
		}
		by := c.infos[s.by].Device
		for i, ch := range subs {
			what := fmt.Sprintf("on n%d for step %d (%s %s by n%d, version %v)", i, k, s.model, s.id, s.by, v)
			ev := nextEvent(t, ch, 10*time.Second, what, func(ev node.Event) bool {
				return ev.ID == s.id && ev.Version == v
			})
			if ev.Library != c.lib || ev.ModelType != s.model || ev.By != by || ev.Deleted != (s.data == nil) ||
				string(ev.Data) != string(s.data) || ev.Missed != 0 {
				t.Errorf("event %s: got %+v", what, ev)
			}
		}
	}

	// The channel closes when the subscription's context ends.
	cancel()
	for i, ch := range subs {
		eventually(t, 5*time.Second, func() bool {
			select {
			case _, ok := <-ch:
				return !ok
			default:
				return false
			}
		}, func() string { return fmt.Sprintf("n%d's event channel is still open after its context ended", i) })
	}
}

// Subscribers that never read do not slow sync down: the writes all arrive,
// and a subscriber that starts reading learns how many events it missed.
func TestSlowSubscriberDoesNotStopSync(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx := context.Background()
	var slow [2]<-chan node.Event
	for i := range slow {
		ch, err := c.library(i).Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slow[i] = ch
	}
	const writes = 1500 // beyond a subscriber's buffer of 1024
	for k := 0; k < writes; k++ {
		if _, err := c.library(0).PutShared(ctx, "tag", uuid.New(), data(t, k)); err != nil {
			t.Fatalf("write %d: %v", k, err)
		}
	}
	s := c.waitConverged(20 * time.Second)
	if got := s.count(); got != writes {
		t.Fatalf("the nodes hold %d records, want %d", got, writes)
	}

	// Each buffer is full: the events past it were dropped. The next event
	// a reader gets says how many.
	for _, ch := range slow {
		if len(ch) != cap(ch) {
			t.Fatalf("a subscriber that never read holds %d events, want its full buffer of %d", len(ch), cap(ch))
		}
		for len(ch) > 0 {
			<-ch
		}
	}
	last := uuid.New()
	if _, err := c.library(0).PutShared(ctx, "tag", last, data(t, "last")); err != nil {
		t.Fatal(err)
	}
	for i, ch := range slow {
		ev := nextEvent(t, ch, 10*time.Second, fmt.Sprintf("on n%d for the last write", i), func(node.Event) bool { return true })
		if ev.ID != last || ev.Missed != writes-cap(ch) {
			t.Errorf("n%d: the first event after the reader caught up is %s with Missed %d, want %s with Missed %d",
				i, ev.ID, ev.Missed, last, writes-cap(ch))
		}
	}
}

// Get of a record that does not exist is ErrNotFound; of a library the node
// does not hold, ErrUnknownLibrary.
func TestGetMissing(t *testing.T) {
	c := newCluster(t, 1, nil)
	ctx := context.Background()
	if _, err := c.library(0).Get(ctx, "tag", uuid.New()); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("Get of a missing tag: %v, want ErrNotFound", err)
	}
	if _, err := c.library(0).DeleteShared(ctx, "tag", uuid.New()); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("DeleteShared of a missing tag: %v, want ErrNotFound", err)
	}
	if _, err := c.nodes[0].Library(uuid.New()).Get(ctx, "tag", uuid.New()); !errors.Is(err, node.ErrUnknownLibrary) {
		t.Errorf("Get in an unknown library: %v, want ErrUnknownLibrary", err)
	}
}

// Every call after Close returns ErrClosed, and subscriptions end.
func TestCallsAfterClose(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx := context.Background()
	nd, lib := c.nodes[0], c.library(0)
	id := uuid.New()
	if _, err := lib.PutShared(ctx, "tag", id, data(t, "before close")); err != nil {
		t.Fatal(err)
	}
	ch, err := lib.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer := c.infos[1]
	c.stop(0)
	if err := nd.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	eventually(t, 5*time.Second, func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	}, func() string { return "the event channel is still open after Close" })

	addr, err := multiaddr.NewMultiaddr("/ip4/127.0.0.1/tcp/1")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Start": func() error { return nd.Start(ctx) },
		"AddLibrary": func() error {
			_, err := nd.AddLibrary(ctx, c.lib, "test", c.infos...)
			return err
		},
		"AddAddrs": func() error { return nd.AddAddrs(peer.Peer, addr) },
		"Get": func() error {
			_, err := lib.Get(ctx, "tag", id)
			return err
		},
		"List": func() error {
			_, err := lib.List(ctx, "tag", node.ListOptions{})
			return err
		},
		"PutOwned": func() error {
			_, err := lib.PutOwned(ctx, "location", uuid.New(), data(t, "x"))
			return err
		},
		"DeleteOwned": func() error {
			_, err := lib.DeleteOwned(ctx, "location", uuid.New())
			return err
		},
		"PutShared": func() error {
			_, err := lib.PutShared(ctx, "tag", id, data(t, "after close"))
			return err
		},
		"DeleteShared": func() error {
			_, err := lib.DeleteShared(ctx, "tag", id)
			return err
		},
		"Subscribe": func() error {
			_, err := lib.Subscribe(ctx)
			return err
		},
		"Peers": func() error {
			_, err := lib.Peers(ctx)
			return err
		},
		"RequestState":         func() error { return lib.RequestState(ctx, peer.Device) },
		"RequestSharedChanges": func() error { return lib.RequestSharedChanges(ctx, peer.Device) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, node.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// New refuses a bad configuration with an error that names the setting.
func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		field string
		tweak func(*node.Config)
	}{
		{"DataDir", func(c *node.Config) { c.DataDir = "" }},
		{"TickInterval", func(c *node.Config) { c.TickInterval = 0 }},
		{"HeartbeatInterval", func(c *node.Config) { c.HeartbeatInterval = -time.Second }},
		{"PeerTimeout", func(c *node.Config) { c.PeerTimeout = c.HeartbeatInterval }},
		{"StreamTimeout", func(c *node.Config) { c.StreamTimeout = 0 }},
		{"PageSize", func(c *node.Config) { c.PageSize = 0 }},
		{"SendQueue", func(c *node.Config) { c.SendQueue = 0 }},
		{"MaxFrameSize", func(c *node.Config) { c.MaxFrameSize = 1 }},
		{"MaxRequestsPerPeer", func(c *node.Config) { c.MaxRequestsPerPeer = 0 }},
		{"ReconnectMax", func(c *node.Config) { c.ReconnectMax = c.ReconnectMin / 2 }},
		{"listen address", func(c *node.Config) { c.ListenAddrs = []string{"127.0.0.1:4001"} }},
	} {
		cfg := node.DefaultLocalConfig()
		cfg.DataDir = t.TempDir()
		tc.tweak(&cfg)
		nd, err := node.New(cfg)
		if err == nil {
			_ = nd.Close()
			t.Errorf("New accepted a config with a bad %s", tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New with a bad %s: %q does not name it", tc.field, err)
		}
	}
}
