package engine_test

import (
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"

	"github.com/syncnode/syncnode/hlc"
	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
	"github.com/syncnode/syncnode/store"
)

// A member cannot take over another device's device-owned record by
// writing the same record ID, nor by claiming to be its owner.
func TestOwnedRecordCannotBeTakenOver(t *testing.T) {
	now := time.Now()
	self, owner, thief, lib := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	st := store.NewMem()
	eng, err := engine.New(engine.Config{Device: self}, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(now); err != nil {
		t.Fatal(err)
	}
	members := []store.Member{{DeviceID: self}, {DeviceID: owner}, {DeviceID: thief}}
	if err := eng.AddLibrary(now, store.Library{ID: lib}, members); err != nil {
		t.Fatal(err)
	}
	step := func(from uuid.UUID, m protocol.Message) error {
		err := eng.Step(now, from, m)
		rd := eng.Ready()
		if err := st.Apply(&rd.Batch); err != nil {
			t.Fatal(err)
		}
		eng.Advance()
		return err
	}
	id := uuid.New()
	mine, _ := cbor.Marshal("the owner's")
	theirs, _ := cbor.Marshal("the thief's")
	v1 := hlc.HLC{Timestamp: uint64(now.UnixMilli()) - 1000, DeviceID: owner}
	if err := step(owner, &protocol.StateChange{LibraryID: lib, ModelType: "location", RecordUUID: id, DeviceID: owner, Data: mine, Timestamp: v1}); err != nil {
		t.Fatal(err)
	}
	// The thief writes the same record ID in its own stream, newer.
	v2 := hlc.HLC{Timestamp: uint64(now.UnixMilli()), DeviceID: thief}
	if err := step(thief, &protocol.StateChange{LibraryID: lib, ModelType: "location", RecordUUID: id, DeviceID: thief, Data: theirs, Timestamp: v2}); err != nil {
		t.Fatal(err)
	}
	// And claims to be the owner.
	err = step(thief, &protocol.StateChange{LibraryID: lib, ModelType: "location", RecordUUID: id, DeviceID: owner, Data: theirs,
		Timestamp: hlc.HLC{Timestamp: v2.Timestamp + 1, DeviceID: owner}})
	if code := protocol.CodeOf(err); code.String() != "ownership" {
		t.Fatalf("a forged owner claim gave %v (code %s), want an ownership refusal", err, code)
	}
	r, err := st.Record(store.RecordKey{Library: lib, ModelType: "location", ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != v1 || string(r.Data) != string(mine) {
		t.Fatalf("the record is now %s %q, want the owner's %s", r.Version, r.Data, v1)
	}
}
