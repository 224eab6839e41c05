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
	if h := l.held(); len(h) != eventLogLen || h[0].Seq != 6 || h[len(h)-1].Seq != eventLogLen+5 || l.dropped != 5 {
		t.Fatalf("after %d events: %d kept from %d, dropped up to %d", eventLogLen+5, len(h), h[0].Seq, l.dropped)
	}
	if cap(l.events) > 4*eventLogLen {
		t.Fatalf("the log's slice grew to %d for %d events", cap(l.events), eventLogLen)
	}
	var b eventLog
	big := make([]byte, eventLogBytes/3+1)
	for i := 1; i <= 4; i++ {
		b.add(Event{Seq: uint64(i), Data: big})
	}
	if b.bytes > eventLogBytes || len(b.held()) != 2 || b.dropped != 2 {
		t.Fatalf("payload bound: %d events, %d bytes, dropped up to %d", len(b.held()), b.bytes, b.dropped)
	}
	var one eventLog
	one.add(Event{Seq: 1, Data: make([]byte, eventLogBytes+1)})
	if len(one.held()) != 1 {
		t.Fatalf("a single event over the byte bound must stay (the latest is always kept): %d", len(one.events))
	}
}

// Adding to a full log costs O(1) amortized: a million events through a
// full log take well under a second. (A first version copied the whole log
// for every event once it was full, ten thousand copies per event: the
// e2e crash test, which writes 50,000 records, ran out of time.)
func TestEventLogAddIsCheap(t *testing.T) {
	var l eventLog
	for i := 1; i <= 1_000_000; i++ {
		l.add(Event{Seq: uint64(i)})
	}
	if h := l.held(); len(h) != eventLogLen || h[0].Seq != 1_000_000-eventLogLen+1 {
		t.Fatalf("kept %d from %d", len(h), h[0].Seq)
	}
}
