package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/store"
)

// These scenarios are the traps of DESIGN.md §4 and of Spacedrive's own
// sync, each written out by hand. They read as a specification: what happens,
// and what every device must hold afterwards.

func payload(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, s *Sim, node int, model string, id uuid.UUID, data []byte) hlc.HLC {
	t.Helper()
	h, err := s.Write(node, model, id, data)
	if err != nil {
		t.Fatalf("n%d writing %s/%s: %v", node, model, id, err)
	}
	return h
}

func wantLive(t *testing.T, s *Sim, node int, model string, id uuid.UUID, version hlc.HLC) {
	t.Helper()
	r, ok := s.Record(node, model, id)
	if !ok || r.Deleted || r.Version != version {
		t.Fatalf("n%d: %s/%s: want live at %s, have %+v (present %v)", node, model, id, version, r, ok)
	}
}

func wantGone(t *testing.T, s *Sim, node int, model string, id uuid.UUID) {
	t.Helper()
	if r, ok := s.Record(node, model, id); ok && !r.Deleted {
		t.Fatalf("n%d: %s/%s: want deleted, it is live at %s", node, model, id, r.Version)
	}
}

func finish(t *testing.T, s *Sim) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// A, cut off, writes at 10:00; B writes at 10:05 and C syncs from B up to
// 10:05; A reconnects to B only, and B receives the 10:00 change. A single
// "since 10:05" from C would skip it forever; per-stream watermarks relay it.
func TestScenarioRelayGap(t *testing.T) {
	s := NewScenario(3, 1)
	a, b, c := 0, 1, 2
	s.Settle(2 * time.Second)
	s.Isolate(a)
	old := s.UUID()
	hOld := mustWrite(t, s, a, "tag", old, payload(t, "written by A at 10:00"))
	s.Settle(5 * time.Minute)
	newer := s.UUID()
	hNew := mustWrite(t, s, b, "tag", newer, payload(t, "written by B at 10:05"))
	s.Settle(2 * time.Second)
	wantLive(t, s, c, "tag", newer, hNew)
	if !hOld.Less(hNew) {
		t.Fatalf("setup: A's change %s should be older than B's %s", hOld, hNew)
	}
	// A comes back, but can reach B only.
	s.Join(a)
	s.Cut(a, c)
	s.Settle(5 * time.Second)
	wantLive(t, s, b, "tag", old, hOld)
	wantLive(t, s, c, "tag", old, hOld) // relayed by B
	s.Join(a)
	s.Settle(5 * time.Second)
	finish(t, s)
}

// A record is updated by a device that is cut off, while another device
// deletes it later (by HLC). The update, older than the delete, arrives late:
// it must not bring the record back, anywhere, now or after pruning.
func TestScenarioDeleteThenLateOlderWrite(t *testing.T) {
	s := NewScenario(3, 2)
	a, b := 0, 1
	id := s.UUID()
	mustWrite(t, s, a, "album", id, payload(t, "v0"))
	s.Settle(2 * time.Second)
	s.Isolate(a)
	hUpdate := mustWrite(t, s, a, "album", id, payload(t, "v1, made offline"))
	s.Settle(time.Second)
	hDelete := mustWrite(t, s, b, "album", id, nil)
	if !hUpdate.Less(hDelete) {
		t.Fatalf("setup: the update %s should be older than the delete %s", hUpdate, hDelete)
	}
	s.Settle(30 * time.Second) // pruning runs meanwhile; A holds tombstones back
	s.Join(a)
	s.Settle(10 * time.Second)
	for n := 0; n < 3; n++ {
		wantGone(t, s, n, "album", id)
	}
	// Long after, with every tombstone purged, a replay of the old update
	// still changes nothing: every device holds the stream past it.
	s.Settle(2 * time.Minute)
	for n := 0; n < 3; n++ {
		wantGone(t, s, n, "album", id)
	}
	finish(t, s)
}

// The same trap past the horizon: the member that made the older update
// stays silent for longer than the horizon. It stops holding log pruning
// back, but never tombstone purging: its update, older than the delete, must
// not resurrect the record when it returns.
func TestScenarioSilentMemberHoldsTombstones(t *testing.T) {
	s := NewScenario(3, 11)
	a, b := 0, 1
	id := s.UUID()
	mustWrite(t, s, a, "album", id, payload(t, "v0"))
	s.Settle(2 * time.Second)
	s.Isolate(a)
	mustWrite(t, s, a, "album", id, payload(t, "v1, made offline"))
	s.Settle(time.Second)
	mustWrite(t, s, b, "album", id, nil)
	s.Settle(horizon + 20*time.Second)
	s.Join(a)
	s.Settle(10 * time.Second)
	for n := 0; n < 3; n++ {
		wantGone(t, s, n, "album", id)
	}
	finish(t, s)
}

// A device is removed while offline, the others delete records and purge
// the tombstones (nobody waits for a non-member), and the device is added
// back. Its catch-up is a snapshot from the beginning of each stream, exact,
// so it drops the records whose deletes it can no longer be told about.
func TestScenarioOfflinePastTombstoneRetention(t *testing.T) {
	s := NewScenario(3, 3)
	a, b, d := 0, 1, 2
	shared, owned, kept := s.UUID(), s.UUID(), s.UUID()
	mustWrite(t, s, a, "tag", shared, payload(t, "to be deleted"))
	mustWrite(t, s, b, "location", owned, payload(t, "to be deleted"))
	hKept := mustWrite(t, s, b, "location", kept, payload(t, "kept"))
	s.Settle(3 * time.Second)
	wantLive(t, s, d, "location", owned, mustRecord(t, s, b, "location", owned).Version)
	s.Crash(d)
	s.SetMembers(a, b)
	mustWrite(t, s, a, "tag", shared, nil)
	mustWrite(t, s, b, "location", owned, nil)
	s.Settle(20 * time.Second)
	for _, n := range []int{a, b} {
		if _, ok := s.Record(n, "tag", shared); ok {
			t.Fatalf("n%d still keeps the tombstone of tag/%s; the test needs it purged", n, shared)
		}
		if _, ok := s.Record(n, "location", owned); ok {
			t.Fatalf("n%d still keeps the tombstone of location/%s; the test needs it purged", n, owned)
		}
	}
	s.Restart(d)
	s.SetMembers(a, b, d)
	s.Settle(10 * time.Second)
	wantGone(t, s, d, "tag", shared)
	wantGone(t, s, d, "location", owned)
	wantLive(t, s, d, "location", kept, hKept)
	finish(t, s)
}

func mustRecord(t *testing.T, s *Sim, node int, model string, id uuid.UUID) store.Record {
	t.Helper()
	r, ok := s.Record(node, model, id)
	if !ok {
		t.Fatalf("n%d has no %s/%s", node, model, id)
	}
	return r
}

// A member acknowledges once and vanishes. Within the horizon it holds log
// pruning back exactly at what it acknowledged (pruning happens up to there,
// never past it); past the horizon it no longer does, and the log is pruned to
// the last write; when it returns it catches up from snapshots without losing
// or resurrecting anything.
func TestScenarioMemberAckedOnceAndVanished(t *testing.T) {
	s := NewScenario(3, 4)
	a, b, v := 0, 1, 2
	first := s.UUID()
	hFirst := mustWrite(t, s, a, "tag", first, payload(t, 1))
	s.Settle(3 * time.Second)
	s.Isolate(v) // v acked the first write, then vanished
	var last hlc.HLC
	for i := 0; i < 10; i++ {
		last = mustWrite(t, s, a, "tag", s.UUID(), payload(t, i))
		s.Settle(time.Second)
	}
	s.Settle(3 * time.Second)
	for _, n := range []int{a, b} {
		if p := logPruned(t, s, n, "tag", a); p != hFirst {
			t.Fatalf("within the horizon n%d pruned the log of a's stream to %s, want exactly %s: what the vanished member acknowledged", n, p, hFirst)
		}
	}
	s.Settle(horizon + 10*time.Second)
	for _, n := range []int{a, b} {
		if p := logPruned(t, s, n, "tag", a); p != last {
			t.Fatalf("past the horizon n%d pruned the log of a's stream to %s, want %s (the last write)", n, p, last)
		}
	}
	removed := s.UUID()
	mustWrite(t, s, a, "tag", removed, payload(t, "short-lived"))
	s.Settle(time.Second)
	mustWrite(t, s, a, "tag", removed, nil)
	s.Join(v)
	s.Settle(10 * time.Second)
	wantLive(t, s, v, "tag", first, mustRecord(t, s, a, "tag", first).Version)
	wantGone(t, s, v, "tag", removed)
	finish(t, s)
}

// logPruned returns the log prune point of stream (model, origin node) at
// node n.
func logPruned(t *testing.T, s *Sim, n int, model string, origin int) hlc.HLC {
	t.Helper()
	_, st := s.Node(n)
	pps, err := st.PrunePoints(s.Library())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pps {
		if p.ModelType == model && p.Origin == s.Device(origin) {
			return p.Log
		}
	}
	return hlc.HLC{}
}

// A member added while it is unreachable has acknowledged nothing: it holds
// every log back from the moment it is listed (by each node's own clock,
// whatever AddedAt the adder gave it) until the horizon passes, and catches up
// when it comes.
func TestScenarioFreshMemberHoldsPruningBack(t *testing.T) {
	s := NewScenario(4, 8)
	a, fresh := 0, 3
	s.SetMembers(0, 1, 2)
	s.Isolate(fresh)
	mustWrite(t, s, a, "tag", s.UUID(), payload(t, 0))
	s.Settle(3 * time.Second)
	if p := logPruned(t, s, a, "tag", a); p.IsZero() {
		t.Fatal("setup: with every member acknowledging, the log should be pruned")
	}
	before := logPruned(t, s, a, "tag", a)
	s.SetMembers(0, 1, 2, fresh)
	var last hlc.HLC
	for i := 0; i < 5; i++ {
		last = mustWrite(t, s, a, "tag", s.UUID(), payload(t, i))
		s.Settle(2 * time.Second)
	}
	for n := 0; n < 3; n++ {
		if p := logPruned(t, s, n, "tag", a); p != before {
			t.Fatalf("n%d pruned the log to %s while a member listed %v ago acknowledged nothing (it was pruned to %s before)", n, p, 10*time.Second, before)
		}
	}
	s.Settle(horizon)
	if p := logPruned(t, s, a, "tag", a); p != last {
		t.Fatalf("past the horizon the log is pruned to %s, want %s", p, last)
	}
	s.Join(fresh)
	s.Settle(10 * time.Second)
	finish(t, s)
}

// Two devices write one record at the same instant: their HLCs tie on
// (timestamp, counter), and the device ID decides, the same way everywhere.
func TestScenarioTieBreaksByDevice(t *testing.T) {
	s := NewScenario(3, 9)
	s.Settle(2 * time.Second)
	id := s.UUID()
	var hs []hlc.HLC
	for _, n := range []int{0, 1} {
		h, err := s.WriteAll([]int{n}, "album", id, payload(t, fmt.Sprintf("from n%d", n)))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if hs[0].Timestamp != hs[1].Timestamp || hs[0].Counter != hs[1].Counter {
		t.Fatalf("setup: the writes %s and %s should tie on timestamp and counter", hs[0], hs[1])
	}
	winner := hs[0]
	if winner.Less(hs[1]) {
		winner = hs[1]
	}
	s.Settle(3 * time.Second)
	for n := 0; n < 3; n++ {
		wantLive(t, s, n, "album", id, winner)
	}
	finish(t, s)
}

// A wall clock that jumps ahead past the horizon while its node is connected
// makes nobody silent: no log is pruned past an acknowledgement and no
// snapshot is served (the simulation checks both as it goes).
func TestScenarioClockJumpServesNoSnapshot(t *testing.T) {
	s := NewScenario(3, 10)
	for i := 0; i < 5; i++ {
		mustWrite(t, s, i%3, "tag", s.UUID(), payload(t, i))
	}
	s.Settle(3 * time.Second)
	s.Isolate(2)
	for i := 0; i < 5; i++ {
		mustWrite(t, s, 0, "tag", s.UUID(), payload(t, i))
	}
	s.Settle(time.Second)
	s.SetSkew(1, 10*time.Minute)
	s.Settle(3 * time.Second)
	s.Join(2)
	s.Settle(5 * time.Second)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	s.SetSkew(1, 0)
	s.Settle(11 * time.Minute)
	finish(t, s)
}

// One device's clock runs far ahead. Its changes are quarantined, not
// applied and not merged into anyone's clock, counted and answered with an
// error; once time has caught up they are applied and everyone converges.
func TestScenarioFarFutureClock(t *testing.T) {
	s := NewScenario(3, 5)
	bad := 1
	s.Settle(2 * time.Second)
	s.SetSkew(bad, 10*time.Minute)
	id := s.UUID()
	h := mustWrite(t, s, bad, "tag", id, payload(t, "from the future"))
	s.Settle(3 * time.Second)
	for _, n := range []int{0, 2} {
		eng, _ := s.Node(n)
		if _, ok := s.Record(n, "tag", id); ok {
			t.Fatalf("n%d applied a change %v ahead", n, h.Time().Sub(time.Unix(0, 0)))
		}
		if eng.QuarantineCount(s.Library()) == 0 {
			t.Fatalf("n%d quarantined nothing", n)
		}
		if eng.Clock().Timestamp >= h.Timestamp {
			t.Fatalf("n%d adopted the future HLC into its clock: %s", n, eng.Clock())
		}
	}
	s.SetSkew(bad, 0) // its clock is set right: it steps back
	s.Settle(6 * time.Minute)
	for n := 0; n < 3; n++ {
		wantLive(t, s, n, "tag", id, h)
		if eng, _ := s.Node(n); eng.QuarantineCount(s.Library()) != 0 {
			t.Fatalf("n%d still holds quarantined messages", n)
		}
	}
	finish(t, s)
}

// A new device's backfill is cut by a crash. After the restart it resumes
// from the pages it stored, instead of starting again from zero.
func TestScenarioBackfillInterruptedByCrash(t *testing.T) {
	s := NewScenario(2, 6)
	src, fresh := 0, 1
	s.Isolate(fresh)
	const records = 400
	for i := 0; i < records; i++ {
		mustWrite(t, s, src, "location", s.UUID(), payload(t, i))
	}
	s.Settle(time.Second)
	s.Join(fresh)
	// Pages hold 7 records and arrive a few ms apart: crash mid-way.
	for i := 0; i < 200; i++ {
		s.Settle(10 * time.Millisecond)
		if e, _ := s.Received(fresh); e >= records/3 {
			break
		}
	}
	before, _ := s.Received(fresh)
	if before == 0 || before >= records {
		t.Fatalf("setup: the crash should come mid-backfill, after %d of %d records", before, records)
	}
	s.Crash(fresh)
	s.ResetReceived(fresh)
	s.Restart(fresh)
	s.Settle(10 * time.Second)
	after, _ := s.Received(fresh)
	if before+after > records+records/10 {
		t.Fatalf("backfill restarted: %d records before the crash and %d after, for %d in all", before, after, records)
	}
	if !s.Converged() {
		t.Fatal("not converged after the backfill")
	}
	finish(t, s)
	t.Logf("%d records before the crash, %d after (%d in all)", before, after, records)
}

// Invariant 9: a device that missed k changes of a large library is sent
// O(k) data, not the library.
func TestCatchUpCostsWhatWasMissed(t *testing.T) {
	s := NewScenario(3, 7)
	a, c := 0, 2
	const base, missed = 600, 40
	owned := make([]uuid.UUID, 0, base)
	tags := make([]uuid.UUID, 0, base)
	blob := make([]byte, 200)
	for i := 0; i < base; i++ {
		id := s.UUID()
		owned = append(owned, id)
		mustWrite(t, s, a, "location", id, payload(t, blob))
		id = s.UUID()
		tags = append(tags, id)
		mustWrite(t, s, a, "tag", id, payload(t, blob))
	}
	s.Settle(20 * time.Second)
	if !s.Converged() {
		t.Fatal("setup: not converged")
	}
	s.Isolate(c)
	for i := 0; i < missed/2; i++ {
		mustWrite(t, s, a, "location", owned[i*7], payload(t, blob))
		mustWrite(t, s, 1, "tag", tags[i*11], payload(t, blob))
	}
	s.Settle(2 * time.Second)
	s.ResetReceived(c)
	s.Join(c)
	s.Settle(10 * time.Second)
	entries, bytes := s.Received(c)
	perChange := float64(bytes) / missed
	t.Logf("missed %d of %d records: received %d entries, %d bytes in pages (%.0f bytes per missed change, payload %d)",
		missed, 2*base, entries, bytes, perChange, len(blob))
	if entries > missed {
		t.Errorf("catch-up sent %d entries for %d missed changes", entries, missed)
	}
	if perChange > 3*float64(len(blob)+100) {
		t.Errorf("catch-up cost %.0f bytes per missed change of %d payload bytes", perChange, len(blob))
	}
	finish(t, s)
}

// TestSimRegressions replays every seed the simulation found failing while
// the engine was built, each named by what it caught.
func TestSimRegressions(t *testing.T) {
	for _, tc := range []struct {
		seed   int64
		legacy bool // found with LegacyConfig (before issue 12)
		what   string
		fields bool // found with FieldsConfigV1 (issue 15)
	}{
		{4, true, "a crash must lose the Ready not yet persisted (the sim flushed it while closing links)", false},
		{138, true, "a relay holding out-of-order records pages them with complete = zero; (issue 12) a clock that jumps ahead is no silence", false},
		{288, true, "after a quarantined page tail, later pages of the stream must not move the watermark past it", false},
		{694, true, "a write lost in a crash may be reissued below its HLC: only persisted or sent HLCs bind", false},
		{695, true, "a restart resumes the clock at the lease, without adding a lease window each time; (issue 12) a clock jump is no silence", false},
		{1248, true, "timers keep firing when the wall clock steps back", false},
		{2050, true, "tombstones wait for every member's stream, even one this node has not heard of", false},
		{12, true, "a clock that jumps ahead is no silence: no snapshot to members that never went silent (issue 12)", false},
		{10, false, "a restart after the clock stepped ahead is no silence (issue 12)", false},
		{15, false, "a member that just joined is fresh by each node's own clock (issue 12)", false},
		{29, false, "a member that just joined is fresh by each node's own clock (issue 12)", false},
		{115, false, "a released page tail of a removed origin moves the watermark (issue 12)", false},
		{576, false, "a released page tail of a removed origin moves the watermark (issue 12)", false},
		{1283, false, "a tombstone purged by one member may be missing at a member that caught up from a snapshot (issue 12)", false},
		{501412, false, "a removed device's streams are asked of every member (issue 12)", false},
		{501918, false, "a removed device's write held beyond watermarks may be missing at other members (known, issue 12)", false},
		{502682, false, "a snapshot page's entry (no prev) does not extend the chain of a stream (issue 12)", false},
		{502755, false, "a device that joined writes only records it has seen, or new ones (issue 12)", false},
		{507011, false, "a device that joined writes only records it has seen, or new ones (issue 12)", false},
		{100023, false, "a shared-fields snapshot page of a node's own stream still carries other streams' field writes (issue 15)", true},
		{100223, false, "a shared-fields snapshot page of a node's own stream still carries other streams' field writes (issue 15)", true},
		{100331, false, "a node that got a shared-fields stream as a snapshot serves it as a snapshot: its log lacks writes inside other streams' records (issue 15)", true},
		{200010, false, "a shared-fields snapshot cut off after some streams of its type moves no watermark: the records listed under the streams not yet served carry the served streams' field writes (issue 15)", true},
		{201379, false, "a shared-fields snapshot cut off after some streams of its type moves no watermark (issue 15)", true},
		{303475, false, "a shared-fields snapshot page whose quarantined tail was not kept (a duplicate key) moves no watermark of the type (issue 15)", true},
	} {
		t.Run(fmt.Sprint(tc.seed), func(t *testing.T) {
			cfg := RandomConfig(tc.seed)
			if tc.legacy {
				cfg = LegacyConfig(tc.seed)
			}
			if tc.fields {
				cfg = FieldsConfigV1(tc.seed)
			}
			s := New(cfg)
			if err := s.Run(); err != nil {
				t.Fatalf("%s: %v", tc.what, err)
			}
		})
	}
}
