package hlc_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// T is the base wall time of the histories, in ms since the epoch.
const T = 1_700_000_000_000

// drift and window are the defaults in ms, as the histories use them.
const (
	drift  = uint64(hlc.DefaultMaxDrift / time.Millisecond)
	window = uint64(hlc.DefaultLeaseWindow / time.Millisecond)
)

type op int

const (
	send    op = iota // Now(); want is the HLC it must return
	recv              // Update(in); ahead != 0 wants a *SkewError with that Ahead
	lease             // Lease(); want bound and changed
	restore           // Restore(bound) on the running clock
	restart           // a new Clock for the same device and wall clock, then Restore(bound)
)

func (o op) String() string {
	return [...]string{"send", "recv", "lease", "restore", "restart"}[o]
}

// step is one row of a history: set the wall clock, then do op.
type step struct {
	wall    uint64 // wall clock in ms since the epoch, set before op
	op      op
	in      hlc.HLC       // recv: the remote HLC
	want    hlc.HLC       // send: the HLC Now must return
	ahead   time.Duration // recv: if nonzero, Update must refuse in as this far ahead
	bound   uint64        // lease: the bound Lease must return; restore, restart: the bound to restore
	changed bool          // lease: whether Lease must report a change
}

// runHistory plays steps on a clock for devA over a ManualClock. Besides each
// row's own expectation it checks the clock's contract: every HLC from Now is
// greater than everything issued or merged before, across restarts (the
// histories lease before they restart, as a caller must), and a refused remote
// leaves the clock untouched.
func runHistory(t *testing.T, cfg hlc.Config, steps []step) {
	t.Helper()
	wall := hlc.NewManualClock(time.UnixMilli(0))
	c := hlc.NewClock(devA, wall, cfg)
	maxDrift := cfg.MaxDrift
	if maxDrift == 0 {
		maxDrift = hlc.DefaultMaxDrift
	}
	var high hlc.HLC // the greatest HLC issued or merged so far
	for i, s := range steps {
		wall.Set(time.UnixMilli(int64(s.wall)))
		where := fmt.Sprintf("step %d (wall T%+d, %v)", i, int64(s.wall)-T, s.op)
		switch s.op {
		case send:
			got := c.Now()
			if got != s.want {
				t.Fatalf("%s: Now() = %v, want %v", where, got, s.want)
			}
			if !got.After(high) {
				t.Fatalf("%s: Now() = %v, not after %v issued or merged before", where, got, high)
			}
			high = got
		case recv:
			before := c.Last()
			err := c.Update(s.in)
			if s.ahead == 0 {
				if err != nil {
					t.Fatalf("%s: Update(%v) = %v, want nil", where, s.in, err)
				}
				high = hlc.Max(high, s.in)
				continue
			}
			if !errors.Is(err, hlc.ErrClockSkew) {
				t.Fatalf("%s: Update(%v) = %v, want an error matching ErrClockSkew", where, s.in, err)
			}
			var se *hlc.SkewError
			if !errors.As(err, &se) {
				t.Fatalf("%s: Update(%v) = %T, want a *hlc.SkewError", where, s.in, err)
			}
			if se.Remote != s.in || se.Ahead != s.ahead || se.MaxDrift != maxDrift {
				t.Fatalf("%s: SkewError{Remote: %v, Ahead: %v, MaxDrift: %v}, want {%v, %v, %v}",
					where, se.Remote, se.Ahead, se.MaxDrift, s.in, s.ahead, maxDrift)
			}
			if after := c.Last(); after != before {
				t.Fatalf("%s: refused Update moved Last from %v to %v", where, before, after)
			}
		case lease:
			bound, changed := c.Lease()
			if bound != s.bound || changed != s.changed {
				t.Fatalf("%s: Lease() = T%+d, %v; want T%+d, %v",
					where, int64(bound)-T, changed, int64(s.bound)-T, s.changed)
			}
			if last := c.Last(); last.Timestamp >= bound {
				t.Fatalf("%s: Lease() = T%+d does not cover Last() = %v", where, int64(bound)-T, last)
			}
		case restore:
			c.Restore(s.bound)
		case restart:
			c = hlc.NewClock(devA, wall, cfg)
			c.Restore(s.bound)
		}
	}
}

func TestClockHistories(t *testing.T) {
	const max32 = math.MaxUint32
	tests := []struct {
		name  string
		cfg   hlc.Config
		steps []step
	}{
		{"sends within one ms: the counter climbs", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: send, want: h(T, 1, devA)},
			{wall: T, op: send, want: h(T, 2, devA)},
		}},
		{"the wall clock moves forward: the counter resets", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: send, want: h(T, 1, devA)},
			{wall: T + 1, op: send, want: h(T+1, 0, devA)},
			{wall: T + 10, op: send, want: h(T+10, 0, devA)},
			{wall: T + 10, op: send, want: h(T+10, 1, devA)},
		}},
		{"the wall clock steps back: the HLC still grows", hlc.Config{}, []step{
			{wall: T + 10, op: send, want: h(T+10, 0, devA)},
			{wall: T + 10, op: send, want: h(T+10, 1, devA)},
			{wall: T, op: send, want: h(T+10, 2, devA)},
			{wall: T - 3_600_000, op: send, want: h(T+10, 3, devA)}, // an hour back
			{wall: T + 10, op: send, want: h(T+10, 4, devA)},
			{wall: T + 11, op: send, want: h(T+11, 0, devA)},
		}},
		{"a remote ahead within MaxDrift is adopted", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: recv, in: h(T+1000, 5, devB)},
			{wall: T, op: send, want: h(T+1000, 6, devA)},
			{wall: T + 500, op: send, want: h(T+1000, 7, devA)},
			// Same ms and counter, greater device: it is newer, so adopted.
			{wall: T + 500, op: recv, in: h(T+1000, 7, devZ)},
			{wall: T + 500, op: send, want: h(T+1000, 8, devA)},
			{wall: T + 1001, op: send, want: h(T+1001, 0, devA)},
			// Exactly MaxDrift ahead is still accepted.
			{wall: T + 1001, op: recv, in: h(T+1001+drift, 0, devB)},
			{wall: T + 1001, op: send, want: h(T+1001+drift, 1, devA)},
		}},
		{"a remote beyond MaxDrift is refused and changes nothing", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: recv, in: h(T+drift+1, 0, devB), ahead: time.Duration(drift+1) * time.Millisecond},
			{wall: T, op: send, want: h(T, 1, devA)},
			{wall: T, op: recv, in: h(T+24*3_600_000, 3, devB), ahead: 24 * time.Hour},
			// A timestamp so far ahead that ms → ns overflows: Ahead saturates.
			{wall: T, op: recv, in: h(math.MaxUint64, max32, devZ), ahead: time.Duration(math.MaxInt64)},
			{wall: T, op: send, want: h(T, 2, devA)},
			// Once wall time catches up, the same remote is accepted.
			{wall: T + 1, op: recv, in: h(T+drift+1, 0, devB)},
			{wall: T + 1, op: send, want: h(T+drift+1, 1, devA)},
		}},
		{"a custom MaxDrift", hlc.Config{MaxDrift: time.Second}, []step{
			{wall: T, op: recv, in: h(T+1000, 0, devB)},
			{wall: T, op: recv, in: h(T+1001, 0, devB), ahead: 1001 * time.Millisecond},
			{wall: T, op: send, want: h(T+1000, 1, devA)},
		}},
		{"an older remote has no effect", hlc.Config{}, []step{
			{wall: T + 100, op: send, want: h(T+100, 0, devA)},
			{wall: T + 100, op: recv, in: h(T+50, 9, devB)},
			{wall: T + 100, op: send, want: h(T+100, 1, devA)},
			{wall: T + 100, op: recv, in: h(T+100, 0, devZ)}, // same ms, lower counter
			{wall: T + 100, op: recv, in: h(T+100, 1, devA)}, // our own, echoed back
			{wall: T + 100, op: recv, in: hlc.HLC{}},
			{wall: T + 100, op: send, want: h(T+100, 2, devA)},
		}},
		{"counter overflow moves the timestamp one ms ahead", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: recv, in: h(T, max32-1, devB)},
			{wall: T, op: send, want: h(T, max32, devA)},
			{wall: T, op: send, want: h(T+1, 0, devA)},
			{wall: T, op: send, want: h(T+1, 1, devA)},
			{wall: T + 1, op: send, want: h(T+1, 2, devA)},
			{wall: T + 2, op: send, want: h(T+2, 0, devA)},
		}},
		{"counter overflow from a merged remote", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: recv, in: h(T+1000, max32, devB)},
			{wall: T, op: send, want: h(T+1001, 0, devA)},
		}},
		{"lease: changes on first use and once the clock passes the bound", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: lease, bound: T + window, changed: true},
			{wall: T, op: lease, bound: T + window},
			{wall: T, op: send, want: h(T, 1, devA)},
			{wall: T, op: lease, bound: T + window},
			{wall: T + window - 1, op: send, want: h(T+window-1, 0, devA)},
			{wall: T + window - 1, op: lease, bound: T + window},
			{wall: T + window, op: send, want: h(T+window, 0, devA)},
			{wall: T + window, op: lease, bound: T + 2*window, changed: true},
			{wall: T + 3*window, op: lease, bound: T + 2*window}, // wall time alone issues nothing
			{wall: T + 3*window, op: recv, in: h(T+3*window+100, 0, devB)},
			{wall: T + 3*window, op: lease, bound: T + 4*window + 100, changed: true}, // a merge moves it too
		}},
		{"lease: a custom window", hlc.Config{LeaseWindow: time.Minute}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: lease, bound: T + 60_000, changed: true},
			{wall: T + 59_999, op: send, want: h(T+59_999, 0, devA)},
			{wall: T + 59_999, op: lease, bound: T + 60_000},
		}},
		{"restart with the wall clock behind", hlc.Config{}, []step{
			{wall: T + 3000, op: send, want: h(T+3000, 0, devA)},
			{wall: T + 3000, op: lease, bound: T + 3000 + window, changed: true},
			{wall: T + 3000, op: send, want: h(T+3000, 1, devA)},
			{wall: T + 3000, op: lease, bound: T + 3000 + window},
			{wall: T, op: restart, bound: T + 3000 + window},
			// Everything issued before is below the bound: resume at it.
			{wall: T, op: send, want: h(T+3000+window, 0, devA)},
			// The clock now runs ahead of the wall clock by more than a
			// window: the lease moves by one millisecond, not a window, so
			// that restarts in a loop cannot push the clock ahead.
			{wall: T, op: lease, bound: T + 3000 + window + 1, changed: true},
			{wall: T, op: send, want: h(T+3000+window, 1, devA)},
		}},
		{"restart with the wall clock ahead", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: lease, bound: T + window, changed: true},
			{wall: T + 60_000, op: restart, bound: T + window},
			{wall: T + 60_000, op: send, want: h(T+60_000, 0, devA)},
		}},
		{"restart after adopting a remote", hlc.Config{}, []step{
			{wall: T, op: send, want: h(T, 0, devA)},
			{wall: T, op: recv, in: h(T+100_000, 4, devZ)},
			{wall: T, op: lease, bound: T + 100_000 + 1, changed: true},
			{wall: T, op: restart, bound: T + 100_000 + 1},
			{wall: T, op: send, want: h(T+100_000+1, 0, devA)},
		}},
		{"restoring an older bound never moves a clock back", hlc.Config{}, []step{
			{wall: T + 10_000, op: send, want: h(T+10_000, 0, devA)},
			{wall: T + 10_000, op: lease, bound: T + 10_000 + window, changed: true},
			{wall: T + 10_000, op: restore, bound: T},
			{wall: T + 10_000, op: send, want: h(T+10_000, 1, devA)},
			{wall: T + 10_000, op: lease, bound: T + 10_000 + window},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runHistory(t, tt.cfg, tt.steps) })
	}
}

// TestLeaseIsRare proves that the clock asks for no per-call persistence: a
// caller that checks Lease after every Now persists once per LeaseWindow of
// clock progress.
func TestLeaseIsRare(t *testing.T) {
	t.Run("fixed wall time", func(t *testing.T) {
		c := hlc.NewClock(devA, hlc.NewManualClock(time.UnixMilli(T)), hlc.Config{})
		const n = 1_000_000
		changes := 0
		for range n {
			c.Now()
			if _, changed := c.Lease(); changed {
				changes++
			}
		}
		if changes != 1 {
			t.Fatalf("%d lease changes over %d Now calls at one wall time, want 1", changes, n)
		}
		if got, want := c.Last(), h(T, n-1, devA); got != want {
			t.Fatalf("after %d Now calls Last() = %v, want %v", n, got, want)
		}
	})
	t.Run("wall time advancing 1 ms per call", func(t *testing.T) {
		wall := hlc.NewManualClock(time.UnixMilli(T))
		c := hlc.NewClock(devA, wall, hlc.Config{})
		const n = 100_000
		changes := 0
		for range n {
			wall.Advance(time.Millisecond)
			c.Now()
			if _, changed := c.Lease(); changed {
				changes++
			}
		}
		if limit := n/int(window) + 1; changes > limit {
			t.Fatalf("%d lease changes over %d ms of progress, want at most %d (one per %d ms window)",
				changes, n, limit, window)
		}
	})
}

func TestCheckDrift(t *testing.T) {
	wall := hlc.NewManualClock(time.UnixMilli(T))
	c := hlc.NewClock(devA, wall, hlc.Config{})
	before := c.Now()
	if err := c.CheckDrift(h(T+drift, 0, devB)); err != nil {
		t.Fatalf("CheckDrift(MaxDrift ahead) = %v, want nil", err)
	}
	err := c.CheckDrift(h(T+drift+1, 0, devB))
	var se *hlc.SkewError
	if !errors.As(err, &se) || se.Ahead != time.Duration(drift+1)*time.Millisecond {
		t.Fatalf("CheckDrift(MaxDrift+1ms ahead) = %v, want a *SkewError 5m0.001s ahead", err)
	}
	if got := c.Last(); got != before {
		t.Fatalf("CheckDrift changed Last from %v to %v", before, got)
	}
	wrapped := fmt.Errorf("applying change: %w", err)
	if !errors.Is(wrapped, hlc.ErrClockSkew) {
		t.Fatalf("errors.Is(%v, ErrClockSkew) = false through a wrap", wrapped)
	}
	msg := err.Error()
	for _, part := range []string{"hlc: clock skew", se.Remote.String(), "5m0.001s", "5m0s"} {
		if !strings.Contains(msg, part) {
			t.Errorf("SkewError message %q lacks %q", msg, part)
		}
	}
}

func TestClockDefaults(t *testing.T) {
	c := hlc.NewClock(devC, nil, hlc.Config{})
	if c.Device() != devC {
		t.Errorf("Device() = %v, want %v", c.Device(), devC)
	}
	if c.MaxDrift() != hlc.DefaultMaxDrift {
		t.Errorf("MaxDrift() = %v, want %v", c.MaxDrift(), hlc.DefaultMaxDrift)
	}
	// A nil WallClock means the system clock.
	now := time.Now()
	x := c.Now()
	if d := x.Time().Sub(now).Abs(); d > time.Minute {
		t.Errorf("Now() on the system clock = %v (%v), %v away from time.Now()", x, x.Time(), d)
	}
	if x.DeviceID != devC {
		t.Errorf("Now().DeviceID = %v, want %v", x.DeviceID, devC)
	}
}

func TestManualClock(t *testing.T) {
	var m hlc.ManualClock
	if got := m.Now(); !got.Equal(time.UnixMilli(0)) {
		t.Errorf("zero ManualClock reads %v, want the Unix epoch", got)
	}
	m.Advance(1500 * time.Millisecond)
	if got := m.Now(); !got.Equal(time.UnixMilli(1500)) {
		t.Errorf("after Advance(1.5s) reads %v, want epoch+1.5s", got)
	}
	m.Advance(-time.Second)
	if got := m.Now(); !got.Equal(time.UnixMilli(500)) {
		t.Errorf("after Advance(-1s) reads %v, want epoch+0.5s", got)
	}
	m.Set(time.UnixMilli(T))
	if got := m.Now(); !got.Equal(time.UnixMilli(T)) {
		t.Errorf("after Set reads %v, want %v", got, time.UnixMilli(T))
	}

	// A wall clock before the epoch reads as 0 ms; the clock still grows.
	c := hlc.NewClock(devA, hlc.NewManualClock(time.UnixMilli(-5000)), hlc.Config{})
	if got := c.WallMillis(); got != 0 {
		t.Errorf("WallMillis before the epoch = %d, want 0", got)
	}
	a, b := c.Now(), c.Now()
	if !a.After(hlc.HLC{}) || !b.After(a) {
		t.Errorf("Now() before the epoch gave %v then %v, want growing HLCs above zero", a, b)
	}
}

// TestClockConcurrent runs Now, Update and Lease from several goroutines: each
// goroutine sees strictly growing HLCs and no two calls get the same HLC.
// Run it with -race to check the locking.
func TestClockConcurrent(t *testing.T) {
	c := hlc.NewClock(devA, nil, hlc.Config{})
	const workers, per = 4, 5000
	results := make([][]hlc.HLC, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			prev := hlc.HLC{}
			for range per {
				x := c.Now()
				if !x.After(prev) {
					t.Errorf("worker %d: Now() = %v after %v", w, x, prev)
					return
				}
				prev = x
				results[w] = append(results[w], x)
			}
		})
	}
	wg.Go(func() {
		for i := range per {
			remote := h(c.WallMillis()+uint64(i%3), uint32(i), devB)
			if err := c.Update(remote); err != nil {
				t.Errorf("Update(%v) = %v", remote, err)
				return
			}
			c.Lease()
		}
	})
	wg.Wait()
	seen := make(map[hlc.HLC]bool, workers*per)
	for _, rs := range results {
		for _, x := range rs {
			if seen[x] {
				t.Fatalf("HLC %v issued twice", x)
			}
			seen[x] = true
		}
	}
}

func TestSkewErrorIs(t *testing.T) {
	err := error(&hlc.SkewError{Remote: h(1, 0, uuid.Nil), Ahead: time.Hour, MaxDrift: time.Minute})
	if !errors.Is(err, hlc.ErrClockSkew) {
		t.Error("errors.Is(*SkewError, ErrClockSkew) = false")
	}
	if errors.Is(err, hlc.ErrInvalid) {
		t.Error("errors.Is(*SkewError, ErrInvalid) = true")
	}
}
