package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A frame is an unsigned LEB128 varint (as encoding/binary's Uvarint, and
// the multiformats unsigned-varint libp2p uses) holding the body's length in
// bytes, then the body: one message's CBOR. The length is never zero and is
// written in its shortest form.

// BufferedReader is what ReadFrame reads from: an io.Reader that also reads
// single bytes, such as a *bufio.Reader. ReadFrame reads the length prefix
// byte by byte and never reads past the end of the frame.
type BufferedReader interface {
	io.Reader
	io.ByteReader
}

// WriteFrame writes body as one frame to w. It refuses an empty body. It does
// not check a size limit; Writer does. For a body up to 64 KiB the frame
// reaches w in one Write call.
func WriteFrame(w io.Writer, body []byte) error {
	if len(body) == 0 {
		return fmt.Errorf("%w: writing frame: empty body", ErrMalformed)
	}
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], uint64(len(body)))
	if len(body) <= 64<<10 {
		buf := make([]byte, 0, n+len(body))
		buf = append(append(buf, prefix[:n]...), body...)
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("writing frame: %w", err)
		}
		return nil
	}
	if _, err := w.Write(prefix[:n]); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame from r and returns its body in a new slice that
// the caller owns. maxSize is the largest body accepted, in bytes; zero or
// less means DefaultMaxFrameSize.
//
// It returns io.EOF, unwrapped, only when r ends cleanly before the first
// byte of a frame; an error wrapping io.ErrUnexpectedEOF when r ends inside
// one; ErrFrameTooLarge when the announced length exceeds maxSize, decided
// from the length prefix alone, before anything is allocated or the body is
// read; ErrMalformed for a zero length or a length prefix that is longer than
// 10 bytes, overflows 64 bits or is not in its shortest form. Other errors of
// r are returned wrapped. After any error but io.EOF the stream is out of
// step and must be reset.
func ReadFrame(r BufferedReader, maxSize int) ([]byte, error) {
	return readFrame(r, maxSize, nil)
}

// readFrame is ReadFrame reading into buf when it is large enough.
func readFrame(r BufferedReader, maxSize int, buf []byte) ([]byte, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrameSize
	}
	n, err := readLength(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(maxSize) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxSize)
	}
	if cap(buf) >= int(n) {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading frame body of %d bytes: %w", n, err)
	}
	return buf, nil
}

// readLength reads the varint length prefix of a frame.
func readLength(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := r.ReadByte()
		if err != nil {
			if i == 0 && errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("reading frame length: %w", err)
		}
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, fmt.Errorf("%w: frame length overflows 64 bits", ErrMalformed)
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			switch {
			case c == 0 && i > 0:
				return 0, fmt.Errorf("%w: frame length not in shortest form", ErrMalformed)
			case x == 0:
				return 0, fmt.Errorf("%w: zero frame length", ErrMalformed)
			}
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: frame length longer than %d bytes", ErrMalformed, binary.MaxVarintLen64)
}

// Reader reads messages from a stream, one frame each. It is not safe for
// concurrent use.
type Reader struct {
	r          BufferedReader
	maxSize    int
	buf        []byte // reused for frames up to reuseLimit
	compressed bool   // compressed frames are accepted
	plain      []byte // reused for decompressed bodies up to reuseLimit
}

// reuseLimit is the largest frame buffer a Reader keeps between messages; a
// larger frame gets its own buffer, freed with its message. Decode copies what
// it keeps, so the buffer may be reused.
const reuseLimit = 64 << 10

// NewReader returns a Reader of r that accepts frames up to maxFrame bytes
// (zero or less: DefaultMaxFrameSize). If r is not an io.ByteReader it is
// wrapped in a bufio.Reader, which may read ahead of the current frame: from
// then on, read r only through the Reader.
func NewReader(r io.Reader, maxFrame int) *Reader {
	br, ok := r.(BufferedReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	return &Reader{r: br, maxSize: maxFrame}
}

// ReadMessage reads one frame and decodes it. Its errors are those of
// ReadFrame (io.EOF at a clean end of stream) and Decode. A Decode error
// leaves the stream in step (the whole frame was read), so the caller may
// answer with an Error message before resetting.
func (r *Reader) ReadMessage() (Message, error) {
	var buf []byte
	if r.buf != nil {
		buf = r.buf
	} else {
		buf = make([]byte, 0, 4<<10)
	}
	b, err := readFrame(r.r, r.maxSize, buf)
	if err != nil {
		return nil, err
	}
	if cap(b) <= reuseLimit {
		r.buf = b[:0]
	}
	if r.compressed && !isPlain(b) {
		if b, err = decompress(b, r.maxSize, r.plain); err != nil {
			return nil, err
		}
		if cap(b) <= reuseLimit {
			r.plain = b[:0]
		}
	}
	return Decode(b)
}

// AcceptCompressed makes the Reader accept compressed frames (see
// Compressions) from now on, besides plain ones: call it once this side has
// listed the algorithms in its Hello or request. A compressed frame is
// decompressed within the Reader's frame limit: a body that would
// decompress to more is ErrFrameTooLarge, a corrupt one ErrMalformed; after
// either the whole frame was read, so the stream is still in step. Without
// it a compressed frame is malformed, as any body that is not a message.
func (r *Reader) AcceptCompressed() { r.compressed = true }

// Writer writes messages to a stream, one frame each, in a single Write call
// per message. It is not safe for concurrent use.
type Writer struct {
	w        io.Writer
	maxSize  int
	buf      bytes.Buffer
	compress bool
	cbuf     []byte // compressed frames up to reuseLimit
}

// Compress makes the Writer compress the frames it writes from now on
// (when that makes them smaller), or stop doing so. Turn it on only once the
// peer has listed an algorithm of Compressions (AcceptsCompression) in its
// Hello or request on this stream.
func (w *Writer) Compress(on bool) { w.compress = on }

// NewWriter returns a Writer to w that refuses to send a frame larger than
// maxFrame bytes (zero or less: DefaultMaxFrameSize).
func NewWriter(w io.Writer, maxFrame int) *Writer {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	return &Writer{w: w, maxSize: maxFrame}
}

// WriteMessage encodes m and writes it as one frame. It returns Encode's
// errors, and ErrFrameTooLarge, having written nothing, when the encoding is
// larger than the limit: the caller must split the batch or page.
func (w *Writer) WriteMessage(m Message) error {
	// Leave room for the longest length prefix, fill it in afterwards, and
	// send the frame from where the prefix starts: no copy of the body.
	var room [binary.MaxVarintLen64]byte
	w.buf.Reset()
	w.buf.Write(room[:])
	if err := encodeTo(&w.buf, m); err != nil {
		return err
	}
	b := w.buf.Bytes()
	size := len(b) - len(room)
	if size > w.maxSize {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrFrameTooLarge, m.Name(), size, w.maxSize)
	}
	if w.compress {
		if c := compress(w.cbuf, b[len(room):]); c != nil {
			// The compressed body goes after its own length prefix, in the
			// room before it (c has that room at its start).
			w.cbuf = c[:0]
			return w.writeFrame(m, c)
		}
	}
	n := binary.PutUvarint(room[:], uint64(size))
	start := len(room) - n
	copy(b[start:], room[:n])
	if _, err := w.w.Write(b[start:]); err != nil {
		return fmt.Errorf("writing %s: %w", m.Name(), err)
	}
	if w.buf.Cap() > reuseLimit {
		w.buf = bytes.Buffer{}
	}
	return nil
}

// writeFrame writes body as one frame in one Write call.
func (w *Writer) writeFrame(m Message, body []byte) error {
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], uint64(len(body)))
	frame := append(append(make([]byte, 0, n+len(body)), prefix[:n]...), body...)
	if cap(w.cbuf) > reuseLimit {
		w.cbuf = nil
	}
	if w.buf.Cap() > reuseLimit {
		w.buf = bytes.Buffer{}
	}
	if _, err := w.w.Write(frame); err != nil {
		return fmt.Errorf("writing %s: %w", m.Name(), err)
	}
	return nil
}
