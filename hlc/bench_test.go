package hlc_test

import (
	"testing"
	"time"

	"github.com/syncnode/syncnode/hlc"
)

// BenchmarkClockNow measures one Now on the system clock, the production
// path: a time.Now read plus a mutex-guarded update.
func BenchmarkClockNow(b *testing.B) {
	c := hlc.NewClock(devA, nil, hlc.Config{})
	for b.Loop() {
		c.Now()
	}
}

// BenchmarkClockNowManual measures Now on a ManualClock that never moves, so
// every call takes the counter path.
func BenchmarkClockNowManual(b *testing.B) {
	c := hlc.NewClock(devA, hlc.NewManualClock(time.UnixMilli(T)), hlc.Config{})
	for b.Loop() {
		c.Now()
	}
}

// BenchmarkClockNowParallel measures Now from GOMAXPROCS goroutines sharing
// one clock: the cost of contention on its mutex.
func BenchmarkClockNowParallel(b *testing.B) {
	c := hlc.NewClock(devA, nil, hlc.Config{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Now()
		}
	})
}

// BenchmarkClockNowLease measures the caller's full duty per HLC: Now, then
// Lease to learn whether a bound must be persisted.
func BenchmarkClockNowLease(b *testing.B) {
	c := hlc.NewClock(devA, nil, hlc.Config{})
	for b.Loop() {
		c.Now()
		c.Lease()
	}
}

// BenchmarkAppendKey measures the key encoding into a reused buffer.
func BenchmarkAppendKey(b *testing.B) {
	x := h(1764130555123, 7, devB)
	buf := make([]byte, 0, hlc.KeySize)
	for b.Loop() {
		buf = x.AppendKey(buf[:0])
	}
}
