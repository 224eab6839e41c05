package main

import (
	"testing"
	"time"
)

// The plain progress line gives records, rate and, with a total, percent
// and ETA.
func TestProgressLine(t *testing.T) {
	cases := []struct {
		received, expected int
		elapsed            time.Duration
		want               string
	}{
		{0, -1, 0, "backfill: 0 records, 0 records/s"},
		{500, -1, 2 * time.Second, "backfill: 500 records, 250 records/s"},
		{500, 2000, 2 * time.Second, "backfill: 500/2000 records (25%), 250 records/s, ETA 6s"},
		{0, 2000, time.Second, "backfill: 0/2000 records (0%), 0 records/s, ETA ?"},
		{2100, 2000, time.Second, "backfill: 2100/2100 records (100%), 2100 records/s, ETA 0s"}, // a total never below the count
	}
	for _, c := range cases {
		if got := progressLine(c.received, c.expected, c.elapsed); got != c.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", c.received, c.expected, c.elapsed, got, c.want)
		}
	}
}
