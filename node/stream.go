package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syncnode/syncnode/node/engine"
	"github.com/syncnode/syncnode/protocol"
)

// sessionKey names the session with one device for one library.
type sessionKey struct {
	lib, device uuid.UUID
}

// session is the long-lived, ordered stream with one member for one library:
// Hello, live pushes, acks, heartbeats and errors travel on it. One goroutine
// writes from a bounded queue, one reads and feeds the engine.
type session struct {
	n      *Node
	key    sessionKey
	peer   peer.ID
	stream network.Stream
	queue  chan protocol.Message
	wmu    sync.Mutex // held while a frame is written
	once   sync.Once
	done   chan struct{}
	// compress is set once the peer's Hello listed a frame compression
	// this node speaks: frames after it may be compressed (PROTOCOL.md §3.1).
	compress atomic.Bool
}

func (n *Node) session(k sessionKey) *session {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sessions[k]
}

// send queues a live message for its peer's session, or drops it if the
// queue is full (the peer is then caught up from the store later: gaps and
// heartbeats reveal what it misses).
func (n *Node) send(env engine.Envelope) {
	s := n.session(sessionKey{lib: env.Library, device: env.To})
	if s == nil {
		return
	}
	select {
	case s.queue <- env.Message:
	default:
		n.mu.Lock()
		n.metrics.Dropped++
		n.mu.Unlock()
	}
}

// runSession registers an open session stream (whose Hello exchange has not
// happened yet: the engine sends ours) and serves it until it ends. first,
// if not nil, is the peer's Hello already read from the stream.
func (n *Node) runSession(key sessionKey, s network.Stream, r *bufio.Reader, first protocol.Message) {
	sess := &session{n: n, key: key, peer: s.Conn().RemotePeer(), stream: s,
		queue: make(chan protocol.Message, n.cfg.SendQueue), done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = s.ResetWithError(network.StreamErrorCode(protocol.CodeOf(protocol.ErrShuttingDown)))
		return
	}
	old := n.sessions[key]
	n.sessions[key] = sess
	n.mu.Unlock()
	if old != nil {
		old.close(errors.New("replaced by a newer session"))
	}
	err := n.do(n.ctx, func(now time.Time) error { return n.eng.Connected(now, key.lib, key.device) })
	if err != nil {
		sess.close(err)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		sess.writeLoop()
	}()
	if h, ok := first.(*protocol.Hello); ok {
		sess.compress.Store(protocol.AcceptsCompression(h.Compression))
	}
	if first != nil {
		if err := n.doCost(n.ctx, messageCost(first), func(now time.Time) error { return n.eng.Step(now, key.device, first) }); err != nil {
			sess.refuse(err)
			return
		}
	}
	sess.readLoop(r, first != nil)
}

// writeLoop writes queued messages through a buffer that it flushes
// whenever the queue is empty: a burst goes out in few writes, a single
// message at once.
//
// This node's Hello is the first frame of the stream (PROTOCOL.md §7.1).
// The session is registered, so that pushes reach it, before the engine
// queues the Hello; while the engine still counts the peer as connected (a
// session that replaced an older one) it may queue live pushes, heartbeats or
// acks first. Those are dropped: the Hello that follows carries the
// watermarks that include them, and the peer catches up from it.
func (s *session) writeLoop() {
	bw := bufio.NewWriterSize(s.stream, 64<<10)
	w := s.n.newWriter(bw)
	helloSent := false
	for {
		select {
		case <-s.done:
			return
		case m := <-s.queue:
			if h, ok := m.(*protocol.Hello); ok {
				// This node's Hello says which compressed frames it
				// accepts; a Hello itself is never compressed.
				withList := *h
				withList.Compression = protocol.Compressions()
				m = &withList
				w.Compress(false)
				helloSent = true
			} else if !helloSent {
				continue
			} else {
				w.Compress(s.compress.Load())
			}
			s.wmu.Lock()
			_ = s.stream.SetWriteDeadline(time.Now().Add(s.n.cfg.StreamTimeout))
			err := w.WriteMessage(m)
			if err == nil && len(s.queue) == 0 {
				err = bw.Flush()
			}
			s.wmu.Unlock()
			if err != nil {
				s.close(fmt.Errorf("writing %s: %w", m.Name(), err))
				return
			}
		}
	}
}

// maxInFlight is how many frames of one session may wait for the engine at
// once: frames read while earlier ones are being applied join the engine's
// next group, so a burst of pushes costs one store batch, not one each.
const maxInFlight = 64

// readLoop reads the peer's frames and feeds them to the engine until the
// session ends. helloSeen says whether the peer's Hello was read already (the
// first frame of an inbound session). Each frame is checked in the order of
// PROTOCOL.md §8.1: the frame and its decoding (Reader), the session's
// membership and rules (checkFrame), the store cost (tooCostly), then the
// engine's checks (ownership, model type, clock).
func (s *session) readLoop(br *bufio.Reader, helloSeen bool) {
	r := s.n.newReader(br)
	r.AcceptCompressed()       // this node's Hello lists it
	var pending []<-chan error // results of submitted frames, in order
	// settle takes the results of submitted frames, waiting for all (or only
	// for those already done); it reports whether the session goes on.
	settle := func(all bool) bool {
		for len(pending) > 0 {
			var err error
			if all || len(pending) >= maxInFlight {
				err = s.n.wait(pending[0])
			} else {
				select {
				case err = <-pending[0]:
				default:
					return true
				}
			}
			pending = pending[1:]
			switch {
			case err == nil:
			case errors.Is(err, protocol.ErrUnknownModelType):
				s.n.countRefusal(err)
				s.queueError(err) // a newer peer may know more model types: keep the session
			default:
				s.refuse(err)
				return false
			}
		}
		return true
	}
	for {
		if !settle(br.Buffered() == 0) { // nothing more to read at once: wait for the results
			return
		}
		// A live peer sends at least a heartbeat per interval; the engine
		// times it out after PeerTimeout, the read deadline is a backstop.
		_ = s.stream.SetReadDeadline(time.Now().Add(s.n.cfg.PeerTimeout + s.n.cfg.StreamTimeout))
		m, err := r.ReadMessage()
		if errors.Is(err, protocol.ErrUnknownMessage) {
			// A variant of a newer peer of the same major: the whole frame
			// was read, so the stream is in step. Say so and go on
			// (PROTOCOL.md §1, §8), after the answers to earlier frames.
			if !settle(true) {
				return
			}
			s.n.countRefusal(err)
			s.queueError(err)
			continue
		}
		if err != nil {
			if !settle(true) {
				return
			}
			if errors.Is(err, io.EOF) {
				s.close(nil)
			} else {
				s.refuse(fmt.Errorf("reading: %w", err))
			}
			return
		}
		if err := s.checkFrame(m, &helloSeen); err != nil {
			if !settle(true) {
				return
			}
			s.refuse(err)
			return
		}
		if h, ok := m.(*protocol.Hello); ok {
			s.compress.Store(protocol.AcceptsCompression(h.Compression))
		}
		if e, ok := m.(*protocol.Error); ok && e.RemovedDevice != nil {
			s.n.onRemovalError(s.key.device, e)
		}
		if err := tooCostly(m); err != nil {
			// The session ends; after a reconnect, the gap the message
			// leaves is caught up in pages the store can hold.
			s.refuse(err)
			return
		}
		done, err := s.n.submit(s.n.ctx, messageCost(m), func(now time.Time) error { return s.n.eng.Step(now, s.key.device, m) })
		if err != nil {
			s.refuse(err)
			return
		}
		pending = append(pending, done)
		select {
		case <-s.done:
			return
		default:
		}
	}
}

// checkFrame applies the session's rules to a decoded frame, after the
// decoding's and before the engine's (PROTOCOL.md §8.1): the peer is still a
// member of the session's library (not_member); the frame names that library,
// is a variant a session carries, and the peer's Hello comes first and once
// (unexpected). An Error is accepted anywhere: a listener may refuse the
// session with one instead of its Hello.
func (s *session) checkFrame(m protocol.Message, helloSeen *bool) error {
	if d, ok := s.n.memberDevice(s.peer, s.key.lib); !ok || d != s.key.device {
		return fmt.Errorf("%w: peer %s (device %s) in library %s", protocol.ErrNotMember, s.peer, s.key.device, s.key.lib)
	}
	if m.Library() != s.key.lib {
		return fmt.Errorf("%w: session of library %s carries a message of library %s", protocol.ErrUnexpected, s.key.lib, m.Library())
	}
	switch m.(type) {
	case *protocol.Hello:
		if *helloSeen {
			return fmt.Errorf("%w: a second Hello on a session", protocol.ErrUnexpected)
		}
		*helloSeen = true
	case *protocol.Error:
	case *protocol.StateRequest, *protocol.SharedChangeRequest, *protocol.StateResponse, *protocol.SharedChangeResponse:
		return fmt.Errorf("%w: %s is not sent on a session stream", protocol.ErrUnexpected, m.Name())
	default:
		if !*helloSeen {
			return fmt.Errorf("%w: a session must start with Hello, not %s", protocol.ErrUnexpected, m.Name())
		}
	}
	return nil
}

func (s *session) queueError(err error) {
	select {
	case s.queue <- protocol.NewError(s.key.lib, err):
	default:
	}
}

// refuse answers a protocol error with an Error frame and ends the session
// (see sendError). A transport failure (the peer reset the stream) is not a
// refusal: there is nobody to answer.
func (s *session) refuse(err error) {
	select {
	case <-s.done:
		return // ended already, by this node (its read then fails)
	default:
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || transportFailure(err) {
		s.closeWith(err, true)
		return
	}
	s.n.countRefusal(err)
	s.n.log.Warn("session refused", "library", s.key.lib, "device", s.key.device, "peer", s.peer, "err", err)
	if s.finish(nil) {
		s.wmu.Lock() // a frame the writer is still writing goes first
		defer s.wmu.Unlock()
		s.n.sendError(s.stream, s.key.lib, err)
	}
}

func (s *session) close(reason error) { s.closeWith(reason, false) }

func (s *session) closeWith(reason error, reset bool) {
	s.finish(func() {
		if reset || (reason != nil && !errors.Is(reason, protocol.ErrShuttingDown)) {
			_ = s.stream.ResetWithError(network.StreamErrorCode(protocol.CodeOf(reason)))
		} else {
			_ = s.stream.Close()
		}
	})
}

// finish ends the session once: it stops the writer, ends the stream with
// endStream (if not nil, else the caller ends it), unregisters the session
// and tells the engine. It reports whether this call ended the session.
func (s *session) finish(endStream func()) bool {
	ran := false
	s.once.Do(func() {
		ran = true
		close(s.done)
		if endStream != nil {
			endStream()
		}
		n := s.n
		n.mu.Lock()
		if n.sessions[s.key] == s {
			delete(n.sessions, s.key)
		}
		closed := n.closed
		n.mu.Unlock()
		if !closed {
			go func() { // the engine loop may be the caller
				_ = n.do(n.ctx, func(now time.Time) error {
					if n.session(s.key) == nil {
						n.eng.Disconnected(now, s.key.lib, s.key.device)
					}
					return nil
				})
			}()
		}
	})
	return ran
}

// transportFailure reports whether err says that the stream or its
// connection broke (a reset, the connection closed), rather than that the
// peer sent something wrong.
func transportFailure(err error) bool {
	var se *network.StreamError
	var ce *network.ConnError
	return errors.As(err, &se) || errors.As(err, &ce) || errors.Is(err, network.ErrReset)
}

// sendError writes an Error frame for err and ends the stream so that the
// frame arrives. Resetting right after the write would lose it: yamux and
// QUIC discard what the peer has not read yet when a reset arrives. So the
// write side is closed, the peer's frames are discarded until it ends its
// side (the stream is then closed), and the stream is reset with the error's
// code only if the peer does not end it within errorLinger.
func (n *Node) sendError(s network.Stream, lib uuid.UUID, err error) {
	code := network.StreamErrorCode(protocol.CodeOf(err))
	_ = s.SetWriteDeadline(time.Now().Add(errorLinger))
	if werr := n.newWriter(s).WriteMessage(errorFrame(lib, err)); werr != nil {
		_ = s.ResetWithError(code)
		return
	}
	if s.CloseWrite() != nil {
		_ = s.ResetWithError(code)
		return
	}
	if n.ctx != nil { // Close does not wait for a lingering refusal
		stop := context.AfterFunc(n.ctx, func() { _ = s.ResetWithError(code) })
		defer stop()
	}
	_ = s.SetReadDeadline(time.Now().Add(errorLinger))
	buf := make([]byte, 4096)
	for read := 0; read <= maxLingerRead; {
		k, rerr := s.Read(buf)
		read += k
		if errors.Is(rerr, io.EOF) {
			_ = s.Close()
			return
		}
		if rerr != nil {
			break
		}
	}
	_ = s.ResetWithError(code)
}

// errorLinger is how long sendError waits for a refused peer to read the
// Error frame and end its side; maxLingerRead bounds what it discards
// meanwhile, in bytes.
const (
	errorLinger   = time.Second
	maxLingerRead = 1 << 20
)

// ---- inbound streams ----

// handleStream serves every inbound stream of the protocol. The first frame
// says what it is: a Hello opens a session, a StateRequest or
// SharedChangeRequest asks for catch-up pages. The peer must be a member of
// the library the frame names, or nothing of it is sent.
func (n *Node) handleStream(s network.Stream) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		_ = s.ResetWithError(network.StreamErrorCode(protocol.CodeOf(protocol.ErrShuttingDown)))
		return
	}
	if err := s.Scope().SetService(serviceName); err != nil {
		n.refuseStream(s, uuid.Nil, fmt.Errorf("%w: resource limit: %v", protocol.ErrRateLimited, err))
		return
	}
	// The first frame may be as large as a frame can be. A session keeps the
	// reservation for its reads; a request, or a refusal (which may linger,
	// see sendError), gives it back at once. High priority: a member's
	// session and its two catch-up requests (one per strategy) fit in
	// libp2p's default limit per protocol and peer (16 MiB), where medium
	// priority (60% of it) refused the second request.
	if err := s.Scope().ReserveMemory(n.cfg.MaxFrameSize, network.ReservationPriorityHigh); err != nil {
		n.refuseStream(s, uuid.Nil, fmt.Errorf("%w: cannot reserve a frame's memory: %v", protocol.ErrRateLimited, err))
		return
	}
	reserved := true
	release := func() {
		if reserved {
			reserved = false
			s.Scope().ReleaseMemory(n.cfg.MaxFrameSize)
		}
	}
	defer release()
	refuse := func(lib uuid.UUID, err error) {
		release()
		n.refuseStream(s, lib, err)
	}
	_ = s.SetReadDeadline(time.Now().Add(n.cfg.StreamTimeout))
	br := bufio.NewReader(s)
	first, err := n.newReader(br).ReadMessage()
	if err != nil {
		refuse(uuid.Nil, fmt.Errorf("reading the first frame: %w", err))
		return
	}
	lib := first.Library()
	device, ok := n.memberDevice(s.Conn().RemotePeer(), lib)
	if !ok && n.joinPending(lib) {
		device, ok = n.memberDevice(s.Conn().RemotePeer(), lib)
	}
	if !ok && n.holdsLibrary(lib) {
		// A device that just joined knows this node is a member before
		// this node has the joiner's record (it is on its way from the
		// inviter): wait a moment for it (PROTOCOL.md §7.7). The first
		// frame is read: its memory reservation is given back meanwhile.
		release()
		if device, ok = n.awaitMember(s.Conn().RemotePeer(), lib); ok {
			if err := s.Scope().ReserveMemory(n.cfg.MaxFrameSize, network.ReservationPriorityHigh); err != nil {
				refuse(lib, fmt.Errorf("%w: cannot reserve a frame's memory: %v", protocol.ErrRateLimited, err))
				return
			}
			reserved = true
		}
	}
	if !ok {
		refuse(lib, n.goneError(lib, s.Conn().RemotePeer(), fmt.Errorf("%w: peer %s in library %s", protocol.ErrNotMember, s.Conn().RemotePeer(), lib)))
		return
	}
	switch m := first.(type) {
	case *protocol.Error:
		if m.RemovedDevice == nil {
			refuse(lib, fmt.Errorf("%w: a stream must start with Hello or a request, not %s", protocol.ErrUnexpected, first.Name()))
			return
		}
		// A removal notice (PROTOCOL.md §7.7): its only frame.
		release()
		n.onRemovalError(device, m)
		_ = s.Close()
	case *protocol.Hello:
		if m.DeviceID != device {
			refuse(lib, fmt.Errorf("%w: Hello claims device %s, the peer is device %s", protocol.ErrOwnership, m.DeviceID, device))
			return
		}
		if !slices.Contains(m.Versions, protocol.Version) {
			// Refused before the session starts, so that the Error is the
			// stream's only frame (§8.1: the version is a first-frame
			// check); the engine checks it again for sessions this node
			// opens.
			refuse(lib, fmt.Errorf("%w: peer speaks %v, this node speaks %d", protocol.ErrUnsupportedVersion, m.Versions, protocol.Version))
			return
		}
		n.runSession(sessionKey{lib: lib, device: device}, s, br, m)
	case *protocol.StateRequest, *protocol.SharedChangeRequest:
		release() // nothing more is read
		n.serveRequest(s, device, first)
	default:
		refuse(lib, fmt.Errorf("%w: a stream must start with Hello or a request, not %s", protocol.ErrUnexpected, first.Name()))
	}
}

// memberGrace is how long a stream of a peer that is not a member of a
// library this node holds waits for it to become one before it is refused.
const memberGrace = 2 * time.Second

// holdsLibrary reports whether this node holds lib (and was not removed
// from it).
func (n *Node) holdsLibrary(lib uuid.UUID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, removed := n.removed[lib]; removed {
		return false
	}
	for _, libs := range n.members {
		if _, ok := libs[lib]; ok {
			return true
		}
	}
	return false
}

// awaitMember waits at most memberGrace for peer p to become a member of
// lib, and returns its device if it did.
func (n *Node) awaitMember(p peer.ID, lib uuid.UUID) (uuid.UUID, bool) {
	timer := time.NewTimer(memberGrace)
	defer timer.Stop()
	for {
		n.mu.Lock()
		d, ok := n.members[p][lib]
		changed := n.membersChanged
		n.mu.Unlock()
		if ok || changed == nil {
			return d, ok
		}
		select {
		case <-changed:
		case <-timer.C:
			return uuid.Nil, false
		case <-n.ctx.Done():
			return uuid.Nil, false
		}
	}
}

// joinPending waits (at most StreamTimeout) while this node is joining lib,
// and reports whether it did: a member may reach the joiner before the
// joiner has stored the library.
func (n *Node) joinPending(lib uuid.UUID) bool {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamTimeout)
	defer cancel()
	return n.joins.wait(ctx, lib)
}

// refuseStream answers err with an Error frame and ends the stream (see
// sendError).
func (n *Node) refuseStream(s network.Stream, lib uuid.UUID, err error) {
	n.countRefusal(err)
	n.log.Warn("stream refused", "peer", s.Conn().RemotePeer(), "err", err)
	n.sendError(s, lib, err)
}

// serveRequest answers a catch-up request with response frames, read from
// the store on this goroutine.
func (n *Node) serveRequest(s network.Stream, device uuid.UUID, req protocol.Message) {
	p := s.Conn().RemotePeer()
	n.mu.Lock()
	if n.serving[p] >= n.cfg.MaxRequestsPerPeer {
		n.mu.Unlock()
		n.refuseStream(s, req.Library(), fmt.Errorf("%w: %d requests of this peer are being served", protocol.ErrRateLimited, n.cfg.MaxRequestsPerPeer))
		return
	}
	n.serving[p]++
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.serving[p]--
		n.mu.Unlock()
	}()
	var resp *engine.Responder
	err := n.do(n.ctx, func(now time.Time) error {
		var err error
		resp, err = n.eng.Serve(now, device, req)
		return err
	})
	if err != nil {
		n.refuseStream(s, req.Library(), err)
		return
	}
	w := n.newWriter(s)
	w.Compress(protocol.AcceptsCompression(requestCompression(req)))
	for {
		m, err := resp.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			n.refuseStream(s, req.Library(), fmt.Errorf("%w: %v", protocol.ErrInternal, err))
			return
		}
		_ = s.SetWriteDeadline(time.Now().Add(n.cfg.StreamTimeout))
		if err := w.WriteMessage(m); err != nil {
			_ = s.Reset()
			return
		}
	}
	_ = s.Close()
}

// ---- outbound requests ----

// startRequest opens a short stream for one catch-up request and feeds its
// pages to the engine, each stored with the watermark it advances before the
// next is read.
func (n *Node) startRequest(r engine.Request) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.runRequest(r)
		_ = n.do(n.ctx, func(now time.Time) error {
			n.eng.RequestDone(now, r.ID, err)
			return nil
		})
	}()
}

func (n *Node) runRequest(r engine.Request) error {
	n.mu.Lock()
	p, ok := n.devices[r.To]
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("no peer known for device %s", r.To)
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamTimeout)
	// Never on a limited connection (see ensureSession).
	s, err := n.host.NewStream(ctx, p, ProtocolID)
	cancel()
	if err != nil {
		return fmt.Errorf("opening request stream: %w", err)
	}
	if err := s.Scope().SetService(serviceName); err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.SetWriteDeadline(time.Now().Add(n.cfg.StreamTimeout))
	if err := n.newWriter(s).WriteMessage(withCompression(r.Message)); err != nil {
		_ = s.Reset()
		return fmt.Errorf("sending %s: %w", r.Message.Name(), err)
	}
	_ = s.CloseWrite()
	rd := n.newReader(bufio.NewReader(s))
	rd.AcceptCompressed() // the request listed it
	for {
		_ = s.SetReadDeadline(time.Now().Add(n.cfg.StreamTimeout))
		m, err := rd.ReadMessage()
		if errors.Is(err, protocol.ErrUnknownMessage) {
			// A newer responder's variant: this side closed its write side
			// and cannot answer, so it skips the frame (PROTOCOL.md §8).
			n.countRefusal(err)
			continue
		}
		if err != nil {
			_ = s.Reset()
			return fmt.Errorf("reading response: %w", err)
		}
		if e, ok := m.(*protocol.Error); ok {
			_ = s.Reset()
			if e.LibraryID == r.Message.Library() {
				if d, ok := n.memberDevice(p, e.LibraryID); ok && d == r.To {
					n.onRemovalError(d, e)
				}
			}
			return fmt.Errorf("peer refused: %w", e.Err())
		}
		if err := tooCostly(m); err != nil {
			n.countRefusal(err)
			_ = s.ResetWithError(network.StreamErrorCode(protocol.CodeOf(err)))
			return err
		}
		if err := n.doCost(n.ctx, messageCost(m), func(now time.Time) error { return n.eng.StepResponse(now, r.ID, m) }); err != nil {
			_ = s.ResetWithError(network.StreamErrorCode(protocol.CodeOf(err)))
			return err
		}
		if !hasMore(m) {
			_ = s.Close()
			return nil
		}
	}
}

// withCompression returns a copy of a request that lists the frame
// compression this node accepts in the response (PROTOCOL.md §3.1).
func withCompression(m protocol.Message) protocol.Message {
	switch m := m.(type) {
	case *protocol.StateRequest:
		c := *m
		c.Compression = protocol.Compressions()
		return &c
	case *protocol.SharedChangeRequest:
		c := *m
		c.Compression = protocol.Compressions()
		return &c
	}
	return m
}

// requestCompression returns the frame compression a request accepts.
func requestCompression(m protocol.Message) []string {
	switch m := m.(type) {
	case *protocol.StateRequest:
		return m.Compression
	case *protocol.SharedChangeRequest:
		return m.Compression
	}
	return nil
}

func hasMore(m protocol.Message) bool {
	switch m := m.(type) {
	case *protocol.StateResponse:
		return m.HasMore
	case *protocol.SharedChangeResponse:
		return m.HasMore
	}
	return false
}

// ---- connections and dialling ----

func (n *Node) onConnected(c network.Conn) {
	n.mu.Lock()
	_, member := n.members[c.RemotePeer()]
	n.mu.Unlock()
	if !member {
		// A device removed from a library learns it on its next contact.
		n.tellGone(c.RemotePeer())
	}
	if member {
		// An address this node dialled is one the peer listens on; the
		// source of an inbound connection may be an ephemeral port (the
		// peer's listen addresses come from identify, see discover.go).
		if c.Stat().Direction == network.DirOutbound {
			n.rememberAddr(c.RemotePeer(), c.RemoteMultiaddr().String())
		}
		n.kickDialer()
	}
}

func (n *Node) onDisconnected(c network.Conn) {
	n.kickDialer()
}

// lessDevice orders devices by their bytes: the smaller opens sessions.
func lessDevice(a, b uuid.UUID) bool { return bytes.Compare(a[:], b[:]) < 0 }
