package node

import "testing"

// The event log is bounded in events and in payload bytes; what leaves it
// is remembered, so that a resume from before it is known to be
// incomplete.
func TestEventLogBounds(t *testing.T) {
	var l eventLog
	for i := 1; i <= eventLogLen+5; i++ {
		l.add(Event{Seq: uint64(i)})
	}
	if len(l.events) != eventLogLen || l.events[0].Seq != 6 || l.dropped != 5 {
		t.Fatalf("after %d events: %d kept from %d, dropped up to %d", eventLogLen+5, len(l.events), l.events[0].Seq, l.dropped)
	}
	var b eventLog
	big := make([]byte, eventLogBytes/3+1)
	for i := 1; i <= 4; i++ {
		b.add(Event{Seq: uint64(i), Data: big})
	}
	if b.bytes > eventLogBytes || len(b.events) != 2 || b.dropped != 2 {
		t.Fatalf("payload bound: %d events, %d bytes, dropped up to %d", len(b.events), b.bytes, b.dropped)
	}
	var one eventLog
	one.add(Event{Seq: 1, Data: make([]byte, eventLogBytes+1)})
	if len(one.events) != 1 {
		t.Fatalf("a single event over the byte bound must stay (the latest is always kept): %d", len(one.events))
	}
}
