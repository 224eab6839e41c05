// Package engine holds syncnode's sync rules as a pure state machine: local
// writes, received messages and the passage of time go in; what to persist,
// what to send, which catch-up requests to open and which events to deliver
// come out. It has no goroutines, does no network or disk I/O of its own and
// never reads the system clock or a random source: every input carries the
// current time, and state is read through the store.Reader it is given
// (which the caller backs with Badger, or with store.Mem in tests). A test
// fails if this package imports libp2p, Badger or net.
//
// # Streams and watermarks
//
// A stream is (library, model type, origin device). A device-owned record
// belongs to its owner's stream; a shared record to the stream of the device
// whose change currently wins. For every stream a node keeps a watermark: the
// HLC up to which it holds every change of the stream, or a newer change of
// the same record that supersedes it. Watermarks only move when that is
// proven, which is what lets any member relay any other member's changes
// without skipping one (DESIGN.md §4):
//
//   - A live change names the origin's previous change in its stream (prev).
//     A receiver whose watermark is at least prev holds the stream up to the
//     new change; otherwise it applies the change (the newest version wins,
//     whatever the order) but keeps its watermark, and asks the sender to
//     catch it up. Shared changes that arrive early wait in the log, and the
//     watermark walks through them once the gap closes.
//   - A catch-up page of stream s says: the responder holds nothing of s in
//     (position, up_to] beyond the pages it sent, and holds s up to complete.
//     The receiver, which held s up to its position, stores the page together
//     with the watermark min(up_to, complete) in one batch, so a crash loses
//     at most the page in flight and the next request resumes from there.
//   - Hello and Heartbeat carry the sender's watermarks, which also serve
//     as acknowledgements, and its clock. For the sender's own streams the
//     pair says more: it will never write between its last write and that
//     clock. Tombstone purging uses this to see that quiet streams hold
//     nothing older back; watermarks themselves move only with data, so an
//     idle library sends nothing but heartbeats.
//   - A change at or below the receiver's watermark is a duplicate or was
//     superseded (maybe by a delete whose tombstone is purged by now), and is
//     not applied again.
//
// # Device-owned records (state-based)
//
// Only the owner writes (PutOwned, DeleteOwned); it stamps each write with
// its HLC, which becomes the record's version, and pushes it live as a
// StateChange (coalesced into StateBatch under load). Receivers keep the
// newest version; a delete is a tombstone with a version. StateRequest asks a
// peer for the current state of streams from the requester's watermarks;
// StateResponse pages answer in version order, parents' model types first.
// A relay may answer for any owner. A message claiming an owner other than the
// authenticated sender is refused.
//
// # Shared records (log-based)
//
// Any member writes (PutShared, DeleteShared). Each change carries the
// writer's HLC and lands in the writer's stream log; the record takes the
// change with the greatest HLC, deletes included, so duplicates and reorders
// are harmless and every node picks the same winner. SharedChangeRequest asks
// per stream from the requester's watermark; SharedChangeResponse pages
// answer from the log, or, once the log is pruned past the requester's
// position, from the current records with snapshot set: such a page is exact
// for its range, and the receiver drops the records it lists no longer.
// Records keep the whole change, so per-field merge can be added later by
// growing the record value, without rewriting history.
//
// # Acknowledgements and pruning
//
// A member reports its watermarks in Hello and Heartbeat and, between
// heartbeats, each moved shared watermark in an AckSharedChanges (at most
// one per stream per AckInterval). Log entries of a stream are dropped once
// every active member holds them; a member silent for longer than Horizon
// stops holding that back and is served snapshot pages on its return. Silence
// is counted in time this node observed: a gap between two Ticks longer than
// PeerTimeout (a wall clock that jumped ahead, a machine that slept) and the
// time the node was down (MetaAlive) are left out, and a member listed anew
// counts as heard of when it is listed, by this node's clock.
// Tombstones of a model type are dropped only below its stable point, the
// least watermark over every member (silent ones too) and every stream of
// the type: below it no older write can arrive anywhere and resurrect a
// record.
//
// # Clock skew
//
// A change stamped more than MaxDrift ahead of local wall time is neither
// applied nor merged into the clock. It is stored in quarantine, answered
// with an Error (code clock_skew) naming the skew, counted, and applied by a
// later Tick once local time has caught up. The stream's watermark stays
// below it meanwhile.
//
// # Membership
//
// The engine knows each library's members. A session message, request or
// response from a device that is not a member is refused with
// protocol.ErrNotMember and changes nothing; so is any message whose
// device_id, from_device or live origin contradicts the authenticated sender
// (protocol.ErrOwnership).
//
// # The caller's duties
//
// One goroutine owns the Engine. It:
//
//  1. Calls New, then Load once before anything else.
//  2. Feeds inputs as they happen: local writes (PutOwned, ...), Connected and
//     Disconnected for sessions, Step for each message on a session stream,
//     StepResponse and RequestDone for each frame and the end of a catch-up
//     stream it opened, and Tick regularly. Serve answers a peer's request
//     with a Responder, which may then run on another goroutine.
//  3. Whenever HasReady is true, takes Ready and handles it in the order its
//     doc gives: persist the batch atomically, then send, open requests,
//     close sessions, deliver events; then calls Advance. A local write has
//     succeeded only once the batch that carries it is durable.
//  4. On a persist failure, stops: the engine's view is ahead of the store.
//     A new engine loaded from the store carries on from the last durable
//     batch (a crash is the same thing).
package engine
