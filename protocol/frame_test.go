package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func frameOf(body []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

func TestFrameRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	bodies := [][]byte{{0x01}, bytes.Repeat([]byte{0xab}, 127), bytes.Repeat([]byte{0xcd}, 128), bytes.Repeat([]byte{0xef}, 70<<10)}
	for _, b := range bodies {
		if err := WriteFrame(&stream, b); err != nil {
			t.Fatalf("WriteFrame(%d bytes): %v", len(b), err)
		}
	}
	r := bufio.NewReader(&stream)
	for i, want := range bodies {
		got, err := ReadFrame(r, 0)
		if err != nil {
			t.Fatalf("ReadFrame #%d: got error %v, want %d bytes", i, err, len(want))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ReadFrame #%d: got %d bytes %.8x..., want %d bytes %.8x...", i, len(got), got, len(want), want)
		}
	}
	if got, err := ReadFrame(r, 0); err != io.EOF {
		t.Fatalf("ReadFrame at the end: got (%x, %v), want io.EOF itself", got, err)
	}
}

func TestWriteFrameRefusesEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, nil); !errors.Is(err, ErrMalformed) || buf.Len() != 0 {
		t.Fatalf("WriteFrame(nil): got %v and %d bytes written, want ErrMalformed and nothing", err, buf.Len())
	}
}

func TestReadFrameRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want error
		says string
	}{
		{"zero length", []byte{0x00}, 0, ErrMalformed, "zero frame length"},
		{"non-minimal zero", []byte{0x80, 0x00}, 0, ErrMalformed, "shortest form"},
		{"non-minimal length", []byte{0x85, 0x00, 1, 2, 3, 4, 5}, 0, ErrMalformed, "shortest form"},
		{"overlong varint", append(bytes.Repeat([]byte{0x80}, 10), 0x01), 0, ErrMalformed, "overflows"},
		{"varint overflowing 64 bits", append(bytes.Repeat([]byte{0xff}, 9), 0x02), 0, ErrMalformed, "overflows"},
		{"largest varint", append(bytes.Repeat([]byte{0xff}, 9), 0x01), 0, ErrFrameTooLarge, "18446744073709551615 bytes"},
		{"over the limit", frameOf(make([]byte, 11)), 10, ErrFrameTooLarge, "11 bytes, limit 10"},
		{"over the default limit", binary.AppendUvarint(nil, DefaultMaxFrameSize+1), 0, ErrFrameTooLarge, "limit 4194304"},
		{"truncated varint", []byte{0x80}, 0, io.ErrUnexpectedEOF, "length"},
		{"truncated body", frameOf([]byte{1, 2, 3})[:3], 0, io.ErrUnexpectedEOF, "body of 3 bytes"},
		{"body missing", []byte{0x05}, 0, io.ErrUnexpectedEOF, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), tc.max)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("ReadFrame(%x): got (%x, %v), want error wrapping %v", tc.in, got, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("ReadFrame error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestReadFrameAtLimit(t *testing.T) {
	body := bytes.Repeat([]byte{7}, 1000)
	got, err := ReadFrame(bufio.NewReader(bytes.NewReader(frameOf(body))), 1000)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("ReadFrame of exactly the limit: got (%d bytes, %v), want 1000 bytes", len(got), err)
	}
}

// prefixOnly serves a length prefix through ReadByte and fails the test if
// anyone reads the body.
type prefixOnly struct {
	t      *testing.T
	prefix []byte
}

func (p *prefixOnly) ReadByte() (byte, error) {
	if len(p.prefix) == 0 {
		p.t.Error("ReadByte called after the length prefix")
		return 0, io.ErrUnexpectedEOF
	}
	c := p.prefix[0]
	p.prefix = p.prefix[1:]
	return c, nil
}

func (p *prefixOnly) Read([]byte) (int, error) {
	p.t.Error("Read of the body of a frame over the limit")
	return 0, io.ErrUnexpectedEOF
}

// TestReadFrameTooLargeRefusedEarly: a frame announcing 1 GiB is refused
// from its prefix alone, without reading its body or allocating for it.
func TestReadFrameTooLargeRefusedEarly(t *testing.T) {
	prefix := binary.AppendUvarint(nil, 1<<30)
	r := &prefixOnly{t: t, prefix: prefix}
	if _, err := ReadFrame(r, DefaultMaxFrameSize); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("ReadFrame: got %v, want ErrFrameTooLarge", err)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		r := &prefixOnly{t: t, prefix: prefix}
		if _, err := ReadFrame(r, DefaultMaxFrameSize); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("ReadFrame: got %v, want ErrFrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / 100; perCall > 1024 {
		t.Fatalf("refusing a 1 GiB frame allocated %d bytes per call, want under 1 KiB", perCall)
	}
	allocs := testing.AllocsPerRun(100, func() {
		r := &prefixOnly{t: t, prefix: prefix}
		_, _ = ReadFrame(r, DefaultMaxFrameSize)
	})
	if allocs > 5 {
		t.Fatalf("refusing a 1 GiB frame took %v allocations, want at most 5 (the error)", allocs)
	}
}

func TestReaderWriterRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream, 0)
	exs := examples()
	for _, ex := range exs {
		if err := w.WriteMessage(ex.msg); err != nil {
			t.Fatalf("WriteMessage(%s): %v", ex.title, err)
		}
	}
	// A plain io.Reader (no ReadByte) is buffered by NewReader.
	r := NewReader(struct{ io.Reader }{&stream}, 0)
	var got []Message
	for {
		m, err := r.ReadMessage()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ReadMessage #%d: %v", len(got), err)
		}
		got = append(got, m)
	}
	if len(got) != len(exs) {
		t.Fatalf("read %d messages, want %d", len(got), len(exs))
	}
	// Messages read earlier must not change when the Reader reuses its
	// buffer for later frames.
	for i, ex := range exs {
		if !reflect.DeepEqual(got[i], ex.msg) {
			t.Errorf("message #%d (%s):\n got %+v\nwant %+v", i, ex.title, got[i], ex.msg)
		}
	}
}

func TestWriterFrameIsEncodeOutput(t *testing.T) {
	for _, ex := range examples() {
		var stream bytes.Buffer
		if err := NewWriter(&stream, 0).WriteMessage(ex.msg); err != nil {
			t.Fatal(err)
		}
		body, err := Encode(ex.msg)
		if err != nil {
			t.Fatal(err)
		}
		if want := frameOf(body); !bytes.Equal(stream.Bytes(), want) {
			t.Fatalf("%s: Writer wrote %x, want %x", ex.title, stream.Bytes(), want)
		}
	}
}

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls++
	return c.Buffer.Write(p)
}

func TestWriterOneWritePerMessage(t *testing.T) {
	var w countingWriter
	mw := NewWriter(&w, 0)
	big := benchBatch(benchPayloads()["bytes"])
	for _, m := range []Message{vAck(), big, vHello()} {
		before := w.calls
		if err := mw.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
		if w.calls-before != 1 {
			t.Fatalf("WriteMessage(%s) made %d Write calls, want 1", m.Name(), w.calls-before)
		}
	}
}

func TestWriterRefusesTooLarge(t *testing.T) {
	var stream bytes.Buffer
	m := vStateBatch()
	body, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(&stream, len(body)-1)
	if err := w.WriteMessage(m); !errors.Is(err, ErrFrameTooLarge) || stream.Len() != 0 {
		t.Fatalf("WriteMessage over the limit: got %v with %d bytes written, want ErrFrameTooLarge and nothing written", err, stream.Len())
	}
	w = NewWriter(&stream, len(body))
	if err := w.WriteMessage(m); err != nil {
		t.Fatalf("WriteMessage of exactly the limit: got %v, want nil", err)
	}
	if err := w.WriteMessage(&Hello{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("WriteMessage of an invalid message: got %v, want ErrInvalid", err)
	}
}

func TestReaderErrors(t *testing.T) {
	// An oversized frame stops the Reader before the body.
	big := frameOf(make([]byte, 101))
	if _, err := NewReader(bytes.NewReader(big), 100).ReadMessage(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("ReadMessage of a frame over the limit: got %v, want ErrFrameTooLarge", err)
	}
	// A frame that is not a message leaves the stream in step: the next
	// frame reads fine.
	good, err := Encode(vAck())
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(append(frameOf([]byte{0xff}), frameOf(good)...)), 0)
	if _, err := r.ReadMessage(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ReadMessage of a malformed frame: got %v, want ErrMalformed", err)
	}
	if m, err := r.ReadMessage(); err != nil || !reflect.DeepEqual(m, vAck()) {
		t.Fatalf("ReadMessage after a malformed frame: got (%v, %v), want the ack", m, err)
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatalf("ReadMessage at the end: got %v, want io.EOF", err)
	}
	// A stream cut inside a frame is not a clean end.
	r = NewReader(bytes.NewReader(frameOf(good)[:10]), 0)
	if _, err := r.ReadMessage(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadMessage of a truncated frame: got %v, want io.ErrUnexpectedEOF", err)
	}
}
