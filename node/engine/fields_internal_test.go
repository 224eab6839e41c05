package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

var (
	fDevs = []uuid.UUID{
		uuid.MustParse("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"),
		uuid.MustParse("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"),
		uuid.MustParse("cccccccc-cccc-4ccc-8ccc-cccccccccccc"),
	}
	fKey   = store.RecordKey{Library: uuid.MustParse("11111111-1111-4111-8111-111111111111"), ModelType: "note", ID: uuid.MustParse("01010101-0101-4101-8101-010101010101")}
	fNames = []string{"a", "b", "c", "title"}
)

// randChanges returns n random changes of one record: patches of random
// fields (values, removals) and deletes, with distinct HLCs of three devices
// that often tie on the timestamp, so that counters and devices break ties.
func randChanges(rng *rand.Rand, n int) []protocol.SharedChangeEntry {
	used := make(map[hlc.HLC]bool)
	var out []protocol.SharedChangeEntry
	for len(out) < n {
		h := hlc.HLC{Timestamp: 1000 + uint64(rng.IntN(6)), Counter: uint32(rng.IntN(2)), DeviceID: fDevs[rng.IntN(3)]}
		if used[h] {
			continue
		}
		used[h] = true
		en := protocol.SharedChangeEntry{HLC: h, ModelType: fKey.ModelType, RecordUUID: fKey.ID, ChangeType: protocol.Update}
		if rng.IntN(5) == 0 {
			en.ChangeType = protocol.Delete
		} else {
			p := make(map[string]cbor.RawMessage)
			for _, name := range fNames {
				switch rng.IntN(4) {
				case 0:
					p[name] = protocol.Undefined
				case 1:
					p[name] = mustEnc(fmt.Sprintf("%s@%s", name, h))
				}
			}
			data, err := protocol.EncodeFieldPatch(p)
			if err != nil {
				panic(err)
			}
			en.Data = data
		}
		out = append(out, en)
	}
	return out
}

func mustEnc(v any) cbor.RawMessage {
	b, err := cbor.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func fold(t *testing.T, ens []protocol.SharedChangeEntry) fieldRecord {
	t.Helper()
	var f fieldRecord
	for _, en := range ens {
		c, err := fieldChange(en)
		if err != nil {
			t.Fatalf("change %s: %v", en.HLC, err)
		}
		f = joinFields(f, c)
	}
	return f
}

// stored is the stored form of a state, as bytes that must match exactly.
func stored(t *testing.T, f fieldRecord) string {
	t.Helper()
	if f.live.IsZero() && f.st.Deleted.IsZero() {
		return "absent"
	}
	rec, err := f.toRecord(fKey)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s deleted=%v %x", rec.Version, rec.Deleted, rec.Data)
}

// roundTrip passes a state through its stored and wire form (a snapshot
// entry), as a relay would.
func roundTrip(t *testing.T, f fieldRecord) fieldRecord {
	t.Helper()
	if f.live.IsZero() && f.st.Deleted.IsZero() {
		return f
	}
	rec, err := f.toRecord(fKey)
	if err != nil {
		t.Fatal(err)
	}
	en := protocol.SharedChangeEntry{HLC: rec.Version, ChangeType: protocol.Update, Data: rec.Data}
	if rec.Deleted {
		en.ChangeType, en.Data = protocol.Delete, nil
	}
	g, err := fieldChange(en)
	if err != nil {
		t.Fatalf("decoding a stored state: %v", err)
	}
	return g
}

// TestFieldJoinLaws checks that the merge of shared-fields states is a join
// (commutative, associative, idempotent) on their stored bytes, also after
// a state passes through its wire form.
func TestFieldJoinLaws(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 1))
	for i := 0; i < 2000; i++ {
		a := fold(t, randChanges(rng, rng.IntN(5)))
		b := fold(t, randChanges(rng, rng.IntN(5)))
		c := fold(t, randChanges(rng, rng.IntN(5)))
		if x, y := stored(t, joinFields(a, b)), stored(t, joinFields(b, a)); x != y {
			t.Fatalf("not commutative:\n a∨b %s\n b∨a %s", x, y)
		}
		if x, y := stored(t, joinFields(joinFields(a, b), c)), stored(t, joinFields(a, joinFields(b, c))); x != y {
			t.Fatalf("not associative:\n (a∨b)∨c %s\n a∨(b∨c) %s", x, y)
		}
		if x, y := stored(t, joinFields(a, a)), stored(t, joinFields(fieldRecord{}, a)); x != y {
			t.Fatalf("not idempotent:\n a∨a %s\n a %s", x, y)
		}
		if x, y := stored(t, joinFields(roundTrip(t, a), b)), stored(t, joinFields(a, b)); x != y {
			t.Fatalf("a state through its wire form merges differently:\n %s\n %s", x, y)
		}
	}
}

// TestFieldOrderIndependence delivers the same changes in random orders,
// with duplicates and with some of them first merged on a relay whose state
// arrives as a snapshot entry, and checks the stored bytes are the same and
// match the rule computed from the history.
func TestFieldOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2))
	for i := 0; i < 500; i++ {
		ens := randChanges(rng, 1+rng.IntN(8))
		want := stored(t, fold(t, ens))
		checkModel(t, ens, fold(t, ens))
		for j := 0; j < 10; j++ {
			perm := append([]protocol.SharedChangeEntry(nil), ens...)
			rng.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
			perm = append(perm, perm[:rng.IntN(len(perm))]...) // duplicates
			cut := rng.IntN(len(perm) + 1)
			relay := roundTrip(t, fold(t, perm[:cut]))
			got := joinFields(relay, fold(t, perm[cut:]))
			if s := stored(t, got); s != want {
				t.Fatalf("order %d of %d changes: got\n %s\nwant\n %s", j, len(ens), s, want)
			}
		}
	}
}

// checkModel checks a merged state against the rule, computed directly from
// the history: the record exists iff its greatest insert or update is above
// its greatest delete, and then shows each field's greatest-HLC write if that
// is a value written after the delete.
func checkModel(t *testing.T, ens []protocol.SharedChangeEntry, f fieldRecord) {
	t.Helper()
	var live, del hlc.HLC
	last := make(map[string]protocol.FieldVersion)
	for _, en := range ens {
		if en.ChangeType == protocol.Delete {
			del = hlc.Max(del, en.HLC)
			continue
		}
		live = hlc.Max(live, en.HLC)
		p, err := protocol.DecodeFieldPatch(en.Data)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range p {
			if cur, ok := last[name]; !ok || en.HLC.After(cur.HLC) {
				fv := protocol.FieldVersion{HLC: en.HLC}
				if !bytes.Equal(v, protocol.Undefined) {
					fv.Value = v
				}
				last[name] = fv
			}
		}
	}
	want := map[string]string{}
	if live.After(del) {
		for name, fv := range last {
			if fv.HLC.After(del) && !fv.Removed() {
				want[name] = fmt.Sprintf("%x", fv.Value)
			}
		}
	}
	got := map[string]string{}
	if !f.live.IsZero() {
		for name, fv := range f.st.Fields {
			if !fv.Removed() {
				got[name] = fmt.Sprintf("%x", fv.Value)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || f.live.IsZero() == live.After(del) {
		t.Fatalf("history %d changes: shows %v (exists %v), the rule says %v (exists %v)", len(ens), got, !f.live.IsZero(), want, live.After(del))
	}
}

// TestFieldCompaction checks that compaction at a stable point drops only
// removed fields and the delete at or below it, and changes nothing an app
// sees.
func TestFieldCompaction(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 3))
	for i := 0; i < 500; i++ {
		f := fold(t, randChanges(rng, 1+rng.IntN(8)))
		bound := hlc.HLC{Timestamp: 1000 + uint64(rng.IntN(7)), DeviceID: fDevs[rng.IntN(3)]}
		before, err := f.visible()
		if err != nil {
			t.Fatal(err)
		}
		g := compactFields(roundTrip(t, f), bound)
		after, err := g.visible()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Fatalf("compaction at %s changed what an app sees: %x -> %x", bound, before, after)
		}
		if g.live.IsZero() {
			continue
		}
		if !g.st.Deleted.IsZero() && !g.st.Deleted.After(bound) {
			t.Fatalf("delete %s kept at stable point %s", g.st.Deleted, bound)
		}
		for name, fv := range g.st.Fields {
			if fv.Removed() && !fv.HLC.After(bound) {
				t.Fatalf("removed field %q at %s kept at stable point %s", name, fv.HLC, bound)
			}
		}
		for name, fv := range f.st.Fields {
			if fv.Removed() && fv.HLC.After(bound) {
				if _, ok := g.st.Fields[name]; !ok {
					t.Fatalf("removed field %q at %s dropped above the stable point %s", name, fv.HLC, bound)
				}
			}
		}
	}
}
