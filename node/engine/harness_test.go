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

// harness is one engine over a store.Mem with a hand-driven clock, for
// table tests: every input is followed by persisting its Ready, as the node
// does.
type harness struct {
	t    *testing.T
	cfg  engine.Config
	now  time.Time
	self uuid.UUID
	lib  uuid.UUID
	st   *store.Mem
	eng  *engine.Engine
	// last is the last Ready handled.
	last engine.Ready
}

// fastConfig is an engine configuration with short timers: heartbeat 1 s,
// peer timeout 5 s, prune every second, horizon one minute.
func fastConfig(self uuid.UUID) engine.Config {
	return engine.Config{
		Device: self, HeartbeatInterval: time.Second, PeerTimeout: 5 * time.Second,
		AckInterval: 100 * time.Millisecond, RetryInterval: 500 * time.Millisecond,
		PruneInterval: time.Second, Horizon: time.Minute, LastSeenResolution: time.Second,
	}
}

// newHarness starts an engine of a new device in a new library whose other
// members are others (the member list includes the engine's own device).
func newHarness(t *testing.T, others ...uuid.UUID) *harness {
	t.Helper()
	self := uuid.New()
	h := &harness{t: t, cfg: fastConfig(self), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), self: self, lib: uuid.New(), st: store.NewMem()}
	h.start()
	members := []store.Member{{DeviceID: self}}
	for _, o := range others {
		members = append(members, store.Member{DeviceID: o})
	}
	if err := h.eng.AddLibrary(h.now, store.Library{ID: h.lib, Name: "test"}, members); err != nil {
		t.Fatal(err)
	}
	h.flush()
	return h
}

// start (re)creates the engine over the harness's store, as a restart does.
func (h *harness) start() {
	h.t.Helper()
	eng, err := engine.New(h.cfg, h.st)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := eng.Load(h.now); err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
	h.flush()
}

// flush persists the pending Ready and returns it.
func (h *harness) flush() engine.Ready {
	h.t.Helper()
	rd := h.eng.Ready()
	if err := h.st.Apply(&rd.Batch); err != nil {
		h.t.Fatalf("persisting a Ready: %v", err)
	}
	h.eng.Advance()
	h.last = rd
	return rd
}

// step feeds one session message from a device and persists the Ready.
func (h *harness) step(from uuid.UUID, m protocol.Message) error {
	h.t.Helper()
	err := h.eng.Step(h.now, from, m)
	h.flush()
	return err
}

// tick moves the clock by d, ticks and persists the Ready.
func (h *harness) tick(d time.Duration) engine.Ready {
	h.t.Helper()
	h.now = h.now.Add(d)
	if err := h.eng.Tick(h.now); err != nil {
		h.t.Fatalf("Tick: %v", err)
	}
	return h.flush()
}

// connect opens a session with a member and feeds its Hello with the
// given watermarks.
func (h *harness) connect(peer uuid.UUID, wms ...protocol.Watermark) {
	h.t.Helper()
	if err := h.eng.Connected(h.now, h.lib, peer); err != nil {
		h.t.Fatalf("Connected: %v", err)
	}
	h.flush()
	hello := &protocol.Hello{LibraryID: h.lib, DeviceID: peer, Versions: []uint32{protocol.Version}, Watermarks: wms}
	if err := h.step(peer, hello); err != nil {
		h.t.Fatalf("Hello: %v", err)
	}
}

// putShared writes a shared record locally and returns its HLC.
func (h *harness) putShared(model string, id uuid.UUID, v any) hlc.HLC {
	h.t.Helper()
	data, err := cbor.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	at, err := h.eng.PutShared(h.now, h.lib, model, id, data)
	if err != nil {
		h.t.Fatalf("PutShared: %v", err)
	}
	h.flush()
	return at
}

// prunePoint returns the stored prune point of a stream.
func (h *harness) prunePoint(model string, origin uuid.UUID) store.PrunePoint {
	h.t.Helper()
	pps, err := h.st.PrunePoints(h.lib)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, p := range pps {
		if p.ModelType == model && p.Origin == origin {
			return p
		}
	}
	return store.PrunePoint{}
}

// watermark returns the stored watermark of a stream.
func (h *harness) watermark(model string, origin uuid.UUID) hlc.HLC {
	h.t.Helper()
	w, err := h.st.Watermark(store.Stream{Library: h.lib, ModelType: model, Origin: origin})
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

// record returns a stored record (ok false if absent).
func (h *harness) record(model string, id uuid.UUID) (store.Record, bool) {
	r, err := h.st.Record(store.RecordKey{Library: h.lib, ModelType: model, ID: id})
	return r, err == nil
}

func cborOf(t *testing.T, v any) cbor.RawMessage {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
