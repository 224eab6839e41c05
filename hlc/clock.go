package hlc

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
)

// DefaultMaxDrift is how far ahead of local wall time a remote HLC may be
// before Update refuses it.
const DefaultMaxDrift = 5 * time.Minute

// DefaultLeaseWindow is how far beyond the newest HLC a persisted lease
// reaches; see Clock.Lease.
const DefaultLeaseWindow = 5 * time.Second

// ErrClockSkew is matched (with errors.Is) by the error Update and CheckDrift
// return for a remote HLC too far in the future. The concrete error is a
// *SkewError.
var ErrClockSkew = errors.New("hlc: clock skew")

// SkewError says by how much a remote HLC was ahead of local wall time.
type SkewError struct {
	// Remote is the refused HLC.
	Remote HLC
	// Ahead is how far Remote's timestamp was ahead of local wall time,
	// saturated at the largest Duration (about 292 years).
	Ahead time.Duration
	// MaxDrift is the limit that was exceeded.
	MaxDrift time.Duration
}

// Error implements error.
func (e *SkewError) Error() string {
	return fmt.Sprintf("hlc: clock skew: remote %s is %v ahead of local wall time (limit %v)", e.Remote, e.Ahead, e.MaxDrift)
}

// Is makes errors.Is(err, ErrClockSkew) true.
func (e *SkewError) Is(target error) bool { return target == ErrClockSkew }

// WallClock is the physical time source of a Clock. Tests inject a
// ManualClock; production uses SystemClock.
type WallClock interface {
	// Now returns the current wall time.
	Now() time.Time
}

// SystemClock is the WallClock of the operating system.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a WallClock that moves only when told to. It is safe for
// concurrent use. The zero value reads as the Unix epoch.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a ManualClock reading t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now returns the time last set.
func (m *ManualClock) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.t.IsZero() {
		return time.UnixMilli(0)
	}
	return m.t
}

// Set moves the clock to t, forwards or backwards.
func (m *ManualClock) Set(t time.Time) {
	m.mu.Lock()
	m.t = t
	m.mu.Unlock()
}

// Advance moves the clock by d (which may be negative).
func (m *ManualClock) Advance(d time.Duration) {
	m.mu.Lock()
	if m.t.IsZero() {
		m.t = time.UnixMilli(0)
	}
	m.t = m.t.Add(d)
	m.mu.Unlock()
}

// Config tunes a Clock. The zero value of a field means its default.
type Config struct {
	// MaxDrift is how far ahead of wall time a remote HLC may be; default
	// DefaultMaxDrift.
	MaxDrift time.Duration
	// LeaseWindow is how far past the newest HLC each persisted lease reaches;
	// default DefaultLeaseWindow. Larger means fewer lease writes and a larger
	// forward jump of the clock after a restart.
	LeaseWindow time.Duration
}

// Clock issues HLCs for one device. It is safe for concurrent use.
//
// Every HLC that Now returns is strictly greater than every HLC the clock
// issued or merged through Update before, whatever the wall clock does.
//
// Restart safety works by lease, like Badger's Sequence: the clock keeps a
// bound B such that no issued or merged HLC has a timestamp at or above B.
// Lease reports when B must move; the caller persists the new B (in the same
// transaction as the write that carries the new HLC, or at least before any
// such HLC leaves the process), and after a restart Restore(B) makes every
// later HLC greater than B. So a lease costs one small write per LeaseWindow
// of clock progress, not one per Now.
type Clock struct {
	mu       sync.Mutex
	wall     WallClock
	device   uuid.UUID
	maxDrift time.Duration
	window   uint64 // ms
	last     HLC    // newest HLC issued or merged
	bound    uint64 // persisted lease: every timestamp so far is < bound
}

// NewClock returns a clock for device that reads physical time from wall.
// It starts at the zero HLC with no lease; call Restore with the persisted
// lease before issuing HLCs after a restart.
func NewClock(device uuid.UUID, wall WallClock, cfg Config) *Clock {
	if wall == nil {
		wall = SystemClock{}
	}
	if cfg.MaxDrift <= 0 {
		cfg.MaxDrift = DefaultMaxDrift
	}
	if cfg.LeaseWindow <= 0 {
		cfg.LeaseWindow = DefaultLeaseWindow
	}
	window := uint64(cfg.LeaseWindow.Milliseconds())
	if window == 0 {
		window = 1
	}
	return &Clock{wall: wall, device: device, maxDrift: cfg.MaxDrift, window: window}
}

// Device returns the device ID stamped into every HLC this clock issues.
func (c *Clock) Device() uuid.UUID { return c.device }

// MaxDrift returns the configured limit of remote clock skew.
func (c *Clock) MaxDrift() time.Duration { return c.maxDrift }

// WallMillis returns the wall clock's current time in ms since the epoch,
// clamped at zero.
func (c *Clock) WallMillis() uint64 { return wallMillis(c.wall.Now()) }

func wallMillis(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

// Restore makes every later HLC greater than any HLC whose timestamp is below
// bound (which Lease guarantees of every HLC issued before it returned bound),
// and records bound as the lease already persisted. Use it on
// start-up with the last value returned by Lease that was made durable.
func (c *Clock) Restore(bound uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Every HLC issued before has a timestamp below bound, so the next one
	// may start at bound itself.
	if bound == 0 {
		return
	}
	floor := HLC{Timestamp: bound - 1, Counter: math.MaxUint32, DeviceID: maxUUID}
	if floor.After(c.last) {
		c.last = floor
	}
	if bound > c.bound {
		c.bound = bound
	}
}

var maxUUID = uuid.UUID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Now issues a new HLC for this device, strictly greater than every HLC
// issued or merged before. When the counter would overflow within one
// millisecond, the timestamp moves one millisecond ahead of the wall clock.
func (c *Clock) Now() HLC {
	wall := c.WallMillis()
	c.mu.Lock()
	defer c.mu.Unlock()
	if wall > c.last.Timestamp {
		c.last = HLC{Timestamp: wall, DeviceID: c.device}
		return c.last
	}
	next := HLC{Timestamp: c.last.Timestamp, Counter: c.last.Counter, DeviceID: c.device}
	if next.Counter == math.MaxUint32 {
		next.Timestamp++
		next.Counter = 0
	} else {
		next.Counter++
	}
	c.last = next
	return next
}

// CheckDrift returns a *SkewError (matching ErrClockSkew) if remote is more
// than MaxDrift ahead of the wall clock, and nil otherwise. It changes nothing.
func (c *Clock) CheckDrift(remote HLC) error {
	wall := c.WallMillis()
	limit := wall + uint64(c.maxDrift.Milliseconds())
	if remote.Timestamp <= limit {
		return nil
	}
	return &SkewError{Remote: remote, Ahead: aheadOf(remote.Timestamp, wall), MaxDrift: c.maxDrift}
}

// aheadOf returns (remote - wall) ms as a Duration, saturating at the largest
// Duration (about 292 years): a remote timestamp can be any uint64, and a
// wrapped product would report a far-future remote as behind.
func aheadOf(remote, wall uint64) time.Duration {
	const maxMillis = uint64(math.MaxInt64 / int64(time.Millisecond))
	d := remote - wall // remote > wall: CheckDrift checked it
	if d > maxMillis {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d) * time.Millisecond
}

// Update merges a received HLC so that every later HLC from Now is greater
// than it. A remote more than MaxDrift ahead of the wall clock is refused with
// a *SkewError (errors.Is(err, ErrClockSkew)) and leaves the clock untouched.
func (c *Clock) Update(remote HLC) error {
	if err := c.CheckDrift(remote); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if remote.After(c.last) {
		c.last = remote
	}
	return nil
}

// Last returns the newest HLC issued or merged (the zero HLC if none).
func (c *Clock) Last() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Lease reports whether the persisted lease must move before the HLCs issued
// so far may be made durable or sent. If it must, it returns the new bound
// and true, and from then on treats that bound as persisted: the caller writes
// it in the same transaction as the data that carries the newest HLC (or
// before sending it), and passes it to Restore after a restart. Otherwise it
// returns the current bound and false.
func (c *Clock) Lease() (bound uint64, changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last.Timestamp < c.bound {
		return c.bound, false
	}
	// Normally the lease reaches a window ahead, so that it moves once per
	// window of wall-clock progress. When the clock already runs ahead of the
	// wall clock (it merged a peer's HLC, or was restored from a lease), its
	// timestamp moves only on counter overflow, so a minimal step costs few
	// writes, and repeated restarts do not push the clock further ahead.
	step := c.window
	if c.last.Timestamp > c.WallMillis()+c.window {
		step = 1
	}
	c.bound = c.last.Timestamp + step
	return c.bound, true
}
