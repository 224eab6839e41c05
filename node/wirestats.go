package node

import (
	"io"
	"sync"

	"github.com/syncnode/syncnode/protocol"
)

// MessageKey names one message type in one direction ("in" or "out").
type MessageKey struct {
	Type      string
	Direction string
}

// MessageCount counts messages and the bytes of their frames.
type MessageCount struct {
	Count, Bytes uint64
}

// wireStats counts the sync protocol's messages by type and direction.
type wireStats struct {
	mu sync.Mutex
	m  map[MessageKey]MessageCount
}

func (w *wireStats) count(dir string, m protocol.Message, frameBytes int) {
	k := MessageKey{Type: m.Name(), Direction: dir}
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[MessageKey]MessageCount)
	}
	c := w.m[k]
	c.Count++
	c.Bytes += uint64(frameBytes)
	w.m[k] = c
	w.mu.Unlock()
}

func (w *wireStats) snapshot() map[MessageKey]MessageCount {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[MessageKey]MessageCount, len(w.m))
	for k, v := range w.m {
		out[k] = v
	}
	return out
}

// meteredReader counts the bytes read through it; it reads byte by byte
// where protocol.Reader does, so no byte is counted before it is used.
type meteredReader struct {
	r protocol.BufferedReader
	n int
}

func (m *meteredReader) Read(p []byte) (int, error) {
	k, err := m.r.Read(p)
	m.n += k
	return k, err
}

func (m *meteredReader) ReadByte() (byte, error) {
	b, err := m.r.ReadByte()
	if err == nil {
		m.n++
	}
	return b, err
}

// meteredWriter counts the bytes written through it.
type meteredWriter struct {
	w io.Writer
	n int
}

func (m *meteredWriter) Write(p []byte) (int, error) {
	k, err := m.w.Write(p)
	m.n += k
	return k, err
}

// msgReader is a protocol.Reader that counts each message it reads, with
// the bytes its frame took on the wire.
type msgReader struct {
	*protocol.Reader
	in    *meteredReader
	stats *wireStats
}

// newReader returns a counted reader of frames from r.
func (n *Node) newReader(r protocol.BufferedReader) *msgReader {
	in := &meteredReader{r: r}
	return &msgReader{Reader: protocol.NewReader(in, n.cfg.MaxFrameSize), in: in, stats: &n.wire}
}

// ReadMessage reads and counts one message.
func (r *msgReader) ReadMessage() (protocol.Message, error) {
	before := r.in.n
	m, err := r.Reader.ReadMessage()
	if m != nil {
		r.stats.count("in", m, r.in.n-before)
	}
	return m, err
}

// msgWriter is a protocol.Writer that counts each message it writes.
type msgWriter struct {
	*protocol.Writer
	out   *meteredWriter
	stats *wireStats
}

// newWriter returns a counted writer of frames to w.
func (n *Node) newWriter(w io.Writer) *msgWriter {
	out := &meteredWriter{w: w}
	return &msgWriter{Writer: protocol.NewWriter(out, n.cfg.MaxFrameSize), out: out, stats: &n.wire}
}

// WriteMessage writes and counts one message.
func (w *msgWriter) WriteMessage(m protocol.Message) error {
	before := w.out.n
	err := w.Writer.WriteMessage(m)
	if err == nil {
		w.stats.count("out", m, w.out.n-before)
	}
	return err
}
