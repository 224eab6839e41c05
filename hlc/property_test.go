package hlc_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
)

// simDevice is one device of the property test: its wall clock, its running
// clock and what it has persisted and seen.
type simDevice struct {
	id     uuid.UUID
	wall   *hlc.ManualClock
	clock  *hlc.Clock
	lease  uint64    // the last bound Lease returned: the caller persists it
	issued []hlc.HLC // every HLC this device's clocks issued, across restarts
	high   hlc.HLC   // the greatest HLC issued or merged, across restarts
}

// TestClockProperty drives 3–5 clocks through seeded random interleavings of
// Now, Update with HLCs of the other clocks, Update with far-future HLCs, wall
// clock jumps forwards and backwards, and restarts from the last lease. Each
// clock's HLCs must grow strictly, each Now must exceed every HLC merged
// before, refused HLCs must leave the clock untouched, and a restarted clock
// must never fall back.
//
// A failure names its seed; replay it with -run 'TestClockProperty/seed=N$'.
func TestClockProperty(t *testing.T) {
	seeds, steps := 1000, 3000
	if testing.Short() {
		seeds = 50
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			if err := runProperty(seed, steps); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		})
	}
}

func runProperty(seed uint64, steps int) error {
	r := rand.New(rand.NewPCG(seed, 0x51ab))
	cfg := hlc.Config{}
	if r.IntN(2) == 0 {
		// Small windows and drift make leases and refusals frequent.
		cfg = hlc.Config{MaxDrift: time.Duration(1+r.IntN(2000)) * time.Millisecond, LeaseWindow: time.Duration(1+r.IntN(50)) * time.Millisecond}
	}
	maxDrift := cfg.MaxDrift
	if maxDrift == 0 {
		maxDrift = hlc.DefaultMaxDrift
	}
	devs := make([]*simDevice, 3+r.IntN(3))
	for i := range devs {
		var id uuid.UUID
		for j := range id {
			id[j] = byte(r.Uint32())
		}
		// Wall clocks start up to a minute apart.
		wall := hlc.NewManualClock(time.UnixMilli(T + int64(r.IntN(120_000)) - 60_000))
		devs[i] = &simDevice{id: id, wall: wall, clock: hlc.NewClock(id, wall, cfg)}
	}

	for step := 0; step < steps; step++ {
		d := devs[r.IntN(len(devs))]
		fail := func(format string, args ...any) error {
			return fmt.Errorf("step %d, device %v: %s", step, d.id, fmt.Sprintf(format, args...))
		}
		switch k := r.IntN(100); {
		case k < 45: // Now
			x := d.clock.Now()
			if x.DeviceID != d.id {
				return fail("Now() = %v, stamped with another device", x)
			}
			if !x.After(d.high) {
				return fail("Now() = %v, not after %v issued or merged before", x, d.high)
			}
			d.high = x
			d.issued = append(d.issued, x)
		case k < 70: // Update with an HLC another device issued, old or recent
			o := devs[r.IntN(len(devs))]
			if len(o.issued) == 0 {
				continue
			}
			i := len(o.issued) - 1 - r.IntN(min(len(o.issued), 20))
			if r.IntN(4) == 0 {
				i = r.IntN(len(o.issued))
			}
			remote := o.issued[i]
			if err := update(d, remote, maxDrift); err != nil {
				return fail("%v", err)
			}
		case k < 75: // Update with an HLC beyond MaxDrift
			wall := d.clock.WallMillis()
			remote := h(wall+uint64(maxDrift/time.Millisecond)+1+uint64(r.IntN(1_000_000)), r.Uint32(), devs[0].id)
			if err := update(d, remote, maxDrift); err != nil {
				return fail("%v", err)
			}
		case k < 85: // the wall clock ticks
			d.wall.Advance(time.Duration(r.IntN(5)) * time.Millisecond)
		case k < 92: // the wall clock jumps, forwards or backwards, up to 10 min
			d.wall.Advance(time.Duration(r.IntN(1_200_001)-600_000) * time.Millisecond)
		default: // crash and restart from the persisted lease
			d.clock = hlc.NewClock(d.id, d.wall, cfg)
			d.clock.Restore(d.lease)
		}
		// The caller's duty before any HLC is stored or sent: persist the
		// lease when it moves.
		if bound, changed := d.clock.Lease(); changed {
			if bound <= d.lease {
				return fail("Lease() moved the bound from %d down to %d", d.lease, bound)
			}
			d.lease = bound
		}
		if d.high.Timestamp >= d.lease {
			return fail("lease %d does not cover %v", d.lease, d.high)
		}
	}
	return nil
}

// update merges remote into d and checks the outcome against the drift rule.
func update(d *simDevice, remote hlc.HLC, maxDrift time.Duration) error {
	wall := d.clock.WallMillis()
	before := d.clock.Last()
	err := d.clock.Update(remote)
	if remote.Timestamp <= wall+uint64(maxDrift/time.Millisecond) {
		if err != nil {
			return fmt.Errorf("Update(%v) within drift at wall %d = %v", remote, wall, err)
		}
		d.high = hlc.Max(d.high, remote)
		return nil
	}
	var se *hlc.SkewError
	if !errors.Is(err, hlc.ErrClockSkew) || !errors.As(err, &se) {
		return fmt.Errorf("Update(%v) beyond drift at wall %d = %v, want a *SkewError", remote, wall, err)
	}
	if want := time.Duration(remote.Timestamp-wall) * time.Millisecond; se.Ahead != want {
		return fmt.Errorf("Update(%v) at wall %d: Ahead = %v, want %v", remote, wall, se.Ahead, want)
	}
	if after := d.clock.Last(); after != before {
		return fmt.Errorf("refused Update(%v) moved Last from %v to %v", remote, before, after)
	}
	return nil
}
